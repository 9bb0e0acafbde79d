"""Birthday date rules: validation, leap years, server-local day and hour around midnight and DST."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from malabot.errors import UserInputError
from malabot.features.birthdays.rules import (
    Birthday,
    LocalMoment,
    announcement_due,
    celebration_date,
    check_never_empty,
    dates_celebrated_on,
    local_moment,
    render_announcement,
    role_removal_given_up,
    upcoming,
    validate_birthday,
    validate_upcoming_days,
)

TODAY = date(2026, 6, 15)


# --- validation ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("month", "day", "year"), [
    (2, 29, None), (2, 29, 2000), (2, 29, 2024), (12, 31, 1900), (1, 1, None), (6, 15, 2026), (4, 30, None),
])
def test_real_birthdays_are_accepted(month: int, day: int, year: int | None) -> None:
    assert validate_birthday(month, day, year, TODAY) == Birthday(month, day, year)


@pytest.mark.parametrize(("month", "day", "year", "words"), [
    (2, 30, None, "February has no day 30"),
    (4, 31, None, "April has no day 31"),
    (13, 1, None, "no month 13"),
    (0, 1, None, "no month 0"),
    (5, 0, None, "no day 0"),
    (2, 29, 2023, "2023 was not a leap year"),
    (2, 29, 1900, "1900 was not a leap year"),  # divisible by 100, not by 400
    (1, 1, 1899, "from 1900"),
    (1, 1, 2027, "2027 is in the future"),
    (6, 16, 2026, "June 16, 2026 is in the future"),
])
def test_impossible_birthdays_are_refused_with_a_reason(month: int, day: int, year: int | None,
                                                        words: str) -> None:
    with pytest.raises(UserInputError, match=words):
        validate_birthday(month, day, year, TODAY)


# --- leap years ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("year", "expected"), [
    (2024, date(2024, 2, 29)), (2025, date(2025, 2, 28)),
    (2100, date(2100, 2, 28)), (2000, date(2000, 2, 29)),
])
def test_february_29_is_celebrated_on_the_28th_in_common_years(year: int, expected: date) -> None:
    assert celebration_date(2, 29, year) == expected


def test_a_common_year_february_28_celebrates_both_dates_and_a_leap_year_only_its_own() -> None:
    assert dates_celebrated_on(date(2025, 2, 28)) == ((2, 28), (2, 29))
    assert dates_celebrated_on(date(2024, 2, 28)) == ((2, 28),)
    assert dates_celebrated_on(date(2024, 2, 29)) == ((2, 29),)
    assert dates_celebrated_on(date(2025, 3, 1)) == ((3, 1),)


def test_next_celebration_counts_today_and_wraps_into_the_next_year() -> None:
    birthday = Birthday(2, 29)
    assert birthday.next_celebration(date(2025, 2, 28)) == date(2025, 2, 28)
    assert birthday.next_celebration(date(2025, 3, 1)) == date(2026, 2, 28)
    assert birthday.next_celebration(date(2027, 3, 1)) == date(2028, 2, 29)
    assert Birthday(1, 2).next_celebration(date(2026, 12, 31)) == date(2027, 1, 2)


def test_a_birthday_changed_after_this_years_celebration_waits_for_next_year() -> None:
    # Celebrated on Nov 25 (the date first given), then changed to Nov 28: once a year.
    celebrated = date(2026, 11, 25)
    assert Birthday(11, 28).next_celebration(date(2026, 11, 25), celebrated) == date(2027, 11, 28)
    assert Birthday(11, 28).next_celebration(date(2026, 11, 28), celebrated) == date(2027, 11, 28)
    assert Birthday(11, 26).next_celebration(date(2026, 11, 25), celebrated) == date(2027, 11, 26)
    # Changed to a date already past this year: next year's, as without a celebration.
    assert Birthday(3, 1).next_celebration(date(2026, 11, 25), celebrated) == date(2027, 3, 1)


def test_a_birthday_celebrated_today_is_still_celebrated_today() -> None:
    today = date(2026, 11, 25)
    assert Birthday(11, 25).next_celebration(today, today) == today
    # Changed away and back on the same day: it was celebrated today, on its date.
    assert Birthday(2, 29).next_celebration(date(2027, 2, 28), date(2027, 2, 28)) == date(2027, 2, 28)


def test_a_celebration_this_year_on_another_day_does_not_repeat_after_a_move_west() -> None:
    # Celebrated on Nov 26 in a zone ahead; the server moved behind, where it is Nov 25 again.
    assert Birthday(11, 26).next_celebration(date(2026, 11, 25), date(2026, 11, 26)) == date(2027, 11, 26)


def test_age_turns_on_the_celebration_day_including_a_leap_day_birthday_in_a_common_year() -> None:
    leapling = Birthday(2, 29, 2000)
    assert leapling.age_on(date(2025, 2, 27)) == 24
    assert leapling.age_on(date(2025, 2, 28)) == 25
    assert leapling.age_on(date(2024, 2, 28)) == 23
    assert leapling.age_on(date(2024, 2, 29)) == 24
    assert Birthday(6, 15, 1990).age_on(date(2026, 6, 14)) == 35
    assert Birthday(6, 15, 1990).age_on(date(2026, 6, 15)) == 36
    assert Birthday(6, 15).age_on(date(2026, 6, 15)) is None


# --- the server's local day and hour -------------------------------------------------------------

def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(("instant", "zone", "expected"), [
    # Midnight edges: the same UTC instant is a different calendar day in different servers.
    ("2026-03-14 23:30", "UTC", LocalMoment(date(2026, 3, 14), 23)),
    ("2026-03-14 23:30", "Europe/Berlin", LocalMoment(date(2026, 3, 15), 0)),
    ("2026-03-14 23:30", "Pacific/Kiritimati", LocalMoment(date(2026, 3, 15), 13)),
    ("2026-03-15 00:30", "America/Los_Angeles", LocalMoment(date(2026, 3, 14), 17)),
    ("2026-01-01 09:59", "Pacific/Pago_Pago", LocalMoment(date(2025, 12, 31), 22)),
    # Europe/Berlin springs forward at 01:00 UTC on 2026-03-29: local 02:00-02:59 does not exist.
    ("2026-03-29 00:59", "Europe/Berlin", LocalMoment(date(2026, 3, 29), 1)),
    ("2026-03-29 01:00", "Europe/Berlin", LocalMoment(date(2026, 3, 29), 3)),
    # ...and falls back at 01:00 UTC on 2026-10-25: local 02:00-02:59 happens twice.
    ("2026-10-25 00:30", "Europe/Berlin", LocalMoment(date(2026, 10, 25), 2)),
    ("2026-10-25 01:30", "Europe/Berlin", LocalMoment(date(2026, 10, 25), 2)),
    # Lord Howe falls back by half an hour at local 02:00 (+11:00 -> +10:30) on 2026-04-05.
    ("2026-04-04 14:59", "Australia/Lord_Howe", LocalMoment(date(2026, 4, 5), 1)),
    ("2026-04-04 15:00", "Australia/Lord_Howe", LocalMoment(date(2026, 4, 5), 1)),
    ("2026-04-04 16:00", "Australia/Lord_Howe", LocalMoment(date(2026, 4, 5), 2)),
])
def test_local_moment_of_an_instant(instant: str, zone: str, expected: LocalMoment) -> None:
    assert local_moment(at(instant), ZoneInfo(zone)) == expected


def test_local_moment_refuses_a_naive_instant() -> None:
    with pytest.raises(ValueError, match="aware"):
        local_moment(datetime(2026, 1, 1, 9), ZoneInfo("UTC"))


def test_announcement_is_due_from_its_hour_to_the_end_of_the_local_day() -> None:
    day = date(2026, 6, 15)
    assert not announcement_due(LocalMoment(day, 8), 9)
    assert announcement_due(LocalMoment(day, 9), 9)
    assert announcement_due(LocalMoment(day, 23), 9)
    assert announcement_due(LocalMoment(day, 0), 0)


def test_an_hour_skipped_by_dst_is_caught_up_at_the_next_hour_of_that_day() -> None:
    zone = ZoneInfo("Europe/Berlin")
    before_gap = local_moment(at("2026-03-29 00:59"), zone)
    after_gap = local_moment(at("2026-03-29 01:00"), zone)
    assert not announcement_due(before_gap, 2)
    assert announcement_due(after_gap, 2)
    assert after_gap.day == date(2026, 3, 29)


def test_an_hour_dst_skips_at_the_end_of_the_day_is_due_in_the_days_last_hour() -> None:
    # America/Nuuk springs forward at 01:00 UTC, the end of the local Saturday: 22:59 is followed by
    # Sunday 00:00, so that Saturday has no 23:00 and no later pass of the day to catch up in.
    zone = ZoneInfo("America/Nuuk")
    assert not announcement_due(local_moment(at("2026-03-28 23:59"), zone), 23)   # 21:59 local
    last_hour = local_moment(at("2026-03-29 00:00"), zone)                          # 22:00 local
    assert (last_hour.day, last_hour.hour, last_hour.last_hour) == (date(2026, 3, 28), 22, 22)
    assert announcement_due(last_hour, 23)
    assert local_moment(at("2026-03-29 01:00"), zone).day == date(2026, 3, 29)
    assert local_moment(at("2026-06-15 12:00"), zone).last_hour == 23, "other days end at 23:xx"


def test_a_failing_role_removal_is_given_up_only_days_after_its_first_failure() -> None:
    first = date(2026, 12, 30)
    assert not role_removal_given_up(first, first, 3)
    assert not role_removal_given_up(first, date(2027, 1, 1), 3)
    assert role_removal_given_up(first, date(2027, 1, 2), 3)
    assert role_removal_given_up(first, date(2027, 3, 1), 3)


# --- upcoming --------------------------------------------------------------------------------------

def test_upcoming_includes_today_and_the_last_day_sorted_soonest_first() -> None:
    entries = [
        (1, Birthday(6, 22)),   # 7 days ahead: included
        (2, Birthday(6, 23)),   # 8 days ahead: not
        (3, Birthday(6, 15)),   # today
        (4, Birthday(6, 14)),   # yesterday: next year, not
        (5, Birthday(6, 16, 1990)),
    ]
    found = upcoming(entries, TODAY, 7)
    assert [(when, key) for when, key, _ in found] == [
        (date(2026, 6, 15), 3), (date(2026, 6, 16), 5), (date(2026, 6, 22), 1)]


def test_upcoming_leaves_out_a_birthday_changed_after_this_years_celebration() -> None:
    entries = [(1, Birthday(6, 18)), (2, Birthday(6, 19)), (3, Birthday(6, 15)), (4, Birthday(6, 15))]
    # 1 and 4 were changed after their celebration on June 10; 3's celebration is today's own.
    celebrated = {1: date(2026, 6, 10), 3: TODAY, 4: date(2026, 6, 10)}
    found = upcoming(entries, TODAY, 7, celebrated)
    assert [(when, key) for when, key, _ in found] == [(date(2026, 6, 15), 3), (date(2026, 6, 19), 2)]
    # A year ahead, 4's next celebration comes; 1's (June 18, 2027) is further.
    assert [(when, key) for when, key, _ in upcoming(entries, TODAY, 365, celebrated)] == [
        (date(2026, 6, 15), 3), (date(2026, 6, 19), 2), (date(2027, 6, 15), 4)]


def test_upcoming_crosses_the_new_year_and_moves_a_leap_day_in_a_common_year() -> None:
    entries = [(1, Birthday(1, 3)), (2, Birthday(2, 29)), (3, Birthday(12, 30))]
    assert [key for _, key, _ in upcoming(entries, date(2026, 12, 29), 7)] == [3, 1]
    feb = upcoming(entries, date(2027, 2, 27), 1)
    assert [(when, key) for when, key, _ in feb] == [(date(2027, 2, 28), 2)]


@pytest.mark.parametrize("days", [0, -1, 366])
def test_upcoming_days_out_of_range_are_refused(days: int) -> None:
    with pytest.raises(UserInputError, match="between 1 and 365"):
        validate_upcoming_days(days)


# --- announcement text -----------------------------------------------------------------------------

def test_template_fills_member_and_age() -> None:
    assert render_announcement("Happy {age} {member}!", 42, 30) == "Happy 30 <@42>!"


def test_unknown_age_leaves_no_gap() -> None:
    assert render_announcement("{member} turns {age} today", 42, None) == "<@42> turns today"


@pytest.mark.parametrize(("template", "expected"), [
    ("Happy {age}th birthday {member}!", "Happy birthday <@42>!"),
    ("{member} turns {age}!", "<@42> turns!"),
    ("{age}st, {age}nd or {age}rd: {member}", ", or: <@42>"),
    ("{{age}} stays literal, {member}", "{age} stays literal, <@42>"),
])
def test_unknown_age_takes_its_ordinal_ending_with_it(template: str, expected: str) -> None:
    assert render_announcement(template, 42, None) == expected
    assert render_announcement("Happy {age}th birthday", 42, 30) == "Happy 30th birthday"


def test_template_braces_are_literal_when_doubled() -> None:
    assert render_announcement("{{cake}} {member}", 7, None) == "{cake} <@7>"


@pytest.mark.parametrize("template", ["{age}", " {age}th ", "{age}{age}"])
def test_a_message_empty_without_an_age_is_refused(template: str) -> None:
    with pytest.raises(UserInputError, match="would be empty for members who saved no birth year"):
        check_never_empty(template)


@pytest.mark.parametrize("template", ["{age} 🎂", "{member}", "Happy {age}th!"])
def test_a_message_with_text_besides_the_age_is_taken(template: str) -> None:
    check_never_empty(template)


@pytest.mark.parametrize("template", ["{member.__class__}", "{0}", "{level}", "{member"])
def test_template_refuses_anything_but_member_and_age(template: str) -> None:
    with pytest.raises(UserInputError):
        render_announcement(template, 7, None)
