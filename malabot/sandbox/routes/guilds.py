"""Guilds and their channels: read the guild, list/create/edit/delete channels, overwrites."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from malabot.sandbox import events, payloads
from malabot.sandbox.context import Sandbox, body_of, sandbox_of, snowflake_arg
from malabot.sandbox.errors import ApiError, invalid_form
from malabot.sandbox.http_io import json_response, no_content, query_flag
from malabot.sandbox.permissions import Permission
from malabot.sandbox.routes.guards import guild_of_channel, require
from malabot.sandbox.state import GUILD_TEXT, Channel, Guild, Overwrite


def _guild(request: web.Request) -> tuple[Sandbox, Guild]:
    sandbox = sandbox_of(request)
    return sandbox, sandbox.world.bot_guild(snowflake_arg(request, "guild_id"))


def _guild_channel(request: web.Request) -> tuple[Sandbox, Guild, Channel]:
    sandbox = sandbox_of(request)
    channel = sandbox.world.channel(snowflake_arg(request, "channel_id"))
    guild = guild_of_channel(sandbox.world, channel)
    if guild is None:
        raise ApiError(403, 50003, "Cannot execute action on a DM channel")
    return sandbox, guild, channel


async def get_guild(request: web.Request) -> web.Response:
    sandbox, guild = _guild(request)
    payload = payloads.guild_payload(sandbox.world, guild)
    if query_flag(request, "with_counts"):
        payload.update(approximate_member_count=len(guild.members), approximate_presence_count=0)
    return json_response(payload)


async def list_channels(request: web.Request) -> web.Response:
    sandbox, guild = _guild(request)
    channels = sandbox.world.guild_channels(guild)
    return json_response([payloads.channel_payload(sandbox.world, c) for c in channels])


def _overwrites(raw: Any) -> list[Overwrite]:
    return [Overwrite(int(o["id"]), int(o.get("type", 0)), int(o.get("allow") or 0), int(o.get("deny") or 0))
            for o in raw or []]


async def create_channel(request: web.Request) -> web.Response:
    sandbox, guild = _guild(request)
    require(sandbox.world, guild, Permission.MANAGE_CHANNELS)
    body = body_of(request).object()
    if not body.get("name"):
        raise invalid_form("name", "This field is required")
    channel = sandbox.world.add_channel(
        guild, str(body["name"]), type=int(body.get("type") or GUILD_TEXT), topic=body.get("topic"),
        parent=int(body["parent_id"]) if body.get("parent_id") else None, nsfw=bool(body.get("nsfw")),
        overwrites=_overwrites(body.get("permission_overwrites")),
    )
    await events.channel_event(sandbox, "CHANNEL_CREATE", channel)
    return json_response(payloads.channel_payload(sandbox.world, channel), status=201)


async def edit_channel(request: web.Request) -> web.Response:
    sandbox, guild, channel = _guild_channel(request)
    require(sandbox.world, guild, Permission.MANAGE_CHANNELS, channel)
    body = body_of(request).object()
    if "name" in body:
        channel.name = str(body["name"])
    if "topic" in body:
        channel.topic = body["topic"]
    if "nsfw" in body:
        channel.nsfw = bool(body["nsfw"])
    if "position" in body and body["position"] is not None:
        channel.position = int(body["position"])
    if "parent_id" in body:
        channel.parent_id = int(body["parent_id"]) if body["parent_id"] else None
    if "permission_overwrites" in body:
        require(sandbox.world, guild, Permission.MANAGE_ROLES, channel)
        channel.overwrites = _overwrites(body["permission_overwrites"])
    await events.channel_event(sandbox, "CHANNEL_UPDATE", channel)
    return json_response(payloads.channel_payload(sandbox.world, channel))


async def delete_channel(request: web.Request) -> web.Response:
    sandbox, guild, channel = _guild_channel(request)
    require(sandbox.world, guild, Permission.MANAGE_CHANNELS, channel)
    guild.channel_ids.remove(channel.id)
    del sandbox.world.channels[channel.id]
    await events.channel_event(sandbox, "CHANNEL_DELETE", channel)
    return json_response(payloads.channel_payload(sandbox.world, channel))


async def put_overwrite(request: web.Request) -> web.Response:
    sandbox, guild, channel = _guild_channel(request)
    require(sandbox.world, guild, Permission.MANAGE_ROLES, channel)
    body = body_of(request).object()
    target = snowflake_arg(request, "target_id")
    replacement = Overwrite(target, int(body.get("type", 0)), int(body.get("allow") or 0),
                            int(body.get("deny") or 0))
    channel.overwrites = [o for o in channel.overwrites if o.id != target] + [replacement]
    await events.channel_event(sandbox, "CHANNEL_UPDATE", channel)
    return no_content()


async def delete_overwrite(request: web.Request) -> web.Response:
    sandbox, guild, channel = _guild_channel(request)
    require(sandbox.world, guild, Permission.MANAGE_ROLES, channel)
    target = snowflake_arg(request, "target_id")
    channel.overwrites = [o for o in channel.overwrites if o.id != target]
    await events.channel_event(sandbox, "CHANNEL_UPDATE", channel)
    return no_content()


def register(app: web.Application) -> None:
    guild = r"/guilds/{guild_id:\d+}"
    app.router.add_get(guild, get_guild)
    app.router.add_get(guild + "/channels", list_channels)
    app.router.add_post(guild + "/channels", create_channel)
    channel = r"/channels/{channel_id:\d+}"
    app.router.add_patch(channel, edit_channel)
    app.router.add_delete(channel, delete_channel)
    app.router.add_put(channel + r"/permissions/{target_id:\d+}", put_overwrite)
    app.router.add_delete(channel + r"/permissions/{target_id:\d+}", delete_overwrite)
