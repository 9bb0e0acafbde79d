"""/ping, /serverinfo, /userinfo and /help through the real bot."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from malabot.cogs.utility import UtilityCog
from malabot.sandbox import FakeDiscord, InteractionReply, Overwrite, Permission, User
from tests.e2e.world import World, make_world

SUB_COMMAND, SUB_COMMAND_GROUP = 1, 2


@pytest.fixture
async def world(discord_server: FakeDiscord, tmp_path: Path) -> AsyncIterator[World]:
    async for running in make_world(discord_server, tmp_path):
        yield running


async def run(world: World, user: User, command: str, options: dict[str, Any] | None = None) -> InteractionReply:
    reply = await world.command(user, command, options)
    assert reply.ephemeral, f"/{command} answered publicly"
    return reply


def field(reply: InteractionReply, name: str) -> str:
    return next(str(item["value"]) for item in reply.embeds[0]["fields"] if item["name"] == name)


def registered_leaves(world: World) -> dict[str, int]:
    """Every slash command (with its subcommand path) Discord knows, with its default permissions."""
    found: dict[str, int] = {}

    def walk(prefix: str, options: list[dict[str, Any]], permissions: int) -> None:
        subs = [option for option in options if option["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP)]
        if not subs:
            found[prefix] = permissions
        for sub in subs:
            walk(f"{prefix} {sub['name']}", sub.get("options") or [], permissions)

    for command in world.server.commands():
        if command.type == 1:
            raw = command.payload.get("default_member_permissions")
            walk(command.name, command.payload.get("options") or [], int(raw) if raw is not None else 0)
    return found


async def all_help(world: World, user: User) -> tuple[list[str], list[InteractionReply]]:
    """Every page of /help for the user: the listed command names, and the replies."""
    leaves = registered_leaves(world)
    names: list[str] = []
    replies: list[InteractionReply] = []
    page = 1
    while True:
        reply = await run(world, user, "help", {"page": page})
        replies.append(reply)
        for usage in re.findall(r"^`/([^`]+)` — ", reply.embeds[0]["description"], re.MULTILINE):
            names.append(max((name for name in leaves if usage == name or usage.startswith(name + " ")), key=len))
        if "for more" not in reply.embeds[0].get("footer", {}).get("text", ""):
            return names, replies
        page += 1


async def test_ping(world: World) -> None:
    reply = await run(world, world.alice, "ping")
    assert re.fullmatch(r"Pong! \((gateway latency \d+ ms|gateway latency not measured yet)\)", reply.content)


async def test_what_the_bot_sends_never_pings_everyone_or_a_role_unless_it_says_so(world: World) -> None:
    # The bot-wide default (MalaBot's allowed_mentions): a reply that names no mentions of its own, such
    # as /ping's, still tells Discord to ping neither @everyone nor any role.
    reply = await world.command(world.alice, "ping")
    [callback] = world.server.requests_to("POST", f"/interactions/{reply.id}/*")
    assert callback.json["data"]["allowed_mentions"]["parse"] == ["users"]


async def test_serverinfo(world: World) -> None:
    reply = await run(world, world.alice, "serverinfo")
    assert reply.embeds[0]["title"] == "Mala Town"
    assert field(reply, "Owner") == f"<@{world.admin.id}>"
    assert field(reply, "Members") == str(len(world.server.guild(world.guild).members))
    assert field(reply, "Roles") == "2"  # Moderators and the bot's own role
    assert field(reply, "Channels") == "1 text · 0 voice"
    assert reply.embeds[0]["footer"]["text"] == f"Server id {world.guild.id}"


async def test_userinfo_of_a_member_of_yourself_and_of_a_stranger(world: World) -> None:
    bob = await run(world, world.alice, "userinfo", {"member": world.bob})
    assert bob.embeds[0]["title"] == "bob"
    moderators = next(role for role in world.server.guild(world.guild).roles.values() if role.name == "Moderators")
    assert field(bob, "Roles (1)") == f"<@&{moderators.id}>"
    assert "Joined this server" in bob.text

    me = await run(world, world.alice, "userinfo")
    assert me.embeds[0]["footer"]["text"] == f"User id {world.alice.id}"
    assert field(me, "Roles (0)") == "none"

    stranger = world.server.add_user("stranger")
    outside = await run(world, world.alice, "userinfo", {"member": stranger})
    assert field(outside, "Member") == "not a member of this server"


async def test_help_lists_every_registered_command_for_the_owner(world: World) -> None:
    names, _ = await all_help(world, world.admin)
    assert sorted(names) == sorted(registered_leaves(world)), "help is generated from the registered commands"
    assert len(names) == len(set(names))


async def test_help_shows_a_member_only_the_commands_they_may_use(world: World) -> None:
    names, replies = await all_help(world, world.alice)
    leaves = registered_leaves(world)
    everyone_may = {name for name, permissions in leaves.items() if permissions == 0}
    assert set(names) == everyone_may
    assert {"ping", "help", "serverinfo", "userinfo", "mydata export", "mydata delete"} <= set(names)
    assert "warn" not in names and "config show" not in names
    hidden = len(leaves) - len(everyone_may)
    assert f"{hidden} more need permissions you do not have" in replies[-1].embeds[0]["footer"]["text"]

    bob_names, _ = await all_help(world, world.bob)  # bob may manage the server, not moderate
    assert "config show" in bob_names and "warn" not in bob_names
    manage_guild = {name for name, permissions in leaves.items() if permissions & ~int(Permission.MANAGE_GUILD) == 0}
    owners_alone = {"backup list", "backup restore"}  # bob may manage the server but does not own it
    assert set(bob_names) == manage_guild - owners_alone
    assert "backup create" in bob_names


async def test_help_leaves_out_a_subcommand_whose_check_asks_more_than_its_group(world: World) -> None:
    """Discord shows /verify to Manage Roles; `/verify setup` checks Manage Server too, so /help does."""
    reviewers = await world.server.create_role(world.guild, "Reviewers", permissions=int(Permission.MANAGE_ROLES))
    carol = world.server.add_user("carol")
    await world.server.member_join(world.guild, carol, roles=[reviewers])
    names, _ = await all_help(world, carol)
    assert "verify reset" in names and "verify setup" not in names
    refused = await run(world, carol, "verify setup", {"channel": world.general, "role": reviewers})
    assert refused.content == "You need the Manage Server permission to use this command."


async def test_help_tells_an_administrator_which_commands_are_for_the_owner_alone(world: World) -> None:
    """An Administrator lacks no permission: what they do not see is the owner's (/backup list|restore)."""
    admins = await world.server.create_role(world.guild, "Admins", permissions=int(Permission.ADMINISTRATOR))
    carol = world.server.add_user("carol")
    await world.server.member_join(world.guild, carol, roles=[admins])
    owners_alone = {"backup list", "backup restore"}
    names, replies = await all_help(world, carol)
    assert set(names) == set(registered_leaves(world)) - owners_alone
    footer = replies[-1].embeds[0]["footer"]["text"]
    assert footer.split(" · ")[-1] == "2 more are for the server owner only"
    assert "permissions" not in footer

    _, bob_replies = await all_help(world, world.bob)  # may manage the server: lacks some, owns nothing
    bob_footer = bob_replies[-1].embeds[0]["footer"]["text"].split(" · ")
    assert bob_footer[-1] == "2 more are for the server owner only"
    assert bob_footer[-2].endswith(" more need permissions you do not have")


async def test_help_lists_what_the_commands_would_let_them_run_in_this_channel(world: World) -> None:
    # alice may manage #general's permissions (the Manage Roles bit of an overwrite) and its messages:
    # the first is not Manage Roles, which /levelrole checks server-wide; the second is what /purge
    # checks, in the channel it runs in.
    await world.server.set_overwrite(world.general, Overwrite.for_member(
        world.alice, allow=int(Permission.MANAGE_ROLES | Permission.MANAGE_MESSAGES)))
    names, _ = await all_help(world, world.alice)
    leaves = registered_leaves(world)
    assert set(names) == {name for name, permissions in leaves.items() if permissions == 0} | {"purge"}
    refused = await run(world, world.alice, "levelrole list")
    assert refused.content == "You need the Manage Roles permission to use this command."


async def test_help_describes_options_and_refuses_missing_pages(world: World) -> None:
    _, replies = await all_help(world, world.admin)
    text = "\n".join(reply.embeds[0]["description"] for reply in replies)
    assert "`/ban member reason [delete_message_days]` — Ban a member (or any user) from the server" in text
    assert "`/warnings list [member]` — " in text
    pages = len(replies)
    too_far = await run(world, world.admin, "help", {"page": pages + 1})
    shown = "is only 1 page" if pages == 1 else f"are only {pages} pages"
    assert too_far.content == f"There {shown} of help."


async def test_help_pages_through_a_long_list(world: World) -> None:
    cog = world.running.get_cog("Utility")
    assert isinstance(cog, UtilityCog)
    cog.help_page_limit = 400
    names, replies = await all_help(world, world.admin)
    assert len(replies) > 2
    assert sorted(names) == sorted(registered_leaves(world)), "every command on exactly one page"
    assert all(len(reply.embeds[0]["description"]) <= 400 for reply in replies)
    assert replies[0].embeds[0]["footer"]["text"] == f"Page 1 of {len(replies)} · /help page:2 for more"
    assert replies[-1].embeds[0]["footer"]["text"] == f"Page {len(replies)} of {len(replies)}"
