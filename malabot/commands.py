"""What every slash command shares: the guild it runs in, permission checks, ephemeral answers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

import aiohttp
import discord

from malabot.cogs.unreachable import DISCORD_UNREACHABLE
from malabot.errors import NotAMember, NotInGuild, PermissionRefused
from malabot.templates import MESSAGE_LIMIT

log = logging.getLogger(__name__)

# Discord drops an interaction not answered within 3 s ("The application did not respond"). A command
# still silent this long (waiting for a server's file another program holds, say) is deferred for it.
DEFER_AFTER = 2.0

_Callback = TypeVar("_Callback", bound=Callable[..., Any])

# The word after a command whose answer Discord did not take: the command ran, perhaps to its end (a
# warning recorded, XP added), so "try again" could do it twice.
ANSWER_LOST = ("Discord did not take my answer just now, but what you asked may be done already: please "
               "check before you try again.")


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
    """The id of the server the interaction came from; raises NotInGuild in a DM, and NotAMember in a
    server the bot is not in (its commands and buttons can stay there without it): it would keep data
    of a server whose members' leaves it never hears."""
    guild_id = ctx.guild_id
    if guild_id is None:
        raise NotInGuild()
    client = ctx.bot if isinstance(ctx, discord.ApplicationContext) else ctx.client
    if client.get_guild(guild_id) is None:
        raise NotAMember()
    return guild_id


async def only_in_guilds(ctx: discord.ApplicationContext) -> bool:
    """Global check: every MalaBoT command works on a server's data (see guild_id_of)."""
    try:
        guild_id_of(ctx)
    except (NotInGuild, NotAMember) as error:
        raise RefusedCheck(error.message) from None
    return True


def _permission_label(name: str) -> str:
    # Discord's own labels where they differ from the attribute name.
    labels = {"manage_guild": "Manage Server", "moderate_members": "Timeout Members"}
    return labels.get(name, name.replace("_", " ").title())


# The permissions a command asks for that Discord grants per channel: they are checked in the channel
# the command runs in. Every other one is checked server-wide, because the channel-resolved
# permissions Discord sends with an interaction mean something else there: in a channel overwrite
# the Manage Roles bit is that one channel's "Manage Permissions".
CHANNEL_PERMISSIONS = discord.Permissions(manage_messages=True)
# All a timed-out member keeps, server-wide as in every channel.
_TIMED_OUT_KEEPS = discord.Permissions(view_channel=True, read_message_history=True)


def scoped_permissions(server: discord.Permissions, in_channel: discord.Permissions, *,
                       timed_out: bool) -> discord.Permissions:
    """The server-wide permissions (as roles and ownership give them, Administrator meaning all),
    with those of CHANNEL_PERMISSIONS taken from the permissions in the channel instead."""
    if server.administrator:  # the owner too; Discord times out neither
        return discord.Permissions.all()
    if timed_out:
        server = discord.Permissions(server.value & _TIMED_OUT_KEEPS.value)
    channel_part = in_channel.value & CHANNEL_PERMISSIONS.value
    return discord.Permissions((server.value & ~CHANNEL_PERMISSIONS.value) | channel_part)


def member_permissions(interaction: discord.Interaction) -> discord.Permissions:
    """What the member of a command or button is checked against (scoped_permissions).
    PermissionRefused while the bot does not have the server in its cache to compute them from."""
    member = interaction.user
    if interaction.guild is None or not isinstance(member, discord.Member):
        raise PermissionRefused("I cannot see this server yet; please try again in a moment.")
    return scoped_permissions(member.guild_permissions, interaction.permissions, timed_out=member.timed_out)


def permission_check(**perms: bool) -> Callable[[discord.ApplicationContext], Coroutine[Any, Any, bool]]:
    """Enforce at run time what `default_member_permissions` only suggests to Discord's client, with
    each permission in its scope (member_permissions)."""
    wanted = discord.Permissions(**perms)

    async def predicate(ctx: discord.ApplicationContext) -> bool:
        granted = member_permissions(ctx.interaction)
        if granted.administrator or wanted.is_subset(granted):
            return True
        missing = [_permission_label(name) for name, value in wanted if value and not getattr(granted, name)]
        raise RefusedCheck(f"You need the {', '.join(missing)} permission to use this command.")

    predicate.permissions = wanted  # type: ignore[attr-defined]  # read by checked_permissions
    return predicate


def checked_permissions(command: discord.ApplicationCommand) -> discord.Permissions:
    """What the permission checks of a command and of its groups ask for at run time: more than
    Discord shows it to when a subcommand needs more than its group (`/verify setup`)."""
    wanted = discord.Permissions.none()
    node: discord.ApplicationCommand | None = command
    while node is not None:
        for check in node.checks:
            wanted |= getattr(check, "permissions", discord.Permissions.none())
        node = getattr(node, "parent", None)
    return wanted


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


class CommandContext(discord.ApplicationContext):
    """The context MalaBot runs slash commands in: it also knows whether an answer has gone out
    since a "thinking..." deferral (Discord makes the first follow-up after one the placeholder's
    answer, as public or private as the deferral was, whatever the follow-up asks for), and whether
    Discord failed to take an answer (the command's work may be done: see ANSWER_LOST)."""

    def __init__(self, bot: discord.Bot, interaction: discord.Interaction) -> None:
        super().__init__(bot, interaction)
        self.followed_up = False
        self.answer_lost = False

    def thinking_shows_otherwise(self, *, ephemeral: bool) -> bool:
        """Whether a "thinking..." placeholder still waits for its answer and would show it the
        other way than `ephemeral` asks (a private error of a command deferred publicly, say)."""
        thinking = self.interaction.callback
        return (thinking is not None and thinking.is_loading() and not self.followed_up
                and thinking.is_ephemeral() != ephemeral)


def answers_publicly(callback: _Callback) -> _Callback:
    """Mark a command whose answer everyone in the channel sees: when it is slow and deferred for it
    (defer_when_slow), it is deferred publicly. Other commands are deferred ephemerally. An answer
    of the other kind still goes out as asked (answer())."""
    callback.answers_publicly = True  # type: ignore[attr-defined]  # read by defer_when_slow
    return callback


async def defer(ctx: discord.ApplicationContext, *, ephemeral: bool) -> None:
    """Defer, unless the interaction is already answered (defer_when_slow may have deferred it)."""
    if not ctx.interaction.response.is_done():
        with contextlib.suppress(discord.InteractionResponded):  # deferred meanwhile
            await ctx.defer(ephemeral=ephemeral)


async def defer_when_slow(ctx: discord.ApplicationContext, after: float = DEFER_AFTER) -> None:
    """Run beside a command: if it has not answered after `after` seconds, defer it (publicly for a
    command marked answers_publicly), so its answer, or its error, still reaches the user later."""
    await asyncio.sleep(after)
    # Shielded: a command that ends while the deferral is on its way must not cut the request off.
    await asyncio.shield(_defer_slow(ctx))


async def _defer_slow(ctx: discord.ApplicationContext) -> None:
    command = ctx.command  # read now: by then it is the subcommand that runs
    public = getattr(getattr(command, "callback", None), "answers_publicly", False)
    try:
        await defer(ctx, ephemeral=not public)
    except discord.HTTPException:
        log.warning("could not defer slow command /%s in guild %s",
                    command.qualified_name if command else "?", ctx.guild_id, exc_info=True)
    except aiohttp.ClientError as error:  # the bot's connection closed under it (a shutdown)
        log.info("could not defer slow command /%s in guild %s: %s",
                 command.qualified_name if command else "?", ctx.guild_id, error)


async def answer(ctx: discord.ApplicationContext, content: str | None = None, *, ephemeral: bool = False,
                 **kwargs: Any) -> None:
    """Reply, or follow up when the interaction was already answered or deferred; either way the
    answer is as public or private as `ephemeral` says, whatever the deferral was. When Discord does
    not take it (an error after py-cord's retries, or no connection), the context remembers it."""
    try:
        await _deliver(ctx, content, ephemeral=ephemeral, **kwargs)
    except (discord.HTTPException, *DISCORD_UNREACHABLE):
        if isinstance(ctx, CommandContext):
            ctx.answer_lost = True
        raise


async def _deliver(ctx: discord.ApplicationContext, content: str | None, *, ephemeral: bool,
                   **kwargs: Any) -> None:
    if not ctx.interaction.response.is_done():
        try:
            await ctx.respond(content, ephemeral=ephemeral, **kwargs)
            return
        except discord.InteractionResponded:  # defer_when_slow deferred it meanwhile
            pass
    if isinstance(ctx, CommandContext) and ctx.thinking_shows_otherwise(ephemeral=ephemeral):
        # The placeholder cannot change visibility and would lend its own to this follow-up; once
        # it is deleted, the follow-up is a new message, as public or private as asked.
        with contextlib.suppress(discord.NotFound):  # already gone: nothing to take away
            await ctx.interaction.delete_original_response()
    await ctx.followup.send(content or "", ephemeral=ephemeral, **kwargs)
    if isinstance(ctx, CommandContext):
        ctx.followed_up = True
