"""Login, gateway discovery, the application, users and DM channels."""

from __future__ import annotations

from aiohttp import web

from malabot.sandbox import events, payloads
from malabot.sandbox.context import body_of, sandbox_of, snowflake_arg
from malabot.sandbox.errors import invalid_form
from malabot.sandbox.http_io import json_response, no_content


async def get_current_user(request: web.Request) -> web.Response:
    return json_response(payloads.current_user_payload(sandbox_of(request).world.bot_user))


async def get_user(request: web.Request) -> web.Response:
    user = sandbox_of(request).world.user(snowflake_arg(request, "user_id"))
    return json_response(payloads.user_payload(user))


async def get_gateway(request: web.Request) -> web.Response:
    return json_response({"url": sandbox_of(request).gateway.url})


async def get_bot_gateway(request: web.Request) -> web.Response:
    return json_response({
        "url": sandbox_of(request).gateway.url,
        "shards": 1,
        "session_start_limit": {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1},
    })


async def get_default_sounds(request: web.Request) -> web.Response:
    # Must answer (an empty list is fine): a 404 here silently keeps py-cord's on_ready from firing.
    return json_response([])


async def get_application(request: web.Request) -> web.Response:
    return json_response(payloads.application_payload(sandbox_of(request).world))


async def get_application_emojis(request: web.Request) -> web.Response:
    return json_response({"items": []})


async def get_current_user_guilds(request: web.Request) -> web.Response:
    world = sandbox_of(request).world
    return json_response([
        {"id": str(g.id), "name": g.name, "icon": None, "banner": None,
         "owner": g.owner_id == world.bot_user.id, "permissions": "0", "features": []}
        for g in world.bot_guilds()
    ])


async def create_dm(request: web.Request) -> web.Response:
    sandbox = sandbox_of(request)
    recipient = body_of(request).object().get("recipient_id")
    if recipient is None:
        raise invalid_form("recipient_id", "This field is required")
    channel = sandbox.world.dm_channel(int(recipient))
    return json_response(payloads.channel_payload(sandbox.world, channel))


async def leave_guild(request: web.Request) -> web.Response:
    sandbox = sandbox_of(request)
    guild = sandbox.world.bot_guild(snowflake_arg(request, "guild_id"))
    sandbox.world.remove_bot_member(guild)
    await events.guild_deleted(sandbox, guild.id, unavailable=False)
    return no_content()


def register(app: web.Application) -> None:
    app.router.add_get("/users/@me", get_current_user)
    app.router.add_get("/users/@me/guilds", get_current_user_guilds)
    app.router.add_delete(r"/users/@me/guilds/{guild_id:\d+}", leave_guild)
    app.router.add_post("/users/@me/channels", create_dm)
    app.router.add_get(r"/users/{user_id:\d+}", get_user)
    app.router.add_get("/gateway", get_gateway)
    app.router.add_get("/gateway/bot", get_bot_gateway)
    app.router.add_get("/soundboard-default-sounds", get_default_sounds)
    app.router.add_get("/oauth2/applications/@me", get_application)
    app.router.add_get("/applications/@me", get_application)
    app.router.add_get(r"/applications/{application_id:\d+}/emojis", get_application_emojis)
