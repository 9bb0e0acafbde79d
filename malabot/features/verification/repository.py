"""SQL of verification: one `verification_requests` row per member (pending, verified or denied).

Callers own the transaction: writes are meant to run inside `tenants.transaction(guild_id)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

import aiosqlite

from malabot.features.verification.rules import RequestStatus

_COLUMNS = "user_id, status, requested_at, reviewer_id, reviewed_at, review_message_id"


@dataclass(frozen=True)
class VerificationRequest:
    user_id: int
    status: RequestStatus
    requested_at: datetime
    reviewer_id: int | None = None        # None: verified by the button alone (or the reviewer left)
    reviewed_at: datetime | None = None
    review_message_id: int | None = None   # the message with the moderators' buttons


def _request(row: aiosqlite.Row | tuple[object, ...]) -> VerificationRequest:
    user_id, status, requested_at, reviewer_id, reviewed_at, message_id = row
    return VerificationRequest(
        user_id=int(cast(int, user_id)), status=cast(RequestStatus, status),
        requested_at=datetime.fromisoformat(str(requested_at)),
        reviewer_id=None if reviewer_id is None else int(cast(int, reviewer_id)),
        reviewed_at=None if reviewed_at is None else datetime.fromisoformat(str(reviewed_at)),
        review_message_id=None if message_id is None else int(cast(int, message_id)),
    )


async def get_request(conn: aiosqlite.Connection, user_id: int) -> VerificationRequest | None:
    async with conn.execute(f"SELECT {_COLUMNS} FROM verification_requests WHERE user_id = ?",
                            (user_id,)) as cursor:
        row = await cursor.fetchone()
    return None if row is None else _request(row)


async def pending_requests(conn: aiosqlite.Connection) -> list[VerificationRequest]:
    """Requests waiting for a moderator, oldest first."""
    async with conn.execute(f"SELECT {_COLUMNS} FROM verification_requests WHERE status = 'pending' "
                            "ORDER BY requested_at, user_id") as cursor:
        return [_request(row) for row in await cursor.fetchall()]


async def save_verified(conn: aiosqlite.Connection, user_id: int, at: datetime) -> None:
    """The member verified themself with the button (no review): the row says so, whatever it held."""
    await conn.execute(
        """INSERT INTO verification_requests (user_id, status, requested_at, reviewed_at)
           VALUES (?, 'verified', ?, ?)
           ON CONFLICT (user_id) DO UPDATE SET status = 'verified', reviewer_id = NULL,
             reviewed_at = excluded.reviewed_at""",
        (user_id, at.isoformat(), at.isoformat()))


async def add_pending(conn: aiosqlite.Connection, user_id: int, at: datetime) -> None:
    """A new request for review; the primary key keeps it to one row per member."""
    await conn.execute(
        """INSERT INTO verification_requests (user_id, status, requested_at) VALUES (?, 'pending', ?)
           ON CONFLICT (user_id) DO UPDATE SET status = 'pending', requested_at = excluded.requested_at,
             reviewer_id = NULL, reviewed_at = NULL, review_message_id = NULL""",
        (user_id, at.isoformat()))


async def set_review_message(conn: aiosqlite.Connection, user_id: int, message_id: int) -> None:
    await conn.execute("UPDATE verification_requests SET review_message_id = ? WHERE user_id = ?",
                       (message_id, user_id))


async def delete_pending(conn: aiosqlite.Connection, user_id: int) -> bool:
    """Withdraw a pending request (its review message could not be posted); True if one was there."""
    cursor = await conn.execute(
        "DELETE FROM verification_requests WHERE user_id = ? AND status = 'pending'", (user_id,))
    return cursor.rowcount == 1


async def delete_request(conn: aiosqlite.Connection, user_id: int) -> bool:
    """Forget the member's request whatever its status (a moderator's reset); True if one was there."""
    cursor = await conn.execute("DELETE FROM verification_requests WHERE user_id = ?", (user_id,))
    return cursor.rowcount == 1


async def record_review(conn: aiosqlite.Connection, user_id: int, status: RequestStatus, reviewer_id: int,
                        at: datetime) -> bool:
    """A moderator's answer to a pending request; False when it was no longer pending.

    The `status = 'pending'` condition decides, so two answers to one request can never both count.
    """
    cursor = await conn.execute(
        """UPDATE verification_requests SET status = ?, reviewer_id = ?, reviewed_at = ?
           WHERE user_id = ? AND status = 'pending'""",
        (status, reviewer_id, at.isoformat(), user_id))
    return cursor.rowcount == 1
