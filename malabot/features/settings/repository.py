"""SQL of per-server settings: one JSON value per key in the tenant's `settings` table."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import aiosqlite

from malabot.features.audit import repository as audit


async def load_values(conn: aiosqlite.Connection) -> dict[str, Any]:
    # execute_fetchall: one round trip to the connection's thread, not three (execute, fetch, close).
    return {key: json.loads(value) for key, value in await conn.execute_fetchall("SELECT key, value FROM settings")}


async def replace_values(conn: aiosqlite.Connection, values: dict[str, Any], at: datetime) -> None:
    """Store exactly `values` (the non-default settings); keys not in it go back to their defaults."""
    await conn.execute("DELETE FROM settings")
    await conn.executemany(
        "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)",
        [(key, json.dumps(value), at.isoformat()) for key, value in sorted(values.items())],
    )


async def record_change(conn: aiosqlite.Connection, at: datetime, actor_id: int | None,
                        changes: dict[str, Any]) -> None:
    await audit.record(conn, at, "settings", "update", actor_id=actor_id, details=changes)
