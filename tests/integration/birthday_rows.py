"""Reading a birthday celebration row as it is stored, for tests that check what the pass wrote."""

from __future__ import annotations

import aiosqlite


async def stored_celebration(conn: aiosqlite.Connection, user_id: int, year: int) -> dict[str, object] | None:
    """The member's celebration of `year` as a dict of its columns, or None."""
    async with conn.execute(
        "SELECT * FROM birthday_celebrations WHERE user_id = ? AND year = ?", (user_id, year)
    ) as cursor:
        row = await cursor.fetchone()
        if row is None:
            return None
        names = [column[0] for column in cursor.description]
    return dict(zip(names, row, strict=True))
