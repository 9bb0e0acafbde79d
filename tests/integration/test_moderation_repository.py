"""Moderation SQL on a real tenant file, migrated with the project's migrations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiosqlite
import pytest

from malabot.features.moderation import repository
from malabot.features.moderation.models import NewCase

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def warn(target_id: int, at: datetime = NOW, reason: str = "rude") -> NewCase:
    return NewCase(action="warn", created_at=at, target_id=target_id, moderator_id=10, reason=reason)


async def test_cases_are_numbered_from_one_and_read_back_whole(conn: aiosqlite.Connection) -> None:
    assert await repository.next_case_number(conn) == 1
    first = await repository.add_case(conn, warn(20))
    timeout = await repository.add_case(conn, NewCase(
        action="timeout", created_at=NOW, target_id=20, moderator_id=10, reason=None,
        duration_seconds=600, expires_at=NOW + timedelta(minutes=10)))
    assert (first.case_number, timeout.case_number) == (1, 2)
    assert first.created_at == NOW and first.reason == "rude" and first.is_active_warning
    assert timeout.expires_at == NOW + timedelta(minutes=10)
    assert timeout.duration == timedelta(minutes=10)
    assert await repository.get_case(conn, 2) == timeout
    assert await repository.get_case(conn, 3) is None


async def test_numbers_continue_after_the_highest_even_with_gaps(conn: aiosqlite.Connection) -> None:
    await conn.execute("INSERT INTO mod_cases (case_number, action, created_at) VALUES (41, 'ban', ?)",
                       (NOW.isoformat(),))
    assert (await repository.add_case(conn, warn(20))).case_number == 42


async def test_naive_times_are_refused(conn: aiosqlite.Connection) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await repository.add_case(conn, warn(20, at=datetime(2026, 1, 1)))


async def test_member_cases_and_active_warnings(conn: aiosqlite.Connection) -> None:
    one = await repository.add_case(conn, warn(20))
    await repository.add_case(conn, warn(21))
    await repository.add_case(conn, NewCase(action="kick", created_at=NOW, target_id=20, moderator_id=10))
    three = await repository.add_case(conn, warn(20, reason="again"))
    assert await repository.mark_warning_removed(conn, one.case_number, NOW)
    assert [case.case_number for case in await repository.cases_for_member(conn, 20)] == [1, 3, 4]
    assert [case.case_number for case in await repository.active_warnings(conn, 20)] == [three.case_number]
    removed = await repository.get_case(conn, 1)
    assert removed is not None and removed.removed_at == NOW and not removed.is_active_warning
    assert [case.case_number for case in await repository.recent_cases(conn, 2)] == [4, 3]


async def test_only_an_active_warning_can_be_removed(conn: aiosqlite.Connection) -> None:
    await repository.add_case(conn, warn(20))
    await repository.add_case(conn, NewCase(action="ban", created_at=NOW, target_id=20))
    assert not await repository.mark_warning_removed(conn, 2, NOW)
    assert not await repository.mark_warning_removed(conn, 99, NOW)
    assert await repository.mark_warning_removed(conn, 1, NOW)
    assert not await repository.mark_warning_removed(conn, 1, NOW + timedelta(hours=1))
    case = await repository.get_case(conn, 1)
    assert case is not None and case.removed_at == NOW


async def test_log_message_id(conn: aiosqlite.Connection) -> None:
    await repository.add_case(conn, warn(20))
    assert await repository.set_log_message_id(conn, 1, 555)
    assert not await repository.set_log_message_id(conn, 2, 555)
    case = await repository.get_case(conn, 1)
    assert case is not None and case.log_message_id == 555


async def test_warnings_within_a_window(conn: aiosqlite.Connection) -> None:
    since = NOW - timedelta(days=7)
    await repository.add_case(conn, warn(20, at=since - timedelta(seconds=1)))
    await repository.add_case(conn, warn(20, at=since))
    await repository.add_case(conn, warn(20, at=NOW))
    removed = await repository.add_case(conn, warn(20, at=NOW))
    await repository.mark_warning_removed(conn, removed.case_number, NOW)
    await repository.add_case(conn, warn(21, at=NOW))
    await repository.add_case(conn, NewCase(action="timeout", created_at=NOW, target_id=20))
    assert await repository.warning_times_since(conn, 20, since) == [since, NOW]


async def test_legacy_time_formats_are_read_and_compared_as_utc(conn: aiosqlite.Connection) -> None:
    await conn.execute(
        "INSERT INTO mod_cases (case_number, action, target_id, created_at) VALUES (1, 'warn', 20, ?)",
        ("2026-03-09 12:00:00",))
    await conn.execute(
        "INSERT INTO mod_cases (case_number, action, target_id, created_at) VALUES (2, 'warn', 20, ?)",
        ("2026-03-10T14:00:00+02:00",))
    legacy = await repository.get_case(conn, 1)
    assert legacy is not None and legacy.created_at == datetime(2026, 3, 9, 12, tzinfo=UTC)
    assert await repository.warning_times_since(conn, 20, datetime(2026, 3, 9, 12, tzinfo=UTC)) == [
        datetime(2026, 3, 9, 12, tzinfo=UTC), NOW]
    # 14:00+02:00 is 12:00 UTC: inside a window that starts at 12:00 UTC, outside one starting a second later.
    assert await repository.warning_times_since(conn, 20, NOW) == [NOW]
    assert await repository.warning_times_since(conn, 20, NOW + timedelta(seconds=1)) == []
