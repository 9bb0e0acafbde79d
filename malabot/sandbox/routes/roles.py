"""Guild roles: list, create, edit, reorder, delete, with the bot's role hierarchy enforced."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from malabot.sandbox import events, payloads
from malabot.sandbox.context import Sandbox, body_of, sandbox_of, snowflake_arg
from malabot.sandbox.errors import invalid_form, missing_permissions
from malabot.sandbox.http_io import json_response, no_content
from malabot.sandbox.permissions import ALL_PERMISSIONS, Permission, base_permissions, role_sort_key, top_role
from malabot.sandbox.routes.guards import require, require_manageable_role
from malabot.sandbox.state import Guild, Role


def _guild(request: web.Request) -> tuple[Sandbox, Guild]:
    sandbox = sandbox_of(request)
    guild = sandbox.world.bot_guild(snowflake_arg(request, "guild_id"))
    require(sandbox.world, guild, Permission.MANAGE_ROLES)
    return sandbox, guild


def _apply(sandbox: Sandbox, guild: Guild, role: Role, body: dict[str, Any]) -> None:
    if "name" in body:
        if not str(body["name"] or "").strip():
            raise invalid_form("name", "This field is required")
        role.name = str(body["name"])
    if body.get("permissions") is not None:
        wanted = int(body["permissions"])
        # A bot cannot hand out permissions it does not have itself.
        if wanted & ~base_permissions(guild, sandbox.world.bot_member(guild)) & ALL_PERMISSIONS:
            raise missing_permissions()
        role.permissions = wanted
    colors = body.get("colors") or {}
    if colors.get("primary_color") is not None:
        role.color = int(colors["primary_color"])
    elif body.get("color") is not None:
        role.color = int(body["color"])
    for flag in ("hoist", "mentionable"):
        if body.get(flag) is not None:
            setattr(role, flag, bool(body[flag]))


async def list_roles(request: web.Request) -> web.Response:
    sandbox = sandbox_of(request)
    guild = sandbox.world.bot_guild(snowflake_arg(request, "guild_id"))
    return json_response([payloads.role_payload(r) for r in guild.roles.values()])


async def create_role(request: web.Request) -> web.Response:
    sandbox, guild = _guild(request)
    body = body_of(request).object()
    role = sandbox.world.create_role(guild, str(body.get("name") or "new role"))
    _apply(sandbox, guild, role, body)
    await events.role_created(sandbox, role)
    return json_response(payloads.role_payload(role))


async def edit_role(request: web.Request) -> web.Response:
    sandbox, guild = _guild(request)
    role = sandbox.world.role(guild.id, snowflake_arg(request, "role_id"))
    require_manageable_role(sandbox.world, guild, role)
    _apply(sandbox, guild, role, body_of(request).object())
    await events.role_updated(sandbox, role)
    return json_response(payloads.role_payload(role))


async def reorder_roles(request: web.Request) -> web.Response:
    sandbox, guild = _guild(request)
    moves = body_of(request).json or []
    if not isinstance(moves, list):
        raise invalid_form("body", "expected a list of {id, position}")
    bot_top = top_role(guild, sandbox.world.bot_member(guild))
    moved = []
    for move in moves:
        role = sandbox.world.role(guild.id, int(move["id"]))
        require_manageable_role(sandbox.world, guild, role)
        position = int(move.get("position") or role.position)
        if guild.owner_id != sandbox.world.bot_user.id and position >= bot_top.position:
            raise missing_permissions()
        role.position = position
        moved.append(role)
    for role in moved:
        await events.role_updated(sandbox, role)
    return json_response([payloads.role_payload(r) for r in sorted(guild.roles.values(), key=role_sort_key)])


async def delete_role(request: web.Request) -> web.Response:
    sandbox, guild = _guild(request)
    role = sandbox.world.role(guild.id, snowflake_arg(request, "role_id"))
    require_manageable_role(sandbox.world, guild, role, assigning=True)
    del guild.roles[role.id]
    for member in guild.members.values():
        if role.id in member.roles:
            member.roles.remove(role.id)
    await events.role_deleted(sandbox, role)
    return no_content()


def register(app: web.Application) -> None:
    roles = r"/guilds/{guild_id:\d+}/roles"
    app.router.add_get(roles, list_roles)
    app.router.add_post(roles, create_role)
    app.router.add_patch(roles, reorder_roles)
    app.router.add_patch(roles + r"/{role_id:\d+}", edit_role)
    app.router.add_delete(roles + r"/{role_id:\d+}", delete_role)
