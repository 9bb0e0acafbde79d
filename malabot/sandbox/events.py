"""The gateway events a change of the world causes, as Discord sends them to the bot.

REST routes (the bot's own actions) and `FakeDiscord` (a test's actions) both call these, so the
bot's cache follows every change the same way it would on Discord.
"""

from __future__ import annotations

from typing import Any

from malabot.sandbox import payloads
from malabot.sandbox.context import Sandbox
from malabot.sandbox.state import Channel, Guild, Member, Message, Role, User


async def message_created(sandbox: Sandbox, message: Message) -> None:
    if message.ephemeral:
        return  # ephemeral answers exist only for the user who invoked
    await sandbox.gateway.dispatch("MESSAGE_CREATE", payloads.message_payload(sandbox.world, message),
                                   guild_id=message.guild_id, dm=message.guild_id is None)


async def message_updated(sandbox: Sandbox, message: Message) -> None:
    if message.ephemeral:
        return
    await sandbox.gateway.dispatch("MESSAGE_UPDATE", payloads.message_payload(sandbox.world, message),
                                   guild_id=message.guild_id, dm=message.guild_id is None)


async def message_deleted(sandbox: Sandbox, message: Message) -> None:
    if message.ephemeral:
        return
    payload = {"id": str(message.id), "channel_id": str(message.channel_id), **_guild_key(message.guild_id)}
    await sandbox.gateway.dispatch("MESSAGE_DELETE", payload, guild_id=message.guild_id,
                                   dm=message.guild_id is None)


async def messages_bulk_deleted(sandbox: Sandbox, channel: Channel, ids: list[int]) -> None:
    payload = {"ids": [str(i) for i in ids], "channel_id": str(channel.id), **_guild_key(channel.guild_id)}
    await sandbox.gateway.dispatch("MESSAGE_DELETE_BULK", payload, guild_id=channel.guild_id)


async def reaction_added(sandbox: Sandbox, message: Message, user_id: int, emoji: str) -> None:
    payload: dict[str, Any] = {
        "user_id": str(user_id), "channel_id": str(message.channel_id), "message_id": str(message.id),
        "emoji": {"id": None, "name": emoji}, "burst": False, "type": 0, **_guild_key(message.guild_id),
    }
    if message.guild_id is not None:
        member = sandbox.world.guilds[message.guild_id].members.get(user_id)
        if member is not None:
            payload["member"] = payloads.member_payload(sandbox.world, member)
    await sandbox.gateway.dispatch("MESSAGE_REACTION_ADD", payload, guild_id=message.guild_id,
                                   dm=message.guild_id is None)


async def member_added(sandbox: Sandbox, member: Member) -> None:
    payload = payloads.member_event_payload(sandbox.world, member)
    await sandbox.gateway.dispatch("GUILD_MEMBER_ADD", payload, guild_id=member.guild_id)


async def member_updated(sandbox: Sandbox, member: Member) -> None:
    payload = payloads.member_event_payload(sandbox.world, member)
    await sandbox.gateway.dispatch("GUILD_MEMBER_UPDATE", payload, guild_id=member.guild_id)


async def member_removed(sandbox: Sandbox, guild_id: int, user: User) -> None:
    payload = {"guild_id": str(guild_id), "user": payloads.user_payload(user)}
    await sandbox.gateway.dispatch("GUILD_MEMBER_REMOVE", payload, guild_id=guild_id)


async def ban_added(sandbox: Sandbox, guild_id: int, user: User) -> None:
    payload = {"guild_id": str(guild_id), "user": payloads.user_payload(user)}
    await sandbox.gateway.dispatch("GUILD_BAN_ADD", payload, guild_id=guild_id)


async def ban_removed(sandbox: Sandbox, guild_id: int, user: User) -> None:
    payload = {"guild_id": str(guild_id), "user": payloads.user_payload(user)}
    await sandbox.gateway.dispatch("GUILD_BAN_REMOVE", payload, guild_id=guild_id)


async def role_created(sandbox: Sandbox, role: Role) -> None:
    payload = {"guild_id": str(role.guild_id), "role": payloads.role_payload(role)}
    await sandbox.gateway.dispatch("GUILD_ROLE_CREATE", payload, guild_id=role.guild_id)


async def role_updated(sandbox: Sandbox, role: Role) -> None:
    payload = {"guild_id": str(role.guild_id), "role": payloads.role_payload(role)}
    await sandbox.gateway.dispatch("GUILD_ROLE_UPDATE", payload, guild_id=role.guild_id)


async def role_deleted(sandbox: Sandbox, role: Role) -> None:
    payload = {"guild_id": str(role.guild_id), "role_id": str(role.id)}
    await sandbox.gateway.dispatch("GUILD_ROLE_DELETE", payload, guild_id=role.guild_id)


async def channel_event(sandbox: Sandbox, event: str, channel: Channel) -> None:
    """CHANNEL_CREATE / CHANNEL_UPDATE / CHANNEL_DELETE of a guild channel."""
    await sandbox.gateway.dispatch(event, payloads.channel_payload(sandbox.world, channel),
                                   guild_id=channel.guild_id)


async def guild_created(sandbox: Sandbox, guild: Guild, *, unavailable: bool | None) -> None:
    """GUILD_CREATE, built per session: members are included only with the GUILD_MEMBERS intent."""
    gateway = sandbox.gateway
    for session in list(gateway.sessions.values()):
        if session.handles_guild(guild.id):
            await gateway.send_to_session(session, "GUILD_CREATE",
                                          gateway.guild_create(session, guild, unavailable=unavailable))


async def guild_deleted(sandbox: Sandbox, guild_id: int, *, unavailable: bool) -> None:
    """GUILD_DELETE: `unavailable: true` is an outage; without it the bot was removed."""
    payload: dict[str, Any] = {"id": str(guild_id)}
    if unavailable:
        payload["unavailable"] = True
    await sandbox.gateway.dispatch("GUILD_DELETE", payload, guild_id=guild_id)


def _guild_key(guild_id: int | None) -> dict[str, str]:
    return {"guild_id": str(guild_id)} if guild_id is not None else {}
