"""XP SQL on a real tenant file migrated with the project's migrations."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite
import pytest
from xp_fixtures import migrated_file

from malabot.features.xp import repository
from malabot.features.xp.member_data import xp_member_data
from malabot.features.xp.models import LevelRole
from malabot.features.xp.repository import BufferedAward

NOW = datetime(2026, 6, 15, 12, tzinfo=UTC)


@pytest.fixture
async def conn(tmp_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    async with migrated_file(tmp_path) as connection:
        yield connection


async def all_rows(conn: aiosqlite.Connection) -> list[tuple[int, int, int, str | None]]:
    sql = "SELECT user_id, xp, messages, last_message_at FROM xp ORDER BY user_id"
    async with conn.execute(sql) as cursor:
        return [tuple(row) for row in await cursor.fetchall()]  # type: ignore[misc]


async def test_buffered_awards_create_then_add_to_rows_and_return_the_totals(
        conn: aiosqlite.Connection) -> None:
    assert await repository.add_awards(conn, [BufferedAward(1, 20, 1, "2026-06-15T12:00:00+00:00"),
                                              BufferedAward(2, 45, 2, "2026-06-15T12:00:05+00:00")]) == \
        {1: 20, 2: 45}
    assert await repository.add_awards(conn, [BufferedAward(1, 15, 1, "2026-06-15T12:01:00+00:00")]) == {1: 35}
    assert await all_rows(conn) == [(1, 35, 2, "2026-06-15T12:01:00+00:00"),
                                     (2, 45, 2, "2026-06-15T12:00:05+00:00")]


async def test_thousands_of_awards_go_in_one_call(conn: aiosqlite.Connection) -> None:
    awards = [BufferedAward(user_id, 10, 1, "2026-06-15T12:00:00+00:00") for user_id in range(1, 40_002)]
    totals = await repository.add_awards(conn, awards)
    assert len(totals) == 40_001 and set(totals.values()) == {10}
    assert len(await all_rows(conn)) == 40_001


async def test_awards_are_one_statement_so_a_refused_one_writes_none_of_them(
        conn: aiosqlite.Connection) -> None:
    """The flush runs without BEGIN/COMMIT: it relies on SQLite undoing a whole failed statement."""
    await repository.add_awards(conn, [BufferedAward(1, 20, 1, "2026-06-15T12:00:00+00:00")])
    with pytest.raises(sqlite3.IntegrityError):
        await repository.add_awards(conn, [BufferedAward(1, 5, 1, "2026-06-15T12:01:00+00:00"),
                                           BufferedAward(2, 30, 1, "2026-06-15T12:01:00+00:00"),
                                           BufferedAward(3, -1, 1, "2026-06-15T12:01:00+00:00")])
    assert not conn.in_transaction
    assert await all_rows(conn) == [(1, 20, 1, "2026-06-15T12:00:00+00:00")]


async def test_snowflake_sized_ids_keep_every_digit(conn: aiosqlite.Connection) -> None:
    big = 2**63 - 1  # the largest id SQLite stores; JSON must not round it through a float
    assert await repository.add_awards(conn, [BufferedAward(big, 20, 1, "2026-06-15T12:00:00+00:00")]) == {big: 20}
    assert await repository.stored_totals(conn, [big, big - 1]) == {big: 20, big - 1: 0}


async def test_stored_totals_of_many_members_at_once(conn: aiosqlite.Connection) -> None:
    await repository.add_awards(conn, [BufferedAward(user_id, user_id, 1, "t") for user_id in range(1, 25_001)])
    asked = list(range(1, 30_001))
    totals = await repository.stored_totals(conn, asked)
    assert totals == {user_id: user_id if user_id <= 25_000 else 0 for user_id in asked}


async def test_last_message_time_never_goes_back(conn: aiosqlite.Connection) -> None:
    await repository.add_awards(conn, [BufferedAward(1, 20, 1, "2026-06-15T12:05:00+00:00")])
    await repository.add_awards(conn, [BufferedAward(1, 20, 1, "2026-06-15T12:00:00+00:00")])
    row = await repository.member_row(conn, 1)
    assert row is not None and row.last_message_at == "2026-06-15T12:05:00+00:00"


async def test_add_and_set_do_not_count_messages(conn: aiosqlite.Connection) -> None:
    assert await repository.total_xp(conn, 7) == 0
    await repository.add_xp(conn, [7], 100)
    await repository.add_xp(conn, [7, 8], 50)
    assert (await repository.total_xp(conn, 7), await repository.total_xp(conn, 8)) == (150, 50)
    await repository.set_xp(conn, 7, 5)
    await repository.set_xp(conn, 8, 9)
    assert await all_rows(conn) == [(7, 5, 0, None), (8, 9, 0, None)]


async def test_the_schema_refuses_negative_xp(conn: aiosqlite.Connection) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        await repository.set_xp(conn, 1, -1)


async def test_reset_all_zeroes_xp_and_keeps_message_counts(conn: aiosqlite.Connection) -> None:
    await repository.add_awards(conn, [BufferedAward(1, 20, 3, "t"), BufferedAward(2, 30, 4, "t")])
    await repository.set_xp(conn, 3, 0)
    assert await repository.reset_all(conn) == (2, 50)
    assert [(user, xp, messages) for user, xp, messages, _ in await all_rows(conn)] == \
        [(1, 0, 3), (2, 0, 4), (3, 0, 0)]


async def test_ranking_is_by_xp_then_user_id_and_leaves_out_zero(conn: aiosqlite.Connection) -> None:
    for user_id, xp in [(5, 10), (3, 30), (4, 30), (1, 0), (2, 50)]:
        await repository.set_xp(conn, user_id, xp)
    assert [pair async for pair in repository.ranked(conn)] == [(2, 50), (3, 30), (4, 30), (5, 10)]
    assert await repository.count_above(conn, 30) == 1
    assert await repository.count_above(conn, 10) == 3
    for xp in (0, 5, 10, 30, 50, 99):
        assert await repository.count_above_from_below(conn, xp) == await repository.count_above(conn, xp)
    assert await repository.median_xp(conn) == 30   # 50, 30, [30], 10, 0
    assert sorted(await repository.ids_above(conn, 10)) == [2, 3, 4]


async def test_level_roles_put_replace_find_and_delete(conn: aiosqlite.Connection) -> None:
    await repository.put_level_role(conn, 10, 110)
    await repository.put_level_role(conn, 5, 105)
    await repository.put_level_role(conn, 10, 111)
    assert await repository.level_roles(conn) == [LevelRole(5, 105), LevelRole(10, 111)]
    assert await repository.level_role_at(conn, 10) == LevelRole(10, 111)
    assert await repository.level_of_role(conn, 105) == 5
    assert await repository.level_of_role(conn, 110) is None
    await repository.delete_level_role(conn, 5)
    assert await repository.level_roles(conn) == [LevelRole(10, 111)]


async def test_one_role_cannot_reward_two_levels(conn: aiosqlite.Connection) -> None:
    await repository.put_level_role(conn, 5, 105)
    with pytest.raises(sqlite3.IntegrityError):
        await repository.put_level_role(conn, 6, 105)


async def test_audit_rows_are_category_xp_with_json_details(conn: aiosqlite.Connection) -> None:
    await repository.record_audit(conn, NOW, "set", 9, 7, {"before": 1, "after": 2})
    sql = "SELECT at, category, action, actor_id, target_id, details FROM audit_log"
    async with conn.execute(sql) as cursor:
        at, category, action, actor, target, details = await cursor.fetchone()  # type: ignore[misc]
    assert (at, category, action, actor, target) == (NOW.isoformat(), "xp", "set", 9, 7)
    assert json.loads(details) == {"before": 1, "after": 2}


async def test_member_data_purges_and_exports_only_that_member(conn: aiosqlite.Connection) -> None:
    await repository.set_xp(conn, 1, 10)
    await repository.set_xp(conn, 2, 20)
    handler = xp_member_data()
    assert handler.covers == {("xp", "user_id")}
    exported = await handler.export(conn, 1)
    assert exported == {"xp": [{"user_id": 1, "xp": 10, "messages": 0, "last_message_at": None}]}
    assert await handler.purge(conn, 1) == 1
    assert [user for user, *_ in await all_rows(conn)] == [2]
