"""SQL of the auto-role: the members it waits for while they are in Membership Screening.

Callers own the transaction: writes are meant to run inside `tenants.transaction(guild_id)`.
"""

from __future__ import annotations

from collections.abc import Collection

import aiosqlite


async def remember_waiting(conn: aiosqlite.Connection, user_ids: Collection[int]) -> None:
    await conn.executemany("INSERT INTO autorole_waiting (user_id) VALUES (?) ON CONFLICT (user_id) DO NOTHING",
                           [(user_id,) for user_id in user_ids])


async def forget_waiting(conn: aiosqlite.Connection, user_id: int) -> None:
    await conn.execute("DELETE FROM autorole_waiting WHERE user_id = ?", (user_id,))


async def waiting_members(conn: aiosqlite.Connection) -> list[int]:
    async with conn.execute("SELECT user_id FROM autorole_waiting ORDER BY user_id") as cursor:
        return [int(row[0]) async for row in cursor]
