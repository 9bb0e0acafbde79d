"""`/backup create|list|restore`: the server's data file for its admins, and its nightly snapshots.

`create` (Manage Server) sends a consistent copy of the server's file as an ephemeral attachment.
`list` and `restore` work on the snapshots kept on the bot's host (one a night at 03:30 UTC, the
newest `backup_keep` kept) and are for the server owner only: a restore replaces every row.
"""

from __future__ import annotations

import io
import logging
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

import discord

from malabot.bot import explain_failure
from malabot.cogs import levelups
from malabot.cogs.admin_notices import tell_admin_else_mod_log
from malabot.cogs.posting import NO_PINGS
from malabot.commands import (
    admin_group,
    answer,
    defer,
    fit_lines,
    guild_id_of,
    is_server_owner,
    owner_only,
    upload_limit,
)
from malabot.errors import UserInputError
from malabot.features.backups.job import SNAPSHOT_HOUR_UTC, SNAPSHOT_MINUTE_UTC, nightly_snapshot_job
from malabot.features.backups.rules import Snapshot, size_text, smaller_retention_notice
from malabot.member_list_loading import MEMBER_LIST_WAIT_SECONDS
from malabot.member_lists import complete_member_list
from malabot.scheduling import add_job
from malabot.texts import counted

if TYPE_CHECKING:
    from malabot.bot import MalaBot

log = logging.getLogger(__name__)

OWNER_ONLY = "Only the server owner can list or restore snapshots."
# Discord refuses an embed whose description is longer than this.
EMBED_DESCRIPTION_LIMIT = 4096


def snapshot_line(snapshot: Snapshot) -> str:
    taken = snapshot.taken_at.strftime("%Y-%m-%d %H:%M UTC")
    marker = " (before a restore)" if snapshot.kind == "before restore" else ""
    return f"`{snapshot.id}` · {taken}{marker} · {size_text(snapshot.size)}"


LIST_LOADING = ("Nothing was restored: this server's member list is still loading (after a restart or an "
                "outage), and the restore needs it. Try again in a minute.")


def member_since(guild: discord.Guild, user_id: int, moment: datetime) -> bool:
    """Whether the user has been a member without a break since `moment` (Discord's join time of the
    membership now), by the bot's member list; UserInputError when that list is not complete now (an
    outage empties it): the restore then installs nothing. The bot itself counts as a member all along:
    its removal archives the server's data, it purges nothing."""
    if not guild.chunked or guild.unavailable:
        raise UserInputError(LIST_LOADING)
    member = guild.get_member(user_id)
    if member is not None and member == guild.me:
        return True
    return member is not None and (member.joined_at is None or member.joined_at <= moment)


class BackupCog(discord.Cog):
    backup = admin_group("backup", "Backups of this server's data", manage_guild=True)

    def __init__(self, bot: MalaBot) -> None:
        self.bot = bot
        self.backups = bot.services.backups

    @discord.Cog.listener()
    async def on_ready(self) -> None:
        # Like the birthday pass: scheduled once every guild's file is open (again on a re-identify,
        # which replaces the job).
        await self.bot.guilds_opened.wait()
        add_job(self.bot.services.scheduler, nightly_snapshot_job(self.backups))

    async def _snapshot_choices(self, ctx: discord.AutocompleteContext) -> list[discord.OptionChoice]:
        interaction = ctx.interaction
        if interaction.guild is None or not is_server_owner(interaction.guild, interaction.user):
            return []
        typed = (ctx.value or "").strip()
        found = await self.backups.snapshots(interaction.guild.id)
        return [discord.OptionChoice(snapshot_line(s)[:100], s.id) for s in found if typed in s.id][:25]

    @backup.command(name="create", description="Get a copy of this server's data file")
    async def create(self, ctx: discord.ApplicationContext) -> None:
        guild_id = guild_id_of(ctx)
        await defer(ctx, ephemeral=True)  # a large file takes a moment to copy
        copy = await self.backups.download_copy(guild_id, upload_limit(ctx))
        await answer(ctx, f"A copy of this server's data, taken now ({size_text(len(copy.data))}). "
                          "Keep it private: it holds every member's data on this server.",
                     ephemeral=True, file=discord.File(io.BytesIO(copy.data), filename=copy.filename))

    @backup.command(name="list", description="List the nightly snapshots of this server (owner only)",
                    checks=[owner_only(OWNER_ONLY)])
    async def list_(self, ctx: discord.ApplicationContext) -> None:
        found = await self.backups.snapshots(guild_id_of(ctx))
        schedule = f"{SNAPSHOT_HOUR_UTC:02d}:{SNAPSHOT_MINUTE_UTC:02d} UTC"
        if not found:
            await answer(ctx, f"No snapshots yet; one is taken every night at {schedule}.", ephemeral=True)
            return
        # Up to 2 x 60 kept snapshots do not fit: whole lines only, and say how many older ones are left out.
        listing = fit_lines([snapshot_line(s) for s in found],
                            "… and {count} older; type part of an id in /backup restore.",
                            limit=EMBED_DESCRIPTION_LIMIT)
        embed = discord.Embed(title="Snapshots", description=listing)
        embed.set_footer(text=f"Newest first. One is taken every night at {schedule}. "
                              "Restore one with /backup restore id.")
        await answer(ctx, embed=embed, ephemeral=True)

    @backup.command(name="restore", description="Replace this server's data with a snapshot (owner only)",
                    checks=[owner_only(OWNER_ONLY)])
    @discord.option("id", str, parameter_name="snapshot_id", description="The snapshot's id from /backup list",
                    autocomplete=_snapshot_choices)
    async def restore(self, ctx: discord.ApplicationContext, snapshot_id: str) -> None:
        guild_id = guild_id_of(ctx)
        await defer(ctx, ephemeral=True)
        guild = ctx.guild
        # The snapshot names members who have left since, or left and came back: their rows must not
        # come back, and only the whole member list tells who they are.
        if guild is None or not await complete_member_list(guild, within=MEMBER_LIST_WAIT_SECONDS):
            raise UserInputError(LIST_LOADING)
        restored = await self.backups.restore(guild_id, snapshot_id, member_since=partial(member_since, guild))
        snapshot = restored.snapshot
        log.info("guild %s: owner %s restored snapshot %s", guild_id, ctx.author.id, snapshot.id)
        notice = smaller_retention_notice(restored.keep_before or restored.keep_now, restored.keep_now)
        try:
            await answer(ctx, f"Restored snapshot `{snapshot.id}` "
                              f"(taken {snapshot.taken_at.strftime('%Y-%m-%d %H:%M UTC')}). The data it replaced is "
                              f"kept as a snapshot marked “before a restore” in `/backup list`.{notice}",
                         ephemeral=True)
        finally:  # the restore is done, whether or not Discord took the answer
            await self._level_roles_follow(ctx, guild)  # levels went back with the XP: so do the level roles

    async def _level_roles_follow(self, ctx: discord.ApplicationContext, guild: discord.Guild) -> None:
        try:
            outcome = await levelups.sync_everyones_roles(self.bot.services, guild)
        except Exception as error:  # the restore is done: the owner must not be told to try it again
            reason = explain_failure(error, "level roles after /backup restore", guild.id,
                                     busy="the server's file stayed busy", otherwise="an error, logged")
            lines = [f"The restore is done, but bringing level roles in line with it failed ({reason}); "
                     "each member's roles follow at their next level change."]
            problems: tuple[str, ...] = (lines[0],)
        else:
            changed = len(outcome.roles_added) + len(outcome.roles_removed)
            if not changed and not outcome.problems:
                return
            lines = [f"Level roles now follow the restored XP: {counted(changed, 'role change')}."]
            lines += [f"⚠️ {problem}" for problem in outcome.problems]
            problems = outcome.problems
        # Past the interaction's 15 minutes, say: what the owner had to fix goes to the mod log.
        await tell_admin_else_mod_log(
            self.bot.admin_notices, guild,
            lambda: ctx.followup.send(fit_lines(lines, "… and {count} more problems with level roles."),
                                      ephemeral=True, allowed_mentions=NO_PINGS),
            problems, about="Level roles after a restore")
