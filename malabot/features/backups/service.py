"""Backups without Discord: copies to download, nightly snapshots with retention, restore of a snapshot.

Every copy is made by the tenant manager (`VACUUM INTO` after flushing buffers), so it is consistent
while the bot keeps writing, and every restore goes through its checks (integrity, identity, schema)
and keeps the replaced data as a "before restore" snapshot.

What a cog calls:
    /backup create          -> download_copy(guild_id, max_bytes) -> DownloadCopy  (UserInputError: too big)
    /backup list            -> snapshots(guild_id) -> list[Snapshot], newest first
    /backup restore id      -> restore(guild_id, snapshot_id) -> Snapshot
    nightly job             -> snapshot_all() -> int  (then remove_expired(): what is past the retention)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import aiosqlite

from malabot.clock import Clock, utc_now
from malabot.errors import ReplacedDataUnreadable, RestoreRefused, TenantError, UserInputError, quoted
from malabot.features.backups.rules import (
    BEFORE_RESTORE,
    SNAPSHOT_KINDS,
    Snapshot,
    beyond_retention,
    newest_first,
    parse_snapshot_file,
    parse_snapshot_id,
    size_text,
)
from malabot.features.settings.service import SettingsService
from malabot.member_data import MemberData
from malabot.tenancy import backup as files
from malabot.tenancy.manager import ExpiredData, TenantManager
from malabot.tenancy.opening import remove_database_files
from malabot.tenancy.paths import parse_guild_id, utc_stamp

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DownloadCopy:
    filename: str
    data: bytes


@dataclass(frozen=True)
class Restored:
    snapshot: Snapshot
    keep_before: int | None  # the server's backup_keep before (None: its data could not be read)
    keep_now: int            # the restored data's


# Whether a user has been a member of the server without a break since a moment (a snapshot's): the
# snapshot's rows of anyone else are of a membership that has ended since, which their leave purged.
MemberSince = Callable[[int, datetime], bool]


class BackupService:
    def __init__(self, tenants: TenantManager, settings: SettingsService, member_data: MemberData, *,
                 clock: Clock = utc_now) -> None:
        self._tenants = tenants
        self._settings = settings
        self._member_data = member_data
        self._clock = clock

    # -- on demand ------------------------------------------------------------------------------

    async def download_copy(self, guild_id: int, max_bytes: int) -> DownloadCopy:
        """A consistent copy of the server's file as bytes; UserInputError when it exceeds `max_bytes`."""
        guild_id = parse_guild_id(guild_id)
        filename = f"malabot-{guild_id}-{utc_stamp(self._clock())}.sqlite3"

        def read(copy: Path) -> bytes:  # in the copy's worker thread, before the copy is removed
            size = copy.stat().st_size
            if size > max_bytes:
                raise UserInputError(
                    f"The backup is {size_text(size)}, more than the {size_text(max_bytes)} Discord lets me "
                    "upload here, so I cannot send it. The nightly snapshots are still kept on the bot's "
                    "host; the server owner can see them with `/backup list`.")
            return copy.read_bytes()

        return DownloadCopy(filename, await self._tenants.download(guild_id, filename, read))

    # -- snapshots ------------------------------------------------------------------------------

    async def take_snapshot(self, guild_id: int) -> Snapshot:
        """A snapshot in tenants/backups/<guild>/, then the oldest beyond `backup_keep` are deleted."""
        guild_id = parse_guild_id(guild_id)
        written = await self._tenants.backup(guild_id, moment=self._clock())
        name = parse_snapshot_file(guild_id, written.name)
        assert name is not None, "paths.backup names are snapshot names"
        taken = Snapshot(name.id, name.taken_at, name.kind, written, written.stat().st_size)
        await self.prune(guild_id)
        return taken

    async def snapshot_all(self) -> int:
        """The nightly pass: a snapshot of every live server, then `remove_expired`; returns how many
        snapshots were taken.

        One server failing (a damaged file) is logged and does not stop the others.
        """
        taken = 0
        for guild_id in await asyncio.to_thread(self._tenants.guild_ids):
            try:
                await self.take_snapshot(guild_id)
            except Exception:
                log.exception("guild %s: nightly snapshot failed", guild_id)
            else:
                taken += 1
        log.info("nightly snapshots: %d server(s)", taken)
        await self.remove_expired()
        return taken

    async def remove_expired(self) -> ExpiredData:
        """Part of the nightly pass: delete every archive past the archive retention, and every
        snapshot of a server with no live file and no archive within it (the bot left it longer ago);
        a server with a live file keeps its snapshots. One log line per server, then a summary;
        returns the totals.

        Only the running bot deletes here: it holds the tenants lock, so the CLI commands that move
        files (restore, archive) refuse meanwhile, and `tenants backup` needs a live file. Each server
        is handled under its lock in the tenant manager, so a re-add cannot bring a file back midway.
        """
        retention = self._tenants.archive_retention
        if retention is None:
            return ExpiredData()
        archives: list[Path] = []
        snapshots = servers = failed = 0
        for guild_id in await asyncio.to_thread(self._may_have_expired):
            try:
                removed = await self._tenants.remove_expired(guild_id, self._remove_all_snapshots)
            except Exception:
                failed += 1
                log.exception("guild %s: deleting data past the archive retention failed", guild_id)
                continue
            if removed.archives or removed.copies:
                servers += 1
                archives += removed.archives
                snapshots += removed.copies
                log.info("guild %s: past the %d-day archive retention: deleted %d archive(s) and %d snapshot(s)",
                         guild_id, retention.days, len(removed.archives), removed.copies)
        log.info("archive retention (%d days): deleted %d archive(s) and %d snapshot(s) of %d server(s); "
                 "%d failed", retention.days, len(archives), snapshots, servers, failed)
        return ExpiredData(tuple(archives), snapshots)

    async def snapshots(self, guild_id: int) -> list[Snapshot]:
        """The server's snapshots, newest first."""
        guild_id = parse_guild_id(guild_id)
        return await asyncio.to_thread(self._list_snapshots, guild_id)

    async def prune(self, guild_id: int, *, keep: int | None = None,
                    kinds: Collection[str] = SNAPSHOT_KINDS) -> list[Snapshot]:
        """Delete snapshots of these kinds beyond `keep` (by default the server's `backup_keep`) of each;
        returns the deleted ones."""
        if keep is None:
            keep = (await self._settings.get(guild_id)).backup_keep
        snapshots = [snapshot for snapshot in await self.snapshots(guild_id) if snapshot.kind in kinds]
        doomed = beyond_retention(snapshots, keep)
        for snapshot in doomed:
            await asyncio.to_thread(remove_database_files, snapshot.path)
        return doomed

    async def restore(self, guild_id: int, snapshot_id: str, *, member_since: MemberSince | None = None) -> Restored:
        """Replace the server's data with one of its snapshots; the data replaced is kept as a snapshot.
        `member_since` (needs the server's whole member list): the snapshot's rows of everyone who has
        not been a member since it was taken are purged from it as it goes live, before anything is
        carried into it from the data it replaces, and under the server's lock, so a member leaving
        or coming back meanwhile is not missed."""
        guild_id = parse_guild_id(guild_id)
        wanted = parse_snapshot_id(snapshot_id)
        found = None if wanted is None else next(
            (s for s in await self.snapshots(guild_id) if s.id == wanted.id), None)
        if found is None:
            raise UserInputError(f"There is no snapshot `{quoted(snapshot_id)}`; "
                                 "`/backup list` shows the ids.")
        # Pruned as the server had it: the restored data may hold a smaller one, under which the
        # snapshots newer than the one restored (and that one) would go at once.
        keep_before = await self._backup_keep_if_readable(guild_id)

        taken_at = found.taken_at

        async def purge_ended_memberships(guild_id: int, staged: aiosqlite.Connection, _replaced: Path) -> None:
            assert member_since is not None
            ended = sorted(user_id for user_id in await self._member_data.named_in(staged)
                           if not member_since(user_id, taken_at))
            for user_id in ended:
                await self._member_data.forget(guild_id, user_id)
            purged = await self._member_data.purge_rows(staged, guild_id, ended)
            if purged.user_ids:
                log.info("guild %s: the restored data loses the rows of %d member(s) who left since it was taken "
                         "(%d rows)", guild_id, len(purged.user_ids), purged.rows_changed)

        try:
            await self._tenants.restore(guild_id, found.path,
                                      first=purge_ended_memberships if member_since is not None else None)
        except RestoreRefused as error:
            log.error("guild %s: snapshot %s refused: %s", guild_id, found.id, error)
            raise UserInputError(f"Snapshot `{found.id}` cannot be restored: it failed the safety checks. "
                                 "Nothing was changed; the details are in the bot's log.") from None
        except ReplacedDataUnreadable as error:
            log.error("%s", error)
            raise UserInputError(
                "Nothing was restored: this server's current data cannot be read (the file is damaged), so I "
                "cannot tell who had their data erased after that snapshot was taken, and restoring it could "
                "bring their data back. The bot's operator can move the damaged file away (`malabot tenants "
                f"archive {guild_id}`, with the bot stopped); then restore again.") from None
        keep_now = (await self._settings.get(guild_id)).backup_keep
        await self.prune(guild_id, keep=keep_before or keep_now, kinds=[BEFORE_RESTORE])  # the copy just made
        return Restored(found, keep_before, keep_now)

    async def _backup_keep_if_readable(self, guild_id: int) -> int | None:
        """The server's backup_keep now; None when its data cannot be read (the damage a restore is
        for: the restore itself then says what is wrong)."""
        try:
            return (await self._settings.get(guild_id)).backup_keep
        except TenantError:
            return None

    def _may_have_expired(self) -> list[int]:
        """Guilds with an archive, or with snapshots but no live file: the others have nothing that
        expires."""
        paths = self._tenants.paths
        live = set(paths.live_guild_ids())
        return sorted(set(paths.archived_guild_ids()) | (set(paths.backed_up_guild_ids()) - live))

    def _remove_all_snapshots(self, guild_id: int) -> int:
        """Delete every snapshot of the guild (and what crashed backups left); the folder goes too
        unless it holds other files (an operator's). Returns how many snapshots were deleted."""
        snapshots = self._list_snapshots(guild_id)
        for snapshot in snapshots:
            remove_database_files(snapshot.path)
        folder = self._tenants.paths.backups_dir / str(guild_id)
        files.remove_backup_leftovers(folder, guild_id)
        with contextlib.suppress(OSError):  # not empty: the other files stay, and so does the folder
            folder.rmdir()
        return len(snapshots)

    def _list_snapshots(self, guild_id: int) -> list[Snapshot]:
        folder = self._tenants.paths.backups_dir / str(guild_id)
        if not folder.is_dir():
            return []
        found = []
        for path in folder.iterdir():
            name = parse_snapshot_file(guild_id, path.name)
            if name is None or not path.is_file():
                continue
            try:
                size = path.stat().st_size
            except FileNotFoundError:  # pruned meanwhile
                continue
            found.append(Snapshot(name.id, name.taken_at, name.kind, path, size))
        return newest_first(found)
