"""Channel messages: send (JSON or multipart with files), read, edit, delete, bulk delete, reactions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

from aiohttp import web

from malabot.sandbox import events, payloads
from malabot.sandbox.context import body_of, sandbox_of, snowflake_arg
from malabot.sandbox.errors import ApiError, cannot_dm, invalid_form
from malabot.sandbox.http_io import json_response, no_content
from malabot.sandbox.messaging import create_message, edit_message
from malabot.sandbox.permissions import Permission
from malabot.sandbox.routes.guards import guild_of_channel, has, require
from malabot.sandbox.state import Channel, Guild, Message, World

BULK_DELETE_MAX_AGE = timedelta(days=14)
# System messages Discord never deletes: recipient add/remove, call, channel name/icon change, and a
# thread's starter message (discord.js UndeletableMessageType).
UNDELETABLE_TYPES = frozenset({1, 2, 3, 4, 5, 21})


def _refuse_system_messages(messages: list[Message]) -> None:
    """Discord refuses a delete that includes one of them, the whole bulk delete too."""
    if any(message.type in UNDELETABLE_TYPES for message in messages):
        raise ApiError(403, 50021, "Cannot execute action on a system message")


def _channel(request: web.Request) -> tuple[World, Channel, Guild | None]:
    world = sandbox_of(request).world
    channel = world.channel(snowflake_arg(request, "channel_id"))
    return world, channel, guild_of_channel(world, channel)


def _message(request: web.Request) -> tuple[World, Channel, Guild | None, Message]:
    world, channel, guild = _channel(request)
    return world, channel, guild, world.message(channel.id, snowflake_arg(request, "message_id"))


async def get_channel(request: web.Request) -> web.Response:
    world, channel, _ = _channel(request)
    return json_response(payloads.channel_payload(world, channel))


def _may_embed(world: World, guild: Guild | None, channel: Channel) -> bool:
    """Discord does not show the embeds of a bot without Embed Links in the channel (DMs allow them).
    Interaction answers are webhook messages, which this does not apply to."""
    return guild is None or has(world, guild, Permission.EMBED_LINKS, channel)


async def send_message(request: web.Request) -> web.Response:
    sandbox = sandbox_of(request)
    world, channel, guild = _channel(request)
    if guild is not None:
        require(world, guild, Permission.SEND_MESSAGES, channel)
        if body_of(request).files:
            require(world, guild, Permission.ATTACH_FILES, channel)
    else:
        recipient = world.user(channel.recipient_ids[0])
        # Discord delivers a bot's DM only to a user who accepts DMs and shares a server with it.
        shares_a_server = any(recipient.id in guild.members for guild in world.bot_guilds())
        if recipient.bot or not recipient.accepts_dms or not shares_a_server:
            raise cannot_dm()
    body = body_of(request).object()
    message = create_message(world, channel, world.bot_user.id, body, body_of(request).files,
                             sandbox.url_root, may_embed=_may_embed(world, guild, channel))
    await events.message_created(sandbox, message)
    return json_response(payloads.message_payload(world, message))


async def list_messages(request: web.Request) -> web.Response:
    world, channel, guild = _channel(request)
    if guild is not None:
        require(world, guild, Permission.READ_MESSAGE_HISTORY, channel)
    limit = max(1, min(100, int(request.query.get("limit", 50))))
    found = world.channel_messages(channel.id)
    if "before" in request.query:
        found = [m for m in found if m.id < int(request.query["before"])]
    if "after" in request.query:
        found = [m for m in found if m.id > int(request.query["after"])][:limit]
    newest_first = sorted(found, key=lambda m: m.id, reverse=True)[:limit]
    return json_response([payloads.message_payload(world, m) for m in newest_first])


async def get_message(request: web.Request) -> web.Response:
    world, _, _, message = _message(request)
    return json_response(payloads.message_payload(world, message))


async def edit_channel_message(request: web.Request) -> web.Response:
    sandbox = sandbox_of(request)
    world, channel, guild, message = _message(request)
    if message.author_id != world.bot_user.id:
        raise ApiError(403, 50005, "Cannot edit a message authored by another user")
    edit_message(world, message, body_of(request).object(), body_of(request).files, sandbox.url_root,
                 now=datetime.now(UTC), may_embed=_may_embed(world, guild, channel))
    await events.message_updated(sandbox, message)
    return json_response(payloads.message_payload(world, message))


async def delete_message(request: web.Request) -> web.Response:
    sandbox = sandbox_of(request)
    world, channel, guild, message = _message(request)
    if message.author_id != world.bot_user.id:
        if guild is None:
            raise ApiError(403, 50003, "Cannot execute action on a DM channel")
        require(world, guild, Permission.MANAGE_MESSAGES, channel)
    _refuse_system_messages([message])
    message.deleted = True
    await events.message_deleted(sandbox, message)
    return no_content()


async def bulk_delete(request: web.Request) -> web.Response:
    sandbox = sandbox_of(request)
    world, channel, guild = _channel(request)
    if guild is None:
        raise ApiError(403, 50003, "Cannot execute action on a DM channel")
    require(world, guild, Permission.MANAGE_MESSAGES, channel)
    ids = [int(i) for i in body_of(request).object().get("messages") or []]
    if not 2 <= len(ids) <= 100:
        raise invalid_form("messages", "Must be between 2 and 100 in length.")
    oldest_allowed = datetime.now(UTC) - BULK_DELETE_MAX_AGE
    found = [m for m in map(world.messages.get, ids)
             if m is not None and m.channel_id == channel.id and not m.ephemeral]
    if any(m.created_at < oldest_allowed for m in found):
        raise ApiError(400, 50034, "You can only bulk delete messages that are under 14 days old.")
    _refuse_system_messages(found)
    for message in found:
        message.deleted = True
    await events.messages_bulk_deleted(sandbox, channel, [m.id for m in found])
    return no_content()


async def trigger_typing(request: web.Request) -> web.Response:
    _channel(request)
    return no_content()


async def add_reaction(request: web.Request) -> web.Response:
    sandbox = sandbox_of(request)
    world, channel, guild, message = _message(request)
    if guild is not None:
        require(world, guild, Permission.ADD_REACTIONS, channel)
    emoji = unquote(request.match_info["emoji"])
    users = message.reactions.setdefault(emoji, set())
    if world.bot_user.id not in users:
        users.add(world.bot_user.id)
        await events.reaction_added(sandbox, message, world.bot_user.id, emoji)
    return no_content()


async def remove_own_reaction(request: web.Request) -> web.Response:
    world, _, _, message = _message(request)
    message.reactions.get(unquote(request.match_info["emoji"]), set()).discard(world.bot_user.id)
    return no_content()


def register(app: web.Application) -> None:
    channel = r"/channels/{channel_id:\d+}"
    message = channel + r"/messages/{message_id:\d+}"
    app.router.add_get(channel, get_channel)
    app.router.add_post(channel + "/messages", send_message)
    app.router.add_get(channel + "/messages", list_messages)
    app.router.add_post(channel + "/messages/bulk-delete", bulk_delete)
    app.router.add_post(channel + "/typing", trigger_typing)
    app.router.add_get(message, get_message)
    app.router.add_patch(message, edit_channel_message)
    app.router.add_delete(message, delete_message)
    app.router.add_put(message + "/reactions/{emoji}/@me", add_reaction)
    app.router.add_delete(message + "/reactions/{emoji}/@me", remove_own_reaction)
