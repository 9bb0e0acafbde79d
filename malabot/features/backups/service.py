"""Backups without Discord: copies to download, nightly snapshots with retention, restore of a snapshot.

Every copy is made by the tenant manager (`VACUUM INTO` after flushing buffers), so it is consistent
while the bot keeps writing, and every restore goes through its checks (integrity, identity, schema)
and keeps the replaced data as a "before restore" snapshot.

What a cog calls:
    /backup create          -> download_copy(guild_id, max_bytes) -> DownloadCopy  (UserInputError: too big)
    /backup list            -> snapshots(guild_id) -> list[Snapshot], newest first
    /backup restore id      -> restore(guild_id, snapshot_id) -> Snapshot
    nightly job             -> snapshot_all() -> int
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from dataclasses import dataclass

from malabot.clock import Clock, utc_now
from malabot.errors import RestoreRefused, UserInputError, quoted
from malabot.features.backups.rules import (
    Snapshot,
    beyond_retention,
    newest_first,
    parse_snapshot_file,
    parse_snapshot_id,
    size_text,
)
from malabot.features.settings.service import SettingsService
from malabot.tenancy import backup as files
from malabot.tenancy.manager import TenantManager
from malabot.tenancy.opening import remove_database_files
from malabot.tenancy.paths import parse_guild_id, utc_stamp

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DownloadCopy:
    filename: str
    data: bytes


class BackupService:
    def __init__(self, tenants: TenantManager, settings: SettingsService, *, clock: Clock = utc_now) -> None:
        self._tenants = tenants
        self._settings = settings
        self._clock = clock

    # -- on demand ------------------------------------------------------------------------------

    async def download_copy(self, guild_id: int, max_bytes: int) -> DownloadCopy:
        """A consistent copy of the server's file as bytes; UserInputError when it exceeds `max_bytes`."""
        guild_id = parse_guild_id(guild_id)
        filename = f"malabot-{guild_id}-{utc_stamp(self._clock())}.sqlite3"
        folder = await asyncio.to_thread(files.download_folder, self._tenants.paths)
        try:
            copy = await self._tenants.backup(guild_id, folder / filename)
            size = copy.stat().st_size
            if size > max_bytes:
                raise UserInputError(
                    f"The backup is {size_text(size)}, more than the {size_text(max_bytes)} Discord lets me "
                    "upload here, so I cannot send it. The nightly snapshots are still kept on the bot's "
                    "host; the server owner can see them with `/backup list`.")
            data = await asyncio.to_thread(copy.read_bytes)
        finally:
            await asyncio.to_thread(shutil.rmtree, folder, True)
        return DownloadCopy(filename, data)

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
        """The nightly pass: a snapshot of every live server; returns how many were taken.

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
        return taken

    async def snapshots(self, guild_id: int) -> list[Snapshot]:
        """The server's snapshots, newest first."""
        guild_id = parse_guild_id(guild_id)
        return await asyncio.to_thread(self._list_snapshots, guild_id)

    async def prune(self, guild_id: int) -> list[Snapshot]:
        """Delete snapshots beyond the server's `backup_keep` (per kind); returns the deleted ones."""
        keep = (await self._settings.get(guild_id)).backup_keep
        doomed = beyond_retention(await self.snapshots(guild_id), keep)
        for snapshot in doomed:
            await asyncio.to_thread(remove_database_files, snapshot.path)
        return doomed

    async def restore(self, guild_id: int, snapshot_id: str) -> Snapshot:
        """Replace the server's data with one of its snapshots; the data replaced is kept as a snapshot."""
        guild_id = parse_guild_id(guild_id)
        wanted = parse_snapshot_id(snapshot_id)
        found = None if wanted is None else next(
            (s for s in await self.snapshots(guild_id) if s.id == wanted.id), None)
        if found is None:
            raise UserInputError(f"There is no snapshot `{quoted(snapshot_id)}`; "
                                 "`/backup list` shows the ids.")
        try:
            await self._tenants.restore(guild_id, found.path)
        except RestoreRefused as error:
            log.error("guild %s: snapshot %s refused: %s", guild_id, found.id, error)
            raise UserInputError(f"Snapshot `{found.id}` cannot be restored: it failed the safety checks. "
                                 "Nothing was changed; the details are in the bot's log.") from None
        await self.prune(guild_id)
        return found

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
