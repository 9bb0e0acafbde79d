"""Application command registration: global and guild commands, bulk overwrite and single edits.

Ids stay stable across overwrites for the same (name, type), as on Discord, so the bot's
command id cache and `FakeDiscord.invoke_command` agree.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from malabot.sandbox import payloads
from malabot.sandbox.context import Sandbox, body_of, sandbox_of, snowflake_arg
from malabot.sandbox.errors import invalid_form, missing_access, unknown
from malabot.sandbox.http_io import json_response, no_content
from malabot.sandbox.state import RegisteredCommand

_CHAT_INPUT_NAME = re.compile(r"^[-_\w]{1,32}$")


def _scope(request: web.Request) -> tuple[Sandbox, int | None]:
    """The sandbox and the guild id of a guild-command route (None for global commands)."""
    sandbox = sandbox_of(request)
    if snowflake_arg(request, "application_id") != sandbox.world.application_id:
        raise unknown("Application")
    if "guild_id" not in request.match_info:
        return sandbox, None
    guild = sandbox.world.guild(snowflake_arg(request, "guild_id"))
    if sandbox.world.bot_user.id not in guild.members:
        raise missing_access()
    return sandbox, guild.id


_SUBCOMMAND_TYPES = (1, 2)   # SUB_COMMAND, SUB_COMMAND_GROUP
_COMBINED_CHARACTERS = 4000  # names, descriptions and choice values of a command and all its options


def validate_command(payload: Any, index: int | None = None) -> dict[str, Any]:
    """Discord refuses the whole request (50035) when any part of a command breaks its rules, options
    and choices at any depth included."""
    where = f"{index}." if index is not None else ""
    if not isinstance(payload, dict) or not payload.get("name"):
        raise invalid_form(f"{where}name", "This field is required")
    if int(payload.get("type") or 1) == 1:
        _check_chat_input(payload, where)
        if _characters(payload) > _COMBINED_CHARACTERS:
            raise invalid_form(f"{where}options", "Command exceeds maximum size (4000)")
    elif len(payload.get("options") or []) > 25:
        raise invalid_form(f"{where}options", "Must be 25 or fewer in length.")
    return payload


def _check_chat_input(part: dict[str, Any], where: str) -> None:
    """A slash command or one of its options: name, description, choices, then its own options."""
    name = str(part.get("name") or "")
    if not _CHAT_INPUT_NAME.match(name) or name != name.lower():
        raise invalid_form(f"{where}name", "Command name is invalid")
    if not 1 <= len(str(part.get("description") or "")) <= 100:
        raise invalid_form(f"{where}description", "Must be between 1 and 100 in length.")
    choices = part.get("choices") or []
    if len(choices) > 25:
        raise invalid_form(f"{where}choices", "Must be 25 or fewer in length.")
    if choices and part.get("autocomplete"):
        raise invalid_form(f"{where}autocomplete", "Autocomplete cannot be set with choices")
    for number, choice in enumerate(choices):
        if not 1 <= len(str(choice.get("name") or "")) <= 100 or len(str(choice.get("value", ""))) > 100:
            raise invalid_form(f"{where}choices.{number}", "Must be between 1 and 100 in length.")
    options = part.get("options") or []
    if len(options) > 25:
        raise invalid_form(f"{where}options", "Must be 25 or fewer in length.")
    names = [str(option.get("name")) for option in options]
    if len(set(names)) != len(names):
        raise invalid_form(f"{where}options", "Option names must be unique")
    if len({option.get("type") in _SUBCOMMAND_TYPES for option in options}) > 1:
        raise invalid_form(f"{where}options", "Sub-commands and options cannot be mixed")
    optional_seen = False
    for number, option in enumerate(options):
        if option.get("type") not in _SUBCOMMAND_TYPES:
            if option.get("required") and optional_seen:
                raise invalid_form(f"{where}options.{number}.required",
                                   "Required options must be placed before non-required options")
            optional_seen = optional_seen or not option.get("required")
        _check_chat_input(option, f"{where}options.{number}.")


def _characters(part: dict[str, Any]) -> int:
    """What Discord counts against a command's combined size."""
    return (len(str(part.get("name") or "")) + len(str(part.get("description") or ""))
            + sum(len(str(choice.get("name") or "")) + len(str(choice.get("value", "")))
                  for choice in part.get("choices") or [])
            + sum(_characters(option) for option in part.get("options") or []))


def _upsert(sandbox: Sandbox, guild_id: int | None,
            payload: dict[str, Any]) -> tuple[RegisteredCommand, bool]:
    world = sandbox.world
    command_type = int(payload.get("type") or 1)
    existing = next((c for c in world.commands_for(guild_id)
                     if c.name == payload["name"] and c.type == command_type), None)
    stored = {k: v for k, v in payload.items() if k not in ("id", "application_id", "version", "guild_id")}
    if existing is not None:
        existing.payload = stored
        existing.version = world.snowflakes.next()
        return existing, False
    command = RegisteredCommand(world.snowflakes.next(), world.application_id, guild_id, str(payload["name"]),
                                command_type, stored, world.snowflakes.next())
    world.commands[command.id] = command
    return command, True


def _command(sandbox: Sandbox, guild_id: int | None, command_id: int) -> RegisteredCommand:
    command = sandbox.world.commands.get(command_id)
    if command is None or command.guild_id != guild_id:
        raise unknown("application command")
    return command


async def list_commands(request: web.Request) -> web.Response:
    sandbox, guild_id = _scope(request)
    return json_response([payloads.command_payload(c) for c in sandbox.world.commands_for(guild_id)])


async def overwrite_commands(request: web.Request) -> web.Response:
    sandbox, guild_id = _scope(request)
    wanted = body_of(request).json or []
    if not isinstance(wanted, list):
        raise invalid_form("body", "expected a list of commands")
    kept = [_upsert(sandbox, guild_id, validate_command(p, i))[0] for i, p in enumerate(wanted)]
    kept_ids = {c.id for c in kept}
    for command in sandbox.world.commands_for(guild_id):
        if command.id not in kept_ids:
            del sandbox.world.commands[command.id]
    sandbox.commands_changed.notify()
    return json_response([payloads.command_payload(c) for c in kept])


async def create_command(request: web.Request) -> web.Response:
    sandbox, guild_id = _scope(request)
    command, created = _upsert(sandbox, guild_id, validate_command(body_of(request).json))
    sandbox.commands_changed.notify()
    return json_response(payloads.command_payload(command), status=201 if created else 200)


async def get_command(request: web.Request) -> web.Response:
    sandbox, guild_id = _scope(request)
    command = _command(sandbox, guild_id, snowflake_arg(request, "command_id"))
    return json_response(payloads.command_payload(command))


async def edit_command(request: web.Request) -> web.Response:
    sandbox, guild_id = _scope(request)
    command = _command(sandbox, guild_id, snowflake_arg(request, "command_id"))
    merged = validate_command({**command.payload, "name": command.name, "type": command.type,
                        **body_of(request).object()})
    command.name = str(merged["name"])
    command.payload = {k: v for k, v in merged.items() if k not in ("id", "application_id", "version")}
    command.version = sandbox.world.snowflakes.next()
    sandbox.commands_changed.notify()
    return json_response(payloads.command_payload(command))


async def delete_command(request: web.Request) -> web.Response:
    sandbox, guild_id = _scope(request)
    command = _command(sandbox, guild_id, snowflake_arg(request, "command_id"))
    del sandbox.world.commands[command.id]
    sandbox.commands_changed.notify()
    return no_content()


async def list_command_permissions(request: web.Request) -> web.Response:
    _scope(request)
    return json_response([])


def register(app: web.Application) -> None:
    for base in (r"/applications/{application_id:\d+}/commands",
                 r"/applications/{application_id:\d+}/guilds/{guild_id:\d+}/commands"):
        app.router.add_get(base, list_commands)
        app.router.add_put(base, overwrite_commands)
        app.router.add_post(base, create_command)
        app.router.add_get(base + r"/{command_id:\d+}", get_command)
        app.router.add_patch(base + r"/{command_id:\d+}", edit_command)
        app.router.add_delete(base + r"/{command_id:\d+}", delete_command)
    app.router.add_get(r"/applications/{application_id:\d+}/guilds/{guild_id:\d+}/commands/permissions",
                       list_command_permissions)
