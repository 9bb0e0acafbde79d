"""What every slash command shares: the guild it runs in, permission checks, ephemeral answers."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import discord

from malabot.errors import NotInGuild
from malabot.templates import MESSAGE_LIMIT


def fit_lines(lines: Sequence[str], more: str, limit: int = MESSAGE_LIMIT) -> str:
    """`lines` as one message Discord accepts: the first whole lines that fit, then `more` (formatted
    with `count`, how many lines were left out) on a line of its own."""
    text = "\n".join(lines)
    if len(text) <= limit:
        return text
    kept: list[str] = []
    for index, line in enumerate(lines):
        if len("\n".join([*kept, line, more.format(count=len(lines) - index - 1)])) > limit:
            break
        kept.append(line)
    return "\n".join([*kept, more.format(count=len(lines) - len(kept))])[:limit]


class RefusedCheck(discord.CheckFailure):
    """A check that failed with a sentence for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def guild_id_of(ctx: discord.ApplicationContext | discord.Interaction) -> int:
    """The id of the server the interaction came from; raises NotInGuild in a DM."""
    guild_id = ctx.guild_id
    if guild_id is None:
        raise NotInGuild()
    return guild_id


async def only_in_guilds(ctx: discord.ApplicationContext) -> bool:
    """Global check: every MalaBoT command works on a server's data, so none runs in DMs."""
    if ctx.guild_id is None:
        raise RefusedCheck(NotInGuild().message)
    return True


def _permission_label(name: str) -> str:
    # Discord's own labels where they differ from the attribute name.
    labels = {"manage_guild": "Manage Server", "moderate_members": "Timeout Members"}
    return labels.get(name, name.replace("_", " ").title())


def permission_check(**perms: bool) -> Callable[[discord.ApplicationContext], Coroutine[Any, Any, bool]]:
    """Enforce at run time what `default_member_permissions` only suggests to Discord's client:
    the member's resolved permissions in the channel, as Discord sent them with the interaction."""
    wanted = discord.Permissions(**perms)

    async def predicate(ctx: discord.ApplicationContext) -> bool:
        granted = ctx.interaction.permissions
        if granted.administrator or wanted.is_subset(granted):
            return True
        missing = [_permission_label(name) for name, value in wanted if value and not getattr(granted, name)]
        raise RefusedCheck(f"You need the {', '.join(missing)} permission to use this command.")

    return predicate


def is_server_owner(guild: discord.Guild | None, user: discord.abc.Snowflake | None) -> bool:
    return guild is not None and user is not None and guild.owner_id == user.id


def owner_only(refusal: str) -> Callable[[discord.ApplicationContext], Coroutine[Any, Any, bool]]:
    """A command check: only the server's owner may run it (`/help` leaves it out for everyone else)."""

    async def predicate(ctx: discord.ApplicationContext) -> bool:
        if is_server_owner(ctx.guild, ctx.author):
            return True
        raise RefusedCheck(refusal)

    predicate.owner_only = True  # type: ignore[attr-defined]  # read by is_owner_only
    return predicate


def is_owner_only(command: discord.ApplicationCommand) -> bool:
    return any(getattr(check, "owner_only", False) for check in command.checks)


def admin_group(name: str, description: str, **perms: bool) -> discord.SlashCommandGroup:
    """A command group hidden from members without `perms` and enforced at run time too."""
    return discord.SlashCommandGroup(
        name, description,
        default_member_permissions=discord.Permissions(**perms),
        contexts={discord.InteractionContextType.guild},
        checks=[permission_check(**perms)],
    )


def upload_limit(ctx: discord.ApplicationContext) -> int:
    """The largest attachment this interaction may carry: what Discord says, else the server's tier."""
    stated = getattr(ctx.interaction, "attachment_size_limit", None)
    if isinstance(stated, int) and stated > 0:
        return stated
    return ctx.guild.filesize_limit if ctx.guild is not None else discord.Guild._PREMIUM_GUILD_LIMITS[0].filesize


async def answer(ctx: discord.ApplicationContext, content: str | None = None, *, ephemeral: bool = False,
                 **kwargs: Any) -> None:
    """Reply, or follow up when the interaction was already answered or deferred."""
    if ctx.interaction.response.is_done():
        await ctx.followup.send(content or "", ephemeral=ephemeral, **kwargs)
    else:
        await ctx.respond(content, ephemeral=ephemeral, **kwargs)
