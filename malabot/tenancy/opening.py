"""Creating and opening one tenant file with plain `sqlite3`.

A new tenant is built under a temporary name, migrated, stamped with its identity and only then
published under its live name, so an existing live file is always a ready database that says whose it
is. An existing file is opened only after checking it is MalaBoT's file of that guild; a foreign file is
refused, never migrated.

Reopening a file this process already checked can skip the check: the tenant manager keeps a
`FileFingerprint` of each file as it left it (taken right after closing, when SQLite has folded the
`-wal` into the file and removed it) and passes it back on the next open. Any change from outside —
a restore, an archive, a copy put in place, another process writing — changes the file's inode,
size, times or leaves a `-wal` beside it, so the fingerprint no longer matches and the full check runs.
(A same-size rewrite in place is seen through its times: since Linux 6.13 a write after a stat always
gets a new timestamp on ext4/xfs/btrfs/tmpfs; older kernels could miss one within a clock tick of the
close. While the bot runs, the tenants lock keeps MalaBoT's CLI from restoring or archiving files.)

Synchronous on purpose: the tenant manager runs `open_tenant` in the new aiosqlite connection's own
worker thread, before the connection is handed to anyone; the CLI calls these functions directly.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from malabot.errors import TenantError, os_reason
from malabot.tenancy.migrations import APPLICATION_ID, Migration, MigrationSet, migrate
from malabot.tenancy.paths import TenantPaths, sidecars
from malabot.tenancy.private import create_private_file, make_private_folder

DEFAULT_BUSY_TIMEOUT_MS = 5000
# A read-only connection met a hot journal: only a writer may roll it back.
SQLITE_READONLY_ROLLBACK = 776


@dataclass(frozen=True)
class Identity:
    """What a SQLite file says about itself."""

    application_id: int
    schema_version: int
    guild_id: int | None  # from tenant_meta; None when the row or the table is missing

    def problem(self, guild_id: int) -> str | None:
        """Why this is not MalaBoT's file of `guild_id`, or None when it is."""
        if self.application_id != APPLICATION_ID:
            return "it is not a MalaBoT file (wrong application_id)"
        if self.guild_id is None:
            return "it has no MalaBoT identity row (tenant_meta)"
        if self.guild_id != guild_id:
            return f"it belongs to guild {self.guild_id}"
        return None


@dataclass(frozen=True)
class FileFingerprint:
    """A closed tenant file as this process last left it, checked and migrated to `schema_version`."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int
    schema_version: int  # the code's latest migration: trust never outlives a change of code


def fingerprint(path: Path, schema_version: int) -> FileFingerprint | None:
    """The file's fingerprint, or None when it is missing or its content is not all in it.

    A `-wal` beside the file means another connection has it open (or crashed with it open): its
    committed content may differ from the main file's, so nothing about it can be trusted.
    """
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    if sidecars(path)[0].exists():
        return None
    return FileFingerprint(stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns,
                           schema_version)


def connect(path: Path, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS, create: bool = False,
            read_only: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (every transaction is explicit).

    Without `create` a missing file is an error instead of silently becoming an empty database; with
    it, a missing file is created private (see private.py).
    """
    mode = "ro" if read_only else "rwc" if create else "rw"
    uri = Path(os.path.abspath(path)).as_uri() + f"?mode={mode}"
    try:
        if create:
            create_private_file(path)
        return sqlite3.connect(uri, uri=True, isolation_level=None, timeout=busy_timeout_ms / 1000)
    except sqlite3.Error as error:
        raise TenantError(f"cannot open {path}: {error}") from error
    except OSError as error:  # creating it
        raise TenantError(f"cannot open {path}: {os_reason(error, path)}") from error


# SQLite's answers about where a file is, not what it holds: a full disk, an I/O error, a folder
# it may not write. The file itself may be fine.
_STORAGE_FAILURES = frozenset({sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN,
                               sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM})


def is_storage_failure(error: sqlite3.Error) -> bool:
    """Whether a SQLite error came from the disk or folder rather than from the file's content."""
    # Errors the sqlite3 module raises itself (misuse) carry no SQLite code.
    return getattr(error, "sqlite_errorcode", 0) & 0xFF in _STORAGE_FAILURES


def connect_to_look(path: Path) -> sqlite3.Connection:
    """A connection that changes no database file, for looking at a file that may be in use.

    Read-only, and `immutable` when nothing is beside the file: a plain read-only open of a WAL
    file creates `-wal`/`-shm` and cannot remove them. With a `-wal` beside it (a bot has the file
    open, or crashed with it open) its committed content is read through the `-wal`, not folded in
    (SQLite makes the `-shm` index beside it if it is missing). A hot `-journal` beside it (a write
    that was cut off) is refused: only a writer may roll it back.
    (If a bot opens the file meanwhile, its writes go to a new `-wal`; only a checkpoint it runs during
    the read could make a look see a page mid-change: a rare false alarm, gone on a second look.)
    """
    if not path.exists():
        raise TenantError(f"cannot open {path}: no such file")
    # With a -journal beside it, a write may have been cut off: `immutable` would read its half-written
    # pages as they lie. Without it SQLite reads the file as committed, or refuses (below).
    companions = (*sidecars(path), path.with_name(path.name + "-journal"))
    immutable = "" if any(companion.exists() for companion in companions) else "&immutable=1"
    uri = Path(os.path.abspath(path)).as_uri() + f"?mode=ro{immutable}"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    except sqlite3.Error as error:
        raise TenantError(f"cannot open {path}: {error}") from error
    try:
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone()  # the first read meets a hot journal
    except sqlite3.Error as error:
        if getattr(error, "sqlite_errorcode", 0) == SQLITE_READONLY_ROLLBACK:
            conn.close()
            raise TenantError(f"{path} has an unfinished transaction beside it ({path.name}-journal); open it "
                              "once with sqlite3 so SQLite rolls it back, then try again") from error
        # Anything else (not a database at all...) is for the caller's checks to name.
    return conn


def read_identity(conn: sqlite3.Connection) -> Identity:
    """Raises sqlite3.DatabaseError when the file is not a SQLite database at all."""
    application_id, version = conn.execute(
        "SELECT (SELECT application_id FROM pragma_application_id),"
        " (SELECT user_version FROM pragma_user_version)").fetchone()
    guild_id = None
    if application_id == APPLICATION_ID:
        try:
            row = conn.execute("SELECT guild_id FROM tenant_meta WHERE singleton = 1").fetchone()
        except sqlite3.OperationalError:  # no tenant_meta table
            row = None
        guild_id = row[0] if row else None
    return Identity(application_id, version, guild_id)


def check_identity(conn: sqlite3.Connection, guild_id: int, path: Path) -> Identity:
    """The file's identity when it is MalaBoT's file of this guild; TenantError otherwise."""
    try:
        identity = read_identity(conn)
    except sqlite3.DatabaseError as error:
        if is_storage_failure(error):  # a full or failing disk: the file may be fine
            raise TenantError(f"guild {guild_id}: cannot read {path} ({error})") from error
        raise TenantError(f"guild {guild_id}: {path} is not a usable SQLite database ({error})") from error
    problem = identity.problem(guild_id)
    if problem is not None:
        raise TenantError(f"guild {guild_id}: refusing to open {path}: {problem}")
    return identity


def open_tenant(paths: TenantPaths, guild_id: int, migrations: MigrationSet, *, create: bool,
                busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
                trusted: FileFingerprint | None = None) -> tuple[sqlite3.Connection, bool]:
    """A ready connection to the guild's file, and whether the file was created now.

    A missing file is created (when allowed); an existing one has its identity checked and is
    migrated forward, unless it still matches `trusted` (the fingerprint this process took when it
    last closed the file after checking it). Then the bot's pragmas: foreign keys on, WAL-appropriate
    sync level, deleted rows overwritten.
    """
    created = False
    if not paths.live(guild_id).exists():
        if not create:
            raise TenantError(f"no data file for guild {guild_id}")
        created = create_tenant_file(paths, guild_id, migrations)
    conn = connect(paths.live(guild_id), busy_timeout_ms=busy_timeout_ms)
    try:
        # The fingerprint is taken after connecting: a file swapped in before the connect changes
        # it, and one swapped in after leaves this connection on the file fingerprinted.
        if not created and (trusted is None or fingerprint(paths.live(guild_id), migrations.latest) != trusted):
            _check_and_migrate(conn, paths, guild_id, migrations)
        # A script, not `execute`: its statements stay out of the connection's statement cache,
        # where they would hold memory for as long as the tenant is open.
        # synchronous = NORMAL is safe in WAL mode (no corruption on power loss) and spares an
        # fsync per commit. secure_delete: an erased member's rows are overwritten with zeros, not
        # left in freed cells; SQLite's own default is off (some builds turn it on: not relied on).
        conn.executescript("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA secure_delete = ON;")
        if os.path.getsize(paths.live(guild_id)) <= SMALL_FILE_BYTES:
            keep_no_page_cache(conn)
        return conn, created
    except BaseException:
        conn.close()
        raise


# SQLite gives a connection's page cache a block of 20 pages (about 86 KiB) at its first read, and
# keeps it while the connection is open. A file this small stays in the operating system's cache
# anyway, so its connection keeps no pages of its own: with a thousand busy servers open that is
# ~80 MiB. A big file (a large server's ranking reads hundreds of pages) keeps SQLite's cache. Decided
# at open: a file that grows past the limit while open is cached from its next open (after it was
# idle, or a restart); without the cache /rank in 100,000 members measured the same within noise.
SMALL_FILE_BYTES = 1024 * 1024


def keep_no_page_cache(conn: sqlite3.Connection) -> None:
    """Give back the connection's page cache and make none again: below 3 pages SQLite allocates
    no block, and reads come from the operating system's cache."""
    conn.executescript("PRAGMA cache_size = 2; PRAGMA shrink_memory;")


def migrate_tenant(paths: TenantPaths, guild_id: int, migrations: MigrationSet,
                   busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> list[Migration]:
    """Bring an existing tenant file up to date; returns the migrations applied now."""
    path = paths.live(guild_id)
    if not path.exists():
        raise TenantError(f"no data file for guild {guild_id}")
    conn = connect(path, busy_timeout_ms=busy_timeout_ms)
    try:
        return _check_and_migrate(conn, paths, guild_id, migrations)
    finally:
        conn.close()


def _check_and_migrate(conn: sqlite3.Connection, paths: TenantPaths, guild_id: int,
                       migrations: MigrationSet) -> list[Migration]:
    check_identity(conn, guild_id, paths.live(guild_id))
    conn.execute("PRAGMA journal_mode = WAL")  # a no-op for files this code made
    # Foreign keys stay off while migrating: SQLite's table-rebuild recipe needs them off,
    # and the pragma cannot change inside a migration's transaction.
    return migrate(conn, migrations, f"guild {guild_id}")


def create_tenant_file(paths: TenantPaths, guild_id: int, migrations: MigrationSet) -> bool:
    """Build the guild's file under a temporary name and publish it; False if one appeared meanwhile.

    The temporary name is unique per call, so two creators (a cancelled one still running, another
    process) never write the same file; publishing never overwrites an existing live file.
    """
    live = paths.live(guild_id)
    staging = unique_staging(paths, guild_id, "create")
    label = f"guild {guild_id}"
    make_private_folder(paths.root)
    try:
        conn = connect(staging, create=True)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            # Nothing needs to survive a crash until the file is published; one fsync follows.
            conn.execute("PRAGMA synchronous = OFF")

            def stamp_identity(applied: Migration) -> None:
                # Right after 0001 (which creates tenant_meta), so later migrations can rely on it.
                if applied.version == 1:
                    conn.execute("INSERT INTO tenant_meta (singleton, guild_id, created_at) VALUES (1, ?, ?)",
                                 (guild_id, datetime.now(UTC).isoformat()))

            migrate(conn, migrations, label, on_applied=stamp_identity)
        finally:
            conn.close()  # the last connection checkpoints and removes the -wal file
        fsync_file(staging)
        if not live.exists():
            # A -wal left beside the live name (its file was moved away by hand after a crash) would
            # be applied to the new file: the old rows back, or a corrupt file.
            for stale in sidecars(live):
                stale.unlink(missing_ok=True)
        return publish_new(staging, live)
    except sqlite3.Error as error:
        raise TenantError(f"{label}: cannot create {live}: {error}") from error
    finally:
        remove_database_files(staging)


def unique_staging(paths: TenantPaths, guild_id: int, purpose: str) -> Path:
    """A hidden temporary name beside the live files (same filesystem, so renames are atomic)."""
    return paths.staging(guild_id, f"{purpose}-{secrets.token_hex(4)}")


def publish_new(staging: Path, live: Path) -> bool:
    """Give `staging` the live name unless a live file exists; never overwrites one."""
    try:
        os.link(staging, live)
    except FileExistsError:
        return False
    except OSError:  # a filesystem without hard links: check, then rename
        if live.exists():
            return False
        os.replace(staging, live)
    fsync_dir(live.parent)
    return True


def remove_staging_leftovers(paths: TenantPaths) -> int:
    """Delete what unfinished creations and restores left behind; only safe under the tenants lock
    (no other MalaBoT process is staging a file). Returns how many were removed."""
    leftovers = paths.staging_leftovers()
    for leftover in leftovers:
        remove_database_files(leftover)
    return len(leftovers)


def remove_database_files(path: Path) -> None:
    """The database and every file SQLite may keep beside it."""
    for candidate in (path, *sidecars(path), path.with_name(path.name + "-journal")):
        candidate.unlink(missing_ok=True)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
