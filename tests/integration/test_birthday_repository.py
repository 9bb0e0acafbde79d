"""Birthday SQL on a real tenant file, migrated with the project's migrations."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime
from pathlib import Path

import aiosqlite
import pytest
from birthday_rows import stored_celebration

from malabot.features.birthdays import repository
from malabot.features.birthdays.member_data import birthday_member_data
from malabot.features.birthdays.rules import Birthday, dates_celebrated_on

NOW = datetime(2026, 6, 15, 12, tzinfo=UTC)


async def test_save_get_replace_and_delete(conn: aiosqlite.Connection) -> None:
    assert await repository.get_birthday(conn, 1) is None
    await repository.save_birthday(conn, 1, Birthday(3, 5, 1990), NOW)
    assert await repository.get_birthday(conn, 1) == Birthday(3, 5, 1990)
    await repository.save_birthday(conn, 1, Birthday(2, 29), NOW)
    assert await repository.get_birthday(conn, 1) == Birthday(2, 29)
    assert await repository.delete_birthday(conn, 1)
    assert not await repository.delete_birthday(conn, 1)
    assert await repository.get_birthday(conn, 1) is None


async def test_all_birthdays_in_calendar_order(conn: aiosqlite.Connection) -> None:
    for user_id, birthday in [(3, Birthday(12, 1)), (2, Birthday(1, 9)), (1, Birthday(1, 9, 2000))]:
        await repository.save_birthday(conn, user_id, birthday, NOW)
    assert [user_id for user_id, _ in await repository.all_birthdays(conn)] == [1, 2, 3]


async def test_the_schema_refuses_a_month_13_even_if_a_caller_skipped_the_rules(
        conn: aiosqlite.Connection) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        await repository.save_birthday(conn, 1, Birthday(13, 1), NOW)


async def test_unclaimed_on_finds_feb_29_on_a_common_feb_28_until_claimed(conn: aiosqlite.Connection) -> None:
    await repository.save_birthday(conn, 1, Birthday(2, 28), NOW)
    await repository.save_birthday(conn, 2, Birthday(2, 29, 2000), NOW)
    await repository.save_birthday(conn, 3, Birthday(3, 1), NOW)
    common = date(2027, 2, 28)
    due = await repository.unclaimed_on(conn, dates_celebrated_on(common), 2027)
    assert [user_id for user_id, _ in due] == [1, 2]
    assert await repository.claim_celebrations(conn, [2], 2027, common, 100, None) == {2}
    due = await repository.unclaimed_on(conn, dates_celebrated_on(common), 2027)
    assert [user_id for user_id, _ in due] == [1]
    leap = await repository.unclaimed_on(conn, dates_celebrated_on(date(2028, 2, 28)), 2028)
    assert [user_id for user_id, _ in leap] == [1]


async def test_a_celebration_is_claimed_once_per_member_and_year(conn: aiosqlite.Connection) -> None:
    day = date(2026, 6, 15)
    assert await repository.claim_celebrations(conn, [1], 2026, day, 100, 555) == {1}
    assert await repository.claim_celebrations(conn, [1, 2], 2026, day, 100, 555) == {2}
    assert await repository.claim_celebrations(conn, [1], 2027, date(2027, 6, 15), 100, 555) == {1}
    assert await repository.claim_celebrations(conn, [], 2027, date(2027, 6, 15), 100, 555) == set()
    row = await stored_celebration(conn, 1, 2026)
    assert row is not None
    assert (row["local_day"], row["xp_awarded"], row["role_id"], row["announced_at"]) == (
        "2026-06-15", 100, 555, None)


async def test_pending_roles_are_those_of_past_days_not_yet_removed(conn: aiosqlite.Connection) -> None:
    await repository.claim_celebrations(conn, [1], 2026, date(2026, 6, 14), 0, 555)
    await repository.claim_celebrations(conn, [2], 2026, date(2026, 6, 15), 0, 555)
    await repository.claim_celebrations(conn, [3], 2026, date(2026, 6, 1), 0, None)
    await repository.claim_celebrations(conn, [4], 2026, date(2026, 6, 2), 0, 555)
    await repository.forget_roles(conn, [4], 2026)
    pending = await repository.pending_roles(conn, before=date(2026, 6, 15))
    assert pending == [repository.PendingRole(1, 2026, date(2026, 6, 14), 555)]
    await repository.mark_roles_removed(conn, pending, NOW)
    assert await repository.pending_roles(conn, before=date(2026, 6, 16)) == [
        repository.PendingRole(2, 2026, date(2026, 6, 15), 555)]


async def test_celebrations_of_a_file_from_before_a_migration_are_added_where_missing(
        conn: aiosqlite.Connection, tmp_path: Path) -> None:
    old = tmp_path / "old.sqlite3"   # as migration 0001 left it: no role_failed_on column yet
    plain = sqlite3.connect(old)
    with plain:
        plain.execute("CREATE TABLE birthday_celebrations (user_id INTEGER NOT NULL, year INTEGER NOT NULL,"
                      " local_day TEXT NOT NULL, announced_at TEXT, xp_awarded INTEGER NOT NULL DEFAULT 0,"
                      " role_id INTEGER, role_removed_at TEXT, PRIMARY KEY (user_id, year))")
        plain.executemany("INSERT INTO birthday_celebrations VALUES (?, 2026, '2026-06-14', ?, 100, 555, NULL)",
                          [(1, "2026-06-14T07:00:00+00:00"), (2, None)])
    plain.close()
    await repository.claim_celebrations(conn, [2], 2026, date(2026, 6, 14), 0, None)

    rows = repository.celebrations_in_file(old)
    assert await repository.add_missing_celebrations(conn, rows) == 1
    assert await repository.add_missing_celebrations(conn, []) == 0
    assert await stored_celebration(conn, 1, 2026) == {
        "user_id": 1, "year": 2026, "local_day": "2026-06-14", "announced_at": "2026-06-14T07:00:00+00:00",
        "xp_awarded": 100, "role_id": 555, "role_removed_at": None, "role_failed_on": None}
    kept = await stored_celebration(conn, 2, 2026)
    assert kept is not None and kept["role_id"] is None, "a row already there is left as it is"
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"not a database" * 300)
    with pytest.raises(sqlite3.DatabaseError):
        repository.celebrations_in_file(garbage)


async def test_member_data_handler_purges_and_exports_only_that_member(conn: aiosqlite.Connection) -> None:
    handler = birthday_member_data()
    assert handler.covers == {("birthdays", "user_id"), ("birthday_celebrations", "user_id")}
    for user_id in (1, 2):
        await repository.save_birthday(conn, user_id, Birthday(6, 15), NOW)
        await repository.claim_celebrations(conn, [user_id], 2026, date(2026, 6, 15), 100, None)
    exported = await handler.export(conn, 1)
    assert [row["user_id"] for row in exported["birthdays"]] == [1]
    assert [row["year"] for row in exported["birthday_celebrations"]] == [2026]
    assert await handler.purge(conn, 1) == 2
    assert await repository.get_birthday(conn, 1) is None
    assert await stored_celebration(conn, 1, 2026) is None
    assert await repository.get_birthday(conn, 2) == Birthday(6, 15)
    assert await stored_celebration(conn, 2, 2026) is not None


async def test_the_day_of_each_members_celebration_in_a_year(conn: aiosqlite.Connection) -> None:
    await repository.claim_celebrations(conn, [1, 2], 2026, date(2026, 6, 15), 100, None)
    await repository.claim_celebrations(conn, [1], 2025, date(2025, 3, 5), 100, None)
    assert await repository.celebration_day(conn, 1, 2026) == date(2026, 6, 15)
    assert await repository.celebration_day(conn, 1, 2027) is None
    assert await repository.celebration_days(conn, 2026) == {1: date(2026, 6, 15), 2: date(2026, 6, 15)}
    assert await repository.celebration_days(conn, 2025) == {1: date(2025, 3, 5)}
