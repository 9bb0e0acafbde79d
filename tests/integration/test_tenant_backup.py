"""Backup, restore and archive through TenantManager, on real files."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import os
import random
import re
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from malabot.errors import RestoreRefused, TenantArchived, TenantError
from malabot.tenancy import backup as files
from malabot.tenancy.backup import inspect_file
from malabot.tenancy.manager import TenantManager
from malabot.tenancy.migrations import MigrationSet
from malabot.tenancy.opening import create_tenant_file
from malabot.tenancy.paths import TenantPaths, sidecars
from tests.file_holds import file_in_use

MigrationsFactory = Callable[..., MigrationSet]  # the make_migrations fixture (conftest.py)
STAMPED = r"\d{8}T\d{6}Z"

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


async def add_users(tenants: TenantManager, guild_id: int, user_ids: range) -> None:
    async with tenants.transaction(guild_id) as conn:
        await conn.executemany("INSERT INTO xp (user_id, xp) VALUES (?, ?)", [(u, u) for u in user_ids])


async def add_bulk(tenants: TenantManager, guild_id: int, *, rows: int, size: int) -> None:
    async with tenants.transaction(guild_id) as conn:
        await conn.executemany("INSERT INTO audit_log (at, category, action, details)"
                               " VALUES ('t', 'c', 'a', ?)", [("x" * size,)] * rows)


async def users(tenants: TenantManager, guild_id: int) -> list[int]:
    async with tenants.reading(guild_id, create=False) as conn:
        return [row[0] for row in await conn.execute_fetchall("SELECT user_id FROM xp ORDER BY user_id")]


def hidden_leftovers(paths: TenantPaths) -> list[str]:
    return [path.name for path in paths.root.iterdir() if path.name.startswith(".")]


# -- backup --------------------------------------------------------------------------------------


async def test_a_backup_taken_during_writes_restores_every_row_committed_before_it(
        tenants: TenantManager) -> None:
    await add_bulk(tenants, 1, rows=4000, size=500)  # so the backup takes a moment
    committed: list[int] = []
    during_backup: list[int] = []
    warmed_up = asyncio.Event()
    stop = asyncio.Event()

    async def writer() -> None:
        user_id = 0
        while not stop.is_set():
            user_id += 1
            async with tenants.transaction(1) as conn:
                await conn.execute("INSERT INTO xp (user_id, xp) VALUES (?, ?)", (user_id, user_id))
            committed.append(user_id)
            if backing_up.is_set():
                during_backup.append(user_id)
            if user_id == 20:
                warmed_up.set()

    backing_up = asyncio.Event()
    writing = asyncio.create_task(writer())
    await warmed_up.wait()
    before = len(committed)
    backing_up.set()
    backup = await tenants.backup(1)
    backing_up.clear()
    stop.set()
    await writing

    # Writes went on while the copy was made (a backup holding the tenant would let one through).
    assert len(during_backup) >= 3
    assert read(backup, "PRAGMA integrity_check") == [("ok",)]
    saved = [row[0] for row in read(backup, "SELECT user_id FROM xp ORDER BY user_id")]
    assert saved == list(range(1, len(saved) + 1))  # one consistent moment: no gaps
    assert before <= len(saved) <= len(committed)
    assert read(backup, "SELECT count(*) FROM audit_log") == [(4000,)]

    await tenants.restore(1, backup)
    assert await users(tenants, 1) == saved
    assert read(tenants.paths.live(1), "PRAGMA integrity_check") == [("ok",)]


async def test_a_backup_is_one_checked_self_contained_file(tenants: TenantManager) -> None:
    await add_users(tenants, 1, range(1, 4))
    first = await tenants.backup(1)
    second = await tenants.backup(1)
    assert first.parent == tenants.paths.backups_dir / "1"
    assert re.fullmatch(rf"1-{STAMPED}\.sqlite3", first.name)
    assert first != second  # the same second still gives two files
    assert read(first, "PRAGMA journal_mode") == [("delete",)]
    assert not any(side.exists() for side in sidecars(first))
    assert inspect_file(first, 1, tenants.migrations) is None
    assert read(first, "SELECT user_id FROM xp ORDER BY user_id") == [(1,), (2,), (3,)]
    assert hidden_leftovers(tenants.paths) == []
    assert [path.name for path in first.parent.iterdir() if path.name.startswith(".")] == []


async def test_a_backup_goes_where_it_is_told(tenants: TenantManager, tmp_path: Path) -> None:
    await tenants.ensure(1)
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    into_folder = await tenants.backup(1, folder)
    assert into_folder.parent == folder and into_folder.name.startswith("1-")
    named = await tenants.backup(1, tmp_path / "out" / "mine.sqlite3")
    assert named == tmp_path / "out" / "mine.sqlite3" and named.exists()
    with pytest.raises(TenantError, match="already exists"):
        await tenants.backup(1, named)


async def test_a_missing_guild_has_nothing_to_back_up(tenants: TenantManager) -> None:
    with pytest.raises(TenantError, match="no data file for guild 5$"):
        await tenants.backup(5)
    assert not tenants.exists(5)


def leave(folder: Path, names: list[str], *, age: timedelta) -> list[Path]:
    """Files named `names` in `folder`, last written `age` ago."""
    folder.mkdir(parents=True, exist_ok=True)
    written = time.time() - age.total_seconds()
    for name in names:
        (folder / name).write_bytes(b"a copy of the members' data, half written")
        os.utime(folder / name, (written, written))
    return [folder / name for name in names]


async def test_a_backup_first_removes_what_crashed_backups_left_beside_it_and_nothing_else(
        tenants: TenantManager) -> None:
    await add_users(tenants, 1, range(1, 4))
    folder = tenants.paths.backups_dir / "1"
    crashed = leave(folder, [".1-20260101T000000Z.sqlite3.tmp", ".1-20260101T000000Z.sqlite3.tmp-wal",
                             ".1-20260101T000000Z.sqlite3.tmp-shm", ".1-20260102T000000Z.sqlite3.tmp",
                             ".1-20260102T000000Z.sqlite3.tmp-journal",
                             ".1-20260103T000000Z.sqlite3.tmp-wal"],  # its staging file already gone
                    age=timedelta(hours=2))
    in_progress = leave(folder, [".1-20260104T000000Z.sqlite3.tmp", ".1-20260104T000000Z.sqlite3.tmp-wal"],
                        age=timedelta(seconds=1))
    [stalled] = leave(folder, [".1-20260105T000000Z.sqlite3.tmp"], age=timedelta(hours=2))
    unrelated = leave(folder, [".notes.tmp", "1-20260101T000000Z.sqlite3", ".1-mine.sqlite3.tmp",
                               "1-20260101T000000Z.sqlite3.tmp", ".2-20260101T000000Z.sqlite3.tmp",
                               ".1-20260101T000000Z.sqlite3.tmp.bak"], age=timedelta(days=30))
    holder = os.open(stalled, os.O_RDONLY)  # a backup still holds it: written long ago, not abandoned
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        written = await tenants.backup(1)
    finally:
        os.close(holder)
    assert [path.name for path in crashed if path.exists()] == []
    assert all(path.exists() for path in [*in_progress, stalled, *unrelated])
    assert read(written, "SELECT user_id FROM xp ORDER BY user_id") == [(1,), (2,), (3,)]
    assert await tenants.backup(1) != written
    assert not stalled.exists(), "once no backup holds it, it is a leftover"
    assert sorted(path.name for path in folder.iterdir() if path.name.startswith(".")) == sorted(
        path.name for path in [*in_progress, *unrelated] if path.name.startswith("."))


async def test_a_backup_never_takes_over_the_file_another_backup_is_writing(tenants: TenantManager,
                                                                           tmp_path: Path) -> None:
    await add_users(tenants, 1, range(1, 4))
    target = tmp_path / "out" / "mine.sqlite3"
    [other] = leave(target.parent, [".mine.sqlite3.tmp"], age=timedelta(seconds=1))
    with pytest.raises(TenantError, match="another backup is writing .*mine.sqlite3 right now"):
        await tenants.backup(1, target)
    assert other.read_bytes().startswith(b"a copy") and not target.exists()


# -- restore -------------------------------------------------------------------------------------


def corrupt_page(tmp_path: Path, backup: Path) -> Path:
    data = bytearray(backup.read_bytes())
    page = len(data) // 4096 // 2
    data[page * 4096:(page + 1) * 4096] = random.Random(1).randbytes(4096)
    target = tmp_path / "corrupt.sqlite3"
    target.write_bytes(data)
    return target


def random_bytes(tmp_path: Path, backup: Path) -> Path:
    target = tmp_path / "random.sqlite3"
    target.write_bytes(random.Random(2).randbytes(64 * 1024))
    return target


def plain_sqlite(tmp_path: Path, backup: Path) -> Path:
    target = tmp_path / "plain.sqlite3"
    conn = sqlite3.connect(target)
    conn.execute("CREATE TABLE xp (user_id INTEGER PRIMARY KEY, xp INTEGER)")
    conn.commit()
    conn.close()
    return target


def empty_file(tmp_path: Path, backup: Path) -> Path:
    target = tmp_path / "empty.sqlite3"
    target.touch()
    return target


def without_identity_row(tmp_path: Path, backup: Path) -> Path:
    target = tmp_path / "anonymous.sqlite3"
    target.write_bytes(backup.read_bytes())
    conn = sqlite3.connect(target)
    conn.execute("DELETE FROM tenant_meta")
    conn.commit()
    conn.close()
    return target


def with_edited_history(tmp_path: Path, backup: Path) -> Path:
    target = tmp_path / "edited.sqlite3"
    target.write_bytes(backup.read_bytes())
    conn = sqlite3.connect(target)
    conn.execute("UPDATE schema_migrations SET checksum = 'abc' WHERE version = 1")
    conn.commit()
    conn.close()
    return target


def cut_off_mid_write(tmp_path: Path, backup: Path) -> Path:
    """A copy of the backup an editor was changing when it was killed: half-written pages in the
    file, the originals in the hot -journal beside it (only SQLite rolling it back makes it whole)."""
    target = tmp_path / "cut-off.sqlite3"
    editor = sqlite3.connect(backup, isolation_level=None)
    editor.execute("PRAGMA journal_mode = DELETE")
    editor.execute("PRAGMA cache_size = 2")              # changed pages spill into the file early
    editor.execute("BEGIN")
    editor.execute("UPDATE audit_log SET details = 'edited, never committed'")
    shutil.copy(backup, target)
    shutil.copy(f"{backup}-journal", f"{target}-journal")
    editor.execute("ROLLBACK")
    editor.close()
    return target


def with_index_out_of_step(tmp_path: Path, backup: Path) -> Path:
    """Every page readable, but an index whose entries do not match its rows: only SQLite's integrity
    check notices."""
    target = tmp_path / "index-out-of-step.sqlite3"
    target.write_bytes(backup.read_bytes())
    conn = sqlite3.connect(target, isolation_level=None)
    try:  # the index now claims to order by a column its entries were not built from
        conn.execute("PRAGMA writable_schema = ON")
        conn.execute("UPDATE sqlite_master SET sql = 'CREATE INDEX xp_by_total ON xp (messages DESC, user_id)' "
                     "WHERE name = 'xp_by_total'")
    finally:
        conn.close()
    return target


def missing(tmp_path: Path, backup: Path) -> Path:
    return tmp_path / "nowhere.sqlite3"


@pytest.mark.parametrize(("make_bad_file", "reason"), [
    (corrupt_page, "fails the integrity check|not a usable SQLite database"),
    (random_bytes, r"not a usable SQLite database \(file is not a database\)"),
    (plain_sqlite, "not a MalaBoT file"),
    (empty_file, "not a MalaBoT file"),
    (without_identity_row, "no MalaBoT identity row"),
    (with_edited_history, "0001_initial.sql was changed after it was applied"),
    (missing, "no such file"),
    (with_index_out_of_step, "fails the integrity check: .*xp_by_total"),
    (cut_off_mid_write, r"has an unfinished transaction beside it \(cut-off.sqlite3-journal\)"),
])
async def test_a_bad_file_is_refused_and_the_live_file_stays_untouched(
        tenants: TenantManager, tmp_path: Path, make_bad_file: Callable[[Path, Path], Path],
        reason: str) -> None:
    await add_bulk(tenants, 1, rows=300, size=300)
    await add_users(tenants, 1, range(1, 6))
    bad = make_bad_file(tmp_path, await tenants.backup(1))
    await tenants.close(1)
    live = tenants.paths.live(1)
    before = digest(live)

    with pytest.raises(RestoreRefused, match=rf"cannot restore .* into guild 1: .*({reason})") as refused:
        await tenants.restore(1, bad)
    assert "\n" not in str(refused.value)
    assert digest(live) == before
    assert await users(tenants, 1) == [1, 2, 3, 4, 5]
    assert hidden_leftovers(tenants.paths) == []
    assert not list(tenants.paths.backups_dir.glob("*/*before-restore*"))


async def test_another_guilds_file_is_refused_unless_allowed(tenants: TenantManager) -> None:
    await add_users(tenants, 1, range(1, 3))
    await add_users(tenants, 2, range(7, 9))
    other = await tenants.backup(2)
    with pytest.raises(RestoreRefused, match="it belongs to guild 2, not to guild 1 .*--allow-other-guild"):
        await tenants.restore(1, other)
    assert await users(tenants, 1) == [1, 2]

    await tenants.restore(1, other, allow_other_guild=True)
    assert await users(tenants, 1) == [7, 8]
    assert read(tenants.paths.live(1), "SELECT guild_id FROM tenant_meta") == [(1,)]
    assert await users(tenants, 2) == [7, 8]  # the source guild is not touched


async def test_a_file_newer_than_the_code_is_refused(tenants: TenantManager, tmp_path: Path,
                                                     make_migrations: MigrationsFactory) -> None:
    await add_users(tenants, 1, range(1, 3))
    newer_folder = TenantPaths(tmp_path / "newer")
    newer = make_migrations("v2", {f"{NEXT}_more.sql": "CREATE TABLE more (id INTEGER PRIMARY KEY);\n"})
    create_tenant_file(newer_folder, 1, newer)
    with pytest.raises(RestoreRefused, match=f"schema version {LATEST + 1} is newer than this code"):
        await tenants.restore(1, newer_folder.live(1))
    assert await users(tenants, 1) == [1, 2]


async def test_a_restore_replaces_the_data_keeps_the_old_file_and_leaves_no_stale_wal(
        tenants: TenantManager) -> None:
    await add_users(tenants, 1, range(1, 4))
    backup = await tenants.backup(1)
    await add_users(tenants, 1, range(10, 13))
    live = tenants.paths.live(1)
    wal, shm = sidecars(live)
    stale_wal = wal.read_bytes()  # frames of the old database, as a crash would leave them
    assert stale_wal
    await tenants.close(1)
    wal.write_bytes(stale_wal)

    await tenants.restore(1, backup)
    assert not wal.exists() and not shm.exists()
    assert read(live, "PRAGMA integrity_check") == [("ok",)]
    assert await users(tenants, 1) == [1, 2, 3]
    [previous] = tenants.paths.backups_dir.glob("1/*-before-restore.sqlite3")
    assert [row[0] for row in read(previous, "SELECT user_id FROM xp ORDER BY user_id")] == [
        1, 2, 3, 10, 11, 12]
    assert hidden_leftovers(tenants.paths) == []


async def test_the_kept_copy_holds_the_rows_a_crash_left_in_the_live_files_wal(tenants: TenantManager,
                                                                              tmp_path: Path) -> None:
    # The bot died; the operator restores before starting it again, so the -wal is still there.
    await add_users(tenants, 1, range(1, 4))
    backup = await tenants.backup(1)
    await tenants.close(1)                      # rows 1-3 folded into the main file
    await add_users(tenants, 1, range(10, 13))  # rows 10-12 committed, only in the -wal so far
    live = tenants.paths.live(1)
    wal, shm = sidecars(live)
    image = tmp_path / "crash"
    image.mkdir()
    shutil.copy2(live, image / "main")          # what the disk holds if the bot dies now
    shutil.copy2(wal, image / "wal")
    await tenants.close(1)
    shutil.copy2(image / "main", live)
    shutil.copy2(image / "wal", wal)
    shm.unlink(missing_ok=True)

    previous = await tenants.restore(1, backup)
    assert previous is not None
    assert [row[0] for row in read(previous, "SELECT user_id FROM xp ORDER BY user_id")] == [
        1, 2, 3, 10, 11, 12], "the replaced data includes the rows committed before the crash"
    assert await users(tenants, 1) == [1, 2, 3]


def noting_file_changes(tenants: TenantManager) -> list[tuple[int, list[int] | None]]:
    """A file-changed hook that notes the guild and the users its live file holds (None: no file)."""
    seen: list[tuple[int, list[int] | None]] = []

    def note(guild_id: int) -> None:  # what the live name holds when the hook runs
        live = tenants.paths.live(guild_id)
        held = [row[0] for row in read(live, "SELECT user_id FROM xp ORDER BY user_id")] if live.exists() else None
        seen.append((guild_id, held))

    tenants.add_file_changed(note)
    return seen


async def test_file_changed_hooks_run_once_the_other_file_is_in_place(tenants: TenantManager) -> None:
    await add_users(tenants, 1, range(1, 4))
    backup = await tenants.backup(1)
    await add_users(tenants, 1, range(10, 13))
    seen = noting_file_changes(tenants)
    await tenants.backup(1)
    assert seen == [], "a backup changes nothing"
    await tenants.restore(1, backup)
    await tenants.archive(1)
    assert seen == [(1, [1, 2, 3]), (1, None)]


def _input_output_error(*_args: object) -> None:
    raise OSError(errno.EIO, "Input/output error")


@pytest.mark.parametrize("case", ["restore: sync", "archive: private", "archive: sync", "bring back: sync"])
async def test_a_step_failing_after_the_swap_says_the_swap_was_done_and_the_hooks_still_run(
        retaining: TenantManager, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    """The chmod or the folder fsync after the rename failing (EIO; some network filesystems refuse an
    fsync of a folder) read "cannot put the restored file in place" or "cannot move", though the file
    was swapped, and the file-changed hooks were skipped: caches kept what the replaced file held."""
    tenants, (operation, step) = retaining, case.split(": ")
    await add_users(tenants, 1, range(1, 4))
    backup = await tenants.backup(1)
    await add_users(tenants, 1, range(10, 13))
    if operation == "bring back":
        await tenants.archive(1)  # the bot was removed; its first use after being added back brings it back
    seen = noting_file_changes(tenants)
    live, real_fsync_dir = tenants.paths.live(1), files.fsync_dir

    def fsync_dir(folder: Path) -> None:  # the one that makes the rename in the tenants folder durable
        if folder == tenants.paths.root:
            _input_output_error()
        real_fsync_dir(folder)

    if step == "sync":
        monkeypatch.setattr(files, "fsync_dir", fsync_dir)
    else:
        monkeypatch.setattr(files, "make_database_private", _input_output_error)
    not_synced = "the folder could not be synced to disk, so a power cut could still undo that"
    with pytest.raises(TenantError) as failed:
        if operation == "restore":
            await tenants.restore(1, backup)
        else:
            await (tenants.archive(1) if operation == "archive" else tenants.ensure(1))
    if operation == "archive":
        [archived] = tenants.paths.archives_of(1)
        but = "cannot make it private" if step == "private" else not_synced
        assert str(failed.value) == f"guild 1: archived {live} to {archived}, but {but} (Input/output error)"
        assert seen == [(1, None)] and read(archived, "SELECT count(*) FROM xp") == [(6,)]
        return
    held = [1, 2, 3] if operation == "restore" else [1, 2, 3, 10, 11, 12]
    assert str(failed.value) == f"guild 1: restored into {live}, but {not_synced} (Input/output error)"
    assert seen == [(1, held)] and await users(tenants, 1) == held


async def test_before_install_hooks_write_into_the_new_file_or_stop_the_restore(tenants: TenantManager) -> None:
    await add_users(tenants, 1, range(1, 4))
    backup = await tenants.backup(1)
    await add_users(tenants, 1, range(10, 12))
    live = tenants.paths.live(1)

    async def refuse(guild_id: int, staged: aiosqlite.Connection, replaced: Path) -> None:
        await staged.execute("DELETE FROM xp")  # rolled back with the whole restore
        raise RuntimeError("cannot carry something over")

    tenants.add_before_install(refuse)
    await tenants.close(1)  # so the file's bytes are all its data (closing folds the -wal in)
    before = digest(live)
    with pytest.raises(RuntimeError, match="cannot carry"):
        await tenants.restore(1, backup)
    assert digest(live) == before and await users(tenants, 1) == [1, 2, 3, 10, 11]
    assert hidden_leftovers(tenants.paths) == []
    assert not list(tenants.paths.backups_dir.glob("1/*-before-restore.sqlite3")), "nothing was swapped"

    async def carry(guild_id: int, staged: aiosqlite.Connection, replaced: Path) -> None:
        assert replaced == live and read(replaced, "SELECT count(*) FROM xp") == [(5,)]
        await staged.execute("DELETE FROM xp WHERE user_id = 2")

    tenants._staged_hooks = [carry]
    await tenants.restore(1, backup)
    assert await users(tenants, 1) == [1, 3], "the hook's change is in the file that went live"


async def test_restoring_from_a_wal_mode_file_leaves_nothing_beside_it(tenants: TenantManager) -> None:
    await add_users(tenants, 1, range(1, 3))
    backup = await tenants.backup(1)
    await tenants.restore(1, backup)
    [kept] = tenants.paths.backups_dir.glob("1/*-before-restore.sqlite3")  # the live file, in WAL mode
    assert read(kept, "PRAGMA journal_mode") == [("wal",)]
    await tenants.restore(1, kept)
    assert [path for path in sidecars(kept) if path.exists()] == []


async def test_a_restore_while_the_tenant_is_open_waits_for_its_user(tenants: TenantManager) -> None:
    await add_users(tenants, 1, range(1, 3))
    backup = await tenants.backup(1)
    inside = asyncio.Event()
    release = asyncio.Event()

    async def user() -> None:
        async with tenants.transaction(1) as conn:
            inside.set()
            await release.wait()
            await conn.execute("INSERT INTO xp (user_id, xp) VALUES (50, 1)")

    using = asyncio.create_task(user())
    await inside.wait()
    restoring = asyncio.create_task(tenants.restore(1, backup))
    done, _ = await asyncio.wait({restoring}, timeout=0.2)
    assert not done
    release.set()
    await asyncio.gather(using, restoring)
    assert await users(tenants, 1) == [1, 2]  # the write finished first, then the file was replaced


async def test_a_restore_refuses_once_the_bot_was_removed_while_it_checked_the_file(
        tenants: TenantManager, monkeypatch: pytest.MonkeyPatch) -> None:
    """/backup restore still checking the snapshot when the bot is removed from the server: the
    removal archives the file, and the restore must not bring a live file back."""
    await add_users(tenants, 1, range(1, 3))
    backup = await tenants.backup(1)
    checking, archived_now = threading.Event(), threading.Event()
    check_file = files.prepare_restore

    def check_until_archived(*args: Any, **kwargs: Any) -> Path:  # a large file's checks take a while
        checking.set()
        archived_now.wait(timeout=10)
        return check_file(*args, **kwargs)

    monkeypatch.setattr(files, "prepare_restore", check_until_archived)
    restoring = asyncio.create_task(tenants.restore(1, backup))
    await asyncio.to_thread(checking.wait, 10)
    archived = await tenants.archive(1)  # on_guild_remove
    archived_now.set()
    with pytest.raises(TenantError, match="^guild 1: nothing restored: the bot was removed from the server"):
        await restoring
    assert not tenants.exists(1) and tenants.paths.archives_of(1) == [archived]
    assert hidden_leftovers(tenants.paths) == [], "the checked copy is removed"
    assert not list(tenants.paths.backups_dir.glob("1/*-before-restore.sqlite3")), "nothing was swapped"


def copy_outlasting_the_wait(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """A restore's copy that goes on after its caller stopped waiting (a large file): the first event
    is set once the copy is in the tenants folder; the copy ends when the second is set."""
    copied, finish = threading.Event(), threading.Event()
    prepare = files.prepare_restore

    def slow_prepare(*args: Any, **kwargs: Any) -> Path:
        staging = prepare(*args, **kwargs)
        copied.set()
        finish.wait(timeout=10)
        return staging

    monkeypatch.setattr(files, "prepare_restore", slow_prepare)
    return copied, finish


async def until_no_staging_files(paths: TenantPaths) -> list[Path]:
    """The staging files still there once the copying thread had time to end (5 s at most)."""
    for _ in range(100):
        if not paths.staging_leftovers():
            break
        await asyncio.sleep(0.05)
    return paths.staging_leftovers()


@pytest.mark.parametrize("how", ["restore", "archive brought back"])
async def test_a_cancelled_restore_leaves_no_copy_behind(retaining: TenantManager,
                                                         monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """Ctrl-C on `malabot tenants restore`, or a shutdown while an archive comes back: the thread copying
    the file cannot be stopped, but its copy (every member's rows) must not stay in the tenants folder."""
    tenants = retaining
    await add_users(tenants, 1, range(1, 3))
    backup = await tenants.backup(1)
    if how == "archive brought back":
        await tenants.archive(1)
    copied, finish = copy_outlasting_the_wait(monkeypatch)
    # The bot added back to the guild: on_guild_join's ensure() brings the archive back.
    work = tenants.restore(1, backup) if how == "restore" else tenants.ensure(1)
    restoring = asyncio.create_task(work)
    await asyncio.to_thread(copied.wait, 10)
    assert tenants.paths.staging_leftovers(), "the copy is under way"
    restoring.cancel()
    with pytest.raises(asyncio.CancelledError):
        await restoring
    finish.set()
    assert await until_no_staging_files(tenants.paths) == []
    if how == "restore":
        assert await users(tenants, 1) == [1, 2]
    else:
        assert not tenants.exists(1) and len(tenants.paths.archives_of(1)) == 1, "the archive stays put"


async def test_a_restored_old_file_is_migrated_forward(tmp_path: Path,
                                                       make_migrations: MigrationsFactory) -> None:
    old = TenantManager(tmp_path / "old", migrations=make_migrations("v1"))
    await add_users(old, 1, range(1, 3))
    backup = await old.backup(1)
    await old.close_all()
    new = TenantManager(tmp_path / "new", migrations=make_migrations("v2", {
        f"{NEXT}_more.sql": "CREATE TABLE more (id INTEGER PRIMARY KEY);\n"}))
    try:
        await new.restore(1, backup)
        assert read(new.paths.live(1), "PRAGMA user_version") == [(LATEST + 1,)]
        assert await users(new, 1) == [1, 2]
    finally:
        await new.close_all()


async def test_hooks_run_before_each_file_operation(tenants: TenantManager) -> None:
    calls: list[int] = []

    async def flush(guild_id: int) -> None:
        calls.append(guild_id)

    tenants.add_before_file_operation(flush)
    await tenants.ensure(3)
    backup = await tenants.backup(3)
    await tenants.restore(3, backup)
    await tenants.archive(3)
    assert calls == [3, 3, 3]


# -- archive -------------------------------------------------------------------------------------


async def test_archive_moves_the_closed_file_away(tenants: TenantManager) -> None:
    await add_users(tenants, 1, range(1, 4))
    archived = await tenants.archive(1)
    live = tenants.paths.live(1)
    assert archived.parent == tenants.paths.archive_dir
    assert re.fullmatch(rf"1-{STAMPED}\.sqlite3", archived.name)
    assert not live.exists() and not any(side.exists() for side in sidecars(live))
    assert not any(side.exists() for side in sidecars(archived))
    assert not tenants.is_open(1) and tenants.guild_ids() == []
    assert inspect_file(archived, 1, tenants.migrations) is None
    assert read(archived, "SELECT count(*) FROM xp") == [(3,)]
    assert await tenants.ensure(1) is True  # a later use starts a fresh file
    assert await users(tenants, 1) == []


async def test_archiving_twice_in_one_second_keeps_both(tenants: TenantManager) -> None:
    await add_users(tenants, 1, range(1, 2))
    first = await tenants.archive(1)
    await tenants.ensure(1)  # the bot is back in the guild: a new file
    await add_users(tenants, 1, range(2, 3))
    second = await tenants.archive(1)
    assert tenants.paths.archives_of(1) == [first, second]


async def test_archiving_a_guild_without_a_file_records_the_removal(tenants: TenantManager) -> None:
    assert await tenants.archive(4) is None
    with pytest.raises(TenantArchived):
        await users_created_if_missing(tenants, 4)
    assert not tenants.exists(4) and not tenants.paths.archives_of(4)


async def test_a_recent_archive_comes_back(retaining: TenantManager) -> None:
    await add_users(retaining, 1, range(1, 4))
    archived = await retaining.archive(1)
    assert await retaining.ensure(1) is False, "the bot added back: its file is the archive, not a new one"
    assert not archived.exists()
    assert await users(retaining, 1) == [1, 2, 3]


async def test_an_archive_is_not_restored_over_live_data_or_when_too_old(tmp_path: Path) -> None:
    earlier = TenantManager(tmp_path / "tenants")  # a run without archive retention: re-adds start afresh
    await add_users(earlier, 1, range(1, 4))
    archived = await earlier.archive(1)
    await earlier.ensure(1)
    await add_users(earlier, 1, range(8, 9))
    await earlier.close_all()
    tenants = TenantManager(tmp_path / "tenants", archive_retention=timedelta(days=30))
    try:
        assert await tenants.ensure(1) is False
        assert archived.exists() and await users(tenants, 1) == [8]

        await tenants.archive(1)
        for path in tenants.paths.archives_of(1):
            path.rename(path.with_name(re.sub(STAMPED, "20200101T000000Z", path.name)))
        assert await tenants.ensure(1) is True, "archives older than the retention stay where they are"
        assert await users(tenants, 1) == [] and tenants.paths.archives_of(1)
        assert await tenants.ensure(2) is True
    finally:
        await tenants.close_all()


async def archived_by_an_earlier_run(folder: Path, guild_id: int, user_ids: range) -> None:
    """The bot was removed from the guild (its file archived) and has restarted since."""
    earlier = TenantManager(folder)
    await add_users(earlier, guild_id, user_ids)
    await earlier.archive(guild_id)
    await earlier.close_all()


async def test_a_reader_while_the_archive_is_brought_back_waits_for_it(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    await archived_by_an_earlier_run(tmp_path / "tenants", 1, range(1, 4))
    tenants = TenantManager(tmp_path / "tenants", archive_retention=timedelta(days=30))
    copied, finish = copy_outlasting_the_wait(monkeypatch)
    try:
        # The guild added the bot back: a chat message reads its settings while the join handler's
        # ensure() is copying the archive back. The message must not create an empty file the archive
        # cannot replace, nor read the guild before its data is there.
        restoring = asyncio.create_task(tenants.ensure(1))
        await asyncio.to_thread(copied.wait, 10)
        reading = asyncio.create_task(users_created_if_missing(tenants, 1))
        await asyncio.sleep(0.05)
        assert not reading.done(), "the reader waits for the archive"
        finish.set()
        assert await reading == [1, 2, 3]
        assert await restoring is False
        assert not tenants.paths.archives_of(1)
    finally:
        finish.set()
        await tenants.close_all()


async def test_a_recent_archive_comes_back_on_the_first_use_whatever_it_is(tmp_path: Path) -> None:
    await archived_by_an_earlier_run(tmp_path / "tenants", 1, range(1, 4))
    tenants = TenantManager(tmp_path / "tenants", archive_retention=timedelta(days=30))
    try:
        # A message of a guild that re-added the bot while it was offline, before on_ready opened it.
        assert await users_created_if_missing(tenants, 1) == [1, 2, 3]
        assert not tenants.paths.archives_of(1)
        assert await tenants.ensure(1) is False
        assert await users(tenants, 1) == [1, 2, 3]
    finally:
        await tenants.close_all()


async def users_created_if_missing(tenants: TenantManager, guild_id: int) -> list[int]:
    """The xp rows, read the way the services read (a missing file is created)."""
    async with tenants.reading(guild_id) as conn:
        return [row[0] for row in await conn.execute_fetchall("SELECT user_id FROM xp ORDER BY user_id")]


async def test_a_damaged_archive_is_refused_and_kept(retaining: TenantManager,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    await add_users(retaining, 1, range(1, 4))
    archived = await retaining.archive(1)
    archived.write_bytes(b"not a database" * 100)
    assert await retaining.ensure(1) is True, "the guild gets a working file"
    assert "its archive cannot be brought back" in caplog.text
    assert "not a usable SQLite database" in caplog.text
    assert archived.exists() and await users(retaining, 1) == []


async def test_a_re_added_guild_gets_its_newest_archive_back(retaining: TenantManager) -> None:
    # An older archive that could not be brought back (damaged) stays where it was ...
    damaged = retaining.paths.archive(1, datetime.now(UTC) - timedelta(days=3))
    damaged.parent.mkdir(parents=True, exist_ok=True)
    damaged.write_bytes(b"not a database")
    await add_users(retaining, 1, range(1, 4))  # ... so the guild started afresh
    await retaining.archive(1)                  # removed again: a newer archive
    assert await retaining.ensure(1) is False, "added back: its newest archive comes back"
    assert await users(retaining, 1) == [1, 2, 3]
    assert retaining.paths.archives_of(1) == [damaged]


# -- the bot removed and added back while the guild's file is busy ------------------------------------
# Each event's work waits for the guild's lock (a command or a flush holds it), and not always in the
# events' order: archive() first runs the file hooks (the XP flush, itself waiting for the lock).

async def archive_waiting_for_the_lock(tenants: TenantManager, guild_id: int,
                                       flush_first: bool) -> asyncio.Task[Path | None]:
    """on_guild_remove while a command of the guild holds its lock: the archive queues at once, or
    only after a before-hook that itself waits for the lock (an XP flush with XP to write)."""
    if flush_first:
        async def flush(hooked: int) -> None:
            async with tenants.transaction(hooked):
                pass
        tenants.add_before_file_operation(flush)
    archiving = asyncio.create_task(tenants.archive(guild_id))
    await asyncio.sleep(0.05)
    return archiving


@pytest.mark.parametrize("flush_first", [False, True], ids=["archive-locks-first", "readd-locks-first"])
async def test_the_bot_removed_then_added_back_while_the_file_is_busy_gets_its_data_back(
        tmp_path: Path, flush_first: bool) -> None:
    """A kick and a re-invite (or both replayed after a RESUME) while a command holds the file: the
    re-add came last, so the guild ends with its data, as on any re-add within the retention."""
    tenants = TenantManager(tmp_path / "tenants", archive_retention=timedelta(days=30))
    file_there_when_changed: list[bool] = []
    tenants.add_file_changed(lambda guild_id: file_there_when_changed.append(tenants.exists(guild_id)))
    try:
        await add_users(tenants, 1, range(1, 4))
        async with file_in_use(tenants, 1):
            archiving = await archive_waiting_for_the_lock(tenants, 1, flush_first)
            readding = asyncio.create_task(tenants.ensure(1))
            await asyncio.sleep(0.05)
        await archiving
        await readding
        assert await users_created_if_missing(tenants, 1) == [1, 2, 3]
        assert not tenants.paths.archives_of(1), "the archive came back"
        # The XP service drops what it buffered for a guild reported without a file (the bot left).
        assert file_there_when_changed and all(file_there_when_changed), "never reported gone"
    finally:
        await tenants.close_all()


@pytest.mark.parametrize("file_at_readd", [True, False], ids=["file-live", "file-archived-before"])
async def test_the_bot_added_back_then_removed_while_the_file_is_busy_ends_archived(
        tmp_path: Path, file_at_readd: bool) -> None:
    """The opposite order: the removal came last, so the guild ends archived, with its data in the
    archive, and nothing recreates its file."""
    tenants = TenantManager(tmp_path / "tenants", archive_retention=timedelta(days=30))
    try:
        await add_users(tenants, 1, range(1, 4))
        if not file_at_readd:
            await tenants.archive(1)  # removed earlier: the re-add brings the archive back first
        async with file_in_use(tenants, 1) if file_at_readd else contextlib.nullcontext():
            readding = asyncio.create_task(tenants.ensure(1))
            archiving = await archive_waiting_for_the_lock(tenants, 1, flush_first=True)
        await readding
        await archiving
        assert not tenants.exists(1)
        [archived] = tenants.paths.archives_of(1)
        assert read(archived, "SELECT user_id FROM xp ORDER BY user_id") == [(1,), (2,), (3,)]
        with pytest.raises(TenantArchived):
            await users_created_if_missing(tenants, 1)
    finally:
        await tenants.close_all()


def test_only_archives_named_as_the_bot_names_them_count_for_retention_and_return(tmp_path: Path) -> None:
    # An operator's own copies beside them are theirs: never deleted, never brought back at a re-add.
    paths = TenantPaths(tmp_path / "tenants")
    paths.archive_dir.mkdir(parents=True)
    names = ("111-20200101T000000Z.sqlite3",                # the bot's, long expired
             "111-20261120T000000Z.sqlite3",                # the bot's, within the retention
             "111-before-upgrade-20200101T000000Z.sqlite3",  # an operator's copy
             "111-keep-forever-20990101T000000Z.sqlite3")    # another, dated in the future
    for name in names:
        (paths.archive_dir / name).write_bytes(b"x")
    now = datetime(2026, 11, 25, tzinfo=UTC)

    assert files.latest_archive(paths, 111, timedelta(days=30), now=now) == paths.archive_dir / names[1]
    removed, _ = files.remove_expired_archives(paths, 111, timedelta(days=30), now=now)
    assert [path.name for path in removed] == [names[0]]
    assert sorted(path.name for path in paths.archive_dir.iterdir()) == sorted(names[1:])
