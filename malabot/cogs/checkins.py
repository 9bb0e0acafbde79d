"""Daily check-ins: `/checkin` (check in, or show the streak leaderboard) and `/streak [member]`.

Discord does not let a command that has subcommands be used bare, and `/checkin` must stay the way to
check in. So the leaderboard is an option of the same command rather than a subcommand:
`/checkin` checks in; `/checkin leaderboard:<current|best> [page]` shows the board and checks nobody in.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

import discord

from malabot.cogs import levelups
from malabot.cogs.boards import board_embed, empty_page_text, member_target, server_members
from malabot.cogs.posting import NO_PINGS, plain_name
from malabot.commands import answer, answers_publicly, guild_id_of
from malabot.features.checkins.models import CheckinResult, StreakInfo
from malabot.features.checkins.service import BoardKind
from malabot.features.xp.models import LeaderboardEntry
from malabot.texts import plural

if TYPE_CHECKING:
    from malabot.bot import MalaBot

GUILD_ONLY = {discord.InteractionContextType.guild}
BOARD_TITLES: dict[BoardKind, str] = {"current": "Current check-in streaks", "best": "Best check-in streaks"}


def days(count: int) -> str:
    return f"{count:,} {plural(count, 'day')}"


def day_name(day: date) -> str:
    return f"{day:%A} {day.day} {day:%B}"


def checkin_text(result: CheckinResult) -> str:
    streak = f"streak {days(result.streak)}"
    if result.best_streak > result.streak:
        streak += f" (best {days(result.best_streak)})"
    return f"✅ Checked in for {day_name(result.day)}: +{result.xp_awarded:,} XP, {streak}."


def streak_text(name: str, info: StreakInfo) -> str:
    if info.total_checkins == 0:
        return f"**{name}** has never checked in. `/checkin` starts a streak."
    today = "checked in today" if info.checked_in_today else "not checked in yet today"
    return (f"🔥 **{name}**: current streak {days(info.current_streak)}, best {days(info.best_streak)}, "
            f"{info.total_checkins:,} {plural(info.total_checkins, 'check-in')} in all ({today}).")


def streak_line(entry: LeaderboardEntry) -> str:
    return days(entry.value)


class CheckinCog(discord.Cog):
    def __init__(self, bot: MalaBot) -> None:
        self.bot = bot
        self.services = bot.services

    @discord.slash_command(name="checkin", description="Check in for today, or show the streak leaderboard",
                           contexts=GUILD_ONLY)
    @discord.option("leaderboard", str, description="Show this streak leaderboard instead of checking in",
                    required=False, default=None,
                    choices=[discord.OptionChoice("current streaks", "current"),
                             discord.OptionChoice("best streaks", "best")])
    @discord.option("page", int, description="Leaderboard page (1 is the top)", required=False, default=None,
                    min_value=1)
    @answers_publicly
    async def checkin(self, ctx: discord.ApplicationContext, leaderboard: str | None, page: int | None) -> None:
        if leaderboard is None and page is None:
            await self._check_in(ctx)
        else:
            await self._board(ctx, "best" if leaderboard == "best" else "current", 1 if page is None else page)

    @discord.slash_command(name="streak", description="A member's check-in streak", contexts=GUILD_ONLY)
    @discord.option("member", discord.Member, description="Whose streak (yours by default)", required=False,
                    default=None)
    @answers_publicly
    async def streak(self, ctx: discord.ApplicationContext, member: discord.Member | None) -> None:
        target = member_target(ctx, member)
        info = await self.services.checkins.streak(guild_id_of(ctx), target.id)
        await answer(ctx, streak_text(plain_name(target), info), allowed_mentions=NO_PINGS)

    async def _check_in(self, ctx: discord.ApplicationContext) -> None:
        guild_id = guild_id_of(ctx)
        result = await self.services.checkins.check_in(guild_id, ctx.author.id)
        try:
            await answer(ctx, checkin_text(result))
        finally:  # the reward is stored, whether or not Discord took the answer
            if ctx.guild is not None:
                # The reward may level the member up: announce it and bring their level roles in line.
                outcome = await levelups.apply_after_stored_work(self.services, ctx.guild, result.level_change,
                                                                 channel_id=ctx.channel_id)
                await self.bot.admin_notices.tell(ctx.guild, outcome.problems)

    async def _board(self, ctx: discord.ApplicationContext, kind: BoardKind, page: int) -> None:
        board = await self.services.checkins.leaderboard(guild_id_of(ctx), page, by=kind,
                                                         is_member=server_members(ctx.guild))
        if not board.entries:
            await answer(ctx, empty_page_text(board, "Nobody has a check-in streak yet."), ephemeral=True)
            return
        embed = board_embed(BOARD_TITLES[kind], board, streak_line,
                            next_hint=f"/checkin leaderboard:{kind} page:{{page}}")
        await answer(ctx, embed=embed, allowed_mentions=NO_PINGS)
