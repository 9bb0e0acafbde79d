"""Birthday rules: pure functions of dates, zones and instants. No clock, no I/O.

A birthday is a month and a day, with an optional year. It is celebrated on that date each year,
except February 29, which is celebrated on February 28 in years that have no February 29.
"""

from __future__ import annotations

import calendar
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

from malabot import templates
from malabot.errors import UserInputError
from malabot.guild_settings import TEMPLATE_PLACEHOLDERS

EARLIEST_YEAR = 1900
# Any leap year: used to ask "can this month and day exist at all?" so that February 29 is accepted.
_LEAP_YEAR = 2000
MAX_UPCOMING_DAYS = 365

Key = TypeVar("Key")


@dataclass(frozen=True)
class Birthday:
    month: int
    day: int
    year: int | None = None

    def celebrated_in(self, year: int) -> date:
        return celebration_date(self.month, self.day, year)

    def next_celebration(self, today: date, celebrated_on: date | None = None) -> date:
        """The next day it is celebrated, today included.

        Once a year: `celebrated_on` is the day this year's celebration happened, if it did. Then
        this year's date still to come is not celebrated (the member changed their birthday after the
        celebration), unless that celebration is today's own.
        """
        this_year = self.celebrated_in(today.year)
        if (celebrated_on is None and this_year >= today) or celebrated_on == this_year == today:
            return this_year
        return self.celebrated_in(today.year + 1)

    def age_on(self, day: date) -> int | None:
        """Age on `day`, counting the Feb 28 celebration of a Feb 29 birthday; None without a year."""
        if self.year is None:
            return None
        had_birthday = day >= self.celebrated_in(day.year)
        return day.year - self.year - (0 if had_birthday else 1)


@dataclass(frozen=True)
class LocalMoment:
    """Where an instant falls on a server's wall clock."""

    day: date
    hour: int
    last_hour: int = 23  # the day's last hour on that clock: 22 where DST skips its 23:00 (America/Nuuk)


def validate_birthday(month: int, day: int, year: int | None, today: date) -> Birthday:
    """The birthday if it can be someone's; otherwise UserInputError with the sentence to show."""
    if not 1 <= month <= 12:
        raise UserInputError(f"There is no month {month}: use 1 (January) to 12 (December).")
    longest = calendar.monthrange(_LEAP_YEAR, month)[1]
    if not 1 <= day <= longest:
        raise UserInputError(f"{calendar.month_name[month]} has no day {day}: use 1 to {longest}.")
    if year is not None:
        if year < EARLIEST_YEAR:
            raise UserInputError(f"Use a birth year from {EARLIEST_YEAR} on, or leave the year out.")
        if year > today.year:
            raise UserInputError(f"{year} is in the future: use your birth year, or leave the year out.")
        if month == 2 and day == 29 and not calendar.isleap(year):
            raise UserInputError(f"February 29, {year} did not exist: {year} was not a leap year.")
        if date(year, month, day) > today:
            raise UserInputError(f"{format_day(month, day)}, {year} is in the future.")
    return Birthday(month, day, year)


def celebration_date(month: int, day: int, year: int) -> date:
    """The date a birthday is celebrated in `year` (February 29 falls back to February 28)."""
    if month == 2 and day == 29 and not calendar.isleap(year):
        return date(year, 2, 28)
    return date(year, month, day)


def dates_celebrated_on(day: date) -> tuple[tuple[int, int], ...]:
    """The (month, day) birthdays celebrated on `day`: itself, plus Feb 29 on a non-leap Feb 28."""
    if (day.month, day.day) == (2, 28) and not calendar.isleap(day.year):
        return ((2, 28), (2, 29))
    return ((day.month, day.day),)


def local_moment(instant: datetime, zone: ZoneInfo) -> LocalMoment:
    """The server-local calendar day and hour of an aware instant."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError("local_moment needs an aware datetime")
    local = instant.astimezone(zone)
    return LocalMoment(local.date(), local.hour, _last_hour(local.date(), zone))


@functools.lru_cache(maxsize=4096)  # a pass asks for every server's day: the same few (day, zone) pairs
def _last_hour(day: date, zone: ZoneInfo) -> int:
    """The hour of the last instant of `day` on the zone's clock: the instant the next day starts (its
    midnight, or the first hour after a gap there), less a tick."""
    next_day = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    day_end = (next_day.astimezone(UTC) - timedelta(microseconds=1)).astimezone(zone)
    return day_end.hour if day_end.date() == day else 23


def announcement_due(moment: LocalMoment, birthday_hour: int) -> bool:
    """True from the announcement hour to the end of the local day.

    `>=` rather than `==`: a pass that runs late (downtime, a DST gap that skips the hour) still
    catches up the same day; the next day is a different day and announces nothing for this one.
    An hour the day does not reach (23:00 where DST skips the day's last hour) counts as its last one.
    """
    return moment.hour >= min(birthday_hour, moment.last_hour)


def role_removal_given_up(first_failed_on: date, today: date, retry_days: int) -> bool:
    """Whether a birthday role whose removal keeps failing is given up: after `retry_days` days of
    retries counted from the first failure, never from the birthday itself (after a long downtime the
    first attempt would otherwise also be the last)."""
    return (today - first_failed_on).days >= retry_days


def validate_upcoming_days(days: int) -> int:
    if not 1 <= days <= MAX_UPCOMING_DAYS:
        raise UserInputError(f"Choose between 1 and {MAX_UPCOMING_DAYS} days.")
    return days


def upcoming(birthdays: Iterable[tuple[Key, Birthday]], today: date, days: int,
             celebrated_on: Mapping[Key, date] | None = None) -> list[tuple[date, Key, Birthday]]:
    """Birthdays celebrated from today through `days` days ahead (both included), soonest first.
    `celebrated_on`: the day of this year's celebration of those who had it (see next_celebration)."""
    last = today + timedelta(days=days)
    celebrated_on = celebrated_on or {}
    found = []
    for key, birthday in birthdays:
        when = birthday.next_celebration(today, celebrated_on.get(key))
        if when <= last:
            found.append((when, key, birthday))
    found.sort(key=lambda item: item[0])  # stable: same-day birthdays keep the caller's order
    return found


def format_day(month: int, day: int) -> str:
    """E.g. "March 5"; never shows a year."""
    return f"{calendar.month_name[month]} {day}"


def mention(user_id: int) -> str:
    return f"<@{user_id}>"


def announces_age(template: str) -> bool:
    """Whether the server's birthday message shows the member's age (and so their birth year)."""
    try:
        return "age" in templates.placeholders(template, TEMPLATE_PLACEHOLDERS["birthday_template"])
    except UserInputError:  # the pass announces with the default template instead, which shows no age
        return False


# `{age}` with one space before it and an ordinal ending after it ("Happy {age}th birthday"), but not
# the literal `{{age}}`.
_AGE_AND_ITS_ENDING = re.compile(r" ?(?<!\{)\{age\}(?!\})(?:st|nd|rd|th)?")


def render_announcement(template: str, user_id: int, age: int | None) -> str:
    """Fill `{member}` and `{age}`; without a known age, `{age}` disappears with one space before it
    and an ordinal ending after it ("Happy {age}th birthday" reads "Happy birthday").

    Raises UserInputError when the template uses anything else (the pass then falls back to the
    default template).
    """
    if age is None:
        template = _AGE_AND_ITS_ENDING.sub("", template)
    return templates.render(template, templates.values_for(
        TEMPLATE_PLACEHOLDERS["birthday_template"], member=mention(user_id), age="" if age is None else str(age)))


def check_never_empty(template: str) -> None:
    """Refuse a birthday message that comes out empty for a member who saved no birth year (their
    `{age}` disappears): Discord refuses an empty message, and the birthday would go unannounced."""
    if not render_announcement(template, 0, None).strip():
        raise UserInputError("That birthday message would be empty for members who saved no birth year "
                             "(`{age}` is left out for them); add some text, e.g. `Happy {age}th birthday {member}!`.")
