"""SQL of daily check-ins: the per-member streak row and one row per member per local day.

Callers own the transaction: writes are meant to run inside `tenants.transaction(guild_id)`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import date

import aiosqlite


@dataclass(frozen=True)
class CheckinRow:
    user_id: int
    last_day: date
    streak: int
    best_streak: int
    total: int


async def member_checkin(conn: aiosqlite.Connection, user_id: int) -> CheckinRow | None:
    async with conn.execute(
            "SELECT user_id, last_day, streak, best_streak, total FROM checkins WHERE user_id = ?",
            (user_id,)) as cursor:
        row = await cursor.fetchone()
    if row is None:
        return None
    return CheckinRow(int(row[0]), date.fromisoformat(row[1]), int(row[2]), int(row[3]), int(row[4]))


async def claim_day(conn: aiosqlite.Connection, user_id: int, day: date, xp_awarded: int) -> bool:
    """Record the member's check-in for `day`; False when that day was already claimed.

    The (user_id, day) primary key decides, so two concurrent check-ins can never both succeed.
    """
    cursor = await conn.execute(
        "INSERT INTO checkin_days (user_id, day, xp_awarded) VALUES (?, ?, ?) "
        "ON CONFLICT (user_id, day) DO NOTHING",
        (user_id, day.isoformat(), xp_awarded))
    return cursor.rowcount == 1


async def save_streak(conn: aiosqlite.Connection, user_id: int, day: date, streak: int, best_streak: int,
                      total: int) -> None:
    await conn.execute(
        """INSERT INTO checkins (user_id, last_day, streak, best_streak, total) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (user_id) DO UPDATE SET last_day = excluded.last_day, streak = excluded.streak,
             best_streak = excluded.best_streak, total = excluded.total""",
        (user_id, day.isoformat(), streak, best_streak, total))


async def by_current_streak(conn: aiosqlite.Connection, alive_since: date
                            ) -> AsyncGenerator[tuple[int, int], None]:
    """(user_id, streak) of streaks still alive (last check-in on or after `alive_since`), longest first."""
    async with conn.execute(
            "SELECT user_id, streak FROM checkins WHERE last_day >= ? ORDER BY streak DESC, user_id",
            (alive_since.isoformat(),)) as cursor:
        async for user_id, streak in cursor:
            yield int(user_id), int(streak)


async def members_checked_in(conn: aiosqlite.Connection) -> int:
    """How many members have a check-in row: the most either board can list."""
    async with conn.execute("SELECT count(*) FROM checkins") as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def by_best_streak(conn: aiosqlite.Connection) -> AsyncGenerator[tuple[int, int], None]:
    """(user_id, best_streak), longest first."""
    async with conn.execute(
            "SELECT user_id, best_streak FROM checkins ORDER BY best_streak DESC, user_id") as cursor:
        async for user_id, best in cursor:
            yield int(user_id), int(best)
