"""Rows a restore carries from the file it replaces into the restored one: records of what already
happened on Discord (a celebration, a moderation case), which no restore undoes.

The replaced file may be older (not migrated yet): rows are read by column name, and only the
columns the restored file has are written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import aiosqlite

from malabot.tenancy.opening import connect_to_look

Row = dict[str, object]


def rows_in_file(path: Path, table: str) -> list[Row]:
    """Every row of `table` (a name from the code, never from input) in a closed tenant file."""
    conn = connect_to_look(path)  # the live file about to be replaced: nothing may appear beside it
    try:
        cursor = conn.execute(f"SELECT * FROM {table}")
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]
    finally:
        conn.close()


async def insert_rows(conn: aiosqlite.Connection, table: str, rows: Sequence[Row], on_conflict: str) -> int:
    """Insert the rows with their columns this file's `table` has, `on_conflict` deciding for those
    already here ("ON CONFLICT (...) DO NOTHING"); returns how many were added."""
    if not rows:
        return 0
    known = {row[1] for row in await conn.execute_fetchall(f"PRAGMA table_info({table})")}
    columns = [name for name in rows[0] if name in known]  # names checked against this schema
    cursor = await conn.executemany(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) {on_conflict}",
        [[row[name] for name in columns] for row in rows])
    return max(cursor.rowcount, 0)
