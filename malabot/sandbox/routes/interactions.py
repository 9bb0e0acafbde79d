"""Interaction callbacks and the interaction webhook (follow-ups, original response edits).

These routes carry no bot token on Discord (the interaction token is the credential), so they
are public here too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from malabot.sandbox import events, payloads
from malabot.sandbox.context import Sandbox, body_of, sandbox_of, snowflake_arg
from malabot.sandbox.errors import already_acknowledged, invalid_form, unknown
from malabot.sandbox.http_io import json_response, no_content, query_flag
from malabot.sandbox.interactions import (
    APPLICATION_COMMAND,
    AUTOCOMPLETE_RESULT,
    CHANNEL_MESSAGE,
    DEFERRED_CHANNEL_MESSAGE,
    DEFERRED_UPDATE_MESSAGE,
    MODAL,
    UPDATE_MESSAGE,
    InteractionReply,
)
from malabot.sandbox.messaging import create_message, edit_message
from malabot.sandbox.state import EPHEMERAL, LOADING, InteractionMetadata, Message

_CHAT_INPUT_COMMAND_MESSAGE = 20


def _metadata(reply: InteractionReply) -> InteractionMetadata:
    original_id = reply.original.id if reply.original else None
    return InteractionMetadata(reply.id, reply.type, reply.user_id, reply.name, original_id)


def _message_type(reply: InteractionReply) -> int:
    return _CHAT_INPUT_COMMAND_MESSAGE if reply.type == APPLICATION_COMMAND else 0


def _answer_message(sandbox: Sandbox, reply: InteractionReply, body: dict[str, Any],
                    request: web.Request) -> Message:
    """A message the bot posts as the answer to an interaction (original response or follow-up)."""
    world = sandbox.world
    return create_message(world, world.channel(reply.channel_id), world.bot_user.id, body,
                          body_of(request).files, sandbox.url_root, webhook_id=world.application_id,
                          interaction=_metadata(reply), type=_message_type(reply))


def _thinking_placeholder(sandbox: Sandbox, reply: InteractionReply, data: dict[str, Any]) -> Message:
    """The "Bot is thinking..." message of a deferral; ephemeral if the deferral asked for it."""
    world = sandbox.world
    flags = LOADING | (int(data.get("flags") or 0) & EPHEMERAL)
    return world.add_message(world.channel(reply.channel_id), world.bot_user.id, "", flags=flags,
                             type=_message_type(reply), webhook_id=world.application_id,
                             interaction=_metadata(reply))


async def callback(request: web.Request) -> web.Response:
    sandbox = sandbox_of(request)
    reply = sandbox.interactions.callback_target(snowflake_arg(request, "interaction_id"),
                                                 request.match_info["token"])
    if reply.acknowledged:
        raise already_acknowledged()
    sandbox.interactions.check_in_time(reply)
    body = body_of(request).object()
    kind = int(body.get("type") or 0)
    data = body.get("data") or {}
    message: Message | None = None
    if kind == CHANNEL_MESSAGE:
        message = _answer_message(sandbox, reply, data, request)
        reply.original = message
        await events.message_created(sandbox, message)
    elif kind == DEFERRED_CHANNEL_MESSAGE:
        message = _thinking_placeholder(sandbox, reply, data)
        reply.original = message
        await events.message_created(sandbox, message)
    elif kind in (DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE) and reply.source_message is not None:
        reply.original = message = reply.source_message
        if kind == UPDATE_MESSAGE:
            edit_message(sandbox.world, message, data, body_of(request).files, sandbox.url_root,
                         now=datetime.now(UTC))
            await events.message_updated(sandbox, message)
    elif kind == MODAL:
        reply.modal = data
    elif kind == AUTOCOMPLETE_RESULT:
        reply.choices = list(data.get("choices") or [])
    else:
        raise invalid_form("type", f"callback type {kind} is not valid for this interaction")
    reply.callback_type = kind
    reply.changed()
    if not query_flag(request, "with_response"):
        return no_content()
    answer: dict[str, Any] = {"interaction": {
        "id": str(reply.id), "type": reply.type,
        "response_message_loading": kind == DEFERRED_CHANNEL_MESSAGE,
        "response_message_ephemeral": bool(message and message.ephemeral),
        **({"response_message_id": str(message.id)} if message else {}),
    }}
    if message is not None and kind != DEFERRED_UPDATE_MESSAGE:
        answer["resource"] = {"type": kind, "message": payloads.message_payload(sandbox.world, message)}
    else:
        answer["resource"] = {"type": kind}
    return json_response(answer)


def _webhook_reply(request: web.Request) -> tuple[Sandbox, InteractionReply]:
    sandbox = sandbox_of(request)
    if snowflake_arg(request, "application_id") != sandbox.world.application_id:
        raise unknown("Webhook")
    return sandbox, sandbox.interactions.webhook_target(request.match_info["token"])


def _target_message(reply: InteractionReply, message_ref: str) -> Message:
    if message_ref == "@original":
        if reply.original is None or reply.original.deleted:
            raise unknown("Message")
        return reply.original
    for message in reply.followups:
        if str(message.id) == message_ref and not message.deleted:
            return message
    raise unknown("Message")


async def send_followup(request: web.Request) -> web.Response:
    sandbox, reply = _webhook_reply(request)
    if not reply.acknowledged:
        raise unknown("Webhook")  # Discord refuses follow-ups before the interaction is answered
    body = body_of(request).object()
    original = reply.original
    if (original is not None and original.loading and not original.deleted
            and reply.callback_type == DEFERRED_CHANNEL_MESSAGE):
        # The first follow-up after a "thinking..." deferral replaces the placeholder, and keeps the
        # deferral's ephemeral flag whatever the follow-up asks for. Once the bot deleted the
        # placeholder, a follow-up is a message of its own with its own flag, as on Discord.
        edit_message(sandbox.world, original, body, body_of(request).files, sandbox.url_root,
                     now=datetime.now(UTC))
        message = original
        await events.message_updated(sandbox, message)
    else:
        message = _answer_message(sandbox, reply, body, request)
        reply.followups.append(message)
        await events.message_created(sandbox, message)
    reply.changed()
    if not query_flag(request, "wait"):
        return no_content()
    return json_response(payloads.message_payload(sandbox.world, message))


async def get_webhook_message(request: web.Request) -> web.Response:
    sandbox, reply = _webhook_reply(request)
    message = _target_message(reply, request.match_info["message"])
    return json_response(payloads.message_payload(sandbox.world, message))


async def edit_webhook_message(request: web.Request) -> web.Response:
    sandbox, reply = _webhook_reply(request)
    message = _target_message(reply, request.match_info["message"])
    edit_message(sandbox.world, message, body_of(request).object(), body_of(request).files, sandbox.url_root,
                 now=datetime.now(UTC))
    await events.message_updated(sandbox, message)
    reply.changed()
    return json_response(payloads.message_payload(sandbox.world, message))


async def delete_webhook_message(request: web.Request) -> web.Response:
    sandbox, reply = _webhook_reply(request)
    message = _target_message(reply, request.match_info["message"])
    message.deleted = True
    await events.message_deleted(sandbox, message)
    reply.changed()
    return no_content()


def register(app: web.Application) -> None:
    app.router.add_post(r"/interactions/{interaction_id:\d+}/{token}/callback", callback)
    hook = r"/webhooks/{application_id:\d+}/{token}"
    app.router.add_post(hook, send_followup)
    app.router.add_get(hook + "/messages/{message}", get_webhook_message)
    app.router.add_patch(hook + "/messages/{message}", edit_webhook_message)
    app.router.add_delete(hook + "/messages/{message}", delete_webhook_message)
