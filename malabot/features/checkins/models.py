"""Plain results the check-in service hands to cogs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from malabot.features.xp.models import LevelChange


@dataclass(frozen=True)
class CheckinResult:
    """A successful /checkin."""

    day: date                 # the server-local day checked in
    streak: int
    best_streak: int
    total_checkins: int
    xp_awarded: int
    level_change: LevelChange


@dataclass(frozen=True)
class StreakInfo:
    """What /streak shows."""

    user_id: int
    current_streak: int       # 0 once a day was missed
    best_streak: int
    total_checkins: int
    last_day: date | None
    checked_in_today: bool
