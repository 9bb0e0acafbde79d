"""Guild and member lifecycle: create files on join, purge a member who leaves, archive on removal.

A member who leaves while the bot is offline sends no event the bot could hear. So once a server's
member list is in (after a start, server by server: member_list_loading.py; after the bot joins it;
after an outage, at start or one that began while the bot ran, since nobody's leave is sent
meanwhile), everyone named in its file who is no longer a member is purged as if they had just
left. Then `on_member_list_complete(guild)` is dispatched, for other cogs to catch up from its list
on what they missed meanwhile. Likewise a server that removed the bot while it was offline: READY
lists every server the bot is in, so the file of any other is archived at start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import discord

from malabot.cogs.boards import server_members
from malabot.departures import MemberPresence
from malabot.errors import TenantArchived
from malabot.member_lists import forget_members, forget_requests_of_a_lost_session, member_presence

if TYPE_CHECKING:
    from malabot.bot import MalaBot
    from malabot.member_data import MemberData
    from malabot.tenancy.manager import TenantManager

log = logging.getLogger(__name__)

def _progress_step(total: int) -> int:
    """Log progress about ten times over a long run, and not at all over a short one."""
    return max(total // 10, 100)


@dataclass
class DepartedTally:
    """What purges of members who left unheard did over several servers, for one summary line."""

    servers: set[int] = field(default_factory=set)   # those meant to be checked
    checked: set[int] = field(default_factory=set)
    purged_members: int = 0
    purged_in: int = 0
    failed: int = 0

    def summary(self) -> str:
        servers = len(self.servers | self.checked)  # a server joined meanwhile is checked too
        return (f"members who left while the bot was offline: {self.purged_members} purged in {self.purged_in} "
                f"of {servers} servers ({servers - len(self.checked)} skipped: member list not complete; "
                f"{self.failed} failed)")


async def purge_departed(member_data: MemberData, guilds: Sequence[discord.Guild],
                         tally: DepartedTally | None = None) -> DepartedTally:
    """Purge members named in a guild's file who are no longer its members (they left while the bot
    was offline, or a restore brought their rows back), in guilds whose member list is complete.
    Each server that had some says so; the counts are added to `tally` (a new one by default)."""
    tally = tally if tally is not None else DepartedTally(servers={guild.id for guild in guilds})
    step = _progress_step(len(guilds))
    for done, guild in enumerate(guilds, start=1):
        await _purge_departed_in(member_data, guild, tally)
        if done % step == 0 and done < len(guilds):
            log.info("checked %d of %d servers for members who left while the bot was offline", done,
                     len(guilds))
    return tally


async def _purge_departed_in(member_data: MemberData, guild: discord.Guild, tally: DepartedTally) -> None:
    is_member = server_members(guild)  # None until the list is complete (chunked): an
    if is_member is None:               # incomplete one would make members look departed
        return
    try:
        report = await member_data.purge_absent(guild.id, is_member)
    except TenantArchived:  # the bot was removed meanwhile: its data is archived, not ours
        log.debug("guild %s: archived before its departed members were purged", guild.id)
        return
    except Exception:  # one server's broken file must not keep the others' departed data
        tally.checked.add(guild.id)
        tally.failed += 1
        log.exception("guild %s: purging members who are no longer here failed; those it found "
                      "are retried until it works", guild.id)
        return
    tally.checked.add(guild.id)
    if report.user_ids:
        tally.purged_members += len(report.user_ids)
        tally.purged_in += 1
        log.info("guild %s: %d members no longer here had data, %d rows purged",
                 guild.id, len(report.user_ids), report.rows_changed)


async def archive_removed_while_offline(tenants: TenantManager, guilds: Sequence[discord.Guild]) -> None:
    """Archive the files of servers that are not among `guilds`, READY's list of every server the bot
    is in (those in an outage included): they removed the bot while it was offline. Should the bot
    be added back, the archive comes back with it (within the archive retention)."""
    present = {guild.id for guild in guilds}
    removed = sorted(set(await asyncio.to_thread(tenants.guild_ids)) - present)
    if not removed:
        return
    archived = 0
    step = _progress_step(len(removed))
    for done, guild_id in enumerate(removed, start=1):
        try:
            path = await tenants.archive(guild_id)
        except Exception:  # one server's file must not keep the others' from being archived
            log.exception("guild %s: archiving the data of a server that removed the bot failed", guild_id)
        else:
            if path is not None:  # None: no file by then
                archived += 1
                log.info("guild %s: bot removed while offline, data archived to %s", guild_id, path.name)
        if done % step == 0 and done < len(removed):
            log.info("archived %d of %d servers that removed the bot while it was offline", done, len(removed))
    log.info("servers that removed the bot while it was offline: %d of %d archived", archived, len(removed))


class Lifecycle(discord.Cog):
    def __init__(self, bot: MalaBot) -> None:
        self.bot = bot
        self.services = bot.services
        # From READY until on_ready's purge starts: py-cord reports every server available meanwhile
        # (before on_ready), and that purge covers them all, after their files are opened.
        self._ready_purge_pending = True
        # An owed purge runs only for members still gone: one may rejoin while the bot hears nothing.
        self.services.member_data.check_membership_with(self.member_presence)
        bot.member_lists.when_arrived(self.member_list_arrived)
        # The counts of this start's purges (later ones, after an outage say, add to it unread).
        self._start_tally = DepartedTally()

    async def member_presence(self, guild_id: int, user_ids: Sequence[int]) -> MemberPresence:
        return await member_presence(self.bot.get_guild(guild_id), user_ids)

    async def member_list_arrived(self, guild: discord.Guild) -> None:
        """Purge who left this guild unheard, then dispatch on_member_list_complete for the other cogs
        to catch up (unless the list is not complete after all: members came or went meanwhile)."""
        await _purge_departed_in(self.services.member_data, guild, self._start_tally)
        if server_members(guild) is not None:
            self.bot.dispatch("member_list_complete", guild)

    async def open_guild(self, guild_id: int) -> bool:
        """A guild the bot is (again) in: its file, else a recent archive brought back (the tenant
        manager does that on whatever reaches the guild first), else a new file.

        False when the bot has been removed since (a removal is dispatched at once, and may come
        while a join's handler waits): its removal archives the guild, or has."""
        if self.bot.get_guild(guild_id) is None:  # checked right before ensure(): nothing in between
            log.info("guild %s: the bot was removed again before its data was opened", guild_id)
            return False
        try:
            created = await self.services.tenants.ensure(guild_id)
        except TenantArchived:  # removed again while this waited for the file
            log.info("guild %s: the bot was removed again while its data was opened", guild_id)
            return False
        if created:
            log.info("guild %s: created its data file", guild_id)
        return True

    @discord.Cog.listener()
    async def on_ready(self) -> None:
        # Guilds joined while the bot was offline get their file now. One server's unusable file
        # (refused, never replaced) must not keep the others from the scheduled jobs and the purge.
        for guild in self.bot.guilds:
            try:
                await self.open_guild(guild.id)
            except Exception:
                log.exception("guild %s: cannot open its data file", guild.id)
        await archive_removed_while_offline(self.services.tenants, self.bot.guilds)
        self.bot.guilds_opened.set()
        self._ready_purge_pending = False  # before the purge: a server back while it runs is purged too
        # Each server's purge runs once its member list is in; a server in an outage waits for its return.
        self._start_tally = tally = DepartedTally(servers={guild.id for guild in self.bot.guilds})
        self.bot.member_lists.load(self.bot.guilds)
        await self.bot.member_lists.settled.wait()
        log.info(tally.summary())

    @discord.Cog.listener()
    async def on_connect(self) -> None:
        self._ready_purge_pending = True  # READY (a start or a new session): on_ready follows
        forget_requests_of_a_lost_session(self.bot)  # on_ready's loading asks for every list again
        self.bot.member_lists.new_session()

    @discord.Cog.listener()
    async def on_resumed(self) -> None:
        self.bot.member_lists.ask_again_after_resume()

    @discord.Cog.listener()
    async def on_guild_unavailable(self, guild: discord.Guild) -> None:
        # A member who leaves during the outage sends no event: the list that ends it must replace
        # the cached one, not be added to it, for the purge below to see who left.
        forget_members(guild)

    @discord.Cog.listener()
    async def on_guild_available(self, guild: discord.Guild) -> None:
        """A server back from an outage: its member list is asked for ahead of the others. Who left
        meanwhile, or before a start that found the server out, is purged once it is in."""
        if not self._ready_purge_pending:
            self.bot.member_lists.load_first(guild)

    @discord.Cog.listener()
    async def on_guild_join(self, guild: discord.Guild) -> None:
        if await self.open_guild(guild.id):  # may bring back an archive that names members gone since
            self.bot.member_lists.load_first(guild)

    @discord.Cog.listener()
    async def on_guild_remove(self, guild: discord.Guild) -> None:
        # py-cord sends outages (GUILD_DELETE with unavailable) to on_guild_unavailable instead.
        # Archived even with no file yet (a join still being handled): nothing may create one now.
        archived = await self.services.tenants.archive(guild.id)
        if archived is not None:
            log.info("guild %s: bot removed, data archived to %s", guild.id, archived.name)
        else:
            log.info("guild %s: bot removed; it had no data file yet", guild.id)

    @discord.Cog.listener()
    async def on_member_join(self, member: discord.Member) -> None:
        self.bot.member_lists.member_joined(member.guild.id, member.id)
        await self.services.member_data.member_joined(member.guild.id, member.id)

    @discord.Cog.listener()
    async def on_raw_member_remove(self, payload: discord.RawMemberRemoveEvent) -> None:
        # The raw event fires for every member, cached or not, so nobody's data is left behind.
        if self.bot.user is not None and payload.user.id == self.bot.user.id:
            return
        # Before any await: a member list that arrives next must find them (see member_list_loading).
        self.bot.member_lists.member_left(payload.guild_id, payload.user.id)
        self.services.role_ledger.member_left(payload.guild_id, payload.user.id)
        report = await self.services.member_data.member_left(payload.guild_id, payload.user.id)
        if report is not None:  # None: the purge failed and is retried (member_data logs it)
            log.info("guild %s: member left, %d rows purged", payload.guild_id, report.total)
