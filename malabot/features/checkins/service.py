"""Daily check-ins, without Discord: ids in, plain results out, UserInputError with the sentence to show.

A check-in is once per calendar day in the server's timezone. The (user_id, day) primary key of
`checkin_days` decides, inside the same transaction that saves the streak and grants the XP, so two
check-ins at the same instant reward once whatever the timing.

What a cog calls:
    /checkin                 -> check_in(guild_id, user_id) -> CheckinResult
    /streak [member]         -> streak(guild_id, user_id)   -> StreakInfo
    /checkin leaderboard     -> leaderboard(guild_id, page, by="current"|"best", is_member=...)
                                                                                -> LeaderboardPage
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import aiosqlite

from malabot.clock import Clock, utc_now
from malabot.errors import UserInputError
from malabot.features.checkins import repository
from malabot.features.checkins.models import CheckinResult, StreakInfo
from malabot.features.checkins.rules import (
    check_in_update,
    current_streak,
    day_after,
    day_start,
    format_wait,
    local_day,
    streak_day,
)
from malabot.features.settings.service import SettingsService
from malabot.features.xp.models import LeaderboardEntry, LeaderboardPage
from malabot.features.xp.ranking import PAGE_SIZE, MemberFilter, board_page, check_page
from malabot.features.xp.service import XpService
from malabot.tenancy.manager import TenantManager

BoardKind = Literal["current", "best"]


class CheckinService:
    def __init__(self, tenants: TenantManager, settings: SettingsService, xp: XpService, *,
                 clock: Clock = utc_now) -> None:
        self._tenants = tenants
        self._settings = settings
        self._xp = xp
        self._clock = clock

    async def check_in(self, guild_id: int, user_id: int) -> CheckinResult:
        """Check the member in for today; UserInputError (with the wait) if they already did."""
        settings = await self._settings.get(guild_id)
        now = self._clock()
        zone = settings.zone
        today = local_day(now, zone)
        async with self._tenants.transaction(guild_id) as conn:
            row = await repository.member_checkin(conn, user_id)
            # `>=`: after the server moved to a timezone behind, "today" may be before the last day.
            # The day the last check-in counts for: after a move east it may be today by the new calendar.
            counted_on = streak_day(row.last_day, row.last_at, zone) if row else None
            if counted_on is not None and counted_on >= today:
                raise already_checked_in(now, zone, counted_on)
            update = check_in_update(
                counted_on, row.streak if row else 0,
                row.best_streak if row else 0, row.total if row else 0, today, base_xp=settings.checkin_base_xp,
                bonus_xp=settings.checkin_streak_bonus_xp, bonus_cap_days=settings.checkin_bonus_cap_days)
            if not await repository.claim_day(conn, user_id, today, update.reward_xp):
                raise already_checked_in(now, zone, today)
            await repository.save_streak(conn, user_id, today, update.streak, update.best_streak,
                                         update.total, now)
            change = await self._xp.add_in_transaction(conn, guild_id, user_id, update.reward_xp)
        return CheckinResult(day=today, streak=update.streak, best_streak=update.best_streak,
                             total_checkins=update.total, xp_awarded=update.reward_xp, level_change=change)

    async def streak(self, guild_id: int, user_id: int) -> StreakInfo:
        settings = await self._settings.get(guild_id)
        today = local_day(self._clock(), settings.zone)
        async with self._tenants.reading(guild_id) as conn:
            row = await repository.member_checkin(conn, user_id)
        if row is None:
            return StreakInfo(user_id=user_id, current_streak=0, best_streak=0, total_checkins=0,
                              last_day=None, checked_in_today=False)
        counted_on = streak_day(row.last_day, row.last_at, settings.zone)
        return StreakInfo(user_id=user_id, current_streak=current_streak(counted_on, row.streak, today),
                          best_streak=row.best_streak, total_checkins=row.total, last_day=row.last_day,
                          checked_in_today=counted_on is not None and counted_on >= today)

    async def leaderboard(self, guild_id: int, page: int = 1, *, by: BoardKind = "current",
                          is_member: MemberFilter | None = None, per_page: int = PAGE_SIZE
                          ) -> LeaderboardPage:
        """Members by current streak (streaks still alive today) or by best streak ever."""
        check_page(page)
        settings = await self._settings.get(guild_id)
        yesterday = local_day(self._clock(), settings.zone) - timedelta(days=1)
        alive_from = day_start(yesterday, settings.zone)
        async with self._tenants.reading(guild_id) as conn:
            shown, has_next = await board_page(lambda: _board_rows(conn, by, yesterday, alive_from),
                                               lambda: repository.members_checked_in(conn), is_member, page,
                                               per_page)
        entries = tuple(LeaderboardEntry(position=row.position, user_id=row.user_id, value=row.value)
                        for row in shown)
        return LeaderboardPage(page=page, entries=entries, has_next=has_next)


def _board_rows(conn: aiosqlite.Connection, by: BoardKind, yesterday: date, alive_from: datetime
                ) -> AsyncGenerator[tuple[int, int], None]:
    if by == "best":
        return repository.by_best_streak(conn)
    if by == "current":
        # A streak is alive while its last check-in was today or yesterday (as /streak counts it).
        return repository.by_current_streak(conn, yesterday, alive_from)
    raise UserInputError("Choose the current or the best streaks.")


def already_checked_in(now: datetime, zone: ZoneInfo, last_day: date) -> UserInputError:
    wait = day_after(last_day, zone) - now
    return UserInputError(f"You already checked in today. Your next check-in opens in {format_wait(wait)}.")
