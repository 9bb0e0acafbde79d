"""TenantManager: the one way the bot reaches a guild's SQLite file.

aiosqlite runs one thread per connection, so open connections are a bounded pool: least recently
used idle tenants are closed to make room, and a background task closes tenants idle for too long.
A connection in use is never closed under its user. Every coroutine of one guild shares that guild's
connection, so a per-guild lock serialises them: a transaction never interleaves with another
coroutine's statements, and a reader never sees another coroutine's uncommitted writes.

File operations (backup, restore, archive) first run the registered hooks (e.g. the XP service
flushes its buffer), then restore and archive wait for the guild's lock, close its connection and
work on the closed file; the next user reopens it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import inspect
import logging
import os
import sqlite3
import threading
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar

import aiosqlite

from malabot.errors import RestoreRefused, TenantArchived, TenantError
from malabot.tenancy import backup as files
from malabot.tenancy.migrations import MigrationSet
from malabot.tenancy.opening import (
    DEFAULT_BUSY_TIMEOUT_MS,
    FileFingerprint,
    fingerprint,
    open_tenant,
    remove_database_files,
)
from malabot.tenancy.paths import TenantPaths, parse_guild_id, sidecars

log = logging.getLogger(__name__)

Read = TypeVar("Read")  # what a caller reads from a download copy
Copied = TypeVar("Copied")

FileOperationHook = Callable[[int], Awaitable[None]]
FileChangedHook = Callable[[int], None]
StagedFileHook = Callable[[int, aiosqlite.Connection, Path], Awaitable[None]]
ShutdownHook = Callable[[], Awaitable[None]]
BeforeCommitHook = Callable[[int, aiosqlite.Connection], Awaitable[None]]

_ITER_CHUNK_SIZE = 64  # aiosqlite's default rows per fetch when iterating a cursor
# Opening or closing a connection briefly needs more than its 3 file descriptors (db, -wal, -shm):
# SQLite fsyncs the folder after creating a -wal file, and a new tenant is built in a temporary file.
# Bounding how many happen at once keeps the process near 3 fds per pooled connection in any burst.
_CONCURRENT_OPEN_CLOSE = 8
# A wipe that met another connection reading the file (a snapshot, a CLI backup) is tried again after
# this, then after twice as long each time, up to the longest wait: such reads take seconds to minutes.
WIPE_RETRY_SECONDS = 5.0
WIPE_RETRY_LONGEST_SECONDS = 60.0


@dataclass(eq=False)
class _Slot:
    """One guild's place in the pool: present while its connection is open or anyone holds it."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    conn: aiosqlite.Connection | None = None
    file_id: tuple[int, int] | None = None  # (device, inode) of the file `conn` was opened on
    pins: int = 0  # coroutines holding or waiting for `lock`; a pinned slot is never evicted
    last_used: float = 0.0


@dataclass(frozen=True)
class ExpiredData:
    """What `remove_expired` deleted of one guild."""

    archives: tuple[Path, ...] = ()
    copies: int = 0  # as counted by its `remove_copies`


class TenantManager:
    def __init__(self, tenants_dir: Path, *, migrations: MigrationSet | None = None,
                 max_open: int = 256, idle_seconds: float = 300.0, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
                 archive_retention: datetime.timedelta | None = None,
                 wipe_retry_seconds: float = WIPE_RETRY_SECONDS) -> None:
        """`archive_retention`: a guild with no file whose newest archive is younger gets it back
        instead of a new file, whatever reaches it first (the join event, a message that came
        before it, a command); None: archives never come back (a re-added guild starts afresh)."""
        if max_open < 1:
            raise ValueError("max_open must be at least 1")
        self.paths = TenantPaths(Path(tenants_dir))
        self._archive_retention = archive_retention
        self.migrations = migrations if migrations is not None else MigrationSet.load()
        self._max_open = max_open
        self._idle_seconds = idle_seconds
        self._busy_timeout_ms = busy_timeout_ms
        self._slots: dict[int, _Slot] = {}
        # Guilds whose latest event was the bot's removal (archive() called, even if it still waits for
        # the lock): a late reader (a scheduled pass, a stray event) must not bring an empty file back
        # to life; only ensure() (the bot added back) or an archive restore may.
        self._archived: set[int] = set()
        # Open connections nobody holds, least recently used first: the eviction candidates.
        self._idle: OrderedDict[int, _Slot] = OrderedDict()
        # Connections open, opening or closing: the bounded resource (one thread and ~3 fds each).
        self._open = 0
        self._room_waiters: deque[asyncio.Future[None]] = deque()  # openers waiting for a place
        self._opening_or_closing = asyncio.Semaphore(_CONCURRENT_OPEN_CLOSE)
        # Each closed file as this manager left it, after checking it: reopening an unchanged one
        # skips the identity and migration check (opening.py). Dropped on any file operation.
        self._verified: dict[int, FileFingerprint] = {}
        self._file_hooks: list[FileOperationHook] = []
        self._changed_hooks: list[FileChangedHook] = []
        self._staged_hooks: list[StagedFileHook] = []
        self._shutdown_hooks: list[ShutdownHook] = []
        self._commit_hooks: list[BeforeCommitHook] = []
        # Per guild, the checkpoint after an erasure that is waiting for the guild's lock or running:
        # erasures committed meanwhile share it (see `wipe_erased`).
        self._wipes: dict[int, asyncio.Future[None]] = {}
        # Guilds whose last wipe met a reader: erased rows may still be in their -wal until a retry works.
        self._owed_wipes: set[int] = set()
        self._wipe_retry_seconds = wipe_retry_seconds
        self._wipe_retrying: asyncio.Task[None] | None = None
        self._idle_task: asyncio.Task[None] | None = None
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start closing idle tenants in the background (and accept work again after close_all)."""
        self._closed = False
        if self._idle_task is None or self._idle_task.done():
            self._idle_task = asyncio.create_task(self._close_idle_forever(), name="tenant-idle-close")

    async def close_all(self) -> None:
        """Run the shutdown hooks, then close every connection once its user is done.

        The before-file-operation hooks also run for each open guild, so a buffer flushed per guild
        reaches its file. Afterwards the manager refuses to open tenants until `start()`; calling it
        again only closes what is still open.
        """
        if not self._closed:
            await self._flush_before_shutdown()
        self._closed = True
        if self._wipe_retrying is not None:  # the last close checkpoints each file and removes its -wal
            self._wipe_retrying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._wipe_retrying
            self._wipe_retrying = None
        if self._idle_task is not None:
            self._idle_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._idle_task
            self._idle_task = None
        for guild_id in list(self._slots):
            await self.close(guild_id)

    def add_before_file_operation(self, hook: FileOperationHook) -> None:
        """`hook(guild_id)` runs before a backup, restore or archive of that guild (and on close_all)."""
        self._file_hooks.append(hook)

    def add_file_changed(self, hook: FileChangedHook) -> None:
        """`hook(guild_id)` runs right after a restore or archive put another file in place (or none),
        under the guild's lock: for forgetting what was read from the old file meanwhile (a chat
        message between the before-hook and the swap reads the old file). Also after one that failed
        part-way (the file may have been swapped), so forgetting must be harmless when nothing changed.
        It must not use the tenant."""
        self._changed_hooks.append(hook)

    def add_before_install(self, hook: StagedFileHook) -> None:
        """`await hook(guild_id, staged, replaced)` runs in a restore once the new file is checked and
        the guild's lock is held, before that file replaces the live one: `staged` is a connection to
        the new file inside a transaction, `replaced` the live file it is about to replace (closed).
        For carrying over what must survive a restore (e.g. members' erasures). If it raises, nothing
        is installed. It must not use the tenant: its lock is held."""
        self._staged_hooks.append(hook)

    def add_before_commit(self, hook: BeforeCommitHook) -> None:
        """`await hook(guild_id, conn)` runs last in every transaction() (but those that only delete or
        clear, see `before_commit`), before its COMMIT: for writes that must hold whatever the
        transaction did (e.g. no row of a member who has just left). It must only use `conn`; if it
        raises, the transaction rolls back."""
        self._commit_hooks.append(hook)

    def add_shutdown_hook(self, hook: ShutdownHook) -> None:
        """`hook()` runs first in close_all, while tenants can still be opened (e.g. a final flush)."""
        self._shutdown_hooks.append(hook)

    # -- using a tenant --------------------------------------------------------------------------

    def exists(self, guild_id: int) -> bool:
        return self.paths.live(guild_id).exists()

    def guild_ids(self) -> list[int]:
        """Guild ids of the live files."""
        return self.paths.live_guild_ids()

    @property
    def open_count(self) -> int:
        """Connections open now (including ones being opened or closed)."""
        return self._open

    def is_open(self, guild_id: int) -> bool:
        slot = self._slots.get(parse_guild_id(guild_id))
        return slot is not None and slot.conn is not None

    async def ensure(self, guild_id: int) -> bool:
        """Make sure the guild's file exists and is migrated; True when it was created now.

        The bot is (again) in the guild: this undoes an archive() called before it, whichever gets the
        lock first. TenantArchived when an archive() called after it (removed again) took the file."""
        guild_id = parse_guild_id(guild_id)
        self._archived.discard(guild_id)  # at the call, not under the lock: the events' order decides
        async with self._hold(guild_id) as slot:
            if slot.conn is not None:
                return False
            return await self._open_slot(slot, guild_id, create=True)

    @contextlib.asynccontextmanager
    async def transaction(self, guild_id: int, *, create: bool = True,
                          before_commit: bool = True) -> AsyncIterator[aiosqlite.Connection]:
        """The guild's connection inside BEGIN IMMEDIATE; COMMIT on success, ROLLBACK on any error.

        `before_commit=False` skips the before-commit hooks: for a body that only deletes rows or
        clears ids in them (a member's purge), which writes nothing those hooks would have to undo."""
        async with self._connection(guild_id, create) as conn:
            try:
                await conn.execute("BEGIN IMMEDIATE")
                yield conn
                for hook in self._commit_hooks if before_commit else ():
                    await hook(parse_guild_id(guild_id), conn)
                await conn.execute("COMMIT")
            except BaseException:
                # Queued behind whatever is still running on the connection's thread (even a
                # cancelled BEGIN), so the next user of this guild starts clean.
                await conn.rollback()
                raise

    def reading(self, guild_id: int, *, create: bool = True
                ) -> contextlib.AbstractAsyncContextManager[aiosqlite.Connection]:
        """The guild's connection for reads, under the same lock as transactions."""
        return self._without_transaction(guild_id, create)

    @contextlib.asynccontextmanager
    async def snapshot(self, guild_id: int, *, create: bool = True) -> AsyncIterator[aiosqlite.Connection]:
        """The guild's connection for several reads that must agree, inside one read transaction: they
        all see the file as of the first of them, even while another process (the tenants CLI) writes
        it. For reads only: the transaction is rolled back at the end."""
        async with self._connection(guild_id, create) as conn:
            try:
                await conn.execute("BEGIN DEFERRED")
                yield conn
            finally:
                await conn.rollback()

    def single_statement(self, guild_id: int, *, create: bool = True
                         ) -> contextlib.AbstractAsyncContextManager[aiosqlite.Connection]:
        """The guild's connection for a write that is one statement: SQLite runs a lone statement as
        its own transaction (all of it or nothing), which spares BEGIN's and COMMIT's round trips."""
        return self._without_transaction(guild_id, create)

    @contextlib.asynccontextmanager
    async def _without_transaction(self, guild_id: int, create: bool) -> AsyncIterator[aiosqlite.Connection]:
        async with self._connection(guild_id, create) as conn:
            try:
                yield conn
            except BaseException:
                await conn.rollback()
                raise
            if conn.in_transaction:  # the reader began one and left it open: never pass it on
                await conn.rollback()

    async def close(self, guild_id: int) -> None:
        """Close the guild's connection once nobody uses it (the next user reopens it)."""
        guild_id = parse_guild_id(guild_id)
        if guild_id not in self._slots:
            return
        async with self._hold(guild_id) as slot:
            await self._close_slot(slot, guild_id)

    async def close_idle(self, older_than: float | None = None) -> int:
        """Close connections unused for `older_than` seconds (default idle_seconds); returns how many."""
        cutoff = time.monotonic() - (self._idle_seconds if older_than is None else older_than)
        expired = [gid for gid, slot in self._idle.items() if slot.last_used <= cutoff]
        closed = 0
        for guild_id in expired:
            if guild_id in self._idle:  # nobody took it meanwhile
                await self.close(guild_id)
                closed += 1
        return closed

    async def wipe_erased(self, guild_id: int) -> None:
        """After rows were erased (a member's purge): leave no copy of them in the guild's files.

        secure_delete (opening.py) zeroes their cells in the pages a delete writes, but those pages go
        to the -wal: until a checkpoint the main file keeps the old page images, and the -wal the
        frames that first wrote the rows, for anyone who copies the folder meanwhile. A TRUNCATE
        checkpoint copies the zeroed pages into the file and empties the -wal (a PASSIVE one leaves
        the old frames in the -wal file). A closed file needs none: the last close checkpointed it
        and removed its -wal.

        Calls made while one waits for the guild's lock or runs share it: every erasure committed by
        then is covered, since commits take that lock too. A burst of leaves (a mass ban, one purge
        transaction each) is wiped once after the purges queued before it, not once per member."""
        guild_id = parse_guild_id(guild_id)
        await self._wipe_shared(guild_id, reopen=False)

    async def _wipe_shared(self, guild_id: int, *, reopen: bool) -> None:
        wipe = self._wipes.get(guild_id)
        if wipe is None:
            wipe = self._wipes[guild_id] = asyncio.ensure_future(self._wipe_now(guild_id, reopen))
        await asyncio.shield(wipe)  # a cancelled caller does not cancel the others' wipe

    async def _wipe_now(self, guild_id: int, reopen: bool) -> None:
        """`reopen`: a retry, which opens a closed file whose -wal still has frames (a reader kept its
        last close from checkpointing it)."""
        try:
            async with self._hold(guild_id) as slot:
                if slot.conn is None:
                    if not reopen:
                        return  # closed since the erasure: its last close emptied the -wal
                    if not self._wal_has_frames(guild_id):
                        self._wiped(guild_id)
                        return
                    await self._open_slot(slot, guild_id, create=False)
                assert slot.conn is not None
                emptied = await self._truncate_wal_without_waiting(slot.conn)
            if emptied:
                self._wiped(guild_id)
            elif guild_id not in self._owed_wipes:  # another connection reads the file (a snapshot)
                self._owed_wipes.add(guild_id)
                log.warning("guild %s: erased rows stay in its -wal while another connection reads the file; "
                            "the wipe is retried until it works", guild_id)
                if self._wipe_retrying is None or self._wipe_retrying.done():
                    self._wipe_retrying = asyncio.create_task(self._retry_wipes(), name="erasure-wipe-retry")
        finally:
            del self._wipes[guild_id]

    def _wiped(self, guild_id: int) -> None:
        if guild_id in self._owed_wipes:
            self._owed_wipes.discard(guild_id)
            log.info("guild %s: erased rows wiped from its -wal now that nothing reads the file", guild_id)

    def _wal_has_frames(self, guild_id: int) -> bool:
        wal, _shm = sidecars(self.paths.live(guild_id))
        try:
            return wal.stat().st_size > 0
        except FileNotFoundError:
            return False

    async def _retry_wipes(self) -> None:
        """Try the wipes that met a reader again until each works, waiting longer while they fail."""
        wait = self._wipe_retry_seconds
        while self._owed_wipes:
            await asyncio.sleep(wait)
            for guild_id in sorted(self._owed_wipes):
                if not self.exists(guild_id):  # archived: closed (and checkpointed) before the move
                    self._owed_wipes.discard(guild_id)
                    continue
                try:
                    await self._wipe_shared(guild_id, reopen=True)
                except Exception as error:  # e.g. archived meanwhile; reported when it first failed
                    log.debug("guild %s: retrying the wipe of erased rows failed: %s", guild_id, error)
            wait = min(wait * 2, WIPE_RETRY_LONGEST_SECONDS)

    async def _truncate_wal_without_waiting(self, conn: aiosqlite.Connection) -> bool:
        """A TRUNCATE checkpoint that gives up at once when another connection reads the file; True
        when the -wal was emptied. With the busy timeout it would wait for the reader (up to 5 s) while
        holding the guild's lock, and every command and event of the server with it. The timeout is
        set with executescript: a PRAGMA statement stays out of aiosqlite's statement cache then."""
        await conn.executescript("PRAGMA busy_timeout = 0;")
        try:
            async with conn.execute("PRAGMA wal_checkpoint(TRUNCATE)") as cursor:
                busy = await cursor.fetchone()
        finally:
            await conn.executescript(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)};")
        return busy is not None and not busy[0]

    # -- file operations -------------------------------------------------------------------------

    async def backup(self, guild_id: int, destination: Path | None = None, *,
                     moment: datetime.datetime | None = None) -> Path:
        """A consistent copy of the guild's file, taken while writes go on; returns its path.

        `destination` is a folder (if it is an existing directory) or the file to write; default
        tenants/backups/<guild>/<guild>-<UTC stamp of `moment`, default now>.sqlite3.
        """
        guild_id = parse_guild_id(guild_id)
        return await self._copying(guild_id, partial(self._backup_now, guild_id, destination, moment))

    async def download(self, guild_id: int, filename: str, read: Callable[[Path], Read]) -> Read:
        """`read(copy)`, in a worker thread, of a consistent copy of the guild's file named `filename`,
        made under tenants/.downloads/ for sending elsewhere. The copy exists only in that thread: it is
        removed (with its folder) before the thread ends, also when this call is cancelled meanwhile."""
        guild_id = parse_guild_id(guild_id)
        return await self._copying(guild_id, partial(files.with_download_copy, self.paths, guild_id,
                                                     self.migrations, filename, read,
                                                     busy_timeout_ms=self._busy_timeout_ms))

    async def _copying(self, guild_id: int, copy: Callable[[], Copied]) -> Copied:
        """Run `copy` (it copies the guild's file) in a worker thread once buffers are flushed."""
        await self._before_file_operation(guild_id)
        try:
            return await asyncio.to_thread(copy)
        finally:
            self._verified.pop(guild_id, None)  # the copy's own connection touched the file

    def _backup_now(self, guild_id: int, destination: Path | None, moment: datetime.datetime | None) -> Path:
        folder = None
        if destination is not None and destination.is_dir():
            folder, destination = destination, None
        return files.backup_tenant(self.paths, guild_id, self.migrations, destination, folder=folder,
                                   moment=moment, busy_timeout_ms=self._busy_timeout_ms)

    async def restore(self, guild_id: int, source: Path, *, allow_other_guild: bool = False,
                      first: StagedFileHook | None = None) -> Path | None:
        """Replace the guild's data with `source` after checking it; RestoreRefused says why not.

        `first` runs on the staged file before the before-install hooks, in their transaction (for
        what the caller alone knows must go from the restored data, before they carry rows into it).
        The previous live file is kept under tenants/backups/<guild>/ (…-before-restore.sqlite3); its
        path is returned (None when there was none).
        """
        guild_id = parse_guild_id(guild_id)
        await self._before_file_operation(guild_id)
        staging = await _staged(partial(files.prepare_restore, self.paths, guild_id, Path(source),
                                        self.migrations, allow_other_guild=allow_other_guild))
        try:
            async with self._hold(guild_id) as slot:
                # The bot was removed from the server while the file was checked (archive() ran):
                # installing now would bring a live file back for a server it has left.
                if guild_id in self._archived:
                    raise TenantError(f"guild {guild_id}: nothing restored: the bot was removed from the server "
                                      "(its data was archived)")
                await self._close_slot(slot, guild_id)
                self._verified.pop(guild_id, None)
                await self._run_before_install(guild_id, staging, first)
                try:
                    previous = await asyncio.to_thread(files.install_restored, self.paths, guild_id, staging)
                finally:  # also after a failure: a step after the swap may fail with the new file in place
                    self._file_changed(guild_id)
        finally:
            await asyncio.to_thread(remove_database_files, staging)  # file work stays off the event loop
        log.info("guild %s restored from %s; previous data kept in %s", guild_id, source, previous)
        return previous

    async def archive(self, guild_id: int) -> Path | None:
        """The bot was removed from the guild: close its file and move it to
        tenants/archive/<guild>-<UTC stamp>.sqlite3 (returned; None when it had no file yet).

        The removal counts from this call, for the lock may come only after later events: if ensure()
        is called meanwhile (the bot added back), the guild then gets its archive back, or a new file,
        as on any re-add; if it is not, nothing but ensure() or a restore gives the guild a file."""
        guild_id = parse_guild_id(guild_id)
        self._archived.add(guild_id)  # before any wait (see ensure())
        await self._before_file_operation(guild_id)
        async with self._hold(guild_id) as slot:
            await self._close_slot(slot, guild_id)
            self._verified.pop(guild_id, None)
            archived = None
            try:
                if self.exists(guild_id):  # in the try: a step after the move may fail, the file moved
                    archived = await asyncio.to_thread(files.archive_tenant, self.paths, guild_id)
                if guild_id not in self._archived:  # added back since the call: its ensure() may be done
                    log.info("guild %s: the bot was added back while its removal waited; reopening its data",
                             guild_id)
                    await self._open_slot(slot, guild_id, create=True)
            finally:  # once the file is as it stays: a re-added guild's hooks never see it missing
                self._file_changed(guild_id)
            return archived

    async def _bring_back_archive(self, guild_id: int, max_age: datetime.timedelta) -> Path | None:
        """Bring back the newest archive younger than `max_age` (a bot re-added to a guild), with the
        guild's lock held (so no connection is open, and a message or command of the guild meanwhile
        waits for the archive instead of creating an empty file the archive could not replace).

        Returns the archive restored, or None when there is none or the guild already has live data
        (which is never overwritten). A damaged archive raises RestoreRefused and stays put.
        """
        archive = await asyncio.to_thread(files.latest_archive, self.paths, guild_id, max_age)
        if archive is None or self.exists(guild_id):
            return None
        staging = await _staged(partial(files.prepare_restore, self.paths, guild_id, archive, self.migrations))
        try:
            self._verified.pop(guild_id, None)
            try:
                await asyncio.to_thread(files.install_restored, self.paths, guild_id, staging)
            finally:  # as in restore()
                self._file_changed(guild_id)
        finally:
            await asyncio.to_thread(remove_database_files, staging)
        await asyncio.to_thread(remove_database_files, archive)
        log.info("guild %s: restored archive %s", guild_id, archive)
        return archive

    @property
    def archive_retention(self) -> datetime.timedelta | None:
        return self._archive_retention

    async def remove_expired(self, guild_id: int, remove_copies: Callable[[int], int], *,
                             now: datetime.datetime | None = None) -> ExpiredData:
        """Delete the guild's archives older than the archive retention (by the UTC moment in their
        names, as when one is brought back: none of them ever would be). Then, if the guild has no
        live file and no younger archive (the bot left it longer ago than that), run
        `remove_copies(guild_id)` in a thread for its other copies; it returns how many it deleted.

        Under the guild's lock, so no file of the guild is created or brought back meanwhile. Nothing
        is deleted when the manager has no archive retention.
        """
        guild_id = parse_guild_id(guild_id)
        if self._archive_retention is None:
            return ExpiredData()
        async with self._hold(guild_id):
            archives, younger_left = await asyncio.to_thread(
                files.remove_expired_archives, self.paths, guild_id, self._archive_retention, now)
            copies = 0
            if not younger_left and not self.exists(guild_id):
                copies = await asyncio.to_thread(remove_copies, guild_id)
        return ExpiredData(tuple(archives), copies)

    # -- the pool --------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _connection(self, guild_id: int, create: bool) -> AsyncIterator[aiosqlite.Connection]:
        guild_id = parse_guild_id(guild_id)  # "123" and 123 must share one slot and one lock
        async with self._hold(guild_id) as slot:
            if slot.conn is None:
                await self._open_slot(slot, guild_id, create)
            assert slot.conn is not None
            yield slot.conn

    @contextlib.asynccontextmanager
    async def _hold(self, guild_id: int) -> AsyncIterator[_Slot]:
        """The guild's slot, pinned and locked: exclusive use of its connection (open or not)."""
        slot = self._slots.get(guild_id)
        if slot is None:
            slot = self._slots[guild_id] = _Slot()
        elif slot.pins == 0:
            self._idle.pop(guild_id, None)
        slot.pins += 1
        try:
            async with slot.lock:
                yield slot
        finally:
            slot.pins -= 1
            if slot.pins == 0:
                if slot.conn is None:
                    del self._slots[guild_id]
                else:
                    slot.last_used = time.monotonic()
                    self._idle[guild_id] = slot  # the most recently used go last
                    self._wake_one_waiter()  # an eviction candidate for someone waiting

    async def _open_slot(self, slot: _Slot, guild_id: int, create: bool) -> bool:
        """Open the guild's connection (creating the file if allowed); True when the file is new."""
        if self._closed:
            raise TenantError(f"guild {guild_id}: the tenant manager is closed")
        if not self.paths.live(guild_id).exists():  # refuse before evicting anyone
            if guild_id in self._archived:
                raise TenantArchived(guild_id)
            if not create:
                raise TenantError(f"no data file for guild {guild_id}")
            if self._archive_retention is not None:
                try:
                    await self._bring_back_archive(guild_id, self._archive_retention)
                except RestoreRefused as error:  # kept where it is; the guild gets a working file
                    log.error("guild %s: its archive cannot be brought back, starting afresh: %s",
                              guild_id, error)
        await self._make_room()
        self._open += 1
        trusted = self._verified.pop(guild_id, None)  # trusted at most once: a failed open forgets it
        try:
            opener = _Opener(self.paths, guild_id, self.migrations, create, self._busy_timeout_ms, trusted)
            async with self._opening_or_closing:
                conn = await _connect(opener)
                if opener.error is not None:
                    await conn.close()
                    raise opener.error
        except BaseException:
            self._open -= 1
            self._wake_one_waiter()
            raise
        slot.conn, slot.file_id = conn, opener.file_id
        return opener.created

    async def _close_slot(self, slot: _Slot, guild_id: int) -> None:
        if slot.conn is None:
            return
        # The turn first, the connection taken from its slot only then: a wait cancelled here (a
        # shutdown cancelling an evicting opener) leaves it in its slot, counted and closed later.
        async with self._opening_or_closing:
            conn, slot.conn = slot.conn, None
            file_id, slot.file_id = slot.file_id, None
            if conn is None:
                return
            try:
                await conn.close()  # the last connection checkpoints the -wal into the file
                # One stat, on the loop (cheaper than a thread hop). Trusted only when the live name
                # still points at the file this connection checked and no other connection keeps
                # a -wal beside it.
                left = fingerprint(self.paths.live(guild_id), self.migrations.latest)
                if left is not None and (left.device, left.inode) == file_id:
                    self._verified[guild_id] = left
            finally:
                self._open -= 1
                self._wake_one_waiter()

    async def _make_room(self) -> None:
        """Wait until one more connection fits, closing the least recently used idle ones."""
        while self._open >= self._max_open:
            if self._idle:
                await self.close(next(iter(self._idle)))
                continue
            # Every open connection is in use. Each release or close wakes one waiter (not all:
            # a thousand openers waking to find one place would only burn CPU).
            waiter = asyncio.get_running_loop().create_future()
            self._room_waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one_waiter()  # woken but leaving: hand the wake-up on
                raise

    def _wake_one_waiter(self) -> None:
        while self._room_waiters:
            waiter = self._room_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _close_idle_forever(self) -> None:
        interval = min(max(self._idle_seconds / 2, 0.01), 60.0)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.close_idle()
            except Exception:
                log.exception("closing idle tenants failed")

    def _file_changed(self, guild_id: int) -> None:
        for hook in self._changed_hooks:
            try:
                result = hook(guild_id)
                if inspect.iscoroutine(result):  # an async hook here would never run: say so
                    result.close()
                    log.error("file-changed hook %r is async; it must be a plain function", hook)
            except Exception:  # the file is in place already; a cache left stale must not undo that
                log.exception("file-changed hook failed for guild %s", guild_id)

    async def _run_before_install(self, guild_id: int, staging: Path, first: StagedFileHook | None) -> None:
        """The before-install hooks (`first` first), in one transaction on the staged file (which only
        this restore knows); nothing to carry over when there is no live file."""
        replaced = self.paths.live(guild_id)
        hooks = [first, *self._staged_hooks] if first is not None else self._staged_hooks
        if not hooks or not replaced.exists():
            return
        try:
            async with aiosqlite.connect(staging, isolation_level=None) as conn:
                # Its hooks erase members again (see open_tenant for secure_delete).
                await conn.executescript("PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON;")
                await conn.execute("BEGIN IMMEDIATE")
                try:
                    for hook in hooks:
                        await hook(guild_id, conn, replaced)
                except BaseException:
                    await conn.execute("ROLLBACK")
                    raise
                await conn.execute("COMMIT")
        except sqlite3.Error as error:  # e.g. the disk filled up: one line for the operator, not a traceback
            raise TenantError(f"guild {guild_id}: nothing restored: preparing the restored data failed "
                              f"({error})") from error

    async def _before_file_operation(self, guild_id: int) -> None:
        for hook in self._file_hooks:
            await hook(guild_id)

    async def _flush_before_shutdown(self) -> None:
        for hook in self._shutdown_hooks:
            await _run_logged(hook(), "shutdown hook")
        for guild_id in [gid for gid, slot in self._slots.items() if slot.conn is not None]:
            for file_hook in self._file_hooks:
                await _run_logged(file_hook(guild_id), f"before-file-operation hook for guild {guild_id}")


class _Opener:
    """aiosqlite's connector: runs in the new connection's own thread, before anyone gets the
    connection, and creates or checks and migrates the file with plain sqlite3 (one thread hop).

    It never raises: aiosqlite would leave the thread's shutdown unawaited. A failure is kept in
    `error` with an in-memory stand-in returned; the manager closes that and raises the error.
    """

    def __init__(self, paths: TenantPaths, guild_id: int, migrations: MigrationSet, create: bool,
                 busy_timeout_ms: int, trusted: FileFingerprint | None) -> None:
        self._open = partial(open_tenant, paths, guild_id, migrations, create=create,
                             busy_timeout_ms=busy_timeout_ms, trusted=trusted)
        self._live = paths.live(guild_id)
        self.created = False
        self.file_id: tuple[int, int] | None = None
        self.error: Exception | None = None

    def __call__(self) -> sqlite3.Connection:
        try:
            conn, self.created = self._open()
            stat = os.stat(self._live)
            self.file_id = (stat.st_dev, stat.st_ino)
            return conn
        except Exception as error:
            self.error = error
            return sqlite3.connect(":memory:")


async def _connect(opener: _Opener) -> aiosqlite.Connection:
    """A new connection, its file opened by `opener` in the connection's own thread.

    Cancelled while the opener runs, it waits for the opener and closes what it opened before it
    gives way: otherwise the thread outlives the caller and, should the event loop close meanwhile
    (a stop during the start-up sweep), fails to report back to it."""
    async def connect() -> aiosqlite.Connection:
        return await aiosqlite.Connection(opener, _ITER_CHUNK_SIZE)

    connecting = asyncio.ensure_future(connect())
    try:
        return await asyncio.shield(connecting)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await (await connecting).close()
        raise


async def _staged(prepare: Callable[[], Path]) -> Path:
    """`prepare()` in a worker thread: it writes a staging file (a full copy of a server) and returns it.

    A cancelled wait (Ctrl-C on `malabot tenants restore`, a shutdown) cannot stop the thread, which
    finishes its copy later; whichever ends last, the thread or the cancelled caller, removes the file,
    so nothing is left behind in the tenants folder."""
    guard = threading.Lock()
    abandoned = False
    made: Path | None = None

    def work() -> Path:
        nonlocal made
        staging = prepare()
        with guard:
            if not abandoned:
                made = staging
                return staging
        remove_database_files(staging)
        return staging

    try:
        return await asyncio.to_thread(work)
    except BaseException:
        with guard:
            abandoned = True
            left = made  # the thread was done, but its result came too late
        if left is not None:
            remove_database_files(left)  # at once: a second cancellation must not skip it
        raise


async def _run_logged(work: Awaitable[None], what: str) -> None:
    """Shutdown goes on whatever one hook does; the failure is logged, not raised. A file's refusal is
    one line: the write that met it first (the shutdown flush's) logged its traceback already."""
    try:
        await work
    except sqlite3.Error as error:
        log.error("%s failed: %s", what, error)
    except Exception:
        log.exception("%s failed", what)
