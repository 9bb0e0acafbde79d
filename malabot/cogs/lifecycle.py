"""Guild and member lifecycle: create files on join, purge a member who leaves, archive on removal."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

import discord

if TYPE_CHECKING:
    from malabot.bot import MalaBot

log = logging.getLogger(__name__)


class Lifecycle(discord.Cog):
    def __init__(self, bot: MalaBot) -> None:
        self.bot = bot
        self.services = bot.services

    async def open_guild(self, guild_id: int) -> None:
        """A guild the bot is (again) in: bring back a recent archive, else create its file."""
        retention = timedelta(days=self.services.settings.archive_retention_days)
        tenants = self.services.tenants
        if not tenants.exists(guild_id):
            restored = await tenants.restore_latest_archive(guild_id, retention)
            if restored is not None:
                log.info("guild %s: restored archive %s", guild_id, restored.name)
                return
        if await tenants.ensure(guild_id):
            log.info("guild %s: created its data file", guild_id)

    @discord.Cog.listener()
    async def on_ready(self) -> None:
        # Guilds joined while the bot was offline get their file now.
        for guild in self.bot.guilds:
            await self.open_guild(guild.id)
        self.bot.guilds_opened.set()

    @discord.Cog.listener()
    async def on_guild_join(self, guild: discord.Guild) -> None:
        await self.open_guild(guild.id)

    @discord.Cog.listener()
    async def on_guild_remove(self, guild: discord.Guild) -> None:
        # py-cord sends outages (GUILD_DELETE with unavailable) to on_guild_unavailable instead.
        if self.services.tenants.exists(guild.id):
            archived = await self.services.tenants.archive(guild.id)
            log.info("guild %s: bot removed, data archived to %s", guild.id, archived.name)

    @discord.Cog.listener()
    async def on_raw_member_remove(self, payload: discord.RawMemberRemoveEvent) -> None:
        # The raw event fires for every member, cached or not, so nobody's data is left behind.
        if self.bot.user is not None and payload.user.id == self.bot.user.id:
            return
        report = await self.services.member_data.purge(payload.guild_id, payload.user.id)
        log.info("guild %s: member left, %d rows purged", payload.guild_id, report.total)
