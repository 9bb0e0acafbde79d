"""Permission checks the fake API applies to the bot's requests, with Discord's error answers."""

from __future__ import annotations

from malabot.sandbox.errors import missing_access, missing_permissions
from malabot.sandbox.permissions import (
    Permission,
    can_manage_role,
    channel_permissions,
    guild_permissions,
    outranks,
)
from malabot.sandbox.state import DM, Channel, Guild, Member, Role, World


def has(world: World, guild: Guild, permission: Permission, channel: Channel | None = None) -> bool:
    """Whether the bot has `permission` (in `channel`, if given)."""
    bot = world.bot_member(guild)
    granted = channel_permissions(guild, bot, channel) if channel else guild_permissions(guild, bot)
    return bool(granted & permission)


def require(world: World, guild: Guild, permission: Permission, channel: Channel | None = None) -> None:
    """403 Missing Permissions unless the bot has `permission` (in `channel`, if given)."""
    if not has(world, guild, permission, channel):
        raise missing_permissions()


def require_outranks(world: World, guild: Guild, target: Member) -> None:
    """Kick, ban, timeout and nickname changes need a top role above the target's (or ownership)."""
    if not outranks(guild, world.bot_member(guild), target):
        raise missing_permissions()


def require_manageable_role(world: World, guild: Guild, role: Role, *, assigning: bool = False) -> None:
    """Roles at or above the bot's top role are out of reach; managed roles and @everyone can't be given."""
    if not can_manage_role(guild, world.bot_member(guild), role):
        raise missing_permissions()
    if assigning and (role.managed or role.id == guild.id):
        raise missing_permissions()


def guild_of_channel(world: World, channel: Channel) -> Guild | None:
    """The guild of a channel the bot can see; None for its DM channels."""
    if channel.type == DM or channel.guild_id is None:
        return None  # every DM channel in the sandbox is one between the bot and a user
    guild = world.bot_guild(channel.guild_id)
    if not channel_permissions(guild, world.bot_member(guild), channel) & Permission.VIEW_CHANNEL:
        raise missing_access()
    return guild

