"""Row-level views of tenant files for e2e assertions (plain sqlite3 reads beside the running bot)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

from malabot.privacy import MEMBER_COLUMN


def _open(path: Path) -> sqlite3.Connection:
    # A normal connection (not mode=ro): it reads the live WAL beside the bot's own connection.
    return sqlite3.connect(path)


def all_rows(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table, sorted, by table name."""
    conn = _open(path)
    try:
        tables = [row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        return {table: sorted(conn.execute(f"SELECT * FROM {table}").fetchall(), key=repr) for table in tables}
    finally:
        conn.close()


def rows_mentioning(path: Path, user_id: int) -> dict[str, int]:
    """How many rows of each table hold `user_id` in a member column."""
    conn = _open(path)
    try:
        found: dict[str, int] = {}
        tables = [row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        for table in tables:
            columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})") if MEMBER_COLUMN.match(row[1])]
            if not columns:
                continue
            where = " OR ".join(f"{column} = ?" for column in columns)
            count = conn.execute(f"SELECT COUNT(*) FROM {table} WHERE {where}", [user_id] * len(columns)).fetchone()[0]
            if count:
                found[table] = count
        return found
    finally:
        conn.close()


async def eventually(condition: Callable[[], bool], *, within: float = 5.0, what: str = "condition") -> None:
    """Wait for something the bot does in response to an event; fail with `what` if it never happens."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        await asyncio.sleep(0.01)
