"""SQL of member erasures: who erased their data with /mydata delete, and when."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import aiosqlite

from malabot.tenancy.opening import connect_to_look

Erasures = dict[int, str]  # member id -> erased_at (ISO 8601 UTC, so text order is time order)


async def record_erasures(conn: aiosqlite.Connection, erased: Erasures) -> None:
    await conn.executemany("INSERT INTO member_erasures (user_id, erased_at) VALUES (?, ?)"
                           " ON CONFLICT (user_id) DO UPDATE SET erased_at = excluded.erased_at",
                           list(erased.items()))


def erased_at(at: datetime) -> str:
    return at.isoformat()


async def erasures(conn: aiosqlite.Connection) -> Erasures:
    return {user_id: at for user_id, at in await conn.execute_fetchall(
        "SELECT user_id, erased_at FROM member_erasures")}


def erasures_in_file(path: Path) -> Erasures:
    """The erasures recorded in a closed tenant file (a file from before the table existed has none).
    Any other failure to read it is raised: a restore must not go on as if nobody had asked."""
    conn = connect_to_look(path)  # the live file about to be replaced: nothing may appear beside it
    try:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'member_erasures'"
                            ).fetchone():
            return {}
        return {user_id: at for user_id, at in conn.execute("SELECT user_id, erased_at FROM member_erasures")}
    finally:
        conn.close()


def newer_erasures(previous: Erasures, current: Erasures) -> Erasures:
    """Erasures of the replaced file that the file now in place does not know (or knows older)."""
    return {user_id: at for user_id, at in previous.items() if current.get(user_id, "") < at}
