"""Reopening a tenant file the manager already checked: skipped only while the file is unchanged.

The identity and migration check is counted through a thin wrapper of the function that runs it;
everything else (files, SQLite, the manager) is real.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from malabot.errors import MigrationError, TenantError
from malabot.tenancy import opening
from malabot.tenancy.manager import TenantManager
from malabot.tenancy.migrations import MigrationSet
from malabot.tenancy.paths import TenantPaths


@pytest.fixture
def checked(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Guild ids whose file had its identity and migration check run, in order."""
    calls: list[int] = []
    real = opening._check_and_migrate

    def counting(conn: sqlite3.Connection, paths: TenantPaths, guild_id: int,
                 migrations: MigrationSet) -> list[object]:
        calls.append(guild_id)
        return list(real(conn, paths, guild_id, migrations))

    monkeypatch.setattr(opening, "_check_and_migrate", counting)
    return calls


def edit(path: Path, *statements: str) -> None:
    """Change a closed tenant file the way another program would (sqlite3, in place)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for statement in statements:
            conn.execute(statement)
    finally:
        conn.close()


async def touch(tenants: TenantManager, guild_id: int) -> None:
    async with tenants.transaction(guild_id) as conn:
        await conn.execute("INSERT INTO xp (user_id, xp) VALUES (1, 1)"
                           " ON CONFLICT (user_id) DO UPDATE SET xp = xp + 1")


async def test_reopening_an_unchanged_file_skips_the_check(tenants: TenantManager, checked: list[int],
                                                          tmp_path: Path) -> None:
    await tenants.ensure(1)  # created now: built and stamped by this process, nothing to check
    for _ in range(3):
        await touch(tenants, 1)
        await tenants.close(1)
    assert checked == []
    async with tenants.reading(1) as conn:
        assert await conn.execute_fetchall("SELECT xp FROM xp") == [(3,)]
        assert await conn.execute_fetchall("PRAGMA foreign_keys") == [(1,)]
    assert checked == []

    other = TenantManager(tmp_path / "tenants")  # another process trusts nothing it did not check
    try:
        await touch(other, 1)
    finally:
        await other.close_all()
    assert checked == [1]


async def test_a_full_pool_reopens_evicted_files_without_checking_them(tmp_path: Path,
                                                                       checked: list[int]) -> None:
    tenants = TenantManager(tmp_path / "tenants", max_open=1)
    try:
        for _ in range(3):
            for guild_id in (1, 2, 3):
                await touch(tenants, guild_id)  # each open evicts (closes) the previous guild
        assert checked == []
        assert tenants.open_count == 1
    finally:
        await tenants.close_all()


@pytest.mark.parametrize("how", ["renamed over", "copied into"])
async def test_another_guilds_file_put_in_place_while_closed_is_refused(
        tenants: TenantManager, checked: list[int], how: str) -> None:
    await touch(tenants, 1)
    await touch(tenants, 2)
    await tenants.close(1)
    await tenants.close(2)
    live_1, live_2 = tenants.paths.live(1), tenants.paths.live(2)
    if how == "renamed over":  # a new inode under the live name
        os.replace(live_2, live_1)
    else:  # the same inode, rewritten with another file's bytes of the same size
        assert live_1.stat().st_size == live_2.stat().st_size
        inode = live_1.stat().st_ino
        shutil.copyfile(live_2, live_1)
        assert live_1.stat().st_ino == inode
    with pytest.raises(TenantError, match="guild 1: refusing to open .*: it belongs to guild 2"):
        await touch(tenants, 1)
    assert checked == [1]
    with pytest.raises(TenantError, match="it belongs to guild 2"):  # refused again: no trust left
        await touch(tenants, 1)


async def test_an_applied_migration_edited_in_the_file_while_closed_is_refused(
        tenants: TenantManager, checked: list[int]) -> None:
    await touch(tenants, 1)
    await tenants.close(1)
    edit(tenants.paths.live(1), "UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
    with pytest.raises(MigrationError, match="guild 1: migration 0001_initial.sql was changed"):
        await tenants.ensure(1)
    assert checked == [1]


async def test_a_user_version_bumped_while_closed_is_refused(tenants: TenantManager,
                                                             checked: list[int]) -> None:
    await touch(tenants, 1)
    await tenants.close(1)
    newer = tenants.migrations.latest + 1
    edit(tenants.paths.live(1), f"PRAGMA user_version = {newer}")
    with pytest.raises(MigrationError, match=f"guild 1 is at schema version {newer}, newer than this code"):
        await tenants.ensure(1)


async def test_a_file_another_connection_holds_open_is_checked(tenants: TenantManager,
                                                               checked: list[int]) -> None:
    await touch(tenants, 1)
    await tenants.close(1)
    outside = sqlite3.connect(tenants.paths.live(1), isolation_level=None)
    try:
        outside.execute("BEGIN IMMEDIATE")
        outside.execute("UPDATE xp SET xp = 40")
        outside.execute("COMMIT")  # committed to the -wal, which stays while `outside` is open
        await touch(tenants, 1)
        assert checked == [1]
        await tenants.close(1)  # not the last connection: the -wal stays, so no trust is kept
    finally:
        outside.close()
    async with tenants.reading(1) as conn:
        assert await conn.execute_fetchall("SELECT xp FROM xp") == [(41,)]
    assert checked == [1, 1]


async def test_backup_restore_and_archive_drop_the_trust(retaining: TenantManager, checked: list[int],
                                                        tmp_path: Path) -> None:
    tenants = retaining  # brings an archive back, as the bot does
    await touch(tenants, 1)
    await tenants.close(1)
    copy = await tenants.backup(1, tmp_path / "copy.sqlite3")
    await touch(tenants, 1)
    assert checked == [1]

    await tenants.restore(1, copy)
    await touch(tenants, 1)
    assert checked == [1, 1]

    await tenants.archive(1)
    assert await tenants.ensure(1) is False  # the bot added back: the archive returns, and is checked
    assert checked == [1, 1, 1]
    await touch(tenants, 1)
    assert checked == [1, 1, 1]
    async with tenants.reading(1) as conn:
        assert await conn.execute_fetchall("SELECT xp FROM xp") == [(3,)]


def test_the_fingerprint_needs_the_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "1.sqlite3"
    assert opening.fingerprint(path, 1) is None  # missing
    path.write_bytes(b"")
    assert opening.fingerprint(path, 1) is not None
    assert opening.fingerprint(path, 1) != opening.fingerprint(path, 2)  # another code version
    Path(f"{path}-wal").write_bytes(b"")
    assert opening.fingerprint(path, 1) is None  # a -wal beside it: its content is not all in the file
