"""Backups on real tenant files: download copies, nightly snapshots with retention, restore by id."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import stat
import tempfile
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from malabot.clock import MovableClock
from malabot.errors import UserInputError
from malabot.features.backups.service import BackupService
from malabot.features.settings.service import SettingsService
from malabot.member_data import MemberData
from malabot.tenancy import backup as files
from malabot.tenancy.manager import TenantManager
from malabot.tenancy.migrations import MigrationSet
from malabot.tenancy.paths import TenantPaths, utc_stamp

GUILD, OTHER = 111_111_111_111_111_111, 222_222_222_222_222_222
ADMIN = 9


@dataclass
class Place:
    tenants: TenantManager
    settings: SettingsService
    backups: BackupService
    clock: MovableClock

    def folder(self, guild: int = GUILD) -> Path:
        return self.tenants.paths.backups_dir / str(guild)

    def files(self, guild: int = GUILD) -> list[str]:
        return sorted(p.name for p in self.folder(guild).iterdir()) if self.folder(guild).is_dir() else []

    async def write(self, key: str, value: str, guild: int = GUILD) -> None:
        async with self.tenants.transaction(guild) as conn:
            await conn.execute("INSERT OR REPLACE INTO legacy_settings (key, value) VALUES (?, ?)", (key, value))

    def values(self, guild: int = GUILD) -> dict[str, str]:
        conn = sqlite3.connect(self.tenants.paths.live(guild))
        try:
            return dict(conn.execute("SELECT key, value FROM legacy_settings").fetchall())
        finally:
            conn.close()


@pytest.fixture
async def place(tenants: TenantManager) -> AsyncIterator[Place]:
    settings = SettingsService(tenants)
    clock = MovableClock(datetime(2026, 11, 25, 3, 30, tzinfo=UTC))
    await tenants.ensure(GUILD)
    await tenants.ensure(OTHER)
    yield Place(tenants, settings, BackupService(tenants, settings, MemberData(tenants, []), clock=clock), clock)


async def test_download_copy_is_the_whole_file_and_leaves_no_temporary_files(
        place: Place, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    await place.write("motto", "hello")

    copy = await place.backups.download_copy(GUILD, max_bytes=10 * 1024 * 1024)
    assert copy.filename == f"malabot-{GUILD}-20261125T033000Z.sqlite3"
    saved = tmp_path / "saved.sqlite3"
    saved.write_bytes(copy.data)
    conn = sqlite3.connect(saved)
    try:
        assert conn.execute("SELECT value FROM legacy_settings WHERE key = 'motto'").fetchone() == ("hello",)
        assert conn.execute("SELECT guild_id FROM tenant_meta").fetchone() == (GUILD,)
    finally:
        conn.close()
    assert list(scratch.iterdir()) == []
    assert not place.tenants.paths.downloads_dir.exists(), "nor an empty folder"
    assert place.files() == [], "a download is not a snapshot"


async def test_download_copy_is_made_beside_the_tenants_not_in_the_system_temp_folder(
        place: Place, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash mid-copy must not leave a full copy of the members' data where nothing removes it: the
    bot clears the downloads folder at start (tests/e2e/test_run_command.py)."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    written_to: list[Path] = []
    modes: list[int] = []
    real_backup = files.backup_tenant

    def backup(paths: TenantPaths, guild_id: int, migrations: MigrationSet, destination: Path,
               **options: int) -> Path:
        written_to.append(destination)
        modes.extend(stat.S_IMODE(folder.stat().st_mode) for folder in (destination.parent, paths.downloads_dir))
        assert list(scratch.iterdir()) == []
        return real_backup(paths, guild_id, migrations, destination, **options)

    monkeypatch.setattr(files, "backup_tenant", backup)
    downloads = place.tenants.paths.downloads_dir
    downloads.mkdir(mode=0o755)  # left looser by an operator, say
    downloads.chmod(0o755)
    await place.backups.download_copy(GUILD, max_bytes=10 * 1024 * 1024)
    assert [path.parent.parent for path in written_to] == [downloads]
    assert modes == [0o700, 0o700], "only the bot's account may look in while a copy is there"


async def test_download_copy_over_the_limit_is_refused_with_the_sizes(
        place: Place, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    await place.write("big", "x" * 300_000)
    with pytest.raises(UserInputError, match=r"The backup is \d+\.\d KiB, more than the 100\.0 KiB"):
        await place.backups.download_copy(GUILD, max_bytes=100 * 1024)
    assert list(scratch.iterdir()) == []
    assert not place.tenants.paths.downloads_dir.exists()


class Interleaving:
    """Two downloads in their worker threads, in a set order: the first to reach a step of
    download_folder goes on and makes its copy, then waits for the second to reach that step; the
    second, having found .downloads there, is held at it until the first has finished (its folder and
    the emptied .downloads removed: "the last one out")."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._first: int | None = None  # the thread of the download that reached the step first
        self.second_there, self.first_done = threading.Event(), threading.Event()

    def _is_first(self) -> bool:
        return threading.get_ident() == self._first

    def at_step(self) -> None:
        with self._lock:
            if self._first is None:
                self._first = threading.get_ident()
                return
            hold = not self._is_first() and not self.second_there.is_set()
            if hold:
                self.second_there.set()
        if hold:
            assert self.first_done.wait(10), "the first download never finished"

    def copied(self) -> None:
        if self._is_first():
            assert self.second_there.wait(10), "the second download never reached the step"

    def finished(self) -> None:
        if self._is_first():
            self.first_done.set()


@pytest.mark.parametrize("step", ["lstat", "mkdtemp"])
async def test_downloads_at_once_each_get_their_copy_and_leave_nothing(
        place: Place, monkeypatch: pytest.MonkeyPatch, step: str) -> None:
    """The last to finish removes the downloads folder; one starting meanwhile is not left without it:
    the second download is held at `step`, having found the folder there, while the first finishes."""
    await place.write("motto", "hello")
    order = Interleaving()
    downloads = place.tenants.paths.downloads_dir
    real_mkdtemp, real_backup, real_with_copy = tempfile.mkdtemp, files.backup_tenant, files.with_download_copy
    real_lstat = Path.lstat

    def mkdtemp(*args: Any, **kwargs: Any) -> str:
        if step == "mkdtemp":
            order.at_step()
        return real_mkdtemp(*args, **kwargs)

    def lstat(path: Path) -> os.stat_result:
        if step == "lstat" and path == downloads:
            order.at_step()
        return real_lstat(path)

    def backup(*args: Any, **kwargs: Any) -> Path:
        written = real_backup(*args, **kwargs)
        order.copied()
        return written

    def with_copy(*args: Any, **kwargs: Any) -> Any:
        try:
            return real_with_copy(*args, **kwargs)
        finally:
            order.finished()

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    monkeypatch.setattr(Path, "lstat", lstat)
    monkeypatch.setattr(files, "backup_tenant", backup)
    monkeypatch.setattr(files, "with_download_copy", with_copy)
    copies = await asyncio.gather(*(place.backups.download_copy(guild, max_bytes=10 * 1024 * 1024)
                                    for guild in (GUILD, OTHER)))
    assert order.second_there.is_set() and order.first_done.is_set(), "the downloads were not interleaved"
    assert [copy.filename.split("-")[1] for copy in copies] == [str(GUILD), str(OTHER)]
    assert all(copy.data.startswith(b"SQLite format 3") for copy in copies)
    assert not downloads.exists()


async def test_snapshots_are_named_by_the_clock_and_kept_by_backup_keep(place: Place) -> None:
    await place.settings.update(GUILD, ADMIN, backup_keep=2)
    taken = []
    for _ in range(3):
        taken.append(await place.backups.take_snapshot(GUILD))
        place.clock.now += timedelta(days=1)
    assert [s.id for s in taken] == ["20261125T033000Z", "20261126T033000Z", "20261127T033000Z"]
    assert taken[0].kind == "snapshot" and taken[0].size > 0
    assert place.files() == [f"{GUILD}-20261126T033000Z.sqlite3", f"{GUILD}-20261127T033000Z.sqlite3"]
    assert [s.id for s in await place.backups.snapshots(GUILD)] == ["20261127T033000Z", "20261126T033000Z"]


async def test_two_snapshots_in_the_same_second_get_different_names(place: Place) -> None:
    first = await place.backups.take_snapshot(GUILD)
    second = await place.backups.take_snapshot(GUILD)
    assert (first.id, second.id) == ("20261125T033000Z", "20261125T033001Z")


async def test_a_snapshot_beside_a_backup_of_the_same_second_takes_the_next_name(place: Place) -> None:
    # `malabot tenants backup` writing the name this snapshot would take, at this very moment.
    place.folder().mkdir(parents=True)
    writing = place.folder() / f".{GUILD}-20261125T033000Z.sqlite3.tmp"
    writing.write_bytes(b"half of the CLI's copy")
    taken = await place.backups.take_snapshot(GUILD)
    assert taken.id == "20261125T033001Z"
    assert writing.read_bytes() == b"half of the CLI's copy", "the other backup's file is untouched"


async def test_a_backup_claiming_the_snapshots_name_first_moves_the_snapshot_a_second_on(
        place: Place, monkeypatch: pytest.MonkeyPatch) -> None:
    """The race the test above cannot show: the snapshot picked its name before `malabot tenants
    backup` claimed the same one (the snapshot flushes XP between the two)."""
    real_claim = files._claim_staging
    other = place.folder() / f".{GUILD}-20261125T033000Z.sqlite3.tmp"

    def claimed_first(staging: Path, target: Path, guild_id: int) -> int:
        if staging == other and not other.exists():
            other.write_bytes(b"half of the CLI's copy")  # the other backup got there just now
        return real_claim(staging, target, guild_id)

    monkeypatch.setattr(files, "_claim_staging", claimed_first)
    taken = await place.backups.take_snapshot(GUILD)
    assert taken.id == "20261125T033001Z"
    assert other.read_bytes() == b"half of the CLI's copy", "the other backup's file is untouched"


async def test_listing_ignores_files_that_are_not_snapshots(place: Place) -> None:
    await place.backups.take_snapshot(GUILD)
    for stray in ("notes.txt", f"{OTHER}-20261125T033000Z.sqlite3", f".{GUILD}-20261125T040000Z.sqlite3.tmp"):
        (place.folder() / stray).write_text("x")
    assert [s.id for s in await place.backups.snapshots(GUILD)] == ["20261125T033000Z"]
    assert await place.backups.snapshots(OTHER) == []


async def test_nightly_pass_snapshots_every_server_and_survives_a_broken_one(place: Place) -> None:
    broken = 333_333_333_333_333_333
    place.tenants.paths.live(broken).write_bytes(b"not a database at all")
    assert await place.backups.snapshot_all() == 2
    assert len(place.files(GUILD)) == 1 and len(place.files(OTHER)) == 1
    assert place.files(broken) == []


async def test_restore_by_id_brings_the_data_back_and_keeps_the_replaced_data(place: Place) -> None:
    await place.write("motto", "then")
    snapshot = await place.backups.take_snapshot(GUILD)
    await place.write("motto", "now")

    restored = await place.backups.restore(GUILD, f"  {snapshot.id} ")
    assert restored.snapshot.id == snapshot.id
    assert place.values()["motto"] == "then"
    kinds = [s.kind for s in await place.backups.snapshots(GUILD)]
    assert sorted(kinds) == ["before restore", "snapshot"]
    [before] = [s for s in await place.backups.snapshots(GUILD) if s.kind == "before restore"]
    await place.backups.restore(GUILD, before.id)
    assert place.values()["motto"] == "now"


async def test_restore_keeps_only_backup_keep_copies_of_replaced_data(place: Place) -> None:
    await place.settings.update(GUILD, ADMIN, backup_keep=1)
    snapshot = await place.backups.take_snapshot(GUILD)
    for _ in range(3):
        await place.backups.restore(GUILD, snapshot.id)
    kinds = [s.kind for s in await place.backups.snapshots(GUILD)]
    assert kinds.count("before restore") == 1 and kinds.count("snapshot") == 1


@pytest.mark.parametrize("typed", ["20261124T033000Z", "../x", ""])
async def test_restore_of_an_unknown_id_changes_nothing(place: Place, typed: str) -> None:
    await place.write("motto", "kept")
    await place.backups.take_snapshot(GUILD)
    with pytest.raises(UserInputError, match="There is no snapshot"):
        await place.backups.restore(GUILD, typed)
    assert place.values()["motto"] == "kept"
    assert len(place.files()) == 1


# -- what is past the archive retention ---------------------------------------------------------------

def stamped(days_ago: int) -> str:
    """The UTC moment `days_ago` in a file name: archive ages are read in real time."""
    return utc_stamp(datetime.now(UTC) - timedelta(days=days_ago))


@pytest.fixture
async def kept_30_days(tmp_path: Path) -> AsyncIterator[Place]:
    tenants = TenantManager(tmp_path / "kept", archive_retention=timedelta(days=30))
    await tenants.start()
    settings = SettingsService(tenants)
    clock = MovableClock(datetime(2026, 11, 25, 3, 30, tzinfo=UTC))
    await tenants.ensure(GUILD)
    yield Place(tenants, settings, BackupService(tenants, settings, MemberData(tenants, []), clock=clock), clock)
    await tenants.close_all()


async def removed_long_ago(place: Place, guild_id: int, days_ago: int) -> None:
    """A guild that removed the bot `days_ago`: its archive, a snapshot and a copy kept before a restore."""
    await place.tenants.ensure(guild_id)
    await place.backups.take_snapshot(guild_id)
    await place.backups.restore(guild_id, (await place.backups.snapshots(guild_id))[0].id)
    archive = await place.tenants.archive(guild_id)
    assert archive is not None
    archive.rename(archive.with_name(f"{guild_id}-{stamped(days_ago)}.sqlite3"))


async def test_only_the_bots_own_files_go_and_a_folder_with_others_stays(kept_30_days: Place) -> None:
    place, paths = kept_30_days, kept_30_days.tenants.paths
    await removed_long_ago(place, OTHER, 31)
    (place.folder(OTHER) / "notes.txt").write_text("an operator's")
    foreign = paths.archive_dir / f"{OTHER}-notes.sqlite3"
    foreign.write_text("not an archive the bot made")

    removed = await place.backups.remove_expired()

    assert (len(removed.archives), removed.copies) == (1, 2)
    assert place.files(OTHER) == ["notes.txt"]
    assert paths.archives_of(OTHER) == [foreign]


async def test_a_failure_with_one_server_does_not_stop_the_others(
        kept_30_days: Place, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    place, paths = kept_30_days, kept_30_days.tenants.paths
    broken = 333_333_333_333_333_333
    await removed_long_ago(place, OTHER, 40)
    await removed_long_ago(place, broken, 40)
    remove = files.remove_expired_archives

    def failing_for_broken(paths_: TenantPaths, guild_id: int, *rest: object) -> tuple[list[Path], bool]:
        if guild_id == broken:
            raise PermissionError("read-only folder")
        return remove(paths_, guild_id, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(files, "remove_expired_archives", failing_for_broken)
    caplog.set_level(logging.INFO, logger="malabot.features.backups.service")
    await place.backups.remove_expired()
    assert paths.archives_of(OTHER) == [] and place.files(OTHER) == []
    assert len(paths.archives_of(broken)) == 1 and len(place.files(broken)) == 2
    assert "archive retention (30 days): deleted 1 archive(s) and 2 snapshot(s) of 1 server(s); 1 failed" in (
        caplog.messages)


async def test_nothing_is_deleted_without_an_archive_retention(place: Place) -> None:
    archive = await place.tenants.archive(OTHER)
    assert archive is not None
    archive.rename(old := archive.with_name(f"{OTHER}-20000101T000000Z.sqlite3"))
    await place.backups.snapshot_all()
    assert place.tenants.paths.archives_of(OTHER) == [old]


async def snapshots_keeping(place: Place, first_keep: int, then_keep: int, *, apart: timedelta) -> tuple[str, str]:
    """A snapshot of data whose backup_keep is `first_keep`, then `apart` later one with `then_keep`."""
    await place.settings.update(GUILD, ADMIN, backup_keep=first_keep)
    first = await place.backups.take_snapshot(GUILD)
    place.clock.advance(apart)
    await place.settings.update(GUILD, ADMIN, backup_keep=then_keep)
    return first.id, (await place.backups.take_snapshot(GUILD)).id


async def test_a_restore_prunes_its_copies_of_replaced_data_by_the_keep_the_server_had(place: Place) -> None:
    # Not by the restored data's smaller backup_keep, which would delete the older copies at once.
    old, newer = await snapshots_keeping(place, 1, 5, apart=timedelta(days=1))
    for _ in range(2):
        place.clock.advance(seconds=5)
        await place.backups.restore(GUILD, newer)
    place.clock.advance(seconds=5)
    await place.backups.restore(GUILD, old)
    assert [snapshot.kind for snapshot in await place.backups.snapshots(GUILD)].count("before restore") == 3


async def test_a_restore_brings_back_the_snapshot_named_not_another_of_the_same_day(place: Place) -> None:
    morning, _ = await snapshots_keeping(place, 5, 4, apart=timedelta(hours=1))
    restored = await place.backups.restore(GUILD, morning)
    assert (restored.snapshot.id, restored.keep_now) == (morning, 5)
