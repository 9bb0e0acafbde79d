"""SQL of daily check-ins: the per-member streak row and one row per member per local day.

Callers own the transaction: writes are meant to run inside `tenants.transaction(guild_id)`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import UTC, date, datetime

import aiosqlite


@dataclass(frozen=True)
class CheckinRow:
    user_id: int
    last_day: date
    streak: int
    best_streak: int
    total: int
    last_at: datetime | None = None  # the instant of the last check-in; None in rows from before it was kept


async def member_checkin(conn: aiosqlite.Connection, user_id: int) -> CheckinRow | None:
    async with conn.execute(
            "SELECT user_id, last_day, streak, best_streak, total, last_at FROM checkins WHERE user_id = ?",
            (user_id,)) as cursor:
        row = await cursor.fetchone()
    if row is None:
        return None
    return CheckinRow(int(row[0]), date.fromisoformat(row[1]), int(row[2]), int(row[3]), int(row[4]),
                      datetime.fromisoformat(row[5]) if row[5] is not None else None)


async def claim_day(conn: aiosqlite.Connection, user_id: int, day: date, xp_awarded: int) -> bool:
    """Record the member's check-in for `day`; False when that day was already claimed.

    The (user_id, day) primary key decides, so two concurrent check-ins can never both succeed.
    """
    cursor = await conn.execute(
        "INSERT INTO checkin_days (user_id, day, xp_awarded) VALUES (?, ?, ?) "
        "ON CONFLICT (user_id, day) DO NOTHING",
        (user_id, day.isoformat(), xp_awarded))
    return cursor.rowcount == 1


def _utc_text(instant: datetime) -> str:
    """UTC ISO text: one offset for every stored instant, so that SQL can compare them as text."""
    return instant.astimezone(UTC).isoformat()


async def save_streak(conn: aiosqlite.Connection, user_id: int, day: date, streak: int, best_streak: int,
                      total: int, at: datetime) -> None:
    """Save the member's streak after a check-in on the local `day` at the instant `at`."""
    await conn.execute(
        """INSERT INTO checkins (user_id, last_day, streak, best_streak, total, last_at)
           VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT (user_id) DO UPDATE SET last_day = excluded.last_day, streak = excluded.streak,
             best_streak = excluded.best_streak, total = excluded.total, last_at = excluded.last_at""",
        (user_id, day.isoformat(), streak, best_streak, total, _utc_text(at)))


async def by_current_streak(conn: aiosqlite.Connection, alive_since: date, alive_from: datetime
                            ) -> AsyncGenerator[tuple[int, int], None]:
    """(user_id, streak) of streaks still alive, longest first: the last check-in is stored on or
    after the local day `alive_since`, or was made at or after `alive_from`, the instant that day
    starts in the server's zone (rules.streak_day: the same rule after a timezone move)."""
    async with conn.execute(
            """SELECT user_id, streak FROM checkins WHERE last_day >= ? OR last_at >= ?
               ORDER BY streak DESC, user_id""",
            (alive_since.isoformat(), _utc_text(alive_from))) as cursor:
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
