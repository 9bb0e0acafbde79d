"""`/ping`, `/serverinfo`, `/userinfo [member]` and `/help [page]`; every answer is ephemeral.

`/help` is generated from the commands the bot registered, so it never lists a command that does not
exist or misses one that does. It shows the commands the asking member may use (those whose
default permissions they hold, and what their permission checks ask for on top, checked as the
commands check them at run time) and pages when they are many.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

import discord

from malabot.cogs.posting import NO_PINGS, plain_name
from malabot.commands import answer, checked_permissions, is_owner_only, is_server_owner, member_permissions
from malabot.errors import UserInputError
from malabot.texts import only_pages

if TYPE_CHECKING:
    from malabot.bot import MalaBot

HELP_PAGE_LIMIT = 3_500  # characters of one page; an embed description holds 4,096
MAX_ROLES_SHOWN = 20


def _timestamp(moment: datetime, style: str = "f") -> str:
    return f"<t:{int(moment.timestamp())}:{style}>"


# -- /help -----------------------------------------------------------------------------------------


def required_permissions(command: discord.ApplicationCommand) -> discord.Permissions | None:
    """The command's default_member_permissions, inherited from its group as Discord does, and what its
    permission checks ask for on top (None: the command needs none)."""
    shown: discord.Permissions | None = None
    node: discord.ApplicationCommand | None = command
    while node is not None and shown is None:
        shown = node.default_member_permissions
        node = getattr(node, "parent", None)
    checked = checked_permissions(command)
    if shown is None and not checked.value:
        return None
    return (shown or discord.Permissions.none()) | checked


def has_permissions(command: discord.ApplicationCommand, granted: discord.Permissions) -> bool:
    needed = required_permissions(command)
    return needed is None or granted.administrator or needed.is_subset(granted)


class Hidden(NamedTuple):
    """Commands /help leaves out, by why: an Administrator lacks no permission, yet is not the owner."""

    lacking_permissions: int = 0
    owner_only: int = 0


def hidden_text(hidden: Hidden) -> list[str]:
    """The footer's words for the commands left out."""
    parts = []
    if hidden.lacking_permissions:
        parts.append(f"{hidden.lacking_permissions} more need permissions you do not have")
    if hidden.owner_only:
        verb = "is" if hidden.owner_only == 1 else "are"
        parts.append(f"{hidden.owner_only} more {verb} for the server owner only")
    return parts


def usage(command: discord.SlashCommand) -> str:
    """E.g. "/ban member reason [delete_message_days]": required options plain, optional in brackets."""
    parts = [f"/{command.qualified_name}"]
    for option in command.options:
        name = option.name or "?"
        parts.append(name if option.required else f"[{name}]")
    return " ".join(parts)


def help_lines(commands: Iterable[discord.ApplicationCommand], granted: discord.Permissions, *,
               is_owner: bool = False) -> tuple[list[str], Hidden]:
    """One line per usable command, sorted by name; and how many others need permissions they lack,
    or (with the permissions) are the owner's alone."""
    lines: dict[str, str] = {}
    lacking_permissions = owner_only = 0
    for command in commands:
        if isinstance(command, discord.SlashCommandGroup):
            continue  # its subcommands are listed; the group itself cannot be run
        if not has_permissions(command, granted):
            lacking_permissions += 1
            continue
        if is_owner_only(command) and not is_owner:
            owner_only += 1
            continue
        if isinstance(command, discord.SlashCommand):
            name = command.qualified_name
            lines[name] = f"`{usage(command)}` — {command.description or ''}"
        else:  # a context-menu command: right-click a user or a message → Apps
            kind = "user" if isinstance(command, discord.UserCommand) else "message"
            lines[command.name] = f"**{command.name}** — in the Apps menu of a {kind}"
    return [lines[name] for name in sorted(lines)], Hidden(lacking_permissions, owner_only)


def help_pages(lines: Sequence[str], limit: int = HELP_PAGE_LIMIT) -> list[str]:
    """Lines grouped into pages of at most `limit` characters (a longer line gets a page of its own)."""
    pages: list[str] = []
    current: list[str] = []
    size = 0
    for line in lines:
        if current and size + len(line) + 1 > limit:
            pages.append("\n".join(current))
            current, size = [], 0
        current.append(line[:limit])
        size += len(line) + 1
    if current or not pages:
        pages.append("\n".join(current))
    return pages


# -- /serverinfo and /userinfo ---------------------------------------------------------------------


def server_embed(guild: discord.Guild) -> discord.Embed:
    text = sum(1 for channel in guild.channels if isinstance(channel, discord.TextChannel))
    voice = sum(1 for channel in guild.channels if isinstance(channel, discord.VoiceChannel | discord.StageChannel))
    embed = discord.Embed(title=guild.name, description=guild.description or None)
    embed.add_field(name="Owner", value=f"<@{guild.owner_id}>")
    embed.add_field(name="Members", value=str(guild.member_count or len(guild.members)))
    embed.add_field(name="Created", value=_timestamp(guild.created_at, "D"))
    embed.add_field(name="Channels", value=f"{text} text · {voice} voice")
    embed.add_field(name="Roles", value=str(max(len(guild.roles) - 1, 0)))  # without @everyone
    embed.add_field(name="Boosts", value=f"{guild.premium_subscription_count} (tier {guild.premium_tier})")
    embed.set_footer(text=f"Server id {guild.id}")
    if guild.icon is not None:
        embed.set_thumbnail(url=guild.icon.url)
    return embed


def user_embed(user: discord.Member | discord.User) -> discord.Embed:
    embed = discord.Embed(title=plain_name(user), description=f"<@{user.id}> · `{user.name}`")
    embed.add_field(name="Account created", value=_timestamp(user.created_at, "D"))
    if isinstance(user, discord.Member):
        if user.joined_at is not None:
            embed.add_field(name="Joined this server", value=_timestamp(user.joined_at, "D"))
        roles = [role for role in reversed(user.roles) if not role.is_default()]
        shown = " ".join(role.mention for role in roles[:MAX_ROLES_SHOWN]) or "none"
        if len(roles) > MAX_ROLES_SHOWN:
            shown += f" and {len(roles) - MAX_ROLES_SHOWN} more"
        embed.add_field(name=f"Roles ({len(roles)})", value=shown, inline=False)
        if user.timed_out and user.communication_disabled_until is not None:
            embed.add_field(name="Timed out until", value=_timestamp(user.communication_disabled_until))
    else:
        embed.add_field(name="Member", value="not a member of this server")
    if user.bot:
        embed.add_field(name="Bot", value="yes")
    embed.set_footer(text=f"User id {user.id}")
    embed.set_thumbnail(url=user.display_avatar.url)
    return embed


class UtilityCog(discord.Cog, name="Utility"):
    def __init__(self, bot: MalaBot, *, help_page_limit: int = HELP_PAGE_LIMIT) -> None:
        self.bot = bot
        self.help_page_limit = help_page_limit  # characters per /help page; tests shorten it

    @discord.slash_command(name="ping", description="Check that the bot answers, and its gateway latency",
                           contexts={discord.InteractionContextType.guild})
    async def ping(self, ctx: discord.ApplicationContext) -> None:
        latency = self.bot.latency
        measured = f"gateway latency {latency * 1000:.0f} ms" if math.isfinite(latency) else \
            "gateway latency not measured yet"
        await answer(ctx, f"Pong! ({measured})", ephemeral=True)

    @discord.slash_command(name="serverinfo", description="About this server",
                           contexts={discord.InteractionContextType.guild})
    async def serverinfo(self, ctx: discord.ApplicationContext) -> None:
        if ctx.guild is None:
            raise UserInputError("I can only describe servers I am a member of.")
        await answer(ctx, embed=server_embed(ctx.guild), ephemeral=True)

    @discord.slash_command(name="userinfo", description="About a member (yourself if left out)",
                           contexts={discord.InteractionContextType.guild})
    @discord.option("member", discord.User, description="Who (left out: yourself)", required=False, default=None)
    async def userinfo(self, ctx: discord.ApplicationContext, member: discord.Member | discord.User | None) -> None:
        await answer(ctx, embed=user_embed(member or ctx.author), ephemeral=True,
                     allowed_mentions=NO_PINGS)

    @discord.slash_command(name="help", description="The commands you can use here",
                           contexts={discord.InteractionContextType.guild})
    @discord.option("page", int, description="Which page (when there are several)", required=False, default=1,
                    min_value=1)
    async def help(self, ctx: discord.ApplicationContext, page: int) -> None:
        lines, hidden = help_lines(self.bot.walk_application_commands(), member_permissions(ctx.interaction),
                                   is_owner=is_server_owner(ctx.guild, ctx.author))
        pages = help_pages(lines, self.help_page_limit)
        if not 1 <= page <= len(pages):
            raise UserInputError(f"{only_pages(len(pages))} of help.")
        embed = discord.Embed(title="Commands", description=pages[page - 1] or "No commands you can use here.")
        footer = [f"Page {page} of {len(pages)}"] if len(pages) > 1 else []
        if page < len(pages):
            footer.append(f"/help page:{page + 1} for more")
        footer += hidden_text(hidden)
        if footer:
            embed.set_footer(text=" · ".join(footer))
        await answer(ctx, embed=embed, ephemeral=True)
