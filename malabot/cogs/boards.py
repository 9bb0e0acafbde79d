"""What the XP and check-in cogs share: the member an option names, and leaderboard pages as embeds."""

from __future__ import annotations

from collections.abc import Callable

import discord

from malabot.errors import UserInputError
from malabot.features.xp.models import LeaderboardEntry, LeaderboardPage


def member_target(ctx: discord.ApplicationContext, chosen: discord.Member | discord.User | None
                  ) -> discord.Member:
    """The member a command is about: the one chosen, else the invoker. A user who is not a member of
    this server, or a bot, is refused with a sentence (bots never earn XP or check in)."""
    target = chosen if chosen is not None else ctx.author
    if not isinstance(target, discord.Member):  # Discord resolves non-members as plain users
        raise UserInputError(f"{target.mention} is not a member of this server.")
    if target.bot:
        raise UserInputError("Bots do not earn XP or check in.")
    return target


def server_members(guild: discord.Guild | None) -> Callable[[int], bool] | None:
    """Who counts on a leaderboard: members in the bot's member cache. Until the cache holds every
    member (not chunked yet) everyone with a row counts, rather than hiding members."""
    if guild is None or not guild.chunked:
        return None
    return _cached_member_test(guild)


def _cached_member_test(guild: discord.Guild) -> Callable[[int], bool]:
    return lambda user_id: guild.get_member(user_id) is not None


def board_embed(title: str, page: LeaderboardPage, line: Callable[[LeaderboardEntry], str], *,
                next_hint: str) -> discord.Embed:
    """One leaderboard page: a line per entry, the page number, and how to see the next one."""
    lines = [f"**{entry.position}.** <@{entry.user_id}> — {line(entry)}" for entry in page.entries]
    embed = discord.Embed(title=title, description="\n".join(lines))
    footer = f"Page {page.page}"
    if page.has_next:
        footer += f" · next page: {next_hint.format(page=page.page + 1)}"
    embed.set_footer(text=footer)
    return embed


def empty_page_text(page: LeaderboardPage, nobody_yet: str) -> str:
    if page.page == 1:
        return nobody_yet
    return f"Page {page.page} is empty: the leaderboard is shorter than that."
