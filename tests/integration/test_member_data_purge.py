"""Purging many members at once (the start-up purge, a restore's erasures, the re-check after leaves,
a mass leave): the same rows as purging them one by one, in work that does not grow with them."""

from __future__ import annotations

import asyncio
import itertools
import shutil
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path

import aiosqlite
import pytest
from xp_fixtures import read_file

import malabot.member_data as member_data_module
from malabot.app import Services, Waits, build_services, stop_services
from malabot.privacy import MEMBER_COLUMN
from malabot.settings import Settings
from tests.file_holds import locked_from_outside

GUILD = 111_111_111_111_111_111
# Members purged together (ids in both orders relative to each other in the rows), and members who stay.
GONE = (200_000_000_000_000_003, 200_000_000_000_000_001, 200_000_000_000_000_002, 200_000_000_000_000_007)
STAYING = (200_000_000_000_000_004, 200_000_000_000_000_005, 200_000_000_000_000_006)
# One request per member: (member, reviewer), with each kind of pair of `pairs` once.
REQUESTS = [(GONE[0], GONE[1]), (GONE[1], GONE[2]), (GONE[2], GONE[2]), (GONE[3], STAYING[0]),
            (STAYING[0], GONE[0]), (STAYING[1], None), (STAYING[2], STAYING[2])]
EVERYONE = GONE + STAYING
AT = "2026-06-15T12:00:00+00:00"


def is_member(user_id: int) -> bool:
    return user_id not in GONE


async def started(folder: Path) -> Services:
    services = build_services(Settings(tenants_dir=folder, _env_file=None))  # type: ignore[call-arg]
    await services.tenants.start()
    await services.tenants.ensure(GUILD)
    return services


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    running = await started(tmp_path / "tenants")
    yield running
    await stop_services(running)


def insert(path: Path, sql: str, rows: list[tuple[object, ...]]) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    conn.executemany(sql, rows)
    conn.execute("COMMIT")
    conn.close()


def pairs(nullable: bool) -> list[tuple[int | None, int | None]]:
    """Every way two member columns of a row can name the members: the same one twice, two purged
    ones (both orders), a purged one beside one who stays, nobody."""
    ids: list[int | None] = [*EVERYONE, None] if nullable else list(EVERYONE)
    return list(itertools.product(ids, ids))


def fill_every_member_table(path: Path) -> None:
    """Rows of every kind a member column can be in, in every table that has one."""
    for number, user_id in enumerate(EVERYONE):
        insert(path, "INSERT INTO xp (user_id, xp, messages) VALUES (?, ?, 1)", [(user_id, 100 * number + 5)])
        insert(path, "INSERT INTO checkins (user_id, last_day, streak, best_streak, total) "
                     "VALUES (?, '2026-06-15', 2, 3, 4)", [(user_id,)])
        insert(path, "INSERT INTO checkin_days (user_id, day, xp_awarded) VALUES (?, ?, 10)",
               [(user_id, "2026-06-14"), (user_id, "2026-06-15")])
        insert(path, "INSERT INTO birthdays (user_id, month, day, year, created_at) VALUES (?, 4, 12, 1990, ?)",
               [(user_id, AT)])
        insert(path, "INSERT INTO birthday_celebrations (user_id, year, local_day, xp_awarded, role_id) "
                     "VALUES (?, ?, ?, 50, 7)", [(user_id, 2025, "2025-04-12"), (user_id, 2026, "2026-04-12")])
        insert(path, "INSERT INTO member_erasures (user_id, erased_at) VALUES (?, ?)", [(user_id, AT)])
        insert(path, "INSERT INTO autorole_waiting (user_id) VALUES (?)", [(user_id,)])
    insert(path, "INSERT INTO verification_requests (user_id, status, requested_at, reviewer_id) "
                 "VALUES (?, 'verified', ?, ?)", [(user_id, AT, reviewer) for user_id, reviewer in REQUESTS])
    insert(path, "INSERT INTO mod_cases (action, target_id, moderator_id, reason, created_at) "
                 "VALUES ('ban', ?, ?, 'raid', ?)", [(target, moderator, AT) for target, moderator in pairs(True)])
    insert(path, "INSERT INTO game_verifications (user_id, activision_id, platform, reviewer_id) "
                 "VALUES (?, 'name#1', 'pc', ?)", [(user, reviewer) for user, reviewer in pairs(False)]
           + [(user, None) for user in EVERYONE])
    insert(path, "INSERT INTO appeals (user_id, appeal_text, reviewer_id) VALUES (?, 'please', ?)",
           [(user, reviewer) for user, reviewer in pairs(False)] + [(user, None) for user in EVERYONE])
    insert(path, "INSERT INTO audit_log (at, category, action, actor_id, target_id, details) "
                 "VALUES (?, 'xp', 'add', ?, ?, '{}')", [(AT, actor, target) for actor, target in pairs(True)])
    insert(path, "INSERT INTO legacy_roast_log (user_id, target_id, action, created_at) VALUES (?, ?, 'roast', ?)",
           [(user, target, AT) for user, target in pairs(False)] + [(user, None, AT) for user in EVERYONE])


def member_columns(conn: sqlite3.Connection) -> dict[str, list[str]]:
    tables = [row[0] for row in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    found = {table: [row[1] for row in conn.execute(f"PRAGMA table_info({table})") if MEMBER_COLUMN.match(row[1])]
             for table in tables}
    return {table: columns for table, columns in found.items() if columns}


def kind(first: int | None, second: int | None) -> str:
    if first in GONE and second in GONE:
        return "the same gone" if first == second else "gone < gone" if first < second else "gone > gone"  # type: ignore[operator]
    return "gone, staying" if first in GONE and second in STAYING else "other"


def assert_every_member_column_is_filled(path: Path) -> None:
    """Keeps the comparison below complete: a new member column fails here until its rows are added."""
    conn = sqlite3.connect(path)
    try:
        for table, columns in member_columns(conn).items():
            for column in columns:
                named = {row[0] for row in conn.execute(f"SELECT DISTINCT {column} FROM {table}")}
                assert len(set(GONE) & named) >= 2 and set(STAYING) & named, f"{table}.{column}: no rows of every kind"
            for first, second in itertools.permutations(columns, 2):
                kinds = {kind(*row) for row in conn.execute(f"SELECT {first}, {second} FROM {table}")}
                assert {"gone < gone", "gone > gone", "the same gone", "gone, staying"} <= kinds, \
                    f"{table}: rows naming members in {first} and {second} lack {kinds}"
    finally:
        conn.close()


def rows_changed(path: Path, before: list[str], after: list[str]) -> int:
    """How many rows of tables with member columns are gone or different (the rank counts, kept by
    triggers, are not rows a purge changes)."""
    conn = sqlite3.connect(path)
    try:
        tables = member_columns(conn)
    finally:
        conn.close()
    prefixes = tuple(f'INSERT INTO "{table}" VALUES' for table in tables)  # a dump's line per row
    return sum((Counter(line for line in before if line.startswith(prefixes)) - Counter(after)).values())


def dump(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


async def test_a_purge_of_many_members_leaves_exactly_the_rows_of_purging_them_one_by_one(tmp_path: Path) -> None:
    sides = {"one by one": await started(tmp_path / "one by one")}
    made = sides["one by one"].tenants.paths.live(GUILD)
    await sides["one by one"].tenants.close(GUILD)
    fill_every_member_table(made)
    assert_every_member_column_is_filled(made)
    sides["together"] = build_services(Settings(tenants_dir=tmp_path / "together", _env_file=None))  # type: ignore[call-arg]
    try:
        await sides["together"].tenants.start()
        copy = sides["together"].tenants.paths.live(GUILD)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(made, copy)  # the same file, byte for byte
        before = dump(sides["together"].tenants.paths.live(GUILD))
        for user_id in sorted(GONE):  # as the start-up purge went before it purged them together
            await sides["one by one"].member_data.purge(GUILD, user_id)
        report = await sides["together"].member_data.purge_absent(GUILD, is_member)
        for services in sides.values():
            await services.tenants.close(GUILD)
        one_by_one, together = (dump(services.tenants.paths.live(GUILD)) for services in sides.values())
        assert together != before, "the purge changed rows"
        assert together == one_by_one
        assert report.user_ids == tuple(sorted(GONE))
        assert report.rows_changed == rows_changed(made, before, together), "each changed row counted once"
    finally:
        for services in sides.values():
            await stop_services(services)


async def test_a_leave_deletes_or_anonymises_each_row_as_the_readme_says(services: Services) -> None:
    """What stays of rows naming a departed member beside someone who stays: cases about them, their
    erasure record, and what they did to others without their id; roasts by or about them go."""
    gone, staying = GONE[0], STAYING[0]
    path = services.tenants.paths.live(GUILD)
    await services.tenants.close(GUILD)
    insert(path, "INSERT INTO legacy_roast_log (user_id, target_id, action, created_at) VALUES (?, ?, 'roast', ?)",
           [(staying, gone, AT), (gone, staying, AT), (staying, staying, AT)])
    insert(path, "INSERT INTO audit_log (at, category, action, actor_id, target_id, details) "
                 "VALUES (?, 'xp', 'add', ?, ?, '{}')", [(AT, gone, staying), (AT, staying, gone)])
    insert(path, "INSERT INTO mod_cases (action, target_id, moderator_id, reason, created_at) "
                 "VALUES ('ban', ?, ?, 'raid', ?)", [(gone, staying, AT), (staying, gone, AT)])
    insert(path, "INSERT INTO member_erasures (user_id, erased_at) VALUES (?, ?)", [(gone, AT)])
    await services.member_data.purge(GUILD, gone)
    await services.tenants.close(GUILD)
    assert read_file(path, "SELECT user_id, target_id FROM legacy_roast_log") == [(staying, staying)]
    assert read_file(path, "SELECT actor_id, target_id FROM audit_log") == [(None, staying)]
    assert read_file(path, "SELECT target_id, moderator_id FROM mod_cases ORDER BY case_number") == [
        (gone, staying), (staying, None)]
    assert read_file(path, "SELECT user_id FROM member_erasures") == [(gone,)]


async def traced(services: Services) -> list[str]:
    """The SQL statements run on the guild's connection from now on."""
    statements: list[str] = []
    async with services.tenants.reading(GUILD) as conn:
        await conn.set_trace_callback(statements.append)
    return statements


def distinct(statements: list[str]) -> set[str]:
    """Each statement once: Python's trace repeats a statement's text as each of its triggers runs (the
    purge of an XP row keeps the rank counts), and a statement run for each member names the member."""
    return set(statements)


async def test_a_start_up_purge_of_members_whose_rows_are_kept_does_not_write(services: Services) -> None:
    """Banned ex-members (their cases are kept) and erased ex-members (the record is kept) have nothing
    a purge would change: at every start they cost one look-up, not a write transaction holding the
    server's file with statements for each of them."""
    await services.tenants.close(GUILD)
    path = services.tenants.paths.live(GUILD)
    banned = [300_000_000_000_000_000 + n for n in range(200)]
    insert(path, "INSERT INTO mod_cases (action, target_id, moderator_id, reason, created_at) "
                 "VALUES ('ban', ?, ?, 'raid', ?)", [(user_id, STAYING[0], AT) for user_id in banned])
    insert(path, "INSERT INTO member_erasures (user_id, erased_at) VALUES (?, ?)",
           [(user_id, AT) for user_id in banned[:50]])
    statements = await traced(services)
    report = await services.member_data.purge_absent(GUILD, is_member=lambda user_id: user_id in STAYING)
    assert report.user_ids == () and report.rows_changed == 0
    assert len(distinct(statements)) == 1, f"{len(distinct(statements))} statements for a purge that changes nothing"
    async with services.tenants.reading(GUILD) as conn:
        assert (await conn.execute_fetchall("SELECT count(*) FROM mod_cases"))[0][0] == 200


async def test_a_start_up_purge_of_many_members_runs_as_many_statements_as_of_one(services: Services) -> None:
    """Members who left while the bot was offline are purged together, one statement per member column."""
    await services.tenants.close(GUILD)
    fill_every_member_table(services.tenants.paths.live(GUILD))
    many = [400_000_000_000_000_000 + n for n in range(300)]
    insert(services.tenants.paths.live(GUILD), "INSERT INTO xp (user_id, xp, messages) VALUES (?, 10, 1)",
           [(user_id,) for user_id in many])
    counts = []
    for leaving in ([GONE[0]], [*GONE[1:], *many]):
        statements = await traced(services)
        report = await services.member_data.purge_absent(GUILD, lambda user_id, gone=leaving: user_id not in gone)
        assert set(report.user_ids) == set(leaving)
        counts.append(len(distinct(statements)))
    assert counts[1] == counts[0], f"{counts[0]} statements for one member, {counts[1]} for {len(many) + 2}"
    async with services.tenants.reading(GUILD) as conn:
        assert (await conn.execute_fetchall("SELECT count(*) FROM xp"))[0][0] == len(STAYING)


async def test_members_leaving_at_once_do_not_each_look_up_all_the_others(
        services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """A mass ban or Discord's member prune: K members leave at once. Each leave's purge is one
    transaction, and every transaction re-checks the members who left in the last minute; in the
    purges themselves (they write nobody's rows) that was K x K look-ups, the server's file held
    throughout. Any other write still re-checks them all."""
    await services.tenants.close(GUILD)
    leaving = [500_000_000_000_000_000 + n for n in range(200)]
    insert(services.tenants.paths.live(GUILD), "INSERT INTO xp (user_id, xp, messages) VALUES (?, 10, 1)",
           [(user_id,) for user_id in leaving])
    looked_up: list[int] = []
    look_up = member_data_module.ids_named_in

    async def counted(conn: aiosqlite.Connection, columns: Iterable[tuple[str, str]],
                      among: Sequence[int] | None = None) -> set[int]:
        looked_up.append(len(among or ()))
        return await look_up(conn, columns, among)

    monkeypatch.setattr(member_data_module, "ids_named_in", counted)
    await asyncio.gather(*(services.member_data.member_left(GUILD, user_id) for user_id in leaving))
    assert sum(looked_up) <= len(leaving), f"{sum(looked_up)} departed ids looked up for {len(leaving)} leaves"
    looked_up.clear()
    await services.xp_admin.add(GUILD, STAYING[0], leaving[7], 50)  # a write for one of them, just after
    assert looked_up == [len(leaving)], "an admin write still looks for every member who just left"
    async with services.tenants.reading(GUILD) as conn:
        assert await conn.execute_fetchall("SELECT user_id FROM xp") == []
        assert await conn.execute_fetchall("SELECT target_id FROM audit_log") == []


async def test_a_member_back_while_a_purge_of_many_waits_keeps_the_xp_earned_since(services: Services) -> None:
    """A purge of members who left (at start, or an owed one retried) waits for the file; one of them
    rejoins meanwhile and chats. The purge takes their old rows, not what they earned since."""
    back = sorted(GONE)[0]
    insert(services.tenants.paths.live(GUILD), "INSERT INTO xp (user_id, xp, messages) VALUES (?, 500, 5)",
           [(back,)])
    await services.guild_settings.get(GUILD)           # cached, as in a running bot: chat reads no file
    async with services.tenants.transaction(GUILD):   # the file is busy (a backup, say)
        purging = asyncio.create_task(services.member_data.purge_many(GUILD, [back]))
        await asyncio.sleep(0.05)
        await services.member_data.member_joined(GUILD, back)
        award = await asyncio.wait_for(services.xp.record_message(GUILD, back, 1, [], is_bot=False), 5)
        assert award is not None and services.xp.pending_xp(GUILD, back) > 0
    await purging
    assert services.xp.pending_xp(GUILD, back) > 0, "the XP earned since the return is kept"
    await services.xp.flush_all()
    async with services.tenants.reading(GUILD) as conn:
        [(xp,)] = await conn.execute_fetchall("SELECT xp FROM xp WHERE user_id = ?", (back,))
    assert 0 < xp < 500


@pytest.fixture
async def quick_services(tmp_path: Path) -> AsyncIterator[Services]:
    """Services whose writes give up on a file another program holds after 0.3 s (5 s in the bot)."""
    running = build_services(Settings(tenants_dir=tmp_path / "tenants", _env_file=None),  # type: ignore[call-arg]
                             waits=Waits(busy_timeout_ms=300))
    await running.tenants.start()
    await running.tenants.ensure(GUILD)
    await running.guild_settings.get(GUILD)    # cached, as in a running bot: chat reads no file
    yield running
    await stop_services(running)


async def stored_xp(services: Services, user_id: int) -> int:
    async with services.tenants.reading(GUILD) as conn:
        rows = await conn.execute_fetchall("SELECT xp FROM xp WHERE user_id = ?", (user_id,))
    return int(rows[0][0]) if rows else 0


async def test_xp_a_failed_flush_took_before_a_leave_is_not_given_back_to_the_member_back_since(
        quick_services: Services) -> None:
    """The flush took bob's XP and waits on a file another program holds. He leaves (the purge waits
    too), comes back and chats. The flush fails: what he earned before leaving goes with his leave."""
    xp, member_data, bob = quick_services.xp, quick_services.member_data, GONE[0]
    assert await xp.record_message(GUILD, bob, 1, [], is_bot=False) is not None
    with locked_from_outside(quick_services.tenants.paths.live(GUILD)):
        flushing = asyncio.create_task(xp.flush(GUILD))
        await asyncio.sleep(0.1)                             # it took the XP and waits for the file
        assert xp.pending_xp(GUILD, bob) == 0
        leaving = asyncio.create_task(member_data.member_left(GUILD, bob))
        await asyncio.sleep(0.05)
        await member_data.member_joined(GUILD, bob)
        assert await xp.record_message(GUILD, bob, 1, [], is_bot=False) is not None
        since = xp.pending_xp(GUILD, bob)
        with pytest.raises(sqlite3.OperationalError):
            await flushing
    await leaving
    await xp.flush(GUILD)
    assert await stored_xp(quick_services, bob) == since


async def test_xp_earned_while_the_purge_owed_since_a_leave_waits_at_the_return_is_kept(
        quick_services: Services) -> None:
    """Bob's leave purge met a file another program held and is owed; he comes back while the file is
    busy, so the owed purge tried at his return waits, and he chats meanwhile: that XP is his."""
    xp, member_data, bob = quick_services.xp, quick_services.member_data, GONE[0]
    insert(quick_services.tenants.paths.live(GUILD), "INSERT INTO xp (user_id, xp, messages) VALUES (?, 500, 5)",
           [(bob,)])
    with locked_from_outside(quick_services.tenants.paths.live(GUILD)):
        assert await member_data.member_left(GUILD, bob) is None   # owed
    async with quick_services.tenants.transaction(GUILD):          # busy (a backup, a flush) at his return
        joining = asyncio.create_task(member_data.member_joined(GUILD, bob))
        await asyncio.sleep(0.05)
        assert await xp.record_message(GUILD, bob, 1, [], is_bot=False) is not None
        since = xp.pending_xp(GUILD, bob)
    await joining
    await xp.flush(GUILD)
    assert await stored_xp(quick_services, bob) == since > 0
