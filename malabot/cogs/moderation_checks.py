"""The Discord side of moderation checks: parties of the role hierarchy from py-cord members, the
permission names the rules understand, and Discord's own refusals (403) turned into sentences.

The decisions themselves are the plain functions of malabot.features.moderation.rules.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import discord

from malabot.cogs.members import UNKNOWN_MEMBER
from malabot.cogs.own_timeout import own_timeout, timed_out_clause
from malabot.commands import member_permissions, permission_check
from malabot.errors import PermissionRefused, UserInputError
from malabot.features.moderation.models import Party
from malabot.features.moderation.rules import (
    BOT_PERMISSIONS,
    MAX_REASON_LENGTH,
    PERMISSION_LABELS,
    check_action,
    check_moderator_permissions,
)
from malabot.texts import plural

# Discord's code for a delete that includes a system message (it never deletes those).
SYSTEM_MESSAGE = 50021
# Discord's code for a message that no longer exists (deleted by someone else meanwhile).
UNKNOWN_MESSAGE = 10008

# What Discord refused to let the bot do, in the words of the refusal.
_VERBS = {
    "timeout": "time out",
    "untimeout": "remove the timeout of",
    "kick": "kick",
    "ban": "ban",
    "unban": "unban",
}


def moderator_command(name: str, description: str, **perms: bool) -> Callable[..., discord.SlashCommand]:
    """A slash command hidden from members without `perms` (Discord side) and refused at run time too."""
    checks: list[Any] = [permission_check(**perms)]  # py-cord awaits coroutine checks too
    return discord.slash_command(
        name=name, description=description,
        default_member_permissions=discord.Permissions(**perms),
        contexts={discord.InteractionContextType.guild},
        checks=checks,
    )


def guild_of(ctx: discord.ApplicationContext) -> discord.Guild:
    """The server of a guild-only command, as the bot's cache knows it."""
    if ctx.guild is None:
        raise PermissionRefused("I can only moderate servers I am a member of.")
    return ctx.guild


def party_of(user: discord.Member | discord.User, guild: discord.Guild) -> Party:
    """A member (or a user outside the server: @everyone alone) as the hierarchy rules see them."""
    top = user.top_role if isinstance(user, discord.Member) else guild.default_role
    return Party(user_id=user.id, top_role_position=top.position, top_role_id=top.id,
                 is_owner=user.id == guild.owner_id)


def permission_names(permissions: discord.Permissions) -> frozenset[str]:
    """The granted permissions by name; an administrator has every one."""
    if permissions.administrator:
        return frozenset(name for name, _ in permissions)
    return frozenset(name for name, value in permissions if value)


def require_member(user: discord.Member | discord.User) -> discord.Member:
    """The option's member; a user who is not (or no longer) in the server is refused."""
    if not isinstance(user, discord.Member):
        raise UserInputError(f"<@{user.id}> is not a member of this server.")
    return user


def check_moderation(ctx: discord.ApplicationContext, action: str,
                     target: discord.Member | discord.User | None) -> discord.Guild:
    """Every refusal before acting: the moderator's permissions, the bot's, then the hierarchy.

    The bot's permissions are its channel permissions for a purge and its server-wide ones otherwise
    (kicks, bans and timeouts do not depend on the channel); the moderator's likewise
    (member_permissions: Manage Messages in this channel, the others server-wide).
    """
    guild = guild_of(ctx)
    bot = guild.me
    bot_permissions = ctx.app_permissions if action == "purge" else bot.guild_permissions
    actor_permissions = permission_names(member_permissions(ctx.interaction))
    check_moderator_permissions(action, actor_permissions)
    check_bot_not_timed_out(guild, action, None if target is None else target.id)
    check_action(
        action,
        actor=party_of(ctx.author, guild),
        target=None if target is None else party_of(target, guild),
        bot=party_of(bot, guild),
        owner_id=guild.owner_id or 0,  # always known for a server in the cache
        actor_permissions=actor_permissions,
        bot_permissions=permission_names(bot_permissions),
    )
    return guild


def check_bot_not_timed_out(guild: discord.Guild, action: str, target_id: int | None) -> None:
    """Said first: the permissions a timed-out bot seems to lack (a purge's, masked in the channel) or
    Discord's 403 would send the moderator looking at roles."""
    if BOT_PERMISSIONS[action] and (timed_out := own_timeout(guild)) is not None:
        raise PermissionRefused(f"I cannot {_action_phrase(action, target_id)}: {timed_out}")


def _action_phrase(action: str, target_id: int | None) -> str:
    if action == "purge":
        return "delete messages here"
    return f"{_VERBS.get(action, action)} {'them' if target_id is None else mention(target_id)}"


def check_can_time_out(target: discord.Member) -> None:
    """Discord times out no administrator, whatever the role hierarchy (403): say that, rather than
    the usual sentence about roles and permissions."""
    if target.guild_permissions.administrator:
        raise PermissionRefused(f"Discord does not let anyone time out an administrator ({mention(target)}).")


def discord_refusal(action: str, target_id: int | None = None, *, timed_out_until: datetime | None = None) -> str:
    """The sentence for a 403 from Discord: what it refused, and why. `timed_out_until`: the bot is
    timed out, which takes all its permissions but reading; else the two usual reasons."""
    refused = f"Discord refused to let me {_action_phrase(action, target_id)}"
    if timed_out_until is not None:
        return f"{refused}: {timed_out_clause(timed_out_until)}"
    labels = [PERMISSION_LABELS.get(name, name) for name in BOT_PERMISSIONS.get(action, ())]
    needed = f"the {' and '.join(labels)} {plural(len(labels), 'permission')}"
    if action == "purge":
        return f"{refused}: I need {needed} in this channel."
    return f"{refused}: my top role must be above theirs" + (f" and I need {needed}." if labels else ".")


class TargetLeft(UserInputError):
    """Discord no longer knows the member acted on: they left after Discord resolved the command."""


@asynccontextmanager
async def refusals_explained(action: str, target_id: int | None = None, *,
                             bot: discord.Member) -> AsyncIterator[None]:
    """Turn Discord's 403 for the action into a PermissionRefused the member reads as a sentence, and
    its 404 Unknown Member (the target left after Discord resolved the command) into TargetLeft.
    `bot`: the bot's member, whose timeout explains a 403 (py-cord's guild_permissions ignore it)."""
    try:
        yield
    except discord.Forbidden as error:
        if error.code == SYSTEM_MESSAGE:  # not a missing permission: saying so would send them looking
            raise PermissionRefused("Discord refused to delete these messages: one of them is a system message, "
                                    "which Discord never deletes. Nothing was deleted.") from error
        # The same judgement as before acting (own_timeout): an administrator's timeout binds nothing.
        timed_out_until = bot.communication_disabled_until if own_timeout(bot.guild) is not None else None
        raise PermissionRefused(discord_refusal(action, target_id, timed_out_until=timed_out_until)) from error
    except discord.NotFound as error:
        if error.code != UNKNOWN_MEMBER or target_id is None:
            raise
        raise TargetLeft(f"{mention(target_id)} is no longer on the server, so nothing was done.") from None


def audit_reason(moderator: discord.Member | discord.User, reason: str | None) -> str:
    """What Discord's audit log shows: who asked (the bot is the one acting) and why."""
    text = f"{moderator} ({moderator.id}): {reason or 'no reason given'}"
    return text if len(text) <= MAX_REASON_LENGTH else text[: MAX_REASON_LENGTH - 1] + "…"


def mention(user: discord.abc.Snowflake | int) -> str:
    return f"<@{user if isinstance(user, int) else user.id}>"
