"""`/mydata export` and `/mydata delete`: a member's own data in the server they ask from.

The confirmation of a delete is the cog's job (a button); this service erases when called.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import sqlite3
from dataclasses import dataclass, replace
from pathlib import Path

import aiosqlite

from malabot.clock import Clock
from malabot.errors import ReplacedDataUnreadable, UserInputError
from malabot.features.backups.rules import size_text
from malabot.features.mydata import repository
from malabot.features.mydata.export import export_filename, export_json
from malabot.member_data import MemberData, PurgeReport
from malabot.tenancy.manager import TenantManager

log = logging.getLogger(__name__)

# What the member is told before they confirm a delete.
DELETE_CONFIRMATION = (
    "This erases everything this bot stores about you in this server (XP, check-ins, birthday, "
    "verification, …). Moderation cases about you are kept, and so is a note that you asked, so that "
    "restoring an older backup erases you again. This cannot be undone."
)


@dataclass(frozen=True)
class ExportFile:
    filename: str
    content: bytes
    row_count: int
    compressed: bool = False  # gzip: the JSON alone was more than Discord accepts


def gzipped(exported: ExportFile) -> ExportFile:
    # mtime=0: no time in the gzip header, so the same rows still give the same bytes.
    return replace(exported, filename=f"{exported.filename}.gz", content=gzip.compress(exported.content, mtime=0),
                   compressed=True)


class MyDataService:
    def __init__(self, tenants: TenantManager, member_data: MemberData, clock: Clock) -> None:
        self._tenants = tenants
        self._member_data = member_data
        self._clock = clock
        tenants.add_before_install(self._carry_erasures)

    async def export(self, guild_id: int, user_id: int, max_bytes: int | None = None) -> ExportFile:
        """Every row about the member in this server, as a JSON file. When it is over `max_bytes` (what
        Discord lets the bot upload), gzip-compressed; UserInputError saying so if even that is."""
        tables = await self._member_data.export(guild_id, user_id)
        now = self._clock()
        exported = ExportFile(
            filename=export_filename(guild_id, user_id, now),
            # Megabytes for a member with tens of thousands of rows: not on the event loop.
            content=await asyncio.to_thread(export_json, guild_id, user_id, now, tables),
            row_count=sum(len(rows) for rows in tables.values()),
        )
        if max_bytes is None or len(exported.content) <= max_bytes:
            return exported
        packed = await asyncio.to_thread(gzipped, exported)
        if len(packed.content) > max_bytes:
            raise UserInputError(
                f"Your data in this server is {size_text(len(exported.content))} "
                f"({size_text(len(packed.content))} compressed), more than the {size_text(max_bytes)} Discord "
                "lets me upload here, so I cannot send it. Please ask this server's admins for a copy.")
        return packed

    async def delete(self, guild_id: int, user_id: int) -> PurgeReport:
        """Erase the member's data in this server (moderation cases about them stay), in one transaction
        with the record that they asked (so a restore of an older snapshot erases them again)."""
        erased = {user_id: repository.erased_at(self._clock())}
        return await self._member_data.purge(guild_id, user_id,
                                             also=lambda conn: repository.record_erasures(conn, erased))

    async def _carry_erasures(self, guild_id: int, staged: aiosqlite.Connection, replaced: Path) -> None:
        """Before a restored file goes live: erase in it everyone whose erasure the replaced file
        records and the restored one does not (the backup was taken before they asked), and carry
        the records over. Runs in the restore's transaction on the new file: a failure installs nothing."""
        try:
            previous = await asyncio.to_thread(repository.erasures_in_file, replaced)
        except sqlite3.DatabaseError as error:  # a damaged file: the very case a restore is for
            raise ReplacedDataUnreadable(
                f"guild {guild_id}: nothing restored: the data it would replace ({replaced}) cannot be read "
                f"({error}), so members who erased their data there cannot be erased again in the "
                f"restored data; to restore without that, move it away first "
                f"(malabot tenants archive {guild_id})") from error
        again = repository.newer_erasures(previous, await repository.erasures(staged))
        if not again:
            return
        for user_id in again:
            await self._member_data.forget(guild_id, user_id)
        purged = await self._member_data.purge_rows(staged, guild_id, sorted(again))
        await repository.record_erasures(staged, again)
        log.info("guild %s: the restored data is erased again for %d member(s) who had asked (%d rows)",
                 guild_id, len(again), purged.rows_changed)
