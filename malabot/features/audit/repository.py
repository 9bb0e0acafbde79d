"""SQL of the audit log: one row per admin action, in the tenant's `audit_log` table."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime

import aiosqlite


async def record(conn: aiosqlite.Connection, at: datetime, category: str, action: str, *,
                 actor_id: int | None, target_id: int | None = None, details: Mapping[str, object]) -> None:
    """One audit_log row, written in the caller's transaction; `details` as JSON with sorted keys, so
    equal details are equal text."""
    await conn.execute(
        "INSERT INTO audit_log (at, category, action, actor_id, target_id, details) VALUES (?, ?, ?, ?, ?, ?)",
        (at.isoformat(), category, action, actor_id, target_id, json.dumps(details, sort_keys=True)),
    )
