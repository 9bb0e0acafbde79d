"""SQL of XP and level roles. Every function works on the connection of one tenant file.

Callers own the transaction: writes are meant to run inside `tenants.transaction(guild_id)`, except
`add_awards`, which is one statement and may run alone (`tenants.single_statement(guild_id)`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass
from datetime import datetime

import aiosqlite

from malabot.features.audit import repository as audit
from malabot.features.xp.models import LevelRole


@dataclass(frozen=True)
class XpRow:
    user_id: int
    xp: int
    messages: int
    last_message_at: str | None


@dataclass(frozen=True)
class BufferedAward:
    """XP earned by chatting since the last flush, for one member."""

    user_id: int
    xp: int
    messages: int
    last_message_at: str  # ISO 8601 UTC


async def total_xp(conn: aiosqlite.Connection, user_id: int) -> int:
    """The member's stored XP (0 when they have no row)."""
    rows = list(await conn.execute_fetchall("SELECT xp FROM xp WHERE user_id = ?", (user_id,)))
    return int(rows[0][0]) if rows else 0


async def members_with_xp_at_least(conn: aiosqlite.Connection, total: int) -> list[int]:
    """Members whose stored XP is `total` or more."""
    rows = await conn.execute_fetchall("SELECT user_id FROM xp WHERE xp >= ? ORDER BY user_id", (total,))
    return [int(user_id) for (user_id,) in rows]


async def stored_totals(conn: aiosqlite.Connection, user_ids: list[int]) -> dict[int, int]:
    """Stored XP of many members at once (0 for those without a row), in one statement: the ids go
    as one JSON array, so the statement's text never changes and the connection prepares it once."""
    totals = dict.fromkeys(user_ids, 0)
    rows = await conn.execute_fetchall(
        "SELECT user_id, xp FROM xp WHERE user_id IN (SELECT value FROM json_each(?))", (json.dumps(user_ids),))
    totals.update((int(user_id), int(xp)) for user_id, xp in rows)
    return totals


async def add_awards(conn: aiosqlite.Connection, awards: list[BufferedAward]) -> dict[int, int]:
    """Add buffered chat XP and message counts, creating rows for new members; returns each
    member's new stored total. One statement however many members (a JSON array parameter), so it
    is one round trip to the connection's thread and, alone, its own transaction."""
    rows = json.dumps([[award.user_id, award.xp, award.messages, award.last_message_at] for award in awards])
    returned = await conn.execute_fetchall(
        """INSERT INTO xp (user_id, xp, messages, last_message_at)
             SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3 FROM json_each(?) WHERE true
           ON CONFLICT (user_id) DO UPDATE SET
             xp = xp + excluded.xp,
             messages = messages + excluded.messages,
             last_message_at = max(coalesce(last_message_at, ''), excluded.last_message_at)
           RETURNING user_id, xp""",
        (rows,))
    return {int(user_id): int(xp) for user_id, xp in returned}


async def add_xp(conn: aiosqlite.Connection, user_ids: Iterable[int], amount: int) -> None:
    """Add (not set) XP to each member without counting a message, e.g. a check-in or birthday
    reward."""
    await conn.executemany(
        """INSERT INTO xp (user_id, xp) VALUES (?, ?)
           ON CONFLICT (user_id) DO UPDATE SET xp = xp + excluded.xp""",
        [(user_id, amount) for user_id in user_ids],
    )


async def set_xp(conn: aiosqlite.Connection, user_id: int, total: int) -> None:
    await conn.execute(
        """INSERT INTO xp (user_id, xp) VALUES (?, ?)
           ON CONFLICT (user_id) DO UPDATE SET xp = excluded.xp""",
        (user_id, total),
    )


async def reset_all(conn: aiosqlite.Connection) -> tuple[int, int]:
    """Set every member's XP to 0 (message counts stay); returns (members who had XP, XP removed)."""
    # Summed in two halves of 32 bits: SQLite's sum() stops with "integer overflow" past 2**63 - 1,
    # which a few thousand members at the largest total an admin may set already reach.
    async with conn.execute("SELECT count(*), coalesce(sum(xp >> 32), 0), coalesce(sum(xp & 0xFFFFFFFF), 0) "
                            "FROM xp WHERE xp > 0") as cursor:
        row = await cursor.fetchone()
    members, removed = (int(row[0]), (int(row[1]) << 32) + int(row[2])) if row else (0, 0)
    await conn.execute("UPDATE xp SET xp = 0 WHERE xp > 0")
    return members, removed


# --- ranking ---------------------------------------------------------------------------------------

async def member_standing(conn: aiosqlite.Connection, user_id: int) -> tuple[XpRow | None, int]:
    """The member's row and how many rows have strictly more XP, in one statement.

    Counted from the per-total and per-block counts the schema keeps (migrations/0003): one row per
    occupied block of 1,024 totals above the member's block (a thousand blocks reach a million XP),
    then at most 1,023 exact totals above theirs inside it, however many members are above.
    """
    rows = await conn.execute_fetchall(
        """SELECT member.user_id, member.xp, member.messages, member.last_message_at,
                  coalesce((SELECT sum(members) FROM xp_block_counts AS blocks
                              WHERE blocks.block > member.xp >> 10), 0)
                + coalesce((SELECT sum(members) FROM xp_counts AS totals
                              WHERE totals.xp > member.xp AND totals.xp <= (member.xp | 1023)), 0)
             FROM xp AS member WHERE member.user_id = ?""",
        (user_id,))
    found = list(rows)
    if not found:
        return None, 0
    *row, above = found[0]
    return XpRow(*row), int(above)


async def ids_above(conn: aiosqlite.Connection, xp: int) -> list[int]:
    async with conn.execute("SELECT user_id FROM xp WHERE xp > ?", (xp,)) as cursor:
        return [int(row[0]) for row in await cursor.fetchall()]


async def members_with_xp(conn: aiosqlite.Connection) -> int:
    """How many members have more than 0 XP, from the rank counts (a few small rows, not the board)."""
    async with conn.execute(
            "SELECT coalesce((SELECT sum(members) FROM xp_block_counts), 0)"
            " - coalesce((SELECT members FROM xp_counts WHERE xp = 0), 0)") as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def ranked(conn: aiosqlite.Connection) -> AsyncGenerator[tuple[int, int], None]:
    """(user_id, xp) of members with XP, best first; ties ordered by user id."""
    async with conn.execute(
            "SELECT user_id, xp FROM xp WHERE xp > 0 ORDER BY xp DESC, user_id") as cursor:
        async for user_id, xp in cursor:
            yield int(user_id), int(xp)


# --- level roles -----------------------------------------------------------------------------------

async def level_roles(conn: aiosqlite.Connection) -> list[LevelRole]:
    async with conn.execute("SELECT level, role_id FROM level_roles ORDER BY level") as cursor:
        return [LevelRole(int(level), int(role_id)) for level, role_id in await cursor.fetchall()]


async def level_role_at(conn: aiosqlite.Connection, level: int) -> LevelRole | None:
    async with conn.execute("SELECT level, role_id FROM level_roles WHERE level = ?", (level,)) as cursor:
        row = await cursor.fetchone()
    return None if row is None else LevelRole(int(row[0]), int(row[1]))


async def level_of_role(conn: aiosqlite.Connection, role_id: int) -> int | None:
    async with conn.execute("SELECT level FROM level_roles WHERE role_id = ?", (role_id,)) as cursor:
        row = await cursor.fetchone()
    return None if row is None else int(row[0])


async def put_level_role(conn: aiosqlite.Connection, level: int, role_id: int) -> None:
    await conn.execute(
        "INSERT INTO level_roles (level, role_id) VALUES (?, ?) "
        "ON CONFLICT (level) DO UPDATE SET role_id = excluded.role_id",
        (level, role_id),
    )


async def delete_level_role(conn: aiosqlite.Connection, level: int) -> None:
    await conn.execute("DELETE FROM level_roles WHERE level = ?", (level,))


# --- audit -----------------------------------------------------------------------------------------

async def record_audit(conn: aiosqlite.Connection, at: datetime, action: str, actor_id: int | None,
                       target_id: int | None, details: dict[str, object]) -> None:
    """One audit_log row of category 'xp', written in the caller's transaction."""
    await audit.record(conn, at, "xp", action, actor_id=actor_id, target_id=target_id, details=details)
