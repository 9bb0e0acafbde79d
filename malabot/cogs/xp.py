"""XP for members: chat earns XP (the listener), `/rank [member]` and `/leaderboard [page]`."""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import TYPE_CHECKING

import discord

from malabot.cogs import levelups
from malabot.cogs.boards import board_embed, empty_page_text, member_target, server_members
from malabot.cogs.posting import NO_PINGS, plain_name
from malabot.commands import answer, answers_publicly, guild_id_of
from malabot.features.xp.models import LeaderboardEntry, LevelChange, Rank

if TYPE_CHECKING:
    from malabot.bot import MalaBot

log = logging.getLogger(__name__)

# The name of a task posting a level-up and syncing its roles: a shutdown lets it finish, as a handler.
LEVEL_UP_TASK = "xp-level-up"

GUILD_ONLY = {discord.InteractionContextType.guild}

# Messages people write (not joins, pins, boosts or other system messages) earn XP.
CHAT_MESSAGE_TYPES = frozenset({discord.MessageType.default, discord.MessageType.reply})


def xp_channel_id(channel: object) -> int:
    """The channel whose no-XP setting applies: a thread follows its parent channel."""
    if isinstance(channel, discord.Thread):
        return channel.parent_id
    return int(getattr(channel, "id", 0))


def rank_text(name: str, rank: Rank) -> str:
    place = f"rank #{rank.position:,}" if rank.position is not None else "not ranked yet"
    if rank.next_level is None:
        return (f"**{name}** — level {rank.level}, the top of this server's level curve, {place}\n"
                f"{rank.total_xp:,} XP in total")
    return (f"**{name}** — level {rank.level}, {place}\n"
            f"{rank.xp_into_level:,} / {rank.xp_for_level:,} XP into level {rank.level} · "
            f"{rank.xp_to_next:,} XP to level {rank.next_level} · {rank.total_xp:,} XP in total")


def leaderboard_line(entry: LeaderboardEntry) -> str:
    return f"level {entry.level} · {entry.value:,} XP"


class XpCog(discord.Cog):
    def __init__(self, bot: MalaBot) -> None:
        self.bot = bot
        self.services = bot.services
        self._level_ups: set[asyncio.Task[None]] = set()  # referenced until done (asyncio keeps weak refs)

    def cog_unload(self) -> None:
        for task in self._level_ups:
            task.cancel()

    @discord.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        guild = message.guild
        if guild is None or message.type not in CHAT_MESSAGE_TYPES:
            return
        author = message.author
        role_ids = [role.id for role in author.roles] if isinstance(author, discord.Member) else []
        award = await self.services.xp.record_message(
            guild.id, author.id, xp_channel_id(message.channel), role_ids,
            is_bot=author.bot, is_webhook=message.webhook_id is not None)
        if award is not None:
            # Not awaited: a member's first message may wait for their stored total, and this event
            # (with its message) should not stay in memory meanwhile.
            award.when_known(partial(self._level_changed, guild, message.channel.id))

    def _level_changed(self, guild: discord.Guild, channel_id: int, change: LevelChange) -> None:
        # The last flush at shutdown can settle awards after the bot has disconnected: nothing to post.
        if change.leveled_up and not self.bot.is_closed():
            task = asyncio.create_task(self._level_up(guild, channel_id, change), name=LEVEL_UP_TASK)
            self._level_ups.add(task)
            task.add_done_callback(self._level_ups.discard)

    async def _level_up(self, guild: discord.Guild, channel_id: int, change: LevelChange) -> None:
        try:
            outcome = await levelups.apply(self.services, guild, change, channel_id=channel_id)
        except Exception:
            log.exception("guild %s: level-up of member %s failed", guild.id, change.user_id)
            return
        await self.bot.admin_notices.tell(guild, outcome.problems)

    @discord.Cog.listener()
    async def on_member_update(self, before: discord.Member, after: discord.Member) -> None:
        # Discord's word on the member's roles: the level-role changes it shows are confirmed, so a
        # moderator who takes one off by hand afterwards is seen by the next level-role sync.
        self.services.role_ledger.member_updated(after.guild.id, after.id, (role.id for role in after.roles))

    @discord.Cog.listener()
    async def on_member_passed_screening(self, member: discord.Member) -> None:
        # Level roles wait for a member in Membership Screening (see levelups): they accepted the rules.
        try:
            outcome = await levelups.sync_roles(self.services, member.guild, member.id)
        except Exception:
            log.exception("guild %s: level roles of member %s after screening failed", member.guild.id, member.id)
            return
        await self.bot.admin_notices.tell(member.guild, outcome.problems)

    @discord.slash_command(name="rank", description="Level, XP and server rank of a member",
                           contexts=GUILD_ONLY)
    @discord.option("member", discord.Member, description="Whose rank (you by default)", required=False,
                    default=None)
    @answers_publicly
    async def rank(self, ctx: discord.ApplicationContext, member: discord.Member | None) -> None:
        target = member_target(ctx, member)
        rank = await self.services.xp.rank(guild_id_of(ctx), target.id)
        await answer(ctx, rank_text(plain_name(target), rank), allowed_mentions=NO_PINGS)

    @discord.slash_command(name="leaderboard", description="The server's members by XP, 10 per page",
                           contexts=GUILD_ONLY)
    @discord.option("page", int, description="Page number (1 is the top)", required=False, default=1,
                    min_value=1)
    @answers_publicly
    async def leaderboard(self, ctx: discord.ApplicationContext, page: int) -> None:
        board = await self.services.xp.leaderboard(guild_id_of(ctx), page, is_member=server_members(ctx.guild))
        if not board.entries:
            await answer(ctx, empty_page_text(board, "Nobody has earned XP here yet."), ephemeral=True)
            return
        title = f"XP leaderboard — {ctx.guild.name}" if ctx.guild else "XP leaderboard"
        embed = board_embed(title, board, leaderboard_line, next_hint="/leaderboard page:{page}")
        await answer(ctx, embed=embed, allowed_mentions=NO_PINGS)
