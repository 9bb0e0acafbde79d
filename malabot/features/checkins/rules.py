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


def day_after(day: date, zone: ZoneInfo) -> datetime:
    """The aware instant the local day after `day` starts: when a member who checked in on `day`
    may check in again (later than the next midnight when the server moved to a zone behind)."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)


def streak_after(last_day: date | None, streak: int, today: date) -> int:
    """The streak after checking in `today`: one more when the previous check-in was yesterday,
    otherwise a fresh streak of 1. Checking in twice on one day is refused before this is asked."""
    if last_day is not None and last_day == today - timedelta(days=1):
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
    """Everything a check-in on `today` changes, from the member's previous check-in state."""
    new_streak = streak_after(last_day, streak, today)
    return StreakUpdate(day=today, streak=new_streak, best_streak=max(best_streak, new_streak),
                        total=total + 1,
                        reward_xp=checkin_reward(new_streak, base_xp, bonus_xp, bonus_cap_days))


def format_wait(delta: timedelta) -> str:
    """A short "3h 05m" for how long until the next check-in is possible."""
    minutes = max(int(delta.total_seconds() + 59) // 60, 1)  # round up: never say 0m
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m"
