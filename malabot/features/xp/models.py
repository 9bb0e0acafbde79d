"""Plain results the XP service hands to cogs and other services."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LevelChange:
    """A member's level before and after some XP was added, removed or set."""

    guild_id: int
    user_id: int
    old_level: int
    new_level: int
    total_xp: int

    @property
    def leveled_up(self) -> bool:
        return self.new_level > self.old_level

    @property
    def level_changed(self) -> bool:
        return self.new_level != self.old_level


@dataclass(frozen=True)
class Rank:
    """What /rank shows about one member."""

    user_id: int
    total_xp: int
    level: int
    xp_into_level: int
    xp_for_level: int     # the cost of the whole current level step
    xp_to_next: int
    next_level: int | None  # the next level reachable (custom skips some); None at the top of the curve
    messages: int
    position: int | None  # 1 = top of the server; ties share a position; None below 1 XP


@dataclass(frozen=True)
class LeaderboardEntry:
    position: int         # ties share a position (1, 2, 2, 4)
    user_id: int
    value: int            # total XP, or a streak length on the check-in board
    level: int | None = None


@dataclass(frozen=True)
class LeaderboardPage:
    page: int             # 1-based
    entries: tuple[LeaderboardEntry, ...]
    has_next: bool


@dataclass(frozen=True)
class LevelRole:
    level: int
    role_id: int


@dataclass(frozen=True)
class LevelUpAnnouncement:
    """Where and what to post when a member levels up."""

    channel_id: int
    text: str
