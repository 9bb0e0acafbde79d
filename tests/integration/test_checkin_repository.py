"""Check-in SQL on a real tenant file migrated with the project's migrations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import aiosqlite
import pytest
from xp_fixtures import migrated_file

from malabot.features.checkins import repository
from malabot.features.checkins.member_data import checkin_member_data
from malabot.features.checkins.repository import CheckinRow

DAY = date(2026, 1, 31)
AT = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)


@pytest.fixture
async def conn(tmp_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    async with migrated_file(tmp_path) as connection:
        yield connection


async def test_a_day_can_be_claimed_once(conn: aiosqlite.Connection) -> None:
    assert await repository.claim_day(conn, 1, DAY, 50)
    assert not await repository.claim_day(conn, 1, DAY, 60)
    assert await repository.claim_day(conn, 1, date(2026, 2, 1), 60)
    assert await repository.claim_day(conn, 2, DAY, 50)
    sql = "SELECT user_id, day, xp_awarded FROM checkin_days ORDER BY user_id, day"
    async with conn.execute(sql) as cursor:
        rows = [tuple(row) for row in await cursor.fetchall()]
    assert rows == [(1, "2026-01-31", 50), (1, "2026-02-01", 60), (2, "2026-01-31", 50)]


async def test_streak_row_is_created_and_updated(conn: aiosqlite.Connection) -> None:
    assert await repository.member_checkin(conn, 1) is None
    await repository.save_streak(conn, 1, DAY, 1, 1, 1, AT)
    await repository.save_streak(conn, 1, date(2026, 2, 1), 2, 2, 2, AT + timedelta(days=1))
    assert await repository.member_checkin(conn, 1) == CheckinRow(1, date(2026, 2, 1), 2, 2, 2,
                                                                  AT + timedelta(days=1))


async def test_current_streak_board_leaves_out_broken_streaks(conn: aiosqlite.Connection) -> None:
    await repository.save_streak(conn, 1, date(2026, 2, 1), 3, 9, 20, AT + timedelta(days=1))
    await repository.save_streak(conn, 2, date(2026, 1, 31), 5, 5, 5, AT)
    await repository.save_streak(conn, 3, date(2026, 1, 20), 8, 8, 8, AT - timedelta(days=11))  # broken
    await repository.save_streak(conn, 4, date(2026, 2, 1), 5, 6, 6, AT + timedelta(days=1))
    current = [pair async for pair in repository.by_current_streak(conn, date(2026, 1, 31), AT)]
    assert current == [(2, 5), (4, 5), (1, 3)]
    best = [pair async for pair in repository.by_best_streak(conn)]
    assert best == [(1, 9), (3, 8), (4, 6), (2, 5)]


async def test_ties_on_both_boards_go_by_member_id_and_every_member_is_counted(conn: aiosqlite.Connection) -> None:
    for user_id in (7, 3, 5):  # same streaks, stored out of order
        await repository.save_streak(conn, user_id, DAY, 4, 6, 6, AT)
    assert [pair async for pair in repository.by_current_streak(conn, DAY, AT)] == [(3, 4), (5, 4), (7, 4)]
    assert [pair async for pair in repository.by_best_streak(conn)] == [(3, 6), (5, 6), (7, 6)]
    assert await repository.members_checked_in(conn) == 3


async def test_current_streak_board_counts_a_check_in_made_since_the_start_of_yesterday(
        conn: aiosqlite.Connection) -> None:
    # Stored on Nov 26 (a UTC server), made at 23:30 UTC: after a move to Tokyo that is Nov 27 there.
    yesterday = date(2026, 11, 27)
    tokyo_yesterday_starts = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
    await repository.save_streak(conn, 1, date(2026, 11, 26), 2, 2, 2, datetime(2026, 11, 26, 23, 30, tzinfo=UTC))
    await repository.save_streak(conn, 2, date(2026, 11, 26), 4, 4, 4, tokyo_yesterday_starts)   # just in time
    await repository.save_streak(conn, 3, date(2026, 11, 26), 6, 6, 6,
                                 tokyo_yesterday_starts - timedelta(microseconds=1))      # Nov 26 in Tokyo too
    await conn.execute("INSERT INTO checkins (user_id, last_day, streak, best_streak, total) "
                       "VALUES (4, '2026-11-27', 3, 3, 3)")   # no instant (older row): its day decides
    current = [pair async for pair in repository.by_current_streak(conn, yesterday, tokyo_yesterday_starts)]
    assert current == [(2, 4), (4, 3), (1, 2)]


async def test_member_data_covers_both_tables_and_purges_only_that_member(conn: aiosqlite.Connection) -> None:
    for user_id in (1, 2):
        await repository.claim_day(conn, user_id, DAY, 50)
        await repository.save_streak(conn, user_id, DAY, 1, 1, 1, AT)
    handler = checkin_member_data()
    assert handler.covers == {("checkins", "user_id"), ("checkin_days", "user_id")}
    exported = await handler.export(conn, 1)
    assert exported["checkin_days"] == [{"user_id": 1, "day": "2026-01-31", "xp_awarded": 50}]
    assert len(exported["checkins"]) == 1
    assert await handler.purge(conn, 1) == 2
    assert await handler.export(conn, 1) == {"checkins": [], "checkin_days": []}
    assert await repository.member_checkin(conn, 2) is not None
