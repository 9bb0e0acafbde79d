"""XP SQL on a real tenant file migrated with the project's migrations."""

from __future__ import annotations

import json
import random
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
from malabot.features.xp.repository import BufferedAward, XpRow
from malabot.features.xp.rules import MAX_TOTAL_XP
from malabot.tenancy.migrations import MigrationSet, migrate

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
    row, _ = await repository.member_standing(conn, 1)
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


async def test_reset_all_reports_xp_removed_beyond_what_one_sqlite_integer_holds(
        conn: aiosqlite.Connection) -> None:
    # 10,000 members at the largest total an admin may set
    await conn.execute("BEGIN")
    await conn.executemany("INSERT INTO xp (user_id, xp) VALUES (?, ?)",
                           [(user_id, MAX_TOTAL_XP) for user_id in range(1, 10_001)])
    await conn.execute("COMMIT")
    assert await repository.reset_all(conn) == (10_000, 10_000 * MAX_TOTAL_XP)   # > 2**63 - 1
    assert await conn.execute_fetchall("SELECT count(*) FROM xp WHERE xp > 0") == [(0,)]


async def test_ranking_is_by_xp_then_user_id_and_leaves_out_zero(conn: aiosqlite.Connection) -> None:
    for user_id, xp in [(5, 10), (3, 30), (4, 30), (1, 0), (2, 50)]:
        await repository.set_xp(conn, user_id, xp)
    assert [pair async for pair in repository.ranked(conn)] == [(2, 50), (3, 30), (4, 30), (5, 10)]
    assert sorted(await repository.ids_above(conn, 10)) == [2, 3, 4]


async def standings(conn: aiosqlite.Connection) -> dict[int, int]:
    """Every member's count of members above, as member_standing gives it."""
    async with conn.execute("SELECT user_id FROM xp") as cursor:
        user_ids = [int(row[0]) for row in await cursor.fetchall()]
    return {user_id: (await repository.member_standing(conn, user_id))[1] for user_id in user_ids}


async def counted_by_scan(conn: aiosqlite.Connection) -> dict[int, int]:
    """The same, the slow way: every row compared with every other."""
    sql = "SELECT member.user_id, (SELECT count(*) FROM xp AS other WHERE other.xp > member.xp) FROM xp AS member"
    return {int(user_id): int(above) for user_id, above in await conn.execute_fetchall(sql)}


async def test_member_standing_is_the_row_and_the_members_above(conn: aiosqlite.Connection) -> None:
    await repository.add_awards(conn, [BufferedAward(1, 20, 3, "2026-06-15T12:00:00+00:00")])
    for user_id, xp in [(2, 50), (3, 20), (4, 5000), (5, 0), (6, 2**63 - 1)]:
        await repository.set_xp(conn, user_id, xp)
    assert await repository.member_standing(conn, 1) == \
        (XpRow(1, 20, 3, "2026-06-15T12:00:00+00:00"), 3)          # 2**63 - 1, 5000 and 50; 20 is a tie
    assert (await repository.member_standing(conn, 6))[1] == 0     # the largest total SQLite stores
    assert (await repository.member_standing(conn, 4))[1] == 1
    assert (await repository.member_standing(conn, 5))[1] == 5
    assert await repository.member_standing(conn, 99) == (None, 0)


async def test_counts_above_stay_exact_through_every_kind_of_write(conn: aiosqlite.Connection) -> None:
    """The per-total and per-block counts are kept by triggers: awards, admin sets and adds, resets,
    purges and block crossings (totals 1,023 / 1,024 / 2,047 sit on block edges), up to the largest
    total the bot lets an admin set."""
    rng = random.Random(5)
    edges = [0, 1, 1023, 1024, 1025, 2047, 2048, MAX_TOTAL_XP, MAX_TOTAL_XP - 1, MAX_TOTAL_XP - 1024]
    for user_id, xp in enumerate(edges, start=1):
        await repository.set_xp(conn, user_id, xp)
    assert await standings(conn) == await counted_by_scan(conn)
    def walker() -> int:  # members 1-10 keep their edge totals
        return rng.randrange(11, 70)

    for round_ in range(30):
        awards = [BufferedAward(walker(), rng.choice([15, 25, 1000, 1024]), 1, "t")
                  for _ in range(rng.randrange(1, 12))]
        await repository.add_awards(conn, list({award.user_id: award for award in awards}.values()))
        await repository.set_xp(conn, walker(), rng.choice([0, 7, 1023, 1024, 3000, 2**40]))
        await repository.add_xp(conn, [walker(), walker() + 60], rng.randrange(1, 2000))
        if round_ % 7 == 3:
            await xp_member_data().purge(conn, rng.choice([walker(), 2, 9]))
        if round_ == 20:
            await repository.reset_all(conn)
        assert await standings(conn) == await counted_by_scan(conn), f"round {round_}"
    async with conn.execute("SELECT count(*) FROM xp") as cursor:
        rows = (await cursor.fetchone() or (0,))[0]
    assert rows > 20   # the walk really built a board
    assert await conn.execute_fetchall("SELECT sum(members) FROM xp_counts") == [(rows,)]
    assert await conn.execute_fetchall("SELECT sum(members) FROM xp_block_counts") == [(rows,)]
    assert await conn.execute_fetchall("SELECT count(*) FROM xp_counts WHERE members <= 0") == [(0,)]


async def test_the_counts_are_built_from_the_rows_a_file_had_before_them(tmp_path: Path) -> None:
    """A file from before the counts (a backup, a restored snapshot) gets them when migrated."""
    path = tmp_path / "old.sqlite3"
    plain = sqlite3.connect(path, isolation_level=None)
    migrations = MigrationSet.load()
    counts = next(m.version for m in migrations.migrations if m.name == "xp_rank_counts")
    before_counts = MigrationSet(tuple(m for m in migrations.migrations if m.version < counts))
    migrate(plain, before_counts, "old file")
    plain.executemany("INSERT INTO xp (user_id, xp) VALUES (?, ?)",
                      [(1, 30), (2, 30), (3, 5000), (4, 0), (5, 2000)])
    migrate(plain, migrations, "old file")
    plain.close()
    async with aiosqlite.connect(path, isolation_level=None) as connection:
        assert await standings(connection) == await counted_by_scan(connection) == \
            {1: 2, 2: 2, 3: 0, 4: 4, 5: 1}


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


async def test_a_member_leaving_who_shares_a_total_with_another_keeps_the_rank_counts_exact(
        conn: aiosqlite.Connection) -> None:
    """0003's delete trigger both drops a count that reaches 0 and lowers one still shared."""
    for user_id, xp in ((1, 100), (2, 100), (3, 50)):
        await repository.set_xp(conn, user_id, xp)
    await xp_member_data().purge(conn, 1)  # member 1 left: member 2 alone is above member 3 now
    _row, above = await repository.member_standing(conn, 3)
    assert above == 1
    assert await conn.execute_fetchall("SELECT xp, members FROM xp_counts ORDER BY xp") == [(50, 1), (100, 1)]
