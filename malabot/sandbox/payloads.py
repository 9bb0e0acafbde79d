"""Discord JSON shapes built from the world model: what py-cord 2.8 parses without a KeyError.

Ids travel as strings, times as ISO 8601 with offset, exactly like the real API. Keys py-cord
reads with `data["..."]` (user avatar and discriminator, role colors, member roles, message
flags fields...) are always present.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from malabot.sandbox.state import (
    DM,
    GUILD_CATEGORY,
    GUILD_VOICE,
    Attachment,
    Ban,
    Channel,
    Guild,
    Member,
    Message,
    RegisteredCommand,
    Role,
    User,
    World,
)

Json = dict[str, Any]


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def user_payload(user: User) -> Json:
    payload: Json = {
        "id": str(user.id),
        "username": user.username,
        "global_name": user.global_name,
        "discriminator": "0",
        "avatar": user.avatar,
        "public_flags": 0,
        "flags": 0,
        "banner": None,
        "accent_color": None,
        "avatar_decoration_data": None,
        "primary_guild": None,
    }
    if user.bot:
        payload["bot"] = True
    return payload


def current_user_payload(user: User) -> Json:
    """`GET /users/@me` and READY's `user`: the bot's own account, with the private fields."""
    return {**user_payload(user), "verified": True, "mfa_enabled": False, "locale": "en-US", "email": None}


def role_payload(role: Role) -> Json:
    payload: Json = {
        "id": str(role.id),
        "name": role.name,
        "color": role.color,
        "colors": {"primary_color": role.color, "secondary_color": None, "tertiary_color": None},
        "hoist": role.hoist,
        "icon": None,
        "unicode_emoji": None,
        "position": role.position,
        "permissions": str(role.permissions),
        "managed": role.managed,
        "mentionable": role.mentionable,
        "flags": 0,
    }
    if role.bot_id is not None:
        payload["tags"] = {"bot_id": str(role.bot_id)}
    return payload


def member_payload(world: World, member: Member, *, with_user: bool = True,
                   permissions: int | None = None) -> Json:
    payload: Json = {
        "nick": member.nick,
        "avatar": None,
        "banner": None,
        "roles": [str(role_id) for role_id in member.roles],
        "joined_at": iso(member.joined_at),
        "premium_since": None,
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": member.pending,
        "communication_disabled_until": iso(member.communication_disabled_until),
        "avatar_decoration_data": None,
    }
    if with_user:
        payload["user"] = user_payload(world.user(member.user_id))
    if permissions is not None:
        payload["permissions"] = str(permissions)
    return payload


def member_event_payload(world: World, member: Member) -> Json:
    """GUILD_MEMBER_ADD / GUILD_MEMBER_UPDATE: a member object plus its guild id."""
    return {**member_payload(world, member), "guild_id": str(member.guild_id)}


def channel_payload(world: World, channel: Channel, *, permissions: int | None = None) -> Json:
    if channel.type == DM:
        return {
            "id": str(channel.id),
            "type": DM,
            "last_message_id": _optional_id(channel.last_message_id),
            "recipients": [user_payload(world.user(user_id)) for user_id in channel.recipient_ids],
            "flags": 0,
        }
    payload: Json = {
        "id": str(channel.id),
        "type": channel.type,
        "guild_id": _optional_id(channel.guild_id),
        "name": channel.name,
        "position": channel.position,
        "permission_overwrites": [
            {"id": str(o.id), "type": o.type, "allow": str(o.allow), "deny": str(o.deny)}
            for o in channel.overwrites
        ],
        "parent_id": _optional_id(channel.parent_id),
        "nsfw": channel.nsfw,
        "flags": 0,
    }
    if channel.type == GUILD_VOICE:
        payload.update(bitrate=64000, user_limit=0, rtc_region=None, rate_limit_per_user=0)
    elif channel.type != GUILD_CATEGORY:
        payload.update(topic=channel.topic, last_message_id=_optional_id(channel.last_message_id),
                       rate_limit_per_user=0, default_auto_archive_duration=1440)
    if permissions is not None:
        payload["permissions"] = str(permissions)
    return payload


def guild_payload(world: World, guild: Guild) -> Json:
    """The guild object of `GET /guilds/{id}` (no members or channels)."""
    return {
        "id": str(guild.id),
        "name": guild.name,
        "icon": None,
        "splash": None,
        "discovery_splash": None,
        "banner": None,
        "description": None,
        "owner_id": str(guild.owner_id),
        "region": None,
        "afk_channel_id": None,
        "afk_timeout": 300,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "mfa_level": 0,
        "nsfw_level": 0,
        "premium_tier": 0,
        "premium_subscription_count": 0,
        "premium_progress_bar_enabled": False,
        "preferred_locale": guild.preferred_locale,
        "system_channel_id": _optional_id(guild.system_channel_id),
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "public_updates_channel_id": None,
        "safety_alerts_channel_id": None,
        "vanity_url_code": None,
        "application_id": None,
        "max_members": 500000,
        "max_video_channel_users": 25,
        "features": [],
        "roles": [role_payload(role) for role in guild.roles.values()],
        "emojis": [],
        "stickers": [],
        "incidents_data": None,
    }


def guild_create_payload(world: World, guild: Guild, *, include_members: bool,
                         unavailable: bool | None, large_threshold: int) -> Json:
    """GUILD_CREATE. `unavailable` False marks a guild coming back (startup or after an outage);
    None (key absent) marks a guild the bot just joined; py-cord tells the two apart by it.
    As on Discord, the member list comes with it only to a bot with the GUILD_PRESENCES intent
    (`include_members`), and only for a guild of at most `large_threshold` members (IDENTIFY's):
    otherwise only the bot's own member does (and those in voice channels, which the sandbox has
    none of), the others in member chunks when asked."""
    bot_member = guild.members.get(world.bot_user.id)
    large = len(guild.members) > large_threshold
    members = (list(guild.members.values()) if include_members and not large
               else [m for m in [bot_member] if m])
    payload = {
        **guild_payload(world, guild),
        "joined_at": iso(bot_member.joined_at if bot_member else None),
        "large": large,
        "member_count": len(guild.members),
        "members": [member_payload(world, m) for m in members],
        "channels": [channel_payload(world, c) for c in world.guild_channels(guild)],
        "threads": [],
        "presences": [],
        "voice_states": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
    }
    if unavailable is not None:
        payload["unavailable"] = unavailable
    return payload


def attachment_payload(attachment: Attachment) -> Json:
    return {
        "id": str(attachment.id),
        "filename": attachment.filename,
        "description": attachment.description,
        "content_type": attachment.content_type,
        "size": attachment.size,
        "url": attachment.url,
        "proxy_url": attachment.url,
        "flags": 0,
    }


def message_payload(world: World, message: Message) -> Json:
    author = world.user(message.author_id)
    payload: Json = {
        "id": str(message.id),
        "channel_id": str(message.channel_id),
        "author": user_payload(author),
        "content": message.content,
        "timestamp": iso(message.created_at),
        "edited_timestamp": iso(message.edited_at),
        "tts": message.tts,
        "mention_everyone": "@everyone" in message.content,
        "mentions": [user_payload(world.users[i]) for i in message.mention_ids if i in world.users],
        "mention_roles": [str(i) for i in message.role_mention_ids],
        "attachments": [attachment_payload(a) for a in message.attachments],
        "embeds": message.embeds,
        "components": message.components,
        "reactions": [
            {"emoji": {"id": None, "name": emoji}, "count": len(users), "count_details": {"burst": 0,
             "normal": len(users)}, "me": world.bot_user.id in users, "me_burst": False,
             "burst_colors": []}
            for emoji, users in message.reactions.items() if users
        ],
        "pinned": False,
        "type": message.type,
        "flags": message.flags,
    }
    if message.guild_id is not None:
        payload["guild_id"] = str(message.guild_id)
        member = world.guilds[message.guild_id].members.get(message.author_id)
        if member is not None:
            payload["member"] = member_payload(world, member, with_user=False)
    if message.nonce is not None:
        payload["nonce"] = message.nonce
    if message.webhook_id is not None:
        payload["webhook_id"] = str(message.webhook_id)
        payload["application_id"] = str(world.application_id)
    if message.reference_id is not None:
        payload["message_reference"] = {
            "type": 0, "message_id": str(message.reference_id), "channel_id": str(message.channel_id),
            **({"guild_id": str(message.guild_id)} if message.guild_id else {}),
        }
    if message.interaction is not None:
        meta = message.interaction
        user = user_payload(world.user(meta.user_id))
        owners = {"0": str(message.guild_id)} if message.guild_id else {"0": "0"}
        payload["interaction_metadata"] = {
            "id": str(meta.id), "type": meta.type, "user": user,
            "authorizing_integration_owners": owners,
            **({"name": meta.name} if meta.name else {}),
            **({"original_response_message_id": str(meta.original_response_message_id)}
               if meta.original_response_message_id else {}),
        }
        if meta.name:
            payload["interaction"] = {"id": str(meta.id), "type": meta.type, "name": meta.name, "user": user}
    return payload


def ban_payload(world: World, ban: Ban) -> Json:
    return {"reason": ban.reason, "user": user_payload(world.user(ban.user_id))}


def command_payload(command: RegisteredCommand) -> Json:
    payload = {
        **command.payload,
        "id": str(command.id),
        "application_id": str(command.application_id),
        "name": command.name,
        "type": command.type,
        "version": str(command.version),
    }
    payload.setdefault("description", "")
    payload.setdefault("default_member_permissions", None)
    payload.setdefault("nsfw", False)
    if command.guild_id is not None:
        payload["guild_id"] = str(command.guild_id)
    return payload


def application_payload(world: World) -> Json:
    """`GET /oauth2/applications/@me`: who owns the bot (py-cord's `is_owner` falls back to it)."""
    return {
        "id": str(world.application_id),
        "name": world.bot_user.username,
        "icon": None,
        "description": "",
        "summary": "",
        "bot_public": True,
        "bot_require_code_grant": False,
        "verify_key": "0" * 64,
        "owner": user_payload(world.app_owner),
        "team": None,
        "flags": 0,
        "bot": user_payload(world.bot_user),
    }


def _optional_id(value: int | None) -> str | None:
    return str(value) if value is not None else None
