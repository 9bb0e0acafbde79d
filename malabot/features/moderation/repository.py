"""SQL of moderation cases (`mod_cases` of the tenant file). Callers hold the transaction.

Case numbers are per server (each server has its own file) and are given as MAX + 1 inside the
caller's write transaction, so two concurrent actions can never get the same number.
Times are stored as ISO 8601 text in UTC; comparisons go through julianday() so rows carried over
from the legacy bot (e.g. "2024-01-31 12:00:00") compare correctly too.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from malabot.features.moderation.models import Case, NewCase
from malabot.tenancy.carried_rows import Row, insert_rows, rows_in_file

_COLUMNS = ("case_number, action, target_id, moderator_id, reason, duration_seconds, channel_id, "
            "message_count, created_at, expires_at, removed_at, log_message_id")


def to_db_time(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("moderation times must be timezone-aware")
    return moment.astimezone(UTC).isoformat()


def from_db_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _optional_time(text: str | None) -> datetime | None:
    return None if text is None else from_db_time(text)


def _case(row: Any) -> Case:
    (case_number, action, target_id, moderator_id, reason, duration_seconds, channel_id, message_count,
     created_at, expires_at, removed_at, log_message_id) = row
    return Case(
        case_number=case_number, action=action, target_id=target_id, moderator_id=moderator_id,
        reason=reason, duration_seconds=duration_seconds, channel_id=channel_id,
        message_count=message_count, created_at=from_db_time(created_at),
        expires_at=_optional_time(expires_at), removed_at=_optional_time(removed_at),
        log_message_id=log_message_id,
    )


async def next_case_number(conn: aiosqlite.Connection) -> int:
    async with conn.execute("SELECT COALESCE(MAX(case_number), 0) + 1 FROM mod_cases") as cursor:
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


async def add_case(conn: aiosqlite.Connection, new: NewCase) -> Case:
    """Record a case under the next number; call inside a write transaction."""
    number = await next_case_number(conn)
    await conn.execute(
        "INSERT INTO mod_cases (case_number, action, target_id, moderator_id, reason, duration_seconds, "
        "channel_id, message_count, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (number, new.action, new.target_id, new.moderator_id, new.reason, new.duration_seconds,
         new.channel_id, new.message_count, to_db_time(new.created_at),
         None if new.expires_at is None else to_db_time(new.expires_at)),
    )
    case = await get_case(conn, number)
    assert case is not None
    return case


async def get_case(conn: aiosqlite.Connection, case_number: int) -> Case | None:
    sql = f"SELECT {_COLUMNS} FROM mod_cases WHERE case_number = ?"
    async with conn.execute(sql, (case_number,)) as cursor:
        row = await cursor.fetchone()
    return None if row is None else _case(row)


async def cases_for_member(conn: aiosqlite.Connection, target_id: int) -> list[Case]:
    """Every case about the member, removed warnings included, oldest first."""
    async with conn.execute(
        f"SELECT {_COLUMNS} FROM mod_cases WHERE target_id = ? ORDER BY case_number", (target_id,)
    ) as cursor:
        return [_case(row) for row in await cursor.fetchall()]


async def active_warnings(conn: aiosqlite.Connection, target_id: int) -> list[Case]:
    """The member's warnings that were not removed, oldest first."""
    async with conn.execute(
        f"SELECT {_COLUMNS} FROM mod_cases WHERE target_id = ? AND action = 'warn' AND removed_at IS NULL "
        "ORDER BY case_number", (target_id,)
    ) as cursor:
        return [_case(row) for row in await cursor.fetchall()]


async def recent_cases(conn: aiosqlite.Connection, limit: int) -> list[Case]:
    """The server's latest cases, newest first."""
    async with conn.execute(
        f"SELECT {_COLUMNS} FROM mod_cases ORDER BY case_number DESC LIMIT ?", (limit,)
    ) as cursor:
        return [_case(row) for row in await cursor.fetchall()]


async def mark_warning_removed(conn: aiosqlite.Connection, case_number: int, at: datetime) -> bool:
    """Withdraw an active warning; False when the case is not an active warning (nothing changes)."""
    cursor = await conn.execute(
        "UPDATE mod_cases SET removed_at = ? "
        "WHERE case_number = ? AND action = 'warn' AND removed_at IS NULL",
        (to_db_time(at), case_number),
    )
    return cursor.rowcount == 1


async def set_log_message_id(conn: aiosqlite.Connection, case_number: int, message_id: int) -> bool:
    cursor = await conn.execute(
        "UPDATE mod_cases SET log_message_id = ? WHERE case_number = ?", (message_id, case_number)
    )
    return cursor.rowcount == 1


async def warning_times_since(conn: aiosqlite.Connection, target_id: int, since: datetime) -> list[datetime]:
    """When each active warning of the member given at or after `since` was given, oldest first."""
    async with conn.execute(
        "SELECT created_at FROM mod_cases WHERE target_id = ? AND action = 'warn' AND removed_at IS NULL "
        "AND julianday(created_at) >= julianday(?) ORDER BY case_number", (target_id, to_db_time(since))
    ) as cursor:
        return [from_db_time(row[0]) for row in await cursor.fetchall()]


def cases_in_file(path: Path) -> list[Row]:
    """Every case of a closed tenant file, by column name."""
    return rows_in_file(path, "mod_cases")


async def add_later_cases(conn: aiosqlite.Connection, rows: Sequence[Row]) -> int:
    """Insert the cases (as cases_in_file gives them) numbered after this file's last one, under their
    own numbers; returns how many were added."""
    async with conn.execute("SELECT coalesce(max(case_number), 0) FROM mod_cases") as cursor:
        row = await cursor.fetchone()
    last = int(row[0]) if row else 0
    later = [case for case in rows if int(str(case["case_number"])) > last]
    return await insert_rows(conn, "mod_cases", later, "ON CONFLICT (case_number) DO NOTHING")
