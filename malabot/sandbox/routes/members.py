"""Members and moderation: read and list members, edit (nick, roles, timeout), role grants,
kicks and bans, each checked against the bot's permissions and role hierarchy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from malabot.sandbox import events, payloads
from malabot.sandbox.context import Sandbox, body_of, reason_of, sandbox_of, snowflake_arg
from malabot.sandbox.errors import invalid_form, missing_permissions, unknown
from malabot.sandbox.http_io import json_response, no_content
from malabot.sandbox.permissions import ALL_PERMISSIONS, Permission, base_permissions
from malabot.sandbox.routes.guards import require, require_manageable_role, require_outranks
from malabot.sandbox.state import Ban, Guild, Member

MAX_TIMEOUT = timedelta(days=28)
# Discord measures the 28 days on its own clock, which may run a little behind the bot's: the sandbox
# plays one 30 s behind, so a timeout of exactly 28 days by the bot's clock is refused, as it can be.
DISCORD_CLOCK_BEHIND = timedelta(seconds=30)


def _guild(request: web.Request) -> tuple[Sandbox, Guild]:
    sandbox = sandbox_of(request)
    return sandbox, sandbox.world.bot_guild(snowflake_arg(request, "guild_id"))


def _member(request: web.Request) -> tuple[Sandbox, Guild, Member]:
    sandbox, guild = _guild(request)
    user_id = sandbox.world.bot_user.id if request.match_info.get("user_id") == "@me" \
        else snowflake_arg(request, "user_id")
    return sandbox, guild, sandbox.world.member(guild.id, user_id)


async def get_member(request: web.Request) -> web.Response:
    sandbox, _, member = _member(request)
    return json_response(payloads.member_payload(sandbox.world, member))


async def list_members(request: web.Request) -> web.Response:
    sandbox, guild = _guild(request)
    limit = max(1, min(1000, int(request.query.get("limit", 1))))
    after = int(request.query.get("after", 0))
    members = sorted((m for m in guild.members.values() if m.user_id > after), key=lambda m: m.user_id)
    members = members[:limit]
    return json_response([payloads.member_payload(sandbox.world, m) for m in members])


async def search_members(request: web.Request) -> web.Response:
    sandbox, guild = _guild(request)
    query = request.query.get("query", "").lower()
    limit = max(1, min(1000, int(request.query.get("limit", 1))))

    def matches(member: Member) -> bool:
        user = sandbox.world.user(member.user_id)
        return any(n.lower().startswith(query) for n in (user.username, user.global_name, member.nick) if n)

    found = [m for m in guild.members.values() if matches(m)][:limit]
    return json_response([payloads.member_payload(sandbox.world, m) for m in found])


def _edit_roles(sandbox: Sandbox, guild: Guild, member: Member, wanted: list[Any]) -> None:
    require(sandbox.world, guild, Permission.MANAGE_ROLES)
    new_ids = [int(r) for r in wanted]
    for role_id in set(new_ids) ^ set(member.roles):
        require_manageable_role(sandbox.world, guild, sandbox.world.role(guild.id, role_id), assigning=True)
    if set(new_ids) - set(member.roles):
        _ends_screening(member)
    member.roles = list(dict.fromkeys(new_ids))


def _ends_screening(member: Member) -> None:
    """Discord: a member given a role skips Membership Screening, as if they had accepted the rules."""
    member.pending = False


def _edit_timeout(sandbox: Sandbox, guild: Guild, member: Member, until: Any) -> None:
    require(sandbox.world, guild, Permission.MODERATE_MEMBERS)
    require_outranks(sandbox.world, guild, member)
    if until is None:
        member.communication_disabled_until = None
        return
    # Administrators cannot be timed out, whatever the hierarchy.
    if base_permissions(guild, member) == ALL_PERMISSIONS:
        raise missing_permissions()
    try:
        moment = datetime.fromisoformat(str(until))
    except ValueError:
        raise invalid_form("communication_disabled_until", "Could not parse the date.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment > datetime.now(UTC) - DISCORD_CLOCK_BEHIND + MAX_TIMEOUT:
        raise invalid_form("communication_disabled_until", "Timeouts can be at most 28 days.")
    member.communication_disabled_until = moment


def _edit_nick(sandbox: Sandbox, guild: Guild, member: Member, nick: Any) -> None:
    if member.user_id == sandbox.world.bot_user.id:
        require(sandbox.world, guild, Permission.CHANGE_NICKNAME)
    else:
        require(sandbox.world, guild, Permission.MANAGE_NICKNAMES)
        require_outranks(sandbox.world, guild, member)
    member.nick = str(nick) if nick else None


async def edit_member(request: web.Request) -> web.Response:
    sandbox, guild, member = _member(request)
    body = body_of(request).object()
    if "nick" in body:
        _edit_nick(sandbox, guild, member, body["nick"])
    if "roles" in body and body["roles"] is not None:
        _edit_roles(sandbox, guild, member, body["roles"])
    if "communication_disabled_until" in body:
        _edit_timeout(sandbox, guild, member, body["communication_disabled_until"])
    await events.member_updated(sandbox, member)
    return json_response(payloads.member_payload(sandbox.world, member))


async def add_member_role(request: web.Request) -> web.Response:
    sandbox, guild, member = _member(request)
    require(sandbox.world, guild, Permission.MANAGE_ROLES)
    role = sandbox.world.role(guild.id, snowflake_arg(request, "role_id"))
    require_manageable_role(sandbox.world, guild, role, assigning=True)
    if role.id not in member.roles:
        member.roles.append(role.id)
        _ends_screening(member)
        await events.member_updated(sandbox, member)
    return no_content()


async def remove_member_role(request: web.Request) -> web.Response:
    sandbox, guild, member = _member(request)
    require(sandbox.world, guild, Permission.MANAGE_ROLES)
    role = sandbox.world.role(guild.id, snowflake_arg(request, "role_id"))
    require_manageable_role(sandbox.world, guild, role, assigning=True)
    if role.id in member.roles:
        member.roles.remove(role.id)
        await events.member_updated(sandbox, member)
    return no_content()


async def kick_member(request: web.Request) -> web.Response:
    sandbox, guild, member = _member(request)
    require(sandbox.world, guild, Permission.KICK_MEMBERS)
    require_outranks(sandbox.world, guild, member)
    del guild.members[member.user_id]
    await events.member_removed(sandbox, guild.id, sandbox.world.user(member.user_id))
    return no_content()


async def list_bans(request: web.Request) -> web.Response:
    sandbox, guild = _guild(request)
    require(sandbox.world, guild, Permission.BAN_MEMBERS)
    return json_response([payloads.ban_payload(sandbox.world, b) for b in guild.bans.values()])


async def get_ban(request: web.Request) -> web.Response:
    sandbox, guild = _guild(request)
    require(sandbox.world, guild, Permission.BAN_MEMBERS)
    ban = guild.bans.get(snowflake_arg(request, "user_id"))
    if ban is None:
        raise unknown("Ban")
    return json_response(payloads.ban_payload(sandbox.world, ban))


async def ban_member(request: web.Request) -> web.Response:
    sandbox, guild = _guild(request)
    require(sandbox.world, guild, Permission.BAN_MEMBERS)
    user = sandbox.world.user(snowflake_arg(request, "user_id"))
    member = guild.members.get(user.id)
    if member is not None:
        require_outranks(sandbox.world, guild, member)
    # Discord takes it in the JSON body or, as py-cord sends it, in the query string.
    seconds = int(body_of(request).object().get("delete_message_seconds")
                  or request.query.get("delete_message_seconds") or 0)
    guild.bans[user.id] = Ban(user.id, reason_of(request))
    if seconds:
        since = datetime.now(UTC) - timedelta(seconds=seconds)
        for message in sandbox.world.messages.values():
            if message.guild_id == guild.id and message.author_id == user.id and message.created_at >= since:
                message.deleted = True
    await events.ban_added(sandbox, guild.id, user)
    if member is not None:
        del guild.members[user.id]
        await events.member_removed(sandbox, guild.id, user)
    return no_content()


async def unban_member(request: web.Request) -> web.Response:
    sandbox, guild = _guild(request)
    require(sandbox.world, guild, Permission.BAN_MEMBERS)
    ban = guild.bans.pop(snowflake_arg(request, "user_id"), None)
    if ban is None:
        raise unknown("Ban")
    await events.ban_removed(sandbox, guild.id, sandbox.world.user(ban.user_id))
    return no_content()


def register(app: web.Application) -> None:
    guild = r"/guilds/{guild_id:\d+}"
    member = guild + r"/members/{user_id:\d+|@me}"
    app.router.add_get(guild + "/members", list_members)
    app.router.add_get(guild + "/members/search", search_members)
    app.router.add_get(member, get_member)
    app.router.add_patch(member, edit_member)
    app.router.add_delete(member, kick_member)
    app.router.add_put(member + r"/roles/{role_id:\d+}", add_member_role)
    app.router.add_delete(member + r"/roles/{role_id:\d+}", remove_member_role)
    app.router.add_get(guild + "/bans", list_bans)
    app.router.add_get(guild + r"/bans/{user_id:\d+}", get_ban)
    app.router.add_put(guild + r"/bans/{user_id:\d+}", ban_member)
    app.router.add_delete(guild + r"/bans/{user_id:\d+}", unban_member)
