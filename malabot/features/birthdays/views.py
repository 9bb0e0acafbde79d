"""What the birthday commands return: plain values, already filtered for who is looking.

The birth year (and the age it reveals) is only ever put in a view when the viewer is the member
themself, so a cog that prints every field of a view still cannot leak it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from malabot.features.birthdays.rules import Birthday, format_day


@dataclass(frozen=True)
class BirthdayView:
    user_id: int
    month: int
    day: int
    year: int | None       # the birth year: only in the member's own view
    next_date: date        # next celebration in the server's timezone, today included
    days_until: int        # 0 = today
    turning: int | None    # age on next_date: only in the member's own view, and only with a year
    celebrated_this_year: bool = False  # once a year: then a date still to come this year waits for the next

    @property
    def is_today(self) -> bool:
        return self.days_until == 0

    @property
    def already_celebrated(self) -> bool:
        """This year's celebration happened on another day: next_date is next year's."""
        return self.celebrated_this_year and not self.is_today

    @property
    def date_text(self) -> str:
        """E.g. "March 5", or "March 5, 1990" in the member's own view when they gave a year."""
        text = format_day(self.month, self.day)
        return f"{text}, {self.year}" if self.year is not None else text


@dataclass(frozen=True)
class BirthdayPage:
    entries: tuple[BirthdayView, ...]
    page: int         # 1-based
    pages: int        # at least 1, even when there are no entries
    total: int        # birthdays of current members in this server


def view_for(viewer_id: int, user_id: int, birthday: Birthday, today: date, celebrated_on: date | None = None
             ) -> BirthdayView:
    """`celebrated_on`: the day this year's celebration of the member happened, if it did."""
    own = viewer_id == user_id
    next_date = birthday.next_celebration(today, celebrated_on)
    return BirthdayView(
        user_id=user_id,
        month=birthday.month,
        day=birthday.day,
        year=birthday.year if own else None,
        next_date=next_date,
        days_until=(next_date - today).days,
        turning=birthday.age_on(next_date) if own else None,
        celebrated_this_year=celebrated_on is not None,
    )
