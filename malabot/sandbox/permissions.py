"""Discord permission bits and the rules that combine them (base, channel overwrites, hierarchy)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import IntFlag
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from malabot.sandbox.state import Channel, Guild, Member, Role


class Permission(IntFlag):
    CREATE_INSTANT_INVITE = 1 << 0
    KICK_MEMBERS = 1 << 1
    BAN_MEMBERS = 1 << 2
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_AUDIT_LOG = 1 << 7
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    USE_EXTERNAL_EMOJIS = 1 << 18
    CONNECT = 1 << 20
    SPEAK = 1 << 21
    CHANGE_NICKNAME = 1 << 26
    MANAGE_NICKNAMES = 1 << 27
    MANAGE_ROLES = 1 << 28
    MANAGE_WEBHOOKS = 1 << 29
    USE_APPLICATION_COMMANDS = 1 << 31
    SEND_MESSAGES_IN_THREADS = 1 << 38
    MODERATE_MEMBERS = 1 << 40


# Every permission Discord defines today (what an owner or administrator is reported to have).
ALL_PERMISSIONS = (1 << 52) - 1

# What @everyone gets in a new Discord server.
DEFAULT_EVERYONE = (
    Permission.CREATE_INSTANT_INVITE | Permission.ADD_REACTIONS | Permission.VIEW_CHANNEL
    | Permission.SEND_MESSAGES | Permission.EMBED_LINKS | Permission.ATTACH_FILES
    | Permission.READ_MESSAGE_HISTORY | Permission.USE_EXTERNAL_EMOJIS | Permission.CONNECT
    | Permission.SPEAK | Permission.CHANGE_NICKNAME | Permission.USE_APPLICATION_COMMANDS
    | Permission.SEND_MESSAGES_IN_THREADS
)

# A timed-out member keeps only these, whatever the roles say (owner and administrators are exempt).
_TIMEOUT_ALLOWED = Permission.VIEW_CHANNEL | Permission.READ_MESSAGE_HISTORY


def role_sort_key(role: Role) -> tuple[int, int]:
    """Discord's role order: by position; on a tie the older role (smaller id) ranks higher."""
    return (role.position, -role.id)


def top_role(guild: Guild, member: Member) -> Role:
    roles = [guild.roles[role_id] for role_id in member.roles if role_id in guild.roles]
    return max([guild.everyone_role, *roles], key=role_sort_key)


def base_permissions(guild: Guild, member: Member) -> int:
    """Guild-wide permissions: @everyone plus the member's roles; owner and administrator get all."""
    if member.user_id == guild.owner_id:
        return ALL_PERMISSIONS
    value = guild.everyone_role.permissions
    for role_id in member.roles:
        role = guild.roles.get(role_id)
        if role is not None:
            value |= role.permissions
    if value & Permission.ADMINISTRATOR:
        return ALL_PERMISSIONS
    return value


def guild_permissions(guild: Guild, member: Member) -> int:
    """What a member may do server-wide (kick, ban, manage roles, time out): base, then timeout."""
    value = base_permissions(guild, member)
    return value if value == ALL_PERMISSIONS else _after_timeout(member, value)


def _after_timeout(member: Member, value: int) -> int:
    """What a member keeps of `value` (short of owner or administrator) while timed out."""
    return value & _TIMEOUT_ALLOWED if member.is_timed_out(datetime.now(UTC)) else value


def channel_permissions(guild: Guild, member: Member, channel: Channel | None) -> int:
    """Permissions in a channel: base, then @everyone, role and member overwrites, then timeout."""
    value = base_permissions(guild, member)
    if value == ALL_PERMISSIONS:
        return value
    if channel is not None:
        overwrites = {(o.type, o.id): o for o in channel.overwrites}
        everyone = overwrites.get((0, guild.id))
        if everyone is not None:
            value = (value & ~everyone.deny) | everyone.allow
        allow = deny = 0
        for role_id in member.roles:
            role_overwrite = overwrites.get((0, role_id))
            if role_overwrite is not None:
                allow |= role_overwrite.allow
                deny |= role_overwrite.deny
        value = (value & ~deny) | allow
        own = overwrites.get((1, member.user_id))
        if own is not None:
            value = (value & ~own.deny) | own.allow
    value = _after_timeout(member, value)
    if not value & Permission.VIEW_CHANNEL:
        return 0
    return value


def outranks(guild: Guild, actor: Member, target: Member) -> bool:
    """Whether `actor` may act on `target` (kick, ban, timeout, nickname): owner or higher top role."""
    if target.user_id == guild.owner_id:
        return False
    if actor.user_id == guild.owner_id:
        return True
    return role_sort_key(top_role(guild, target)) < role_sort_key(top_role(guild, actor))


def can_manage_role(guild: Guild, actor: Member, role: Role) -> bool:
    """Whether `actor` may edit, delete, grant or remove `role`: it must sit below their top role."""
    if actor.user_id == guild.owner_id:
        return True
    return role_sort_key(role) < role_sort_key(top_role(guild, actor))
