"""Backup, validated restore and archive of tenant files, as plain synchronous functions.

The CLI calls them directly; the tenant manager calls them in a worker thread after flushing buffers
and closing the guild's connection. They never copy a live database with `cp`: a backup is written
with `VACUUM INTO` (one consistent, self-contained file while writes go on) and a restore source is
read with SQLite's backup API, so a source in WAL mode comes with its committed `-wal` content.

Restore never touches the live file until the replacement is complete: the source is copied to a
temporary file, checked (integrity, MalaBoT identity, guild, schema version) and migrated forward
there, then swapped in with one atomic rename. The previous live file is kept under backups/.

A backup is written under a hidden staging name beside its target (`.<name>.tmp`) and locked while
it is written; what a crashed backup left there is removed before the next backup into that folder
and, for tenants/backups/, at bot start (see `remove_backup_leftovers`).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import sqlite3
import stat
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from malabot.errors import InvalidGuildId, MigrationError, RestoreRefused, TenantError, os_reason
from malabot.tenancy.failures import failing_as
from malabot.tenancy.migrations import MigrationSet, check_history, migrate
from malabot.tenancy.opening import (
    DEFAULT_BUSY_TIMEOUT_MS,
    check_identity,
    connect,
    connect_to_look,
    fsync_dir,
    fsync_file,
    is_storage_failure,
    publish_new,
    read_identity,
    remove_database_files,
    unique_staging,
)
from malabot.tenancy.paths import TENANT_SUFFIX, UTC_STAMP_FORMAT, TenantPaths, parse_guild_id, sidecars
from malabot.tenancy.private import (
    PRIVATE_FILE_MODE,
    PRIVATE_FOLDER_MODE,
    create_private_file,
    make_database_private,
    make_private_folder,
)

log = logging.getLogger(__name__)

Read = TypeVar("Read")

# A staging file is a crash's leftover only when no backup holds its lock and nothing has written it
# for an hour. The lock says no writer has it; the age covers the instant between creating the file
# and locking it, and copies begun by MalaBoT versions that did not lock. A running VACUUM INTO writes
# the file every few megabytes, so an hour without a write is far beyond any real backup.
LEFTOVER_AGE_SECONDS = 3600


def file_problem(conn: sqlite3.Connection, guild_id: int, migrations: MigrationSet, *,
                 allow_other_guild: bool = False, other_guild_hint: str = "") -> str | None:
    """Why the open file may not become `guild_id`'s data, or None when it may.

    The one check shared by restore, backup verification and `malabot tenants check`;
    `other_guild_hint` ends the answer for a file of another guild (what the caller can do about it).
    """
    try:
        findings = [row[0] for row in conn.execute("PRAGMA integrity_check(5)")]
        identity = read_identity(conn)
    except sqlite3.DatabaseError as error:
        if is_storage_failure(error):  # a full or failing disk: the file may be fine
            return f"cannot read it ({error})"
        return f"it is not a usable SQLite database ({error})"
    if findings != ["ok"]:
        return "it fails the integrity check: " + "; ".join(" ".join(str(f).split()) for f in findings)
    problem = identity.problem(guild_id)
    other_guild = identity.guild_id is not None and identity.guild_id != guild_id
    if problem is not None and not (other_guild and allow_other_guild):
        if other_guild:
            problem += f", not to guild {guild_id}{other_guild_hint}"
        return problem
    if identity.schema_version > migrations.latest:
        return (f"its schema version {identity.schema_version} is newer than this code "
                f"({migrations.latest}); upgrade MalaBoT first")
    try:
        check_history(conn, migrations, "the file")
    except MigrationError as error:
        return str(error)
    return None


def inspect_file(path: Path, guild_id: int, migrations: MigrationSet, *, look_only: bool = False) -> str | None:
    """`file_problem` of a file on disk, opened without creating anything; `look_only` for a file that
    may be in use (a live one): then nothing on disk changes either (see `connect_to_look`)."""
    try:
        conn = connect_to_look(path) if look_only else connect(path)
    except TenantError as error:
        return str(error)
    try:
        return file_problem(conn, guild_id, migrations)
    finally:
        conn.close()


def free_path(name_at: Callable[[datetime], Path], moment: datetime | None = None) -> Path:
    """The first unused name from `moment` on; names carry a UTC second, so a clash moves a second on.

    A name another backup is still writing (its staging file exists) is in use too.
    """
    start = moment or datetime.now(UTC)
    for step in range(3600):
        candidate = name_at(start + timedelta(seconds=step))
        if not candidate.exists() and not _backup_staging(candidate).exists():
            return candidate
    raise TenantError(f"no free file name near {name_at(start)}")


# Two backups of a guild started in the same second (the nightly snapshot and an operator's cron
# job) pick the same name; the later one to claim it takes the next free second instead.
_NAME_ATTEMPTS = 5


class BackupNameTaken(TenantError):
    """Another backup claimed the target's name first and is writing it."""


def backup_tenant(paths: TenantPaths, guild_id: int, migrations: MigrationSet,
                  destination: Path | None = None, *, folder: Path | None = None,
                  moment: datetime | None = None,
                  busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> Path:
    """Write a consistent copy of the guild's live file; returns its path.

    `destination` is the file to write (it must not exist). Without one, the copy is named
    <guild>-<UTC stamp>.sqlite3 by `moment` (default now), in `folder` (default
    tenants/backups/<guild>/), at the first free second. The copy is verified before it gets its name.
    """
    if destination is not None:
        return _backup_to(paths, guild_id, migrations, destination, busy_timeout_ms)
    for _ in range(_NAME_ATTEMPTS):
        target = free_path(lambda at: paths.backup(guild_id, at, folder=folder), moment)
        try:
            return _backup_to(paths, guild_id, migrations, target, busy_timeout_ms)
        except BackupNameTaken:
            continue  # free_path now sees the other backup's staging file and moves a second on
    raise TenantError(f"guild {guild_id}: {_NAME_ATTEMPTS} other backups took every name tried; try again")


def _backup_to(paths: TenantPaths, guild_id: int, migrations: MigrationSet, target: Path,
               busy_timeout_ms: int) -> Path:
    live = paths.live(guild_id)
    if not live.exists():
        raise TenantError(f"no data file for guild {guild_id}")
    if target.exists():
        raise TenantError(f"guild {guild_id}: backup target {target} already exists")
    with failing_as(f"guild {guild_id}: cannot create the folder {target.parent} for the backup", target.parent):
        make_private_folder(target.parent)
    if removed := remove_backup_leftovers(target.parent, guild_id):
        log.info("guild %s: removed %d temporary backup file(s) an interrupted backup left in %s",
                 guild_id, removed, target.parent)
    staging = _backup_staging(target)
    claim = _claim_staging(staging, target, guild_id)
    try:
        source = connect(live, busy_timeout_ms=busy_timeout_ms)
        try:
            check_identity(source, guild_id, live)
            # One read transaction: a snapshot of every committed row, while writers go on (WAL).
            source.execute("VACUUM INTO ?", (str(staging),))
        finally:
            source.close()
        problem = inspect_file(staging, guild_id, migrations)
        if problem is not None:
            raise TenantError(f"guild {guild_id}: the backup of {live} failed its check: {problem}")
        fsync_file(staging)
        if not publish_new(staging, target):
            raise TenantError(f"guild {guild_id}: backup target {target} already exists")
        return target
    except sqlite3.Error as error:
        raise TenantError(f"guild {guild_id}: backup of {live} failed: {error}") from error
    except OSError as error:  # the folder written to: a mode, a full disk
        raise TenantError(f"guild {guild_id}: cannot write the backup {target} ({os_reason(error)})") from error
    finally:
        remove_database_files(staging)
        os.close(claim)  # releases the lock, after the staging files are gone


def remove_backup_leftovers(folder: Path, guild_id: int) -> int:
    """Delete what crashed backups of the guild left in `folder`; returns how many backups they were.

    Only `.<guild>-<UTC stamp>.sqlite3.tmp` (the staging name of a backup named by `paths.backup`) and
    its -wal/-shm/-journal are candidates, and only when abandoned (LEFTOVER_AGE_SECONDS): a backup in
    progress, in this process or another, and every other file stay. Best effort: a file that cannot
    be looked at or removed stays for the next time, and never stops a backup or the bot's start.
    """
    staging_name = re.compile(rf"\.{parse_guild_id(guild_id)}-\d{{8}}T\d{{6}}Z{re.escape(TENANT_SUFFIX)}\.tmp")
    try:
        names = os.listdir(folder)
    except OSError:  # no such folder yet, or not readable
        return 0
    groups: dict[str, list[Path]] = {}  # staging name -> its files found
    for name in names:
        main = re.sub(r"-(wal|shm|journal)$", "", name)
        if staging_name.fullmatch(main):
            groups.setdefault(main, []).append(folder / name)
    removed = 0
    for main, found in groups.items():
        staging = folder / main
        if not _abandoned(staging, found):
            continue
        # The staging file itself goes last: until it is gone no new backup can take its name, so
        # every sidecar removed here is the crashed backup's.
        try:
            for path in sorted(found, key=lambda path: path == staging):
                path.unlink(missing_ok=True)
        except OSError:
            continue
        removed += 1
    return removed


def remove_all_backup_leftovers(paths: TenantPaths) -> int:
    """`remove_backup_leftovers` in every guild's folder under tenants/backups/ (at bot start)."""
    try:
        folders = list(paths.backups_dir.iterdir())
    except OSError:
        return 0
    removed = 0
    for folder in folders:
        try:
            guild_id = parse_guild_id(folder.name)
        except InvalidGuildId:  # an operator's own folder
            continue
        removed += remove_backup_leftovers(folder, guild_id)
    return removed


def with_download_copy(paths: TenantPaths, guild_id: int, migrations: MigrationSet, filename: str,
                           read: Callable[[Path], Read], *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> Read:
    """`read(copy)` of a consistent copy of the guild's file named `filename`, made for a download in a
    new private folder under tenants/.downloads/ (not the system's temporary folder, where a crash would
    leave a full copy of a server's member data that nothing removes). The copy, its folder and an
    emptied .downloads are gone when this returns or raises: all in one call, so a caller that stops
    waiting for it (a cancelled command) cannot leave the copy behind."""
    folder = download_folder(paths)
    try:
        return read(backup_tenant(paths, guild_id, migrations, folder / filename, busy_timeout_ms=busy_timeout_ms))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):  # another download's folder is in it: the last one out removes it
            paths.downloads_dir.rmdir()


def download_folder(paths: TenantPaths) -> Path:
    """A new private folder for one download copy, in tenants/.downloads/ (made 0700 if missing, made
    0700 again if found looser: it is the bot's own)."""
    downloads = paths.downloads_dir
    for _ in range(_NAME_ATTEMPTS):
        with contextlib.suppress(FileExistsError):
            downloads.mkdir(mode=PRIVATE_FOLDER_MODE)
        # From here on, the last download before this one may remove the emptied folder at any step.
        try:
            found = downloads.lstat()
            if not stat.S_ISDIR(found.st_mode):
                raise TenantError(f"{downloads} is not a folder; the bot keeps its download copies there")
            if stat.S_IMODE(found.st_mode) != PRIVATE_FOLDER_MODE:
                os.chmod(downloads, PRIVATE_FOLDER_MODE)
            return Path(tempfile.mkdtemp(prefix="copy-", dir=downloads))
        except FileNotFoundError:
            continue
    raise TenantError(f"cannot make a folder for a download copy in {downloads}: it keeps being removed")


def remove_download_leftovers(paths: TenantPaths) -> int:
    """Delete what downloads cut short by a crash left, and the folder; only safe at bot start under
    the tenants lock. Returns how many folders were removed."""
    try:
        leftovers = list(paths.downloads_dir.iterdir())
    except FileNotFoundError:
        return 0
    for leftover in leftovers:
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        paths.downloads_dir.rmdir()
    return len(leftovers)


def prepare_restore(paths: TenantPaths, guild_id: int, source: Path, migrations: MigrationSet, *,
                    allow_other_guild: bool = False) -> Path:
    """A checked, migrated copy of `source`, ready to replace the live file; RestoreRefused otherwise.

    Nothing of the guild's live file is touched here.
    """
    def refused(reason: str) -> RestoreRefused:
        return RestoreRefused(f"cannot restore {source} into guild {guild_id}: {reason}")

    def copy_failed(error: sqlite3.Error) -> TenantError:  # not the file's fault: say so
        return TenantError(f"cannot restore {source} into guild {guild_id}: copying it into {paths.root} "
                           f"failed ({error})")

    try:
        if not source.is_file():
            raise refused("it is a folder, not a file" if source.is_dir() else "no such file")
    except OSError as error:  # a folder on the way that may not be looked into
        raise refused(f"it cannot be looked at ({os_reason(error, source)})") from None
    staging = unique_staging(paths, guild_id, "restore")
    try:
        # Made here, not by the copy: a folder the copy cannot be written to is not the file's fault.
        with failing_as(f"cannot restore {source} into guild {guild_id}: copying it into {paths.root} failed"):
            make_private_folder(paths.root)
            create_private_file(staging)
        try:
            _copy_database(source, staging)
        except TenantError as error:  # cannot even be opened
            raise refused(str(error)) from error
        except sqlite3.Error as error:
            if is_storage_failure(error):
                raise copy_failed(error) from error
            raise refused(f"it is not a usable SQLite database ({error})") from error
        conn = connect(staging)
        try:
            problem = file_problem(conn, guild_id, migrations, allow_other_guild=allow_other_guild,
                                   other_guild_hint=" (moving data between guilds needs --allow-other-guild)")
            if problem is not None:
                raise refused(problem)
            if allow_other_guild:  # the file becomes this guild's: its identity says so from now on
                conn.execute("UPDATE tenant_meta SET guild_id = ? WHERE singleton = 1", (guild_id,))
            conn.execute("PRAGMA journal_mode = WAL")
            migrate(conn, migrations, f"guild {guild_id}")
        except MigrationError as error:
            if isinstance(cause := error.__cause__, sqlite3.Error) and is_storage_failure(cause):
                raise copy_failed(cause) from error
            raise refused(str(error)) from error
        except sqlite3.Error as error:
            raise copy_failed(error) from error
        finally:
            conn.close()
        fsync_file(staging)
        return staging
    except BaseException:
        remove_database_files(staging)
        raise


# The end of an error after a rename that was done: the rename is not yet safe from a power cut.
_NOT_SYNCED = "the folder could not be synced to disk, so a power cut could still undo that"


def install_restored(paths: TenantPaths, guild_id: int, staging: Path,
                     moment: datetime | None = None) -> Path | None:
    """Swap a prepared file in for the live one; returns where the previous live file was kept.

    The guild's connections must be closed. Stale -wal/-shm files of the old database are removed
    before the rename, so SQLite can never apply them to the new one.
    """
    live = paths.live(guild_id)
    previous = None
    if live.exists():
        previous = free_path(lambda m: _before_restore_name(paths.backup(guild_id, m)), moment)
        with failing_as(f"guild {guild_id}: nothing restored: cannot keep the previous data as {previous}"):
            _keep_copy(live, previous)
    with failing_as(f"guild {guild_id}: cannot put the restored file in place of {live}"):
        for stale in sidecars(live):
            stale.unlink(missing_ok=True)
        os.replace(staging, live)
    # Restored from here on: a failure now must not read as if nothing had changed.
    with failing_as(f"guild {guild_id}: restored into {live}, but {_NOT_SYNCED}"):
        fsync_dir(live.parent)
    return previous


def archive_tenant(paths: TenantPaths, guild_id: int, moment: datetime | None = None) -> Path:
    """Move the guild's (closed) live file to tenants/archive/<guild>-<UTC stamp>.sqlite3."""
    live = paths.live(guild_id)
    if not live.exists():
        raise TenantError(f"no data file for guild {guild_id}")
    _checkpoint(live)
    target = free_path(lambda m: paths.archive(guild_id, m), moment)
    with failing_as(f"guild {guild_id}: cannot create the archive folder {target.parent}", target.parent):
        make_private_folder(target.parent)
    with failing_as(f"guild {guild_id}: cannot move {live} to {target}"):
        shutil.move(live, target)
    # Archived from here on: a failure now must not read as if the file had stayed.
    moved = f"guild {guild_id}: archived {live} to {target}, but"
    with failing_as(f"{moved} cannot move its -wal beside it or remove its -shm"):
        _move_sidecars(live, target)
    with failing_as(f"{moved} cannot make it private"):
        make_database_private(target)  # a live file made by an older version was readable by all
    with failing_as(f"{moved} {_NOT_SYNCED}"):
        fsync_dir(live.parent)
        fsync_dir(target.parent)
    return target


def archived_at(path: Path) -> datetime | None:
    """The UTC moment in an archive's name, or None for a name this code did not make (exactly
    `<guild>-<UTC stamp>.sqlite3`: an operator's `<guild>-before-upgrade-<stamp>.sqlite3` is theirs)."""
    if not path.name.endswith(TENANT_SUFFIX):
        return None
    guild, _, stamp = path.name.removesuffix(TENANT_SUFFIX).partition("-")
    if not guild.isdigit():
        return None
    try:
        return datetime.strptime(stamp, UTC_STAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def latest_archive(paths: TenantPaths, guild_id: int, max_age: timedelta,
                   now: datetime | None = None) -> Path | None:
    """The guild's newest archive if it is younger than `max_age`."""
    now = now or datetime.now(UTC)
    dated = _dated_archives(paths, guild_id)
    if not dated:
        return None
    moment, path = max(dated)
    return path if now - moment <= max_age else None


def remove_expired_archives(paths: TenantPaths, guild_id: int, max_age: timedelta,
                            now: datetime | None = None) -> tuple[list[Path], bool]:
    """Delete the guild's archives older than `max_age`, which `latest_archive` never brings back.
    Returns the deleted ones and whether a younger one is left. Only names this code made count."""
    now = now or datetime.now(UTC)
    removed, younger_left = [], False
    for moment, path in _dated_archives(paths, guild_id):
        if now - moment <= max_age:
            younger_left = True
        else:
            remove_database_files(path)
            removed.append(path)
    return removed, younger_left


def _dated_archives(paths: TenantPaths, guild_id: int) -> list[tuple[datetime, Path]]:
    return [(moment, path) for path in paths.archives_of(guild_id) if (moment := archived_at(path)) is not None]


def _backup_staging(target: Path) -> Path:
    """Where a backup is written before it gets its name: hidden, beside it (an atomic rename)."""
    return target.with_name(f".{target.name}.tmp")


def _claim_staging(staging: Path, target: Path, guild_id: int) -> int:
    """Create the (empty) staging file and lock it for the whole backup; returns the lock's descriptor.

    Never reuses an existing file: that is another backup's, in progress or crashed. VACUUM INTO
    writes into an empty file. The lock is `flock`, which SQLite's own (fcntl) locks never touch.
    """
    try:
        fd = os.open(staging, os.O_RDWR | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        raise BackupNameTaken(f"guild {guild_id}: another backup is writing {target} right now; "
                              "try again in a moment") from None
    except OSError as error:
        raise TenantError(f"guild {guild_id}: cannot write the backup {target} ({os_reason(error, staging)})") \
            from error
    with contextlib.suppress(OSError):  # a filesystem without locks: the age rule alone protects it
        fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _abandoned(staging: Path, found: list[Path]) -> bool:
    """Whether a backup's staging files were left by a crash (see LEFTOVER_AGE_SECONDS)."""
    try:
        stats = [os.stat(path) for path in found]
    except OSError:  # changing under us: a backup is at work, or another cleaner
        return False
    if not all(stat.S_ISREG(info.st_mode) for info in stats):
        return False
    if time.time() - max(info.st_mtime for info in stats) < LEFTOVER_AGE_SECONDS:
        return False
    try:
        fd = os.open(staging, os.O_RDONLY)
    except FileNotFoundError:  # only sidecars left: no backup writes without its staging file
        return True
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # BlockingIOError: a backup holds it
        return False
    finally:
        os.close(fd)
    return True


def _copy_database(source: Path, target: Path) -> None:
    reader = connect_to_look(source)  # changes nothing in the source (an operator's file)
    try:
        writer = connect(target, create=True)
        try:
            reader.backup(writer)
        finally:
            writer.close()
    finally:
        reader.close()


def _before_restore_name(backup_path: Path) -> Path:
    return backup_path.with_name(backup_path.name.removesuffix(TENANT_SUFFIX) + "-before-restore"
                                 + TENANT_SUFFIX)


def _keep_copy(database: Path, target: Path) -> None:
    """Keep a closed database under another name without moving it (a hard link when possible)."""
    make_private_folder(target.parent)
    try:
        os.link(database, target)
    except OSError:
        shutil.copy2(database, target)
    wal = sidecars(database)[0]
    if wal.exists() and wal.stat().st_size > 0:  # left by a crash: it holds committed rows
        shutil.copy2(wal, sidecars(target)[0])
    make_database_private(target)  # a live file made by an older version was readable by all
    fsync_dir(target.parent)


def _checkpoint(database: Path) -> None:
    """Fold the -wal into the database; closing the last connection then removes the -wal."""
    conn = connect(database)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.Error:
        pass  # not a readable database: _move_sidecars carries its -wal along
    finally:
        conn.close()


def _move_sidecars(source: Path, target: Path) -> None:
    """After the database itself moved: its -wal (committed rows) follows it, its -shm goes."""
    wal, shm = sidecars(source)
    if wal.exists() and wal.stat().st_size > 0:
        shutil.move(wal, sidecars(target)[0])
    for leftover in (wal, shm):
        leftover.unlink(missing_ok=True)
