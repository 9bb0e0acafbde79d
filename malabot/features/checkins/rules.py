"""Pure check-in rules: the server-local calendar day, streaks and the reward.

A day is a calendar day in the server's timezone, so a member in a server on Pacific time checks in
once between Pacific midnights, whatever the UTC date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def local_day(instant: datetime, zone: ZoneInfo) -> date:
    """The calendar day `instant` (an aware datetime) falls on in `zone`."""
    if instant.tzinfo is None:
        raise ValueError("instant must be timezone-aware")
    return instant.astimezone(zone).date()


def day_start(day: date, zone: ZoneInfo) -> datetime:
    """The aware instant the local `day` starts in `zone`."""
    return datetime.combine(day, time(0), tzinfo=zone)


def day_after(day: date, zone: ZoneInfo) -> datetime:
    """The aware instant the local day after `day` starts: when a member who checked in on `day`
    may check in again (later than the next midnight when the server moved to a zone behind)."""
    return day_start(day + timedelta(days=1), zone)


def streak_day(last_day: date | None, last_at: datetime | None, zone: ZoneInfo) -> date | None:
    """The server-local day the streak counts the last check-in on, in the server's current zone.

    Without a timezone move this is `last_day`, the day stored with the check-in. After a move east
    the instant `last_at` may fall a day later by the new zone's calendar (a check-in at 23:30 UTC is
    the next morning in Tokyo): that later day counts, or a member who missed nothing would lose
    their streak. After a move west the stored day stays: /checkin refuses until that day is over
    here, so the member could not have checked in on the days in between. Rows from before the
    instant was kept (and from the legacy split) have no `last_at`: only their stored day is known.
    """
    if last_day is None:
        return None
    if last_at is None:
        return last_day
    return max(last_day, local_day(last_at, zone))


def streak_after(last_day: date | None, streak: int, today: date) -> int:
    """The streak after checking in `today`: one more when the previous check-in counts for
    yesterday, otherwise a fresh streak of 1. A second check-in on the day the previous one counts
    for (see `streak_day`) is refused before this is asked."""
    if last_day is not None and last_day >= today - timedelta(days=1):
        return streak + 1
    return 1


def current_streak(last_day: date | None, streak: int, today: date) -> int:
    """The streak as it stands today: still alive when the last check-in was yesterday or later
    (later than today too: after the server moved to a zone behind, as /checkin's refusal says)."""
    if last_day is not None and last_day >= today - timedelta(days=1):
        return streak
    return 0


def checkin_reward(streak: int, base_xp: int, bonus_xp: int, bonus_cap_days: int) -> int:
    """`base_xp` plus `bonus_xp` for each streak day beyond the first, counting at most
    `bonus_cap_days` such days (defaults: 50 + 10·min(streak − 1, 7), so 50 … 120 XP)."""
    if streak < 1:
        raise ValueError("a streak is at least 1 on the day of a check-in")
    return base_xp + bonus_xp * min(streak - 1, bonus_cap_days)


@dataclass(frozen=True)
class StreakUpdate:
    day: date
    streak: int
    best_streak: int
    total: int
    reward_xp: int


def check_in_update(last_day: date | None, streak: int, best_streak: int, total: int, today: date, *,
                    base_xp: int, bonus_xp: int, bonus_cap_days: int) -> StreakUpdate:
    """Everything a check-in on `today` changes, from the member's previous check-in state
    (`last_day`: the day the streak counts their last check-in on, see `streak_day`)."""
    new_streak = streak_after(last_day, streak, today)
    return StreakUpdate(day=today, streak=new_streak, best_streak=max(best_streak, new_streak),
                        total=total + 1,
                        reward_xp=checkin_reward(new_streak, base_xp, bonus_xp, bonus_cap_days))


def format_wait(delta: timedelta) -> str:
    """A short "3h 05m" for how long until the next check-in is possible."""
    minutes = max(int(delta.total_seconds() + 59) // 60, 1)  # round up: never say 0m
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m"
