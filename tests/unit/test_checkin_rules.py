"""Check-in rules: server-local days, streaks across month and year ends, the capped reward."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from malabot.features.checkins.rules import (
    check_in_update,
    checkin_reward,
    current_streak,
    day_after,
    day_start,
    format_wait,
    local_day,
    streak_after,
    streak_day,
)

BERLIN = ZoneInfo("Europe/Berlin")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")
AUCKLAND = ZoneInfo("Pacific/Auckland")
TOKYO = ZoneInfo("Asia/Tokyo")
PAGO_PAGO = ZoneInfo("Pacific/Pago_Pago")     # UTC-11
KIRITIMATI = ZoneInfo("Pacific/Kiritimati")   # UTC+14


# --- local day -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("instant", "zone", "day"), [
    (datetime(2026, 3, 1, 7, 59, tzinfo=UTC), LOS_ANGELES, date(2026, 2, 28)),
    (datetime(2026, 3, 1, 8, 0, tzinfo=UTC), LOS_ANGELES, date(2026, 3, 1)),
    (datetime(2025, 12, 31, 11, 0, tzinfo=UTC), AUCKLAND, date(2026, 1, 1)),
    (datetime(2025, 12, 31, 23, 30, tzinfo=UTC), BERLIN, date(2026, 1, 1)),
    (datetime(2025, 12, 31, 23, 30, tzinfo=UTC), ZoneInfo("UTC"), date(2025, 12, 31)),
])
def test_the_day_is_the_servers_calendar_day(instant: datetime, zone: ZoneInfo, day: date) -> None:
    assert local_day(instant, zone) == day


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        local_day(datetime(2026, 1, 1), BERLIN)


def test_next_midnight_across_a_dst_change() -> None:
    # Berlin moves clocks forward on 2026-03-29; the day before still ends at local midnight.
    instant = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    midnight = day_after(local_day(instant, BERLIN), BERLIN)
    assert midnight.astimezone(UTC) == datetime(2026, 3, 28, 23, 0, tzinfo=UTC)
    after_change = day_after(date(2026, 3, 29), BERLIN)
    assert after_change.astimezone(UTC) == datetime(2026, 3, 29, 22, 0, tzinfo=UTC)


# --- streaks ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("last", "today"), [
    (date(2026, 1, 31), date(2026, 2, 1)),
    (date(2026, 2, 28), date(2026, 3, 1)),
    (date(2024, 2, 29), date(2024, 3, 1)),
    (date(2025, 12, 31), date(2026, 1, 1)),
])
def test_yesterday_continues_the_streak_across_month_and_year_ends(last: date, today: date) -> None:
    assert streak_after(last, 4, today) == 5


@pytest.mark.parametrize(("last", "today"), [
    (date(2024, 2, 28), date(2024, 3, 1)),   # leap day missed
    (date(2025, 12, 30), date(2026, 1, 1)),
    (date(2026, 1, 1), date(2026, 1, 1) + timedelta(days=30)),
    (None, date(2026, 1, 1)),
])
def test_a_missed_day_or_a_first_check_in_starts_again_at_one(last: date | None, today: date) -> None:
    assert streak_after(last, 9, today) == 1


def test_a_check_in_late_at_night_in_los_angeles_continues_a_streak_though_utc_moved_on_two_days() -> None:
    # 23:30 on Jan 1 and 23:30 on Jan 2 in Los Angeles are Jan 2 and Jan 3 in UTC.
    first = local_day(datetime(2026, 1, 2, 7, 30, tzinfo=UTC), LOS_ANGELES)
    second = local_day(datetime(2026, 1, 3, 7, 30, tzinfo=UTC), LOS_ANGELES)
    assert (first, second) == (date(2026, 1, 1), date(2026, 1, 2))
    assert streak_after(first, 1, second) == 2


def test_same_utc_day_can_be_two_local_days() -> None:
    # 00:30 and 23:30 UTC on one day are two different days in Auckland (UTC+13 in January).
    morning = local_day(datetime(2026, 1, 10, 0, 30, tzinfo=UTC), AUCKLAND)
    night = local_day(datetime(2026, 1, 10, 23, 30, tzinfo=UTC), AUCKLAND)
    assert night - morning == timedelta(days=1)
    assert streak_after(morning, 3, night) == 4


@pytest.mark.parametrize(("last", "expected"), [
    (date(2026, 5, 10), 6), (date(2026, 5, 9), 6), (date(2026, 5, 8), 0), (None, 0),
])
def test_current_streak_is_alive_until_a_day_is_missed(last: date | None, expected: int) -> None:
    assert current_streak(last, 6, date(2026, 5, 10)) == expected


def test_a_streak_checked_in_ahead_of_today_is_alive() -> None:
    # After the server moved to a zone behind, the last check-in can be on a day that has not begun
    # here yet: the check-in is refused as "already checked in today", so the streak is alive.
    assert current_streak(date(2026, 5, 11), 6, date(2026, 5, 10)) == 6


# --- the day a streak counts the last check-in on, across timezone moves ---------------------------

def test_after_a_move_east_an_evening_check_in_counts_on_the_new_zones_day() -> None:
    # 23:30 UTC on Thu Nov 26, stored as Nov 26 on a UTC server, is 08:30 on Fri Nov 27 in Tokyo.
    counted = streak_day(date(2026, 11, 26), datetime(2026, 11, 26, 23, 30, tzinfo=UTC), TOKYO)
    assert counted == date(2026, 11, 27)
    assert streak_after(counted, 2, date(2026, 11, 28)) == 3
    assert current_streak(counted, 2, date(2026, 11, 28)) == 2


def test_after_a_move_east_across_the_date_line_the_streak_goes_on() -> None:
    # 12:00 UTC on Nov 26 was 01:00 on Nov 26 in Pago Pago and is 02:00 on Nov 27 in Kiritimati, where
    # Nov 27 is yesterday: Friday 27 never happened on this server.
    counted = streak_day(date(2026, 11, 26), datetime(2026, 11, 26, 12, 0, tzinfo=UTC), KIRITIMATI)
    assert counted == date(2026, 11, 27)
    assert streak_after(counted, 2, date(2026, 11, 28)) == 3


def test_after_a_move_east_a_day_really_missed_still_breaks_the_streak() -> None:
    counted = streak_day(date(2026, 11, 26), datetime(2026, 11, 26, 12, 0, tzinfo=UTC), TOKYO)
    assert counted == date(2026, 11, 26)
    assert (streak_after(counted, 2, date(2026, 11, 28)), current_streak(counted, 2, date(2026, 11, 28))) == (1, 0)


def test_a_check_in_that_a_move_east_puts_on_today_continues_the_streak() -> None:
    # Checked in at 23:30 UTC (Nov 26 on a UTC server), moved to Tokyo where it is now Nov 27: the
    # stored day is over, so /checkin takes a check-in, and the streak goes on rather than restarting.
    counted = streak_day(date(2026, 11, 26), datetime(2026, 11, 26, 23, 30, tzinfo=UTC), TOKYO)
    update = check_in_update(counted, 2, 2, 2, date(2026, 11, 27), base_xp=50, bonus_xp=10, bonus_cap_days=7)
    assert update.streak == 3


def test_after_a_move_west_the_stored_day_counts() -> None:
    # 12:00 UTC on Jan 30 was Jan 31 in Kiritimati and is Jan 30 in Pago Pago; /checkin refuses there
    # until Jan 31 is over, so a check-in on Feb 1 continues the streak.
    counted = streak_day(date(2026, 1, 31), datetime(2026, 1, 30, 12, 0, tzinfo=UTC), PAGO_PAGO)
    assert counted == date(2026, 1, 31)
    assert streak_after(counted, 1, date(2026, 2, 1)) == 2
    assert current_streak(counted, 1, date(2026, 2, 1)) == 1
    assert current_streak(counted, 1, date(2026, 2, 2)) == 0


@pytest.mark.parametrize(("instant", "zone"), [
    (datetime(2026, 3, 28, 22, 59, tzinfo=UTC), BERLIN),     # 23:59 on the eve of spring forward
    (datetime(2026, 3, 29, 21, 59, tzinfo=UTC), BERLIN),     # 23:59 on the 23-hour day
    (datetime(2026, 10, 25, 22, 59, tzinfo=UTC), BERLIN),    # 23:59 on the 25-hour day
    (datetime(2026, 3, 8, 7, 59, tzinfo=UTC), LOS_ANGELES),  # 23:59 on Mar 7, before spring forward
    (datetime(2025, 12, 31, 10, 59, tzinfo=UTC), AUCKLAND),  # 23:59 on Dec 31
    (datetime(2026, 11, 26, 10, 59, tzinfo=UTC), PAGO_PAGO),
    (datetime(2026, 11, 26, 9, 59, tzinfo=UTC), KIRITIMATI),
])
def test_without_a_move_the_stored_day_counts(instant: datetime, zone: ZoneInfo) -> None:
    stored = local_day(instant, zone)
    assert streak_day(stored, instant, zone) == stored


def test_across_dst_days_the_streak_follows_the_local_days() -> None:
    # Berlin: 23:30 on Mar 28; 23:59 on the 23-hour Mar 29 goes on, 00:30 on Mar 30 (Mar 29 missed) does not.
    first = datetime(2026, 3, 28, 22, 30, tzinfo=UTC)
    counted = streak_day(local_day(first, BERLIN), first, BERLIN)
    assert streak_after(counted, 1, local_day(datetime(2026, 3, 29, 21, 59, tzinfo=UTC), BERLIN)) == 2
    assert streak_after(counted, 1, local_day(datetime(2026, 3, 29, 22, 30, tzinfo=UTC), BERLIN)) == 1
    # 00:30 on Oct 25, then 23:30 on the 25-hour Oct 26 still counts as the next day.
    first = datetime(2026, 10, 24, 22, 30, tzinfo=UTC)
    counted = streak_day(local_day(first, BERLIN), first, BERLIN)
    assert counted == date(2026, 10, 25)
    assert streak_after(counted, 1, local_day(datetime(2026, 10, 26, 22, 30, tzinfo=UTC), BERLIN)) == 2


def test_a_row_without_its_instant_counts_on_its_stored_day() -> None:
    # Rows from before the instant was kept, and from the legacy split: only the day is known.
    assert streak_day(date(2026, 11, 26), None, TOKYO) == date(2026, 11, 26)
    assert streak_day(None, None, TOKYO) is None


def test_a_day_starts_at_local_midnight() -> None:
    assert day_start(date(2026, 11, 28), TOKYO).astimezone(UTC) == datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
    assert day_start(date(2026, 3, 29), BERLIN).astimezone(UTC) == datetime(2026, 3, 28, 23, 0, tzinfo=UTC)


# --- reward ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("streak", "reward"), [
    (1, 50), (2, 60), (7, 110), (8, 120), (9, 120), (365, 120),
])
def test_default_reward_adds_ten_a_day_for_at_most_seven_bonus_days(streak: int, reward: int) -> None:
    assert checkin_reward(streak, 50, 10, 7) == reward


def test_zero_cap_means_no_bonus() -> None:
    assert checkin_reward(30, 50, 10, 0) == 50


def test_a_streak_below_one_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        checkin_reward(0, 50, 10, 7)


def test_update_keeps_the_best_streak_and_counts_check_ins() -> None:
    broken = check_in_update(date(2026, 1, 1), 5, 12, 40, date(2026, 1, 5), base_xp=50, bonus_xp=10,
                             bonus_cap_days=7)
    assert (broken.streak, broken.best_streak, broken.total, broken.reward_xp) == (1, 12, 41, 50)
    record = check_in_update(date(2026, 1, 4), 12, 12, 40, date(2026, 1, 5), base_xp=50, bonus_xp=10,
                             bonus_cap_days=7)
    assert (record.streak, record.best_streak, record.reward_xp) == (13, 13, 120)


def test_first_ever_check_in() -> None:
    first = check_in_update(None, 0, 0, 0, date(2026, 1, 5), base_xp=50, bonus_xp=10, bonus_cap_days=7)
    assert (first.day, first.streak, first.best_streak, first.total, first.reward_xp) == \
        (date(2026, 1, 5), 1, 1, 1, 50)


@pytest.mark.parametrize(("delta", "text"), [
    (timedelta(hours=3, minutes=4, seconds=10), "3h 05m"),
    (timedelta(minutes=59), "59m"),
    (timedelta(seconds=1), "1m"),
    (timedelta(0), "1m"),
    (timedelta(hours=23, minutes=59, seconds=30), "24h 00m"),
])
def test_wait_is_rounded_up_to_the_minute(delta: timedelta, text: str) -> None:
    assert format_wait(delta) == text
