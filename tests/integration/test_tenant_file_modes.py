"""Member data at rest is readable only by the bot's account: every file MalaBoT writes into the tenants
folder is 0600 and every folder it creates is 0700, whatever the umask; an operator's existing tenants
folder keeps its mode."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from legacy_fixtures import GLOBAL, LegacyDb

from malabot.legacy.split import SplitOptions, split_legacy
from malabot.tenancy.lock import TenantsLock
from malabot.tenancy.manager import TenantManager
from malabot.tenancy.paths import TenantPaths

GUILD = 111111111111111111
OTHER = 222222222222222222


def mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.lstat().st_mode))


@pytest.fixture(params=[0o022, 0o000], ids=["umask-022", "umask-000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


async def test_every_file_of_member_data_is_private_and_every_folder_made_is_too(tmp_path: Path,
                                                                                   umask: int) -> None:
    root = tmp_path / "deep" / "tenants"  # its parent is missing too: made private as well
    tenants = TenantManager(root)
    await tenants.start()
    files: dict[str, Path] = {}
    try:
        async with tenants.transaction(GUILD) as conn:
            await conn.execute("INSERT INTO birthdays (user_id, month, day, year, created_at) "
                               "VALUES (5, 4, 12, 1990, '2026-01-01')")
        async with tenants.transaction(OTHER) as conn:
            await conn.execute("INSERT INTO xp (user_id, xp) VALUES (6, 10)")
        files["live file"] = root / f"{OTHER}.sqlite3"
        files["live -wal"] = root / f"{OTHER}.sqlite3-wal"
        files["live -shm"] = root / f"{OTHER}.sqlite3-shm"
        files["snapshot"] = await tenants.backup(GUILD)
        files["copy into a new folder"] = await tenants.backup(GUILD, tmp_path / "out" / "copy.sqlite3")
        await tenants.restore(GUILD, files["snapshot"])
        [files["before-restore copy"]] = (root / "backups" / str(GUILD)).glob("*before-restore*")
        archived = await tenants.archive(GUILD)
        assert archived is not None
        files["archive"] = archived
        with TenantsLock(TenantPaths(root).lock_file, "test"):
            files["lock file"] = TenantPaths(root).lock_file
        assert all(path.exists() for path in files.values()), {name: p.exists() for name, p in files.items()}
        assert {name: mode(path) for name, path in files.items()} == {name: "0o600" for name in files}
    finally:
        await tenants.close_all()
    folders = [tmp_path / "deep", root, root / "archive", root / "backups", root / "backups" / str(GUILD),
               tmp_path / "out"]
    assert {str(folder): mode(folder) for folder in folders} == {str(folder): "0o700" for folder in folders}


async def test_a_restore_is_private_whatever_the_sources_mode(tmp_path: Path) -> None:
    tenants = TenantManager(tmp_path / "tenants")
    await tenants.start()
    try:
        await tenants.ensure(GUILD)
        snapshot = await tenants.backup(GUILD, tmp_path / "copy.sqlite3")
        os.chmod(snapshot, 0o644)  # a copy an operator made readable
        await tenants.restore(GUILD, snapshot)
        assert mode(tenants.paths.live(GUILD)) == "0o600"
    finally:
        await tenants.close_all()


async def test_an_archive_of_a_file_an_older_version_made_readable_is_private(tmp_path: Path) -> None:
    tenants = TenantManager(tmp_path / "tenants")
    await tenants.start()
    try:
        await tenants.ensure(GUILD)
        await tenants.close(GUILD)
        os.chmod(tenants.paths.live(GUILD), 0o644)
        archived = await tenants.archive(GUILD)
        assert archived is not None and mode(archived) == "0o600"
    finally:
        await tenants.close_all()


async def test_the_before_restore_copy_of_a_file_an_older_version_made_readable_is_private(
        tmp_path: Path) -> None:
    tenants = TenantManager(tmp_path / "tenants")
    await tenants.start()
    try:
        await tenants.ensure(GUILD)
        snapshot = await tenants.backup(GUILD, tmp_path / "copy.sqlite3")
        await tenants.close(GUILD)
        os.chmod(tenants.paths.live(GUILD), 0o644)
        previous = await tenants.restore(GUILD, snapshot)
        assert previous is not None and mode(previous) == "0o600"
    finally:
        await tenants.close_all()


async def test_an_existing_tenants_folder_keeps_the_operators_mode(tmp_path: Path) -> None:
    root = tmp_path / "tenants"
    root.mkdir()
    os.chmod(root, 0o750)  # shared with a backup group on purpose
    tenants = TenantManager(root)
    await tenants.start()
    try:
        await tenants.ensure(GUILD)
    finally:
        await tenants.close_all()
    assert mode(root) == "0o750"
    assert mode(tenants.paths.live(GUILD)) == "0o600"


def test_the_cli_backup_and_the_legacy_split_write_private_files(tmp_path: Path, umask: int) -> None:
    legacy = LegacyDb(tmp_path / "bot.db", GLOBAL)
    legacy.user(11, xp=150)
    legacy.user(14, xp=99)  # no evidence of any server: waits in the holding file
    legacy.mod_log(1001, 11, 19)
    legacy.close()
    root = tmp_path / "tenants"
    split_legacy(SplitOptions(legacy_db=tmp_path / "bot.db", tenants_dir=root))
    written = [path for path in root.rglob("*") if path.is_file()]
    assert len(written) >= 2  # 1001.sqlite3 and the holding file
    assert {str(path): mode(path) for path in written} == {str(path): "0o600" for path in written}
    assert mode(root) == "0o700"
    result = subprocess.run([sys.executable, "-m", "malabot", "tenants", "--tenants-dir", str(root), "backup",
                             "1001", "--out", str(tmp_path / "cron" / "nightly")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    [copy] = (tmp_path / "cron" / "nightly").iterdir()
    assert (mode(copy), mode(tmp_path / "cron"), mode(copy.parent)) == ("0o600", "0o700", "0o700")
