"""TenantManager on real files: creation, identity, migrations, the per-guild lock and the bounded pool."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from malabot.errors import InvalidGuildId, MigrationError, TenantError
from malabot.tenancy import manager as manager_module
from malabot.tenancy import opening
from malabot.tenancy.manager import TenantManager
from malabot.tenancy.migrations import APPLICATION_ID, MigrationSet

MigrationsFactory = Callable[..., MigrationSet]  # the make_migrations fixture (conftest.py)

UNIQUE_MESSAGES = "CREATE UNIQUE INDEX xp_unique_messages ON xp (messages);\n"

# The project's latest schema version, and the number a test's own extra migration takes.
LATEST = MigrationSet.load().latest
NEXT = f"{LATEST + 1:04d}"


def read(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
async def manager_factory(tmp_path: Path) -> AsyncIterator[type[TenantManager]]:
    """Build extra managers on the same tenants folder; all are closed at the end."""
    made: list[TenantManager] = []

    class Tracked(TenantManager):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(tmp_path / "tenants", *args, **kwargs)  # type: ignore[arg-type]
            made.append(self)

    yield Tracked
    for manager in made:
        await manager.close_all()


async def add_xp(tenants: TenantManager, guild_id: int, user_id: int, messages: int = 0) -> None:
    async with tenants.transaction(guild_id) as conn:
        await conn.execute("INSERT INTO xp (user_id, xp, messages) VALUES (?, 1, ?)"
                           " ON CONFLICT (user_id) DO UPDATE SET xp = xp + 1", (user_id, messages))


# -- creation and identity -----------------------------------------------------------------------


async def test_first_use_creates_a_ready_file_with_its_identity(tenants: TenantManager) -> None:
    assert not tenants.exists(42)
    assert await tenants.ensure(42) is True
    assert await tenants.ensure(42) is False
    live = tenants.paths.live(42)
    assert read(live, "SELECT guild_id FROM tenant_meta") == [(42,)]
    assert read(live, "PRAGMA application_id") == [(APPLICATION_ID,)]
    assert read(live, "PRAGMA user_version") == [(tenants.migrations.latest,)]
    assert read(live, "PRAGMA journal_mode") == [("wal",)]
    assert tenants.guild_ids() == [42]
    leftovers = [path.name for path in tenants.paths.root.iterdir() if path.name.startswith(".")]
    assert leftovers == []


async def test_connections_have_foreign_keys_on(tenants: TenantManager) -> None:
    async with tenants.reading(1) as conn:
        assert await conn.execute_fetchall("PRAGMA foreign_keys") == [(1,)]
        assert await conn.execute_fetchall("PRAGMA busy_timeout") == [(5000,)]


async def test_a_small_file_keeps_no_page_cache_and_a_big_one_keeps_sqlites(tenants: TenantManager) -> None:
    async with tenants.transaction(1) as conn:
        assert await conn.execute_fetchall("PRAGMA cache_size") == [(2,)]
        await conn.execute("CREATE TABLE filler (data BLOB)")
        await conn.execute("INSERT INTO filler VALUES (zeroblob(?))", (opening.SMALL_FILE_BYTES,))
        assert await conn.execute_fetchall("SELECT count(*) FROM xp") == [(0,)]  # still reads
    await tenants.close(1)
    async with tenants.reading(1) as conn:  # reopened: now over the limit
        assert await conn.execute_fetchall("PRAGMA cache_size") == [(-2000,)]  # SQLite's default


async def test_a_single_statement_commits_alone_and_a_failed_one_leaves_nothing(tenants: TenantManager) -> None:
    async with tenants.single_statement(1) as conn:
        assert not conn.in_transaction
        await conn.execute("INSERT INTO xp (user_id, xp) VALUES (1, 10)")
    with pytest.raises(sqlite3.IntegrityError):
        async with tenants.single_statement(1) as conn:
            await conn.execute("INSERT INTO xp (user_id, xp) VALUES (2, 5), (3, -1)")
    async with tenants.reading(1) as conn:
        assert await conn.execute_fetchall("SELECT user_id, xp FROM xp") == [(1, 10)]


async def test_create_false_does_not_create(tenants: TenantManager) -> None:
    with pytest.raises(TenantError, match="no data file for guild 7$"):
        async with tenants.transaction(7, create=False):
            pass
    with pytest.raises(TenantError, match="no data file for guild 7$"):
        async with tenants.reading(7, create=False):
            pass
    assert not tenants.exists(7)
    assert tenants.open_count == 0


async def test_a_new_file_never_takes_over_a_wal_left_beside_its_name(tenants: TenantManager,
                                                                        tmp_path: Path) -> None:
    await tenants.ensure(1)
    await tenants.close(1)
    live = tenants.paths.live(1)
    crashed = sqlite3.connect(live, isolation_level=None)  # a bot that crashed with rows in the -wal
    crashed.execute("PRAGMA wal_autocheckpoint = 0")
    crashed.executemany("INSERT INTO xp (user_id, xp) VALUES (?, 5)", [(user,) for user in range(1, 301)])
    left = {suffix: Path(f"{live}{suffix}").read_bytes() for suffix in ("-wal", "-shm")}
    crashed.close()
    live.rename(tmp_path / "moved-away-by-hand.sqlite3")
    for suffix, data in left.items():
        Path(f"{live}{suffix}").write_bytes(data)

    async with tenants.reading(1) as conn:                  # a new, empty file for guild 1
        assert await conn.execute_fetchall("SELECT count(*) FROM xp") == [(0,)]
        assert await conn.execute_fetchall("PRAGMA integrity_check") == [("ok",)]


async def test_an_eviction_cancelled_while_waiting_for_its_turn_loses_no_connection(tmp_path: Path) -> None:
    tenants = TenantManager(tmp_path / "tenants", max_open=1)
    await tenants.ensure(1)
    turns = tenants._opening_or_closing  # white box: every open/close turn taken, as in a cold burst
    for _ in range(8):
        await turns.acquire()
    opener = asyncio.create_task(tenants.ensure(2))  # must evict guild 1, and waits for a turn
    await asyncio.sleep(0.05)
    opener.cancel()
    with pytest.raises(asyncio.CancelledError):
        await opener
    for _ in range(8):
        turns.release()
    assert tenants.open_count == 1 and tenants.is_open(1), "guild 1's connection is still counted"
    await tenants.close_all()
    assert tenants.open_count == 0
    assert not Path(f"{tenants.paths.live(1)}-wal").exists(), "closed: its -wal folded in and removed"


def test_an_open_cancelled_while_its_file_opens_closes_it_before_giving_way(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stop during the start-up sweep cancels an open whose file is being opened in its thread. The
    cancel waits for that and closes the connection: a thread left behind reports back to an event loop
    that is closed by then ("Exception in thread ... Event loop is closed" on the bot's stderr)."""
    opening_started, release = threading.Event(), threading.Event()
    really_open = manager_module.open_tenant

    def held_open(*args: Any, **kwargs: Any) -> Any:
        opening_started.set()
        release.wait(10)
        return really_open(*args, **kwargs)

    monkeypatch.setattr(manager_module, "open_tenant", held_open)
    thread_failures: list[threading.ExceptHookArgs] = []
    monkeypatch.setattr(threading, "excepthook", thread_failures.append)
    tenants = TenantManager(tmp_path / "tenants")

    async def stop_while_opening() -> None:
        opener = asyncio.create_task(tenants.ensure(1))
        await asyncio.to_thread(opening_started.wait, 10)
        threading.Timer(0.2, release.set).start()  # the file opens a moment after the cancel
        opener.cancel()
        with pytest.raises(asyncio.CancelledError):
            await opener

    asyncio.run(stop_while_opening())  # the loop is closed right after, as at the end of a run
    for thread in threading.enumerate():
        if "_connection_worker_thread" in thread.name:
            thread.join(10)
    assert [str(failure.exc_value) for failure in thread_failures] == []
    assert tenants.open_count == 0
    assert not Path(f"{tenants.paths.live(1)}-wal").exists(), "closed: its -wal folded in and removed"


@pytest.mark.parametrize("bad", ["../x", "../../etc/passwd", "-1", 0, -5, 2**64, "1/2", True, "x"])
async def test_bad_guild_ids_are_refused_before_any_file_is_touched(tenants: TenantManager, bad: object,
                                                                     tmp_path: Path) -> None:
    actions = [
        lambda: tenants.ensure(bad),  # type: ignore[arg-type]
        lambda: tenants.close(bad),  # type: ignore[arg-type]
        lambda: tenants.backup(bad),  # type: ignore[arg-type]
        lambda: tenants.restore(bad, tmp_path / "f.sqlite3"),  # type: ignore[arg-type]
        lambda: tenants.archive(bad),  # type: ignore[arg-type]
    ]
    for action in actions:
        with pytest.raises(InvalidGuildId):
            await action()
    for context in (tenants.transaction, tenants.reading):
        with pytest.raises(InvalidGuildId):
            async with context(bad):  # type: ignore[arg-type]
                pass
    with pytest.raises(InvalidGuildId):
        tenants.exists(bad)  # type: ignore[arg-type]
    assert not tenants.paths.root.exists() or list(tenants.paths.root.iterdir()) == []


async def test_a_text_id_and_an_int_id_share_one_tenant(tenants: TenantManager) -> None:
    await add_xp(tenants, "42", 1)  # type: ignore[arg-type]
    await add_xp(tenants, 42, 1)
    assert tenants.open_count == 1
    async with tenants.reading(42) as conn:
        assert await conn.execute_fetchall("SELECT xp FROM xp") == [(2,)]


async def test_a_foreign_sqlite_file_is_refused_and_left_alone(tenants: TenantManager) -> None:
    tenants.paths.root.mkdir(parents=True)
    live = tenants.paths.live(5)
    foreign = sqlite3.connect(live)
    foreign.execute("CREATE TABLE notes (text TEXT)")
    foreign.commit()
    foreign.close()
    before = digest(live)
    with pytest.raises(TenantError, match=r"guild 5: refusing to open .*not a MalaBoT file"):
        await tenants.ensure(5)
    assert digest(live) == before
    assert read(live, "PRAGMA user_version") == [(0,)]
    assert tenants.open_count == 0


async def test_random_bytes_in_the_folder_are_refused(tenants: TenantManager) -> None:
    tenants.paths.root.mkdir(parents=True)
    tenants.paths.live(5).write_bytes(b"\x01garbage" * 1000)
    with pytest.raises(TenantError, match="guild 5: .* is not a usable SQLite database"):
        async with tenants.transaction(5):
            pass


async def test_another_guilds_file_is_refused(tenants: TenantManager) -> None:
    await tenants.ensure(5)
    await tenants.close(5)
    tenants.paths.live(5).rename(tenants.paths.live(6))
    with pytest.raises(TenantError, match="guild 6: refusing to open .*: it belongs to guild 5"):
        await tenants.ensure(6)


# -- transactions --------------------------------------------------------------------------------


async def test_a_transaction_commits_on_success_and_rolls_back_on_error(tenants: TenantManager) -> None:
    await add_xp(tenants, 1, 100)
    with pytest.raises(ValueError, match="boom"):
        async with tenants.transaction(1) as conn:
            await conn.execute("INSERT INTO xp (user_id, xp) VALUES (200, 5)")
            raise ValueError("boom")
    async with tenants.reading(1) as conn:
        assert await conn.execute_fetchall("SELECT user_id FROM xp") == [(100,)]
        assert not conn.in_transaction


async def test_a_cancelled_transaction_is_rolled_back(tenants: TenantManager) -> None:
    inside = asyncio.Event()

    async def stuck() -> None:
        async with tenants.transaction(1) as conn:
            await conn.execute("INSERT INTO xp (user_id, xp) VALUES (200, 5)")
            inside.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(stuck())
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await add_xp(tenants, 1, 100)  # the next transaction starts clean
    async with tenants.reading(1) as conn:
        assert await conn.execute_fetchall("SELECT user_id FROM xp") == [(100,)]


async def test_transactions_of_one_guild_are_serialised(tenants: TenantManager) -> None:
    async def increment() -> None:
        async with tenants.transaction(1) as conn:
            rows = await conn.execute_fetchall("SELECT xp FROM xp WHERE user_id = 1")
            await asyncio.sleep(0)  # let the others run: without the lock they would interleave
            value = rows[0][0] + 1 if rows else 1
            await conn.execute("INSERT OR REPLACE INTO xp (user_id, xp) VALUES (1, ?)", (value,))

    await tenants.ensure(1)  # one shared connection, as in the running bot
    await asyncio.gather(*(increment() for _ in range(25)))
    async with tenants.reading(1) as conn:
        assert await conn.execute_fetchall("SELECT xp FROM xp") == [(25,)]


async def test_a_reader_never_sees_another_coroutines_uncommitted_writes(tenants: TenantManager) -> None:
    written = asyncio.Event()
    release = asyncio.Event()

    async def writer() -> None:
        async with tenants.transaction(1) as conn:
            await conn.execute("INSERT INTO xp (user_id, xp) VALUES (1, 10)")
            written.set()
            await release.wait()
            await conn.execute("UPDATE xp SET xp = 20 WHERE user_id = 1")

    async def reader() -> list[tuple[object, ...]]:
        async with tenants.reading(1) as conn:
            return list(await conn.execute_fetchall("SELECT xp FROM xp"))

    writing = asyncio.create_task(writer())
    await written.wait()
    reading = asyncio.create_task(reader())
    done, _ = await asyncio.wait({reading}, timeout=0.2)
    assert not done  # it waits for the writer instead of reading the shared connection mid-transaction
    release.set()
    await writing
    assert await reading == [(20,)]


async def test_a_transaction_left_open_by_a_reader_is_not_passed_on(tenants: TenantManager) -> None:
    async with tenants.reading(1) as conn:
        await conn.execute("BEGIN")
        await conn.execute("INSERT INTO xp (user_id, xp) VALUES (1, 10)")
    await add_xp(tenants, 1, 2)
    async with tenants.reading(1) as conn:
        assert await conn.execute_fetchall("SELECT user_id FROM xp") == [(2,)]


# -- opening once, migrations --------------------------------------------------------------------


async def test_concurrent_first_use_creates_and_migrates_once(
        manager_factory: type[TenantManager], make_migrations: MigrationsFactory) -> None:
    count_runs = "CREATE TABLE runs (id INTEGER PRIMARY KEY);\nINSERT INTO runs DEFAULT VALUES;\n"
    counted = make_migrations("counted", {f"{NEXT}_count_runs.sql": count_runs})
    tenants = manager_factory(migrations=counted)
    created = await asyncio.gather(*(tenants.ensure(9) for _ in range(10)))
    await asyncio.gather(*(add_xp(tenants, 9, user) for user in range(10)))
    assert sorted(created) == [False] * 9 + [True]
    live = tenants.paths.live(9)
    assert read(live, "SELECT count(*) FROM runs") == [(1,)]
    assert read(live, "SELECT version FROM schema_migrations") == [(v,) for v in range(1, LATEST + 2)]
    assert read(live, "SELECT count(*) FROM xp") == [(10,)]
    assert tenants.open_count == 1


async def test_an_old_tenant_is_migrated_forward_on_open(
        manager_factory: type[TenantManager], make_migrations: MigrationsFactory) -> None:
    old = manager_factory(migrations=make_migrations("v1"))
    await add_xp(old, 3, 1)
    await old.close_all()
    new = manager_factory(migrations=make_migrations("v2", {f"{NEXT}_unique_messages.sql": UNIQUE_MESSAGES}))
    async with new.reading(3) as conn:
        assert await conn.execute_fetchall("PRAGMA user_version") == [(LATEST + 1,)]
        assert await conn.execute_fetchall("SELECT user_id FROM xp") == [(1,)]


async def test_a_failing_migration_stops_only_that_tenant(
        manager_factory: type[TenantManager], make_migrations: MigrationsFactory) -> None:
    old = manager_factory(migrations=make_migrations("v1"))
    await add_xp(old, 1, 1, messages=3)
    await add_xp(old, 1, 2, messages=3)  # guild 1 has duplicate message counts: the index cannot be built
    await add_xp(old, 2, 1, messages=3)
    await old.close_all()
    before = digest(old.paths.live(1))

    new = manager_factory(migrations=make_migrations("v2", {f"{NEXT}_unique_messages.sql": UNIQUE_MESSAGES}))
    with pytest.raises(MigrationError, match=rf"guild 1: migration {NEXT}_unique_messages.sql failed"):
        async with new.transaction(1):
            pass
    live = new.paths.live(1)
    assert read(live, "PRAGMA user_version") == [(LATEST,)]
    assert read(live, "SELECT version FROM schema_migrations") == [(v,) for v in range(1, LATEST + 1)]
    assert read(live, "SELECT name FROM sqlite_master WHERE name = 'xp_unique_messages'") == []
    assert read(live, "SELECT count(*) FROM xp") == [(2,)]
    assert digest(live) == before
    await add_xp(new, 2, 5)  # the other guild migrates and works
    assert read(new.paths.live(2), "PRAGMA user_version") == [(LATEST + 1,)]
    assert new.open_count == 1


async def test_a_failing_migration_on_creation_leaves_no_file(
        manager_factory: type[TenantManager], make_migrations: MigrationsFactory) -> None:
    broken_set = make_migrations("broken", {f"{NEXT}_broken.sql": "SELECT * FROM nowhere;\n"})
    broken = manager_factory(migrations=broken_set)
    with pytest.raises(MigrationError, match=rf"guild 4: migration {NEXT}_broken.sql failed"):
        await broken.ensure(4)
    assert list(broken.paths.root.iterdir()) == []
    assert broken.open_count == 0


async def test_a_changed_applied_migration_is_refused(
        manager_factory: type[TenantManager], make_migrations: MigrationsFactory, tmp_path: Path) -> None:
    original = make_migrations("original")
    first = manager_factory(migrations=original)
    await first.ensure(8)
    await first.close_all()
    initial = original.migrations[0].path
    initial.write_text(initial.read_text() + "\n-- edited after release\n")
    second = manager_factory(migrations=MigrationSet.load(initial.parent))
    with pytest.raises(MigrationError, match="guild 8: migration 0001_initial.sql was changed"):
        await second.ensure(8)


async def test_a_tenant_newer_than_the_code_is_refused(
        manager_factory: type[TenantManager], make_migrations: MigrationsFactory) -> None:
    newer = manager_factory(migrations=make_migrations("v2", {f"{NEXT}_unique_messages.sql": UNIQUE_MESSAGES}))
    await newer.ensure(8)
    await newer.close_all()
    older = manager_factory(migrations=make_migrations("v1"))
    with pytest.raises(MigrationError, match=f"guild 8 is at schema version {LATEST + 1}, newer than this code"):
        await older.ensure(8)


# -- the pool ------------------------------------------------------------------------------------


async def test_the_pool_keeps_at_most_max_open_and_evicts_the_least_recently_used(
        manager_factory: type[TenantManager]) -> None:
    tenants = manager_factory(max_open=3)
    for guild_id in (1, 2, 3):
        await tenants.ensure(guild_id)
    await add_xp(tenants, 1, 1)  # 2 is now the least recently used
    await add_xp(tenants, 4, 1)
    assert [tenants.is_open(guild_id) for guild_id in (1, 2, 3, 4)] == [True, False, True, True]
    for guild_id in range(5, 15):
        await add_xp(tenants, guild_id, 1)
        assert tenants.open_count <= 3
    assert tenants.open_count == 3
    async with tenants.reading(2) as conn:  # an evicted tenant reopens with its data
        assert await conn.execute_fetchall("SELECT count(*) FROM xp") == [(0,)]


async def test_eviction_never_closes_a_connection_in_use(manager_factory: type[TenantManager]) -> None:
    tenants = manager_factory(max_open=2)
    async with tenants.transaction(1) as conn:
        await conn.execute("INSERT INTO xp (user_id, xp) VALUES (1, 1)")
        for guild_id in range(2, 8):
            await add_xp(tenants, guild_id, 1)
            assert tenants.is_open(1)
            assert tenants.open_count <= 2
        await conn.execute("UPDATE xp SET xp = 2")
    async with tenants.reading(1) as conn:
        assert await conn.execute_fetchall("SELECT xp FROM xp") == [(2,)]


async def test_opening_waits_for_room_when_every_connection_is_in_use(
        manager_factory: type[TenantManager]) -> None:
    tenants = manager_factory(max_open=1)
    release = asyncio.Event()
    holding = asyncio.Event()

    async def hold_one() -> None:
        async with tenants.transaction(1):
            holding.set()
            await release.wait()

    holder = asyncio.create_task(hold_one())
    await holding.wait()
    second = asyncio.create_task(add_xp(tenants, 2, 1))
    done, _ = await asyncio.wait({second}, timeout=0.3)
    assert not done
    assert tenants.open_count == 1 and not tenants.is_open(2)
    release.set()
    await asyncio.gather(holder, second)
    assert tenants.open_count == 1 and tenants.is_open(2)


async def test_an_opener_cancelled_while_waiting_for_room_does_not_strand_the_others(
        manager_factory: type[TenantManager]) -> None:
    tenants = manager_factory(max_open=1)
    release = asyncio.Event()
    holding = asyncio.Event()

    async def hold_one() -> None:
        async with tenants.transaction(1):
            holding.set()
            await release.wait()

    holder = asyncio.create_task(hold_one())
    await holding.wait()
    gives_up = asyncio.create_task(add_xp(tenants, 2, 1))
    waits = asyncio.create_task(add_xp(tenants, 3, 1))
    done, _ = await asyncio.wait({gives_up, waits}, timeout=0.2)
    assert not done
    gives_up.cancel()
    release.set()
    await asyncio.gather(holder, waits)
    assert gives_up.cancelled()
    assert tenants.is_open(3) and tenants.open_count == 1
    assert not tenants.exists(2)


async def test_close_waits_until_the_tenant_is_not_in_use(tenants: TenantManager) -> None:
    events: list[str] = []
    inside = asyncio.Event()
    release = asyncio.Event()

    async def user() -> None:
        async with tenants.transaction(1) as conn:
            inside.set()
            await release.wait()
            await conn.execute("INSERT INTO xp (user_id, xp) VALUES (1, 1)")
            events.append("committed")

    async def closer() -> None:
        await tenants.close(1)
        events.append("closed")

    using = asyncio.create_task(user())
    await inside.wait()
    closing = asyncio.create_task(closer())
    await asyncio.wait({closing}, timeout=0.2)
    release.set()
    await asyncio.gather(using, closing)
    assert events == ["committed", "closed"]
    assert not tenants.is_open(1) and tenants.open_count == 0


async def test_idle_connections_are_closed_but_not_ones_in_use(tenants: TenantManager) -> None:
    await tenants.ensure(1)
    async with tenants.reading(2):
        assert await tenants.close_idle(older_than=0) == 1
        assert not tenants.is_open(1) and tenants.is_open(2)
    assert tenants.open_count == 1


async def test_the_background_task_closes_idle_tenants(manager_factory: type[TenantManager]) -> None:
    tenants = manager_factory(idle_seconds=0.05)
    await tenants.start()
    await tenants.ensure(1)
    for _ in range(500):
        if tenants.open_count == 0:
            break
        await asyncio.sleep(0.01)
    assert tenants.open_count == 0


# -- hooks and shutdown --------------------------------------------------------------------------


async def test_close_all_flushes_through_hooks_then_closes_and_refuses_work(tenants: TenantManager) -> None:
    calls: list[object] = []

    async def flush() -> None:
        await add_xp(tenants, 3, 1)  # tenants are still usable inside a shutdown hook
        calls.append("shutdown")

    async def before(guild_id: int) -> None:
        calls.append(guild_id)

    tenants.add_shutdown_hook(flush)
    tenants.add_before_file_operation(before)
    await tenants.ensure(1)
    await tenants.close_all()
    assert calls == ["shutdown", 1, 3]
    assert tenants.open_count == 0
    with pytest.raises(TenantError, match="guild 1: the tenant manager is closed"):
        await tenants.ensure(1)
    await tenants.close_all()  # a second call is harmless and runs no hook again
    assert calls == ["shutdown", 1, 3]
    assert read(tenants.paths.live(3), "SELECT count(*) FROM xp") == [(1,)]


async def test_a_failing_shutdown_hook_does_not_stop_the_shutdown(tenants: TenantManager) -> None:
    async def broken() -> None:
        raise RuntimeError("flush failed")

    tenants.add_shutdown_hook(broken)
    await tenants.ensure(1)
    await tenants.close_all()
    assert tenants.open_count == 0


async def test_an_archived_guild_is_not_recreated_by_a_late_reader(tenants: TenantManager) -> None:
    guild = 424242
    await tenants.ensure(guild)
    await tenants.archive(guild)
    with pytest.raises(TenantError, match="was archived"):
        async with tenants.reading(guild):
            pass
    with pytest.raises(TenantError, match="was archived"):
        async with tenants.transaction(guild):
            pass
    assert not tenants.exists(guild)
    assert await tenants.ensure(guild) is True  # the bot joined the guild again: explicit creation
    assert tenants.exists(guild)
