"""XP and levels through the real bot: chat XP, level-up messages, level roles, /rank, /leaderboard,
audited admin edits, and bad options answered ephemerally.

Level thresholds on the default (standard) curve: level 1 at 100 XP, 2 at 255, 3 at 475.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import aiosqlite
import pytest

from malabot.cogs import xp_admin
from malabot.cogs.questions import EXPIRED
from malabot.cogs.xp_admin import RESET_BUSY
from malabot.commands import ANSWER_LOST
from malabot.features.xp import repository
from malabot.sandbox import ALL_PERMISSIONS, FakeDiscord, Overwrite
from malabot.sandbox.payloads import channel_payload
from malabot.sandbox.permissions import Permission
from malabot.sandbox.state import GUILD_VOICE
from tests.e2e.data_dump import all_rows, eventually
from tests.e2e.discord_failures import busy_file_error, drop_role_changes, fail_answers
from tests.e2e.world import World, make_world, marked_quick
from tests.e2e.xp_place import EPHEMERAL, Place, make_place, settled
from tests.file_holds import file_in_use, locked_from_outside


@pytest.fixture
async def place(request: pytest.FixtureRequest, discord_server: FakeDiscord, tmp_path: Path) -> AsyncIterator[Place]:
    async for made in make_place(discord_server, tmp_path, quick=marked_quick(request)):
        yield made


async def fixed_xp(place: Place, amount: int) -> None:
    await place.configure(xp_min=amount, xp_max=amount)


async def test_commands_are_registered(place: Place) -> None:
    names = {command.name for command in place.world.server.commands()}
    assert {"rank", "leaderboard", "xp", "levelrole", "checkin", "streak"} <= names


# -- chat XP ------------------------------------------------------------------------------------------

async def test_chat_earns_xp_at_most_once_per_cooldown(place: Place) -> None:
    alice = place.world.alice
    await place.chat(alice)
    first = (await place.stored_xp())[alice.id]
    assert 15 <= first <= 25

    await place.chat(alice)
    place.world.clock.advance(seconds=59)
    await place.chat(alice)
    assert (await place.stored_xp())[alice.id] == first, "within 60 s only the first message counts"

    place.world.clock.advance(seconds=1)
    await place.chat(alice)
    second = (await place.stored_xp())[alice.id] - first
    assert 15 <= second <= 25


async def test_the_cooldown_runs_on_elapsed_time_when_the_wall_clock_is_set_back(place: Place) -> None:
    """NTP steps a clock that ran ahead back an hour (or a VM is restored): the cooldown still ends
    60 s after the last award, not an hour later; the file keeps wall-clock times."""
    alice, clock = place.world.alice, place.world.clock
    await place.chat(alice)
    first = (await place.stored_xp())[alice.id]
    assert first > 0
    assert read_last_message_at(place, alice.id) == clock.now.isoformat()

    clock.advance(hours=-1)        # the wall clock is set back: no time passed
    clock.advance(seconds=59)
    await place.chat(alice)
    assert (await place.stored_xp())[alice.id] == first, "the cooldown still holds within 60 s"
    clock.advance(seconds=1)
    await place.chat(alice)
    assert (await place.stored_xp())[alice.id] > first, "60 s after her last award alice earns XP again"


def read_last_message_at(place: Place, user_id: int) -> str:
    return next(str(row[3]) for row in all_rows(place.file)["xp"] if row[0] == user_id)


async def test_no_xp_channel_and_role_bots_and_webhooks_earn_nothing(place: Place) -> None:
    world = place.world
    await fixed_xp(place, 20)
    reply = await world.command(world.admin, "config set",
                                {"setting": "no_xp_channel_ids", "value": f"<#{place.spam.id}>"})
    assert reply.ephemeral, reply.content
    reply = await world.command(world.admin, "config set",
                                {"setting": "no_xp_role_ids", "value": f"<@&{place.muted.id}>"})
    assert reply.ephemeral, reply.content

    await place.chat(world.alice, place.spam)      # a no-XP channel
    await place.chat(place.carol)                  # a member with a no-XP role
    await place.chat(place.robot)                  # a bot
    await place.webhook_message(world.general)     # a webhook
    await place.raw_message(world.general, world.alice, type=7)  # "alice joined": a system message
    await place.chat(world.bob)                    # an ordinary message still counts

    assert await place.stored_xp() == {world.bob.id: 20}


async def test_config_refuses_channels_and_roles_of_nowhere(place: Place) -> None:
    reply = await place.world.command(place.world.admin, "config set",
                                      {"setting": "no_xp_channel_ids", "value": "123456789012345678"})
    assert reply.ephemeral
    assert "there is no channel with id 123456789012345678" in reply.content
    reply = await place.world.command(place.world.admin, "config set",
                                      {"setting": "levelup_channel_id", "value": "not a channel"})
    assert reply.ephemeral and "needs a #channel" in reply.content
    assert (await place.world.live.guild_settings.get(place.world.guild.id)).no_xp_channel_ids == ()


# -- level-up messages --------------------------------------------------------------------------------

async def test_the_listener_does_not_wait_for_a_members_stored_total_and_the_level_up_follows(
        place: Place, monkeypatch: pytest.MonkeyPatch) -> None:
    world = place.world
    await fixed_xp(place, 100)
    reading, release = asyncio.Event(), asyncio.Event()
    real = repository.stored_totals

    async def held(conn: aiosqlite.Connection, user_ids: list[int]) -> dict[int, int]:
        reading.set()
        await release.wait()
        return await real(conn, user_ids)

    monkeypatch.setattr(repository, "stored_totals", held)
    try:
        await world.server.send_message(world.general, world.alice, "hello")
        await asyncio.wait_for(reading.wait(), timeout=5)
        await world.server.sync_with_bot()
        listeners = [task for task in asyncio.all_tasks()
                     if task.get_name() == "pycord: on_message" and not task.done()]
        if listeners:
            await asyncio.wait(listeners, timeout=5)
        # py-cord's listener call is over although the read is still held: nothing keeps the message.
        assert all(task.done() for task in listeners)
        assert place.bot_messages() == []
    finally:
        release.set()
    await settled(world)
    assert [m.content for m in place.bot_messages()] == [f"GG <@{world.alice.id}>, you reached level 1!"]
    assert await place.stored_xp() == {world.alice.id: 100}


async def test_level_up_is_announced_in_the_chat_channel_then_in_the_configured_one(place: Place) -> None:
    world = place.world
    await fixed_xp(place, 100)
    await place.chat(world.alice)
    assert [m.content for m in place.bot_messages()] == [f"GG <@{world.alice.id}>, you reached level 1!"]

    await place.configure(levelup_channel_id=place.levels.id,
                          levelup_template="{member} is now level {level} on {server}")
    world.clock.advance(seconds=60)
    await place.chat(world.alice)                  # 200 XP: still level 1, no message
    world.clock.advance(seconds=60)
    await place.chat(world.alice)                  # 300 XP: level 2
    assert [m.content for m in place.bot_messages(place.levels)] == [
        f"<@{world.alice.id}> is now level 2 on Mala Town"]
    assert len(place.bot_messages()) == 1, "nothing more in the chat channel"


async def test_a_level_up_pings_the_member_and_nobody_else_the_template_names(place: Place) -> None:
    world = place.world
    await fixed_xp(place, 100)
    await place.configure(levelup_template=f"{{member}} reached level {{level}}! Thanks <@{world.bob.id}> @everyone")
    await place.chat(world.alice)
    [post] = [request for request in world.server.requests_to("POST", f"/channels/{world.general.id}/messages")
              if "reached level" in request.json["content"]]
    assert post.json["allowed_mentions"] == {"parse": [], "users": [world.alice.id]}


async def test_a_level_up_template_that_fills_in_past_one_message_is_posted_shortened(place: Place) -> None:
    world = place.world
    await fixed_xp(place, 100)
    await place.configure(levelup_template="{member} {server} " * 80)     # 1,440 characters typed
    await place.chat(world.alice)
    [posted] = place.bot_messages()
    assert len(posted.content) == 2000 and posted.content.endswith("…")
    assert posted.content.startswith(f"<@{world.alice.id}> Mala Town <@{world.alice.id}> Mala Town")


async def test_a_level_role_the_bot_cannot_give_at_a_chat_level_up_is_told_in_the_mod_log_once_a_day(
        place: Place) -> None:
    world = place.world
    mod_log = await world.server.create_channel(world.guild, "mod-log")
    await place.configure(mod_log_channel_id=mod_log.id)
    await fixed_xp(place, 100)
    await world.live.xp_admin.add_level_role(world.guild.id, world.admin.id, 1, place.overlord.id)
    await place.chat(world.alice)                      # level 1: the Overlord role is above the bot's
    await settled(world)
    [notice] = place.bot_messages(mod_log)
    assert notice.content.startswith("⚠️ A level-up could not do everything; an admin can fix this:\n• Level 1:")
    assert f"<@&{place.overlord.id}>" in notice.content
    assert place.overlord.id not in place.roles_of(world.alice)

    await place.chat(world.bob)                        # the same problem again: not told twice
    await settled(world)
    assert len(place.bot_messages(mod_log)) == 1
    world.clock.advance(days=1)
    await fixed_xp(place, 200)
    await place.chat(world.bob, text="a day later")    # 300 XP, level 2; the level 1 role still broken
    await settled(world)
    assert len(place.bot_messages(mod_log)) == 2


async def test_a_level_up_channel_the_bot_may_not_post_in_is_told_in_the_mod_log(place: Place) -> None:
    world = place.world
    mod_log = await world.server.create_channel(world.guild, "mod-log")
    await place.configure(mod_log_channel_id=mod_log.id, levelup_channel_id=place.levels.id)
    await fixed_xp(place, 100)
    await world.set_bot_permissions(int(Permission.VIEW_CHANNEL | Permission.SEND_MESSAGES | Permission.MANAGE_ROLES
                                        | Permission.EMBED_LINKS | Permission.READ_MESSAGE_HISTORY))
    await world.server.set_overwrite(place.levels, Overwrite.for_role(world.bot_role(),
                                                                      deny=int(Permission.SEND_MESSAGES)))
    await place.chat(world.alice)                      # level 1
    await settled(world)
    assert [message.content for message in place.bot_messages(mod_log)] == [
        "⚠️ A level-up could not do everything; an admin can fix this:\n"
        f"• I may not post level-up messages in <#{place.levels.id}>."]
    assert place.bot_messages(place.levels) == [] and place.bot_messages() == []


async def test_a_deleted_level_up_channel_is_told_in_the_mod_log_and_to_the_admin_who_edits(place: Place) -> None:
    world, server = place.world, place.world.server
    mod_log = await server.create_channel(world.guild, "mod-log")
    await place.configure(mod_log_channel_id=mod_log.id, levelup_channel_id=place.levels.id)
    await fixed_xp(place, 100)
    server.guild(world.guild).channel_ids.remove(place.levels.id)   # as Discord deletes it, unknown to the settings
    del server.world.channels[place.levels.id]
    await server.dispatch("CHANNEL_DELETE", channel_payload(server.world, place.levels), guild_id=world.guild.id)
    gone = (f"The level-up channel (id {place.levels.id}) no longer exists; "
            "set another with `/config set levelup_channel_id`.")

    await place.chat(world.alice)                      # level 1
    await settled(world)
    assert [message.content for message in place.bot_messages(mod_log)] == [
        f"⚠️ A level-up could not do everything; an admin can fix this:\n• {gone}"]
    assert place.bot_messages() == [], "not posted in the chat channel instead"

    reply = await world.command(world.admin, "xp add", {"member": world.bob, "amount": 100})
    await settled(world)
    assert [message.content for message in reply.messages][1:] == [f"⚠️ {gone}"]
    assert all(message.ephemeral for message in reply.messages)


async def test_level_up_message_can_be_switched_off(place: Place) -> None:
    await fixed_xp(place, 100)
    await place.give_level_roles()
    reply = await place.world.command(place.world.admin, "config set",
                                      {"setting": "levelup_enabled", "value": "off"})
    assert reply.ephemeral
    await place.chat(place.world.alice)
    assert place.bot_messages() == []
    assert place.roles_of(place.world.alice) == {place.level_roles[0].id}, "roles are given all the same"


# -- level roles --------------------------------------------------------------------------------------

async def test_stack_mode_keeps_every_level_role_and_roles_follow_xp_down(place: Place) -> None:
    world, (chatter, regular, veteran) = place.world, place.level_roles
    await place.give_level_roles()
    await fixed_xp(place, 100)
    await place.chat(world.alice)                                  # 100 XP: level 1
    assert place.roles_of(world.alice) == {chatter.id}

    await world.command(world.admin, "xp add", {"member": world.alice, "amount": 400})   # 500: level 3
    await settled(world)
    assert place.roles_of(world.alice) == {chatter.id, regular.id, veteran.id}

    await world.command(world.admin, "xp remove", {"member": world.alice, "amount": 200})  # 300: level 2
    await settled(world)
    assert place.roles_of(world.alice) == {chatter.id, regular.id}

    await world.command(world.admin, "xp reset member", {"member": world.alice})
    await settled(world)
    assert place.roles_of(world.alice) == set()


async def test_roles_follow_an_admin_edit_made_while_a_chat_level_up_is_being_posted(place: Place) -> None:
    world = place.world
    await place.give_level_roles()
    await fixed_xp(place, 500)

    def level_up_post(method: str, path: str, body: Any) -> bool:
        return method == "POST" and path.endswith("/messages") and str((body or {}).get("content")).startswith("GG")

    async with world.server.holding_requests(level_up_post) as slow_discord:
        await world.server.send_message(world.general, world.alice, "hello")   # 500 XP: level 3
        await slow_discord.arrived(within=5)
        await world.command(world.admin, "xp set", {"member": world.alice, "amount": 0})
        await world.server.sync_with_bot()
    await settled(world)
    assert place.xp_rows() == {world.alice.id: 0}
    assert place.roles_of(world.alice) == set(), "the roles of level 3 came back after the edit to 0 XP"


async def test_replace_mode_keeps_only_the_highest_level_role(place: Place) -> None:
    world, (chatter, regular, veteran) = place.world, place.level_roles
    await place.give_level_roles()
    reply = await world.command(world.admin, "config set", {"setting": "level_role_mode", "value": "replace"})
    assert reply.ephemeral

    await world.command(world.admin, "xp set", {"member": world.alice, "amount": 300})     # level 2
    await settled(world)
    assert place.roles_of(world.alice) == {regular.id}

    await world.command(world.admin, "xp set", {"member": world.alice, "amount": 480})     # level 3
    await settled(world)
    assert place.roles_of(world.alice) == {veteran.id}

    await world.command(world.admin, "xp set", {"member": world.alice, "amount": 150})     # level 1
    await settled(world)
    assert place.roles_of(world.alice) == {chatter.id}


async def test_a_mode_or_curve_change_says_roles_follow_at_each_members_next_level_change(place: Place) -> None:
    world, (chatter, regular, veteran) = place.world, place.level_roles
    await place.give_level_roles()
    await world.command(world.admin, "xp set", {"member": world.alice, "amount": 480})     # level 3
    await settled(world)
    assert place.roles_of(world.alice) == {chatter.id, regular.id, veteran.id}

    reply = await world.command(world.admin, "config set", {"setting": "level_role_mode", "value": "replace"})
    assert reply.ephemeral
    assert reply.content == ("`level_role_mode` is now replace. Each member's level roles follow this mode "
                             "at their next level change.")
    await settled(world)
    assert place.roles_of(world.alice) == {chatter.id, regular.id, veteran.id}, "no role edit at once"

    await world.command(world.admin, "xp set", {"member": world.alice, "amount": 300})     # level 2
    await settled(world)
    assert place.roles_of(world.alice) == {regular.id}, "her next level change follows the new mode"

    curve = await world.command(world.admin, "config set", {"setting": "level_curve", "value": "basic"})
    assert curve.ephemeral
    assert curve.content.endswith(" Levels now follow this curve; each member's level roles catch up at their "
                                  "next level change.")
    back = await world.command(world.admin, "config reset", {"setting": "level_curve"})
    assert back.content.startswith("`level_curve` is back to its default: ")
    assert back.content.endswith(" at their next level change.")
    untouched = await world.command(world.admin, "config set", {"setting": "xp_min", "value": "20"})
    assert untouched.content == "`xp_min` is now 20."


async def test_replace_mode_keeps_the_highest_role_it_can_give_when_a_higher_one_is_broken(place: Place) -> None:
    world, (chatter, regular, _veteran) = place.world, place.level_roles
    await place.configure(level_role_mode="replace")
    admin = world.live.xp_admin
    # Stored before things changed on Discord's side: the level 3 role now sits above the bot's,
    # the level 4 role was deleted.
    await admin.add_level_role(world.guild.id, world.admin.id, 1, chatter.id)
    await admin.add_level_role(world.guild.id, world.admin.id, 2, regular.id)
    await admin.add_level_role(world.guild.id, world.admin.id, 3, place.overlord.id)
    await admin.add_level_role(world.guild.id, world.admin.id, 4, 424242424242424242)

    await world.command(world.admin, "xp set", {"member": world.alice, "amount": 300})     # level 2
    await settled(world)
    assert place.roles_of(world.alice) == {regular.id}

    for amount in (480, 800):                                                                # levels 3, 4
        reply = await world.command(world.admin, "xp set", {"member": world.alice, "amount": amount})
        problems = await reply.wait_for_messages(2)
        assert "not below my highest role" in problems[1].content
        await settled(world)
        assert place.roles_of(world.alice) == {regular.id}, "the member keeps the highest role I can give"

    await world.command(world.admin, "xp set", {"member": world.bob, "amount": 150})       # level 1
    await world.command(world.admin, "xp set", {"member": world.bob, "amount": 800})       # level 4
    await settled(world)
    assert place.roles_of(world.bob) == {regular.id}, "a jump past broken roles gives the highest usable one"


async def test_levelrole_refuses_a_role_above_the_bot_and_writes_nothing(place: Place) -> None:
    world = place.world
    reply = await world.command(world.admin, "levelrole add", {"level": 5, "role": place.overlord})
    assert reply.ephemeral
    assert "not below my highest role" in reply.content
    listed = await world.command(world.admin, "levelrole list")
    assert listed.content == "No level roles yet. Add one with `/levelrole add`."
    assert place.audit() == []


async def test_levelrole_needs_manage_roles_and_a_role_below_the_invoker(place: Place) -> None:
    world, server = place.world, place.world.server
    refused = await world.command(world.bob, "levelrole add", {"level": 1, "role": place.level_roles[0]})
    assert refused.ephemeral
    assert refused.content == "You need the Manage Roles permission to use this command."

    # Manage Roles, but only roles below their own highest one, as Discord's own rule says.
    # Made silently and learnt from the guild at the restart: each new role sits above the last one.
    keepers = server.add_role(world.guild, "Role keepers", permissions=int(Permission.MANAGE_ROLES))
    higher = server.add_role(world.guild, "Higher")
    keeper = server.add_user("keeper")
    server.add_member(world.guild, keeper, roles=[keepers])
    await world.restart()
    for role in (keepers, higher):
        reply = await world.command(keeper, "levelrole add", {"level": 2, "role": role})
        assert reply.ephemeral
        assert reply.content == (f"You can only choose a role below your own highest role, "
                                 f"and <@&{role.id}> is not."), role.name
    allowed = await world.command(keeper, "levelrole add", {"level": 1, "role": place.level_roles[0]})
    assert allowed.ephemeral and "level 1" in allowed.content, allowed.content
    assert [(action, actor, details["level"], details["after"]) for action, actor, _, details in place.audit()] == [
        ("level_role_add", keeper.id, 1, place.level_roles[0].id)], "only the allowed role is stored"


ROLE_SETTINGS = ("verified_role_id", "unverified_role_id", "birthday_role_id", "autorole_id")


@pytest.mark.parametrize("setting", ROLE_SETTINGS)
async def test_levelrole_refuses_a_role_a_setting_gives(place: Place, setting: str) -> None:
    """Levels give and take their roles (the next level takes it in `replace` mode): a verified member
    would lose the verified role by levelling up."""
    world, role = place.world, place.level_roles[0]
    await world.command(world.admin, "config set", {"setting": setting, "value": f"<@&{role.id}>"})
    reply = await world.command(world.admin, "levelrole add", {"level": 1, "role": role})
    assert reply.ephemeral
    assert reply.content == (f"That role is already `{setting}`, and levels give and take their roles. "
                             "Choose another role for this level, or change that setting first.")
    assert place.audit() == [], "no level role stored"


@pytest.mark.parametrize("setting", ROLE_SETTINGS)
async def test_config_refuses_a_level_role_for_a_role_setting(place: Place, setting: str) -> None:
    world, (chatter, regular, _) = place.world, place.level_roles
    await place.give_level_roles()
    reply = await world.command(world.admin, "config set", {"setting": setting, "value": f"<@&{regular.id}>"})
    assert reply.ephemeral
    assert reply.content == (f"`{setting}`: that role is the level role of level 2, and levels give and take "
                             "their roles. Choose another role, or stop giving it at that level first with "
                             "`/levelrole remove`.")
    assert getattr(await world.live.guild_settings.get(world.guild.id), setting) is None
    await world.command(world.admin, "levelrole remove", {"level": 1})
    freed = await world.command(world.admin, "config set", {"setting": setting, "value": f"<@&{chatter.id}>"})
    assert freed.content == f"`{setting}` is now <@&{chatter.id}>.", "a role no level gives any more is fine"


async def test_a_role_chosen_at_once_as_autorole_and_as_level_role_is_refused_to_one(place: Place) -> None:
    """Both rules are checked in the transaction that writes, so two admins at once cannot both pass."""
    world, role = place.world, place.level_roles[0]
    async with file_in_use(world.live.tenants, world.guild.id):
        choosing = asyncio.create_task(world.command(world.admin, "config set",
                                                     {"setting": "autorole_id", "value": str(role.id)}))
        await asyncio.sleep(0.3)  # the /config set waits for the file first
        adding = asyncio.create_task(world.command(world.admin, "levelrole add", {"level": 1, "role": role}))
        await asyncio.sleep(0.3)
    answers = [(await choosing).content, (await adding).content]
    await settled(world)
    assert answers[1] == ("That role is already `autorole_id`, and levels give and take their roles. "
                          "Choose another role for this level, or change that setting first."), answers
    assert (await world.live.guild_settings.get(world.guild.id)).autorole_id == role.id
    assert await world.live.xp.level_roles(world.guild.id) == []


async def test_manage_permissions_of_ones_own_channel_is_not_manage_roles(place: Place) -> None:
    # In a channel overwrite the Manage Roles bit is that channel's "Manage Permissions" (what
    # temp-voice bots give a channel's creator); Discord sends it resolved with the interaction.
    world = place.world
    await place.give_level_roles()
    her_room = await world.server.create_channel(world.guild, "alice's room", type=GUILD_VOICE, overwrites=[
        Overwrite.for_member(world.alice, allow=int(Permission.MANAGE_CHANNELS | Permission.MANAGE_ROLES))])
    for command, options in (("levelrole remove", {"level": 1}), ("levelrole list", None),
                             ("levelrole add", {"level": 4, "role": place.level_roles[0]})):
        reply = await world.command(world.alice, command, options, channel=her_room)
        assert reply.ephemeral
        assert reply.content == "You need the Manage Roles permission to use this command.", command
    assert [action for action, *_ in place.audit()] == ["level_role_add"] * 3


async def test_manage_roles_holds_in_a_channel_whose_permissions_they_may_not_manage(place: Place) -> None:
    world, server = place.world, place.world.server
    keepers = await server.create_role(world.guild, "Role keepers", permissions=int(Permission.MANAGE_ROLES))
    keeper = server.add_user("keeper")
    await server.member_join(world.guild, keeper, roles=[keepers])
    await server.set_overwrite(world.general, Overwrite.for_role(keepers, deny=int(Permission.MANAGE_ROLES)))
    reply = await world.command(keeper, "levelrole list")
    assert reply.content == "No level roles yet. Add one with `/levelrole add`."


async def test_levelrole_list_and_remove(place: Place) -> None:
    world, (chatter, regular, veteran) = place.world, place.level_roles
    await place.give_level_roles()
    listed = await world.command(world.admin, "levelrole list")
    assert listed.ephemeral
    assert listed.content.splitlines()[1:] == [f"• Level 1: <@&{chatter.id}>", f"• Level 2: <@&{regular.id}>",
                                              f"• Level 3: <@&{veteran.id}>"]
    removed = await world.command(world.admin, "levelrole remove", {"level": 2})
    assert removed.content == f"Level 2 no longer gives <@&{regular.id}>. Members who have it keep it."
    again = await world.command(world.admin, "levelrole remove", {"level": 2})
    assert again.ephemeral and again.content == "No role is given at level 2."
    assert [action for action, *_ in place.audit()] == ["level_role_add"] * 3 + ["level_role_remove"]


async def test_missing_role_and_role_above_the_bot_are_reported_to_the_admin(place: Place) -> None:
    world = place.world
    admin = world.live.xp_admin
    # Stored before things changed on Discord's side: a role since deleted, and one now above the bot.
    await admin.add_level_role(world.guild.id, world.admin.id, 1, 424242424242424242)
    await admin.add_level_role(world.guild.id, world.admin.id, 2, place.overlord.id)
    await admin.add_level_role(world.guild.id, world.admin.id, 3, place.level_roles[2].id)

    reply = await world.command(world.admin, "xp set", {"member": world.alice, "amount": 500})
    problems = await reply.wait_for_messages(2)
    assert problems[1].ephemeral
    assert problems[1].content.splitlines() == [
        "⚠️ Level 1: the role (id 424242424242424242) no longer exists; remove it with `/levelrole remove`.",
        f"⚠️ Level 2: The role <@&{place.overlord.id}> is not below my highest role, so I cannot give it; "
        "move my role above it in the server settings.",
    ]
    await settled(world)
    assert place.roles_of(world.alice) == {place.level_roles[2].id}, "the usable role is still given"
    listed = await world.command(world.admin, "levelrole list")
    assert "⚠️ the role (id 424242424242424242) no longer exists" in listed.content
    assert "not below my highest role" in listed.content

    # From chat nobody is there to tell: the member still levels up, the bot carries on.
    await place.configure(xp_min=25, xp_max=25)
    await world.command(world.admin, "xp set", {"member": world.bob, "amount": 90})
    await place.chat(world.bob)
    assert f"GG <@{world.bob.id}>, you reached level 1!" in [m.content for m in place.bot_messages()]


async def test_many_level_roles_the_bot_cannot_give_are_still_listed_and_reported(
        discord_server: FakeDiscord, tmp_path: Path) -> None:
    # The bot's role placed below every level role: one problem line per role, more than the 2,000
    # characters Discord takes in one message. The admin must still get an answer (not the apology).
    above_bot = []

    def prepare(world: World) -> None:
        above_bot.extend(world.server.add_role(world.guild, f"Level role {n}", position=60 + n) for n in range(20))

    async for world in make_world(discord_server, tmp_path, prepare=prepare):
        for number, role in enumerate(above_bot, start=1):
            await world.live.xp_admin.add_level_role(world.guild.id, world.admin.id, 5 * number, role.id)
        listed = await world.command(world.admin, "levelrole list")
        assert listed.ephemeral and len(listed.content) <= 2000
        lines = listed.content.splitlines()
        assert lines[1] == (f"• Level 5: <@&{above_bot[0].id}> ⚠️ The role <@&{above_bot[0].id}> is not below my "
                            "highest role, so I cannot give it; move my role above it in the server settings.")
        assert lines[-1] == f"… and {21 - len(lines) + 1} more levels."

        edited = await world.command(world.admin, "xp set", {"member": world.alice, "amount": 10_000_000})
        done, problems = await edited.wait_for_messages(2)
        assert done.content.startswith(f"Set the XP of <@{world.alice.id}> to 10,000,000")
        assert problems.ephemeral and len(problems.content) <= 2000
        assert problems.content.splitlines()[0].startswith("⚠️ Level 5: The role")
        assert problems.content.splitlines()[-1].startswith("… and ")
        assert problems.content.endswith(" more problems with level roles.")


async def test_level_roles_of_members_who_left_are_not_remembered(place: Place) -> None:
    # The bot remembers a level-role change until Discord's member cache shows it; members who left
    # must not stay in that memory for as long as the bot runs.
    world = place.world
    await place.give_level_roles()
    await fixed_xp(place, 100)                           # one message: level 1, the Chatter role
    for member in place.extras:
        await place.chat(member)
    await settled(world)
    cached = world.running.get_guild(world.guild.id)
    for member in place.extras:
        assert place.roles_of(member) == {place.level_roles[0].id}
        assert place.level_roles[0].id in {role.id for role in cached.get_member(member.id).roles}
    for member in place.extras:
        await world.server.remove_member(world.guild, member)
    await settled(world)
    remembered = [key for key in world.live.role_ledger._unconfirmed if key[0] == world.guild.id]
    assert remembered == []


async def test_level_roles_a_moderator_took_off_come_back_at_the_next_edit(place: Place) -> None:
    # Within seconds of the bot giving them: its memory of the roles it gave must not hide the
    # moderator's change, which the gateway has shown.
    world, (chatter, regular, _veteran) = place.world, place.level_roles
    await place.give_level_roles()
    await world.command(world.admin, "xp set", {"member": world.alice, "amount": 300})     # level 2
    await settled(world)
    assert place.roles_of(world.alice) == {chatter.id, regular.id}
    await world.server.update_member(world.guild, world.alice, roles=[])
    await world.command(world.admin, "xp add", {"member": world.alice, "amount": 10})      # still level 2
    await settled(world)
    assert place.roles_of(world.alice) == {chatter.id, regular.id}


async def test_the_gateway_confirming_a_level_role_ends_the_bots_memory_of_giving_it(place: Place) -> None:
    # On Discord the answer to the bot's request comes before the gateway's update (the sandbox
    # sends the update first), so the bot's memory of the change is written here by hand.
    world, chatter = place.world, place.level_roles[0]
    await place.give_level_roles()
    await world.command(world.admin, "xp set", {"member": world.alice, "amount": 100})     # level 1
    await settled(world)
    await world.server.update_member(world.guild, world.alice, roles=[])
    world.live.role_ledger.changed(world.guild.id, world.alice.id, given=[chatter.id], taken=[], cached=[])
    await world.server.update_member(world.guild, world.alice, roles=[chatter])   # the gateway's update
    await world.server.update_member(world.guild, world.alice, roles=[])          # a moderator's hand
    await world.command(world.admin, "xp add", {"member": world.alice, "amount": 10})      # still level 1
    await settled(world)
    assert place.roles_of(world.alice) == {chatter.id}


async def test_level_roles_come_back_at_an_edit_right_after_a_reset_of_everyone(place: Place) -> None:
    world, (chatter, regular, veteran) = place.world, place.level_roles
    await place.give_level_roles()
    await world.command(world.admin, "xp set", {"member": world.alice, "amount": 480})     # level 3
    await settled(world)
    assert place.roles_of(world.alice) == {chatter.id, regular.id, veteran.id}
    # As on Discord, where the gateway's updates come after the answers: the bot still remembers
    # giving the roles when the reset takes them.
    world.live.role_ledger.changed(world.guild.id, world.alice.id, given=[chatter.id, regular.id, veteran.id],
                                   taken=[], cached=[])
    asked = await world.command(world.admin, "xp reset all")
    await world.server.press_button(asked.message, world.admin, label="Reset everyone's XP")
    await settled(world)
    assert place.roles_of(world.alice) == set()
    await world.command(world.admin, "xp set", {"member": world.alice, "amount": 300})     # level 2
    await settled(world)
    assert place.roles_of(world.alice) == {chatter.id, regular.id}


async def test_a_member_in_membership_screening_gets_level_roles_once_they_pass_it(place: Place) -> None:
    # Discord lets a member given any role skip the server's rules: level roles wait for the screening.
    world, chatter = place.world, place.level_roles[0]
    await place.give_level_roles()
    dave = world.server.add_user("dave")
    await world.server.member_join(world.guild, dave, pending=True)
    reply = await world.command(world.admin, "xp add", {"member": dave, "amount": 150})      # level 1
    _, told = await reply.wait_for_messages(2)
    assert told.ephemeral and told.content == (f"⚠️ <@{dave.id}> is still in Membership Screening: their level "
                                               "roles wait until they accept the server's rules.")
    await settled(world)
    assert place.roles_of(dave) == set()
    assert world.server.member(world.guild, dave).pending, "the bot let them skip the rules"

    await world.server.update_member(world.guild, dave, pending=False)              # they accept the rules
    await settled(world)
    assert place.roles_of(dave) == {chatter.id}


async def test_level_roles_follow_a_member_who_uses_the_bot_before_discord_says_they_passed_screening(
        place: Place) -> None:
    # A command brings the member's fresh data (no longer pending) into the bot's cache before Discord's
    # update arrives, which then no longer looks like the end of the screening.
    world, chatter = place.world, place.level_roles[0]
    await place.give_level_roles()
    dave = world.server.add_user("dave")
    await world.server.member_join(world.guild, dave, pending=True)
    await world.live.xp_admin.set(world.guild.id, world.admin.id, dave.id, 150)      # level 1
    await settled(world)
    async with world.server.holding_events(lambda name, payload: name == "GUILD_MEMBER_UPDATE"):
        await world.server.update_member(world.guild, dave, pending=False)          # they accept the rules
        assert (await world.command(dave, "rank")).content.startswith("**dave** — level 1")
    await settled(world)
    assert place.roles_of(dave) == {chatter.id}


# -- /rank and /leaderboard ---------------------------------------------------------------------------

async def test_rank_shows_level_progress_and_server_position(place: Place) -> None:
    world = place.world
    admin = world.live.xp_admin
    await admin.set(world.guild.id, world.admin.id, world.bob.id, 1000)
    await admin.set(world.guild.id, world.admin.id, world.alice.id, 300)

    reply = await world.command(world.alice, "rank")
    assert not reply.ephemeral
    assert reply.content == ("**alice** — level 2, rank #2\n"
                             "45 / 220 XP into level 2 · 175 XP to level 3 · 300 XP in total")
    about_bob = await world.command(world.alice, "rank", {"member": world.bob})
    assert about_bob.content.startswith("**bob** — level 4, rank #1\n")
    newcomer = await world.command(world.alice, "rank", {"member": place.carol})
    assert newcomer.content.startswith("**carol** — level 0, not ranked yet\n0 / 100 XP into level 0")


async def test_rank_on_the_legacy_custom_curve_names_the_next_listed_level_and_the_top(place: Place) -> None:
    world = place.world
    await world.command(world.admin, "config set", {"setting": "level_curve", "value": "custom"})
    await world.live.xp_admin.set(world.guild.id, world.admin.id, world.alice.id, 16_000)
    await world.live.xp_admin.set(world.guild.id, world.admin.id, world.bob.id, 400_000)

    alice = await world.command(world.alice, "rank")
    assert alice.content == ("**alice** — level 25, rank #2\n"
                             "950 / 6,950 XP into level 25 · 6,000 XP to level 30 · 16,000 XP in total")
    bob = await world.command(world.alice, "rank", {"member": world.bob})
    assert bob.content == ("**bob** — level 100, the top of this server's level curve, rank #1\n"
                           "400,000 XP in total")


async def test_rank_of_a_bot_or_a_non_member_is_refused(place: Place) -> None:
    reply = await place.world.command(place.world.alice, "rank", {"member": place.robot})
    assert reply.ephemeral and reply.content == "Bots do not earn XP or check in."
    stranger = place.world.server.add_user("stranger")
    reply = await place.world.command(place.world.alice, "rank", {"member": stranger})
    assert reply.ephemeral and reply.content == f"<@{stranger.id}> is not a member of this server."


async def test_rank_shows_a_nickname_as_typed_not_as_someone_elses_mention(place: Place) -> None:
    # A public answer: alice's nickname `<@bob>` must not make her rank read as bob's.
    world = place.world
    await world.server.update_member(world.guild, world.alice, nick=f"<@{world.bob.id}> *star*")
    reply = await world.command(world.alice, "rank")
    assert not reply.ephemeral
    assert reply.content.startswith(f"**<@\u200b{world.bob.id}> \\*star\\***"), reply.content


async def test_leaderboard_pages_hold_ten_current_members(place: Place) -> None:
    world = place.world
    admin = world.live.xp_admin
    ranked = [world.alice, world.bob, place.carol, *place.extras]           # 14 members
    for index, user in enumerate(ranked):
        await admin.set(world.guild.id, world.admin.id, user.id, 2000 - 100 * index)
    gone = world.server.add_user("gone")                                   # left while the bot was away
    await admin.set(world.guild.id, world.admin.id, gone.id, 5000)

    first = await world.command(world.alice, "leaderboard")
    assert not first.ephemeral
    lines = first.embeds[0]["description"].splitlines()
    assert len(lines) == 10
    assert lines[0] == f"**1.** <@{world.alice.id}> — level 6 · 2,000 XP"
    assert [line.split("<@")[1].split(">")[0] for line in lines] == [str(user.id) for user in ranked[:10]]
    assert first.embeds[0]["footer"]["text"] == "Page 1 · next page: /leaderboard page:2"

    second = await world.command(world.alice, "leaderboard", {"page": 2})
    lines = second.embeds[0]["description"].splitlines()
    assert [line.split(" ")[0] for line in lines] == ["**11.**", "**12.**", "**13.**", "**14.**"]
    assert second.embeds[0]["footer"]["text"] == "Page 2"

    beyond = await world.command(world.alice, "leaderboard", {"page": 3})
    assert beyond.ephemeral and beyond.content == "Page 3 is empty: the leaderboard is shorter than that."
    zero = await world.command(world.alice, "leaderboard", {"page": 0})
    assert zero.ephemeral and zero.content == "The page number must be 1 or more."


async def test_leaderboard_ties_share_a_position(place: Place) -> None:
    world = place.world
    for user, amount in ((world.alice, 500), (world.bob, 500), (place.carol, 100)):
        await world.live.xp_admin.set(world.guild.id, world.admin.id, user.id, amount)
    board = await world.command(world.alice, "leaderboard")
    positions = [line.split(" ")[0] for line in board.embeds[0]["description"].splitlines()]
    assert positions == ["**1.**", "**1.**", "**3.**"]


# -- admin edits --------------------------------------------------------------------------------------

async def test_admin_edits_are_audited(place: Place) -> None:
    world = place.world
    admin, alice = world.admin, world.alice
    added = await world.command(admin, "xp add", {"member": alice, "amount": 150})
    assert added.ephemeral
    assert added.content == f"Added 150 XP to <@{alice.id}>: they now have 150 XP, level 1 (was 0)."
    await world.command(admin, "xp remove", {"member": alice, "amount": 500})
    await world.command(admin, "xp set", {"member": alice, "amount": 70})
    await world.command(admin, "xp reset member", {"member": alice})
    await settled(world)

    assert place.audit() == [
        ("add", admin.id, alice.id, {"amount": 150, "before": 0, "after": 150}),
        ("remove", admin.id, alice.id, {"amount": 500, "before": 150, "after": 0}),
        ("set", admin.id, alice.id, {"amount": 70, "before": 0, "after": 70}),
        ("reset", admin.id, alice.id, {"before": 70, "after": 0}),
    ]
    assert place.xp_rows() == {alice.id: 0}


async def test_admin_edit_levelling_up_announces_it(place: Place) -> None:
    world = place.world
    await world.command(world.bob, "xp add", {"member": world.alice, "amount": 100})
    await settled(world)
    assert [m.content for m in place.bot_messages()] == [f"GG <@{world.alice.id}>, you reached level 1!"]


async def test_problems_of_an_edit_whose_follow_up_is_lost_go_to_the_mod_log(
        place: Place, monkeypatch: pytest.MonkeyPatch) -> None:
    world = place.world
    mod_log = await world.server.create_channel(world.guild, "mod-log")
    await place.configure(mod_log_channel_id=mod_log.id)
    await world.live.xp_admin.add_level_role(world.guild.id, world.admin.id, 1, place.overlord.id)
    fail_answers(monkeypatch, [aiohttp.ServerDisconnectedError()])  # the problems' follow-up (the answer went first)
    reply = await world.command(world.admin, "xp add", {"member": world.alice, "amount": 100})
    await settled(world)
    assert [message.content[:13] for message in reply.messages] == ["Added 100 XP "], "no 'may be done already'"
    [notice] = place.bot_messages(mod_log)
    assert notice.content.startswith("⚠️ A level-up could not do everything; an admin can fix this:\n• Level 1:")


async def test_a_level_up_failing_after_a_stored_edit_is_a_problem_not_a_failure(
        place: Place, monkeypatch: pytest.MonkeyPatch) -> None:
    # The XP is stored: "try again" would add it twice.
    world = place.world
    await place.give_level_roles()

    async def failing(*args: Any, **kwargs: Any) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(world.live.xp, "levelup_announcement", failing)
    reply = await world.command(world.admin, "xp add", {"member": world.alice, "amount": 100})
    assert [message.content for message in await reply.wait_for_messages(2)] == [
        f"Added 100 XP to <@{world.alice.id}>: they now have 100 XP, level 1 (was 0).",
        f"⚠️ The level-up of <@{world.alice.id}> could not finish (an error, logged); their level roles follow "
        "at their next level change."]
    assert await place.stored_xp() == {world.alice.id: 100}


@pytest.mark.parametrize(("before", "who", "command", "options", "after"), [
    (0, "admin", "xp add", {"amount": 100}, 100),   # stored before the answer: "try again" would add it twice
    (80, "alice", "checkin", {}, 130),             # the check-in's 50 XP
])
async def test_xp_stored_before_an_answer_discord_loses_still_levels_the_member_up(
        place: Place, before: int, who: str, command: str, options: dict[str, Any], after: int) -> None:
    world, chatter = place.world, place.level_roles[0]
    await place.give_level_roles()
    await world.live.xp_admin.set(world.guild.id, world.admin.id, world.alice.id, before)
    world.lose_next_answer()
    if command == "xp add":
        options = {"member": world.alice, **options}
    reply = await world.command(getattr(world, who), command, options)
    assert reply.content == ANSWER_LOST
    await settled(world)
    assert await place.stored_xp() == {world.alice.id: after}
    assert place.roles_of(world.alice) == {chatter.id}
    assert [m.content for m in place.bot_messages()] == [f"GG <@{world.alice.id}>, you reached level 1!"]


async def test_a_connection_lost_as_level_roles_follow_an_edit_is_a_problem_not_a_failure(
        place: Place, monkeypatch: pytest.MonkeyPatch) -> None:
    # The XP is added: "try again" would add it twice. The role may or may not have been given.
    world = place.world
    await place.give_level_roles()
    drop_role_changes(monkeypatch)
    reply = await world.command(world.admin, "xp add", {"member": world.alice, "amount": 100})   # level 1
    assert [message.content for message in await reply.wait_for_messages(2)] == [
        f"Added 100 XP to <@{world.alice.id}>: they now have 100 XP, level 1 (was 0).",
        f"⚠️ Changing level roles of <@{world.alice.id}> failed: I could not reach Discord (the change may "
        "have happened)."]
    assert await place.stored_xp() == {world.alice.id: 100}


@pytest.mark.parametrize(("command", "amount", "expected"), [
    ("xp add", -5, "The amount must be between 1 and 1,000,000,000,000,000."),
    ("xp remove", 0, "The amount must be between 1 and 1,000,000,000,000,000."),
    ("xp set", -1, "The amount must be between 0 and 1,000,000,000,000,000."),
    ("xp add", 10**16, "The amount must be between 1 and 1,000,000,000,000,000."),
])
async def test_bad_amounts_are_refused_and_nothing_is_written(place: Place, command: str, amount: int,
                                                              expected: str) -> None:
    reply = await place.world.command(place.world.admin, command, {"member": place.world.alice, "amount": amount})
    assert reply.flags & EPHEMERAL
    assert reply.content == expected
    assert place.audit() == []
    assert await place.stored_xp() == {}


async def test_xp_edits_of_bots_and_by_members_are_refused(place: Place) -> None:
    world = place.world
    bot_reply = await world.command(world.admin, "xp add", {"member": place.robot, "amount": 10})
    assert bot_reply.ephemeral and bot_reply.content == "Bots do not earn XP or check in."
    member_reply = await world.command(world.alice, "xp add", {"member": world.alice, "amount": 10})
    assert member_reply.ephemeral
    assert member_reply.content == "You need the Manage Server permission to use this command."
    reset_reply = await world.command(world.alice, "xp reset all")
    assert reset_reply.ephemeral and not reset_reply.components
    assert place.audit() == []


async def test_reset_all_asks_first_and_takes_level_roles_away(place: Place) -> None:
    world = place.world
    await place.give_level_roles()
    for user, amount in ((world.alice, 300), (world.bob, 120)):
        await world.command(world.admin, "xp set", {"member": user, "amount": amount})
    await settled(world)
    assert place.roles_of(world.alice) == {place.level_roles[0].id, place.level_roles[1].id}

    asked = await world.command(world.admin, "xp reset all")
    assert asked.ephemeral
    assert [button["label"] for button in asked.message.buttons()] == ["Reset everyone's XP", "Cancel"]
    cancelled = await world.server.press_button(asked.message, world.admin, label="Cancel")
    await settled(world)
    assert cancelled.callback_type == 7
    assert world.server.message(asked.message.id).content == "Cancelled: nobody's XP changed."
    assert await place.stored_xp() == {world.alice.id: 300, world.bob.id: 120}

    asked = await world.command(world.admin, "xp reset all")
    await world.server.press_button(asked.message, world.admin, label="Reset everyone's XP")
    await settled(world)
    assert world.server.message(asked.message.id).content == "Done: the XP of 2 members is back to 0."
    assert world.server.message(asked.message.id).components == []
    assert await place.stored_xp() == {world.alice.id: 0, world.bob.id: 0}
    assert place.roles_of(world.alice) == set() and place.roles_of(world.bob) == set()
    action, actor, target, details = place.audit()[-1]
    assert (action, actor, target) == ("reset_all", world.admin.id, None)
    assert details["before"] == {"members_with_xp": 2, "total_xp": 420}


async def test_reset_all_whose_done_discord_loses_still_takes_level_roles_and_says_no_try_again(
        place: Place) -> None:
    world = place.world
    await place.give_level_roles()
    await world.command(world.admin, "xp set", {"member": world.alice, "amount": 300})
    await settled(world)
    asked = await world.command(world.admin, "xp reset all")
    world.server.rate_limit(lambda method, path, body: method == "PATCH" and path.endswith("/messages/@original"),
                            times=5, retry_after=0.01)  # the question cannot be turned into "Done"
    pressed = await world.server.press_button(asked.message, world.admin, label="Reset everyone's XP")
    await settled(world)
    assert await place.stored_xp() == {world.alice.id: 0}
    assert place.roles_of(world.alice) == set()
    assert pressed.followups == [], "no 'please try again later' after everyone's XP was reset"


async def test_problems_of_an_edit_whose_answer_discord_loses_go_to_the_mod_log(place: Place) -> None:
    world = place.world
    mod_log = await world.server.create_channel(world.guild, "mod-log")
    await place.configure(mod_log_channel_id=mod_log.id)
    await world.live.xp_admin.add_level_role(world.guild.id, world.admin.id, 1, place.overlord.id)
    world.lose_next_answer()
    assert (await world.command(world.admin, "xp add", {"member": world.alice, "amount": 100})).content == ANSWER_LOST
    await settled(world)
    [notice] = place.bot_messages(mod_log)
    assert notice.content.startswith("⚠️ A level-up could not do everything; an admin can fix this:\n• Level 1:")


async def test_reset_all_whose_level_roles_meet_a_busy_file_is_not_followed_by_try_again(
        place: Place, monkeypatch: pytest.MonkeyPatch) -> None:
    world = place.world
    await place.give_level_roles()
    await world.command(world.admin, "xp set", {"member": world.alice, "amount": 300})
    await settled(world)
    asked = await world.command(world.admin, "xp reset all")

    async def busy(*args: Any, **kwargs: Any) -> None:
        raise busy_file_error()

    monkeypatch.setattr(world.live.xp, "level_roles", busy)
    pressed = await world.server.press_button(asked.message, world.admin, label="Reset everyone's XP")
    await settled(world)
    assert world.server.message(asked.message.id).content == "Done: the XP of 1 member is back to 0."
    assert [message.content for message in pressed.followups] == [
        "⚠️ Taking the level roles after everyone's XP was reset failed (the server's file stayed busy); each "
        "member's roles follow at their next level change."]


async def test_reset_all_takes_a_level_role_the_gateway_has_not_shown_yet(place: Place) -> None:
    # Discord answers the bot's role request first and tells the gateway seconds later: until then the
    # cache shows nobody holding the role just given, yet the reset must take it.
    world, chatter = place.world, place.level_roles[0]
    await place.give_level_roles()
    async with world.server.holding_events(lambda event, _: event == "GUILD_MEMBER_UPDATE") as lagging:
        await world.command(world.admin, "xp set", {"member": world.alice, "amount": 100})     # level 1
        await settled(world)
        assert place.roles_of(world.alice) == {chatter.id} and lagging.held
        assert world.running.get_guild(world.guild.id).get_role(chatter.id).members == []
        asked = await world.command(world.admin, "xp reset all")
        await world.server.press_button(asked.message, world.admin, label="Reset everyone's XP")
        await settled(world)
        assert place.roles_of(world.alice) == set()
    await settled(world)
    assert place.roles_of(world.alice) == set()


async def test_reset_all_takes_a_level_role_whose_request_is_still_on_its_way(place: Place) -> None:
    # The level-role sync read level 1 before the reset; its request for the role reaches Discord after
    # the reset looked for holders. The reset must wait for it, then take the role.
    world, chatter = place.world, place.level_roles[0]
    await place.give_level_roles()

    def giving_a_level_role(method: str, path: str, body: Any) -> bool:
        return method == "PUT" and path.endswith(f"/members/{world.alice.id}/roles/{chatter.id}")

    async with world.server.holding_requests(giving_a_level_role) as slow:
        await world.command(world.admin, "xp set", {"member": world.alice, "amount": 100})   # level 1
        await slow.arrived(within=5)
        asked = await world.command(world.admin, "xp reset all")
        await world.server.press_button(asked.message, world.admin, label="Reset everyone's XP")
        await eventually(lambda: world.server.message(asked.message.id).content.startswith("Done"),
                         what="the XP reset, before the level roles")
    await settled(world)
    assert place.roles_of(world.alice) == set()


async def test_reset_all_right_after_a_start_takes_level_roles_from_members_not_loaded_yet(place: Place) -> None:
    """After a start the member lists load server by server: until this server's is in, the bot knows
    nobody holding a level role. The reset asks for the list first and takes the roles once it is in."""
    world = place.world
    await place.give_level_roles()
    await world.command(world.admin, "xp set", {"member": world.alice, "amount": 300})
    await settled(world)
    assert place.roles_of(world.alice) == {place.level_roles[0].id, place.level_roles[1].id}
    await world.stop()
    async with world.server.holding_member_lists(world.guild) as member_list:
        await world.start(member_lists=False)
        await member_list.arrived(within=5)
        assert not world.running.get_guild(world.guild.id).chunked
        asked = await world.command(world.admin, "xp reset all")
        await world.server.press_button(asked.message, world.admin, label="Reset everyone's XP")
        await eventually(lambda: world.server.message(asked.message.id).content.startswith("Done"),
                         what="the XP reset, before the level roles")
        assert place.roles_of(world.alice) != set(), "the roles wait for the member list"
        member_list.release()
        await settled(world)
    assert world.server.message(asked.message.id).content == "Done: the XP of 1 member is back to 0."
    assert place.roles_of(world.alice) == set()


@contextlib.asynccontextmanager
async def servers_file_held(world: World) -> AsyncIterator[None]:
    """The server's file held inside the block (by a long backup, say): a reset must wait for it."""
    holding, done = asyncio.Event(), asyncio.Event()

    async def hold_the_file() -> None:
        async with world.live.tenants.reading(world.guild.id):
            holding.set()
            await done.wait()

    holder = asyncio.create_task(hold_the_file())
    await holding.wait()
    try:
        yield
    finally:
        done.set()
        await holder


async def test_reset_all_answers_discord_before_it_waits_for_the_servers_file(place: Place) -> None:
    world = place.world
    await world.command(world.admin, "xp set", {"member": world.alice, "amount": 300})
    asked = await world.command(world.admin, "xp reset all")
    async with servers_file_held(world):
        world.server.answer_deadline = 0.2  # Discord's 3 s rule, sooner: the file is held past it
        pressing = asyncio.create_task(world.server.press_button(asked.message, world.admin,
                                                                 label="Reset everyone's XP"))
        await asyncio.sleep(0.3)
    pressed = await pressing  # a first answer after the deadline fails here (10062 Unknown interaction)
    assert pressed.callback_type == 6, "deferred at once"
    await settled(world)
    assert world.server.message(asked.message.id).content == "Done: the XP of 1 member is back to 0."
    assert await place.stored_xp() == {world.alice.id: 0}


async def test_a_second_press_while_the_reset_runs_is_told_it_was_already_answered(place: Place) -> None:
    world = place.world
    await world.command(world.admin, "xp set", {"member": world.alice, "amount": 300})
    asked = await world.command(world.admin, "xp reset all")
    async with servers_file_held(world):
        first = await world.server.press_button(asked.message, world.admin, label="Reset everyone's XP")
        second = await world.server.press_button(asked.message, world.admin, label="Reset everyone's XP")
    assert first.callback_type == 6, "the reset waits for the file"
    assert second.ephemeral and second.content == "This was already answered."
    await settled(world)
    assert world.server.message(asked.message.id).content == "Done: the XP of 1 member is back to 0."
    assert await place.stored_xp() == {world.alice.id: 0}
    assert [action for action, *_ in place.audit()] == ["set", "reset_all"], "reset once"


async def test_level_roles_refused_to_a_timed_out_bot_name_the_timeout(place: Place) -> None:
    world = place.world
    await place.give_level_roles()
    await world.set_bot_permissions(ALL_PERMISSIONS & ~Permission.ADMINISTRATOR)   # a timeout binds it then
    until = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    await world.server.update_member(world.guild, world.server.bot_user, timed_out_until=until)
    reply = await world.command(world.admin, "xp set", {"member": world.alice, "amount": 100})   # level 1
    _, problems = await reply.wait_for_messages(2)
    timed_out = (f"I am timed out until <t:{int(until.timestamp())}:f>, and a timed-out member may do nothing "
                 "but read. A moderator can end my timeout.")
    assert problems.ephemeral and problems.content.splitlines() == [
        f"⚠️ I may not post level-up messages in <#{world.general.id}>: {timed_out}",
        f"⚠️ Discord refused to change <@&{place.level_roles[0].id}> for <@{world.alice.id}>; {timed_out}"]


async def test_a_second_press_while_cancel_is_answered_is_told_it_was_already_answered(place: Place) -> None:
    world = place.world
    asked = await world.command(world.admin, "xp reset all")

    def answering_a_press(method: str, path: str, body: Any) -> bool:
        return method == "POST" and path.startswith("/interactions/") and body.get("type") == 7

    async with world.server.holding_requests(answering_a_press) as slow:       # Discord slow to take the edit
        cancelling = asyncio.create_task(world.server.press_button(asked.message, world.admin, label="Cancel"))
        await slow.arrived(within=5)
        second = await world.server.press_button(asked.message, world.admin, label="Cancel")
    await cancelling
    assert second.ephemeral and second.content == "This was already answered."
    assert world.server.message(asked.message.id).content == "Cancelled: nobody's XP changed."


async def test_a_question_timing_out_while_its_reset_takes_roles_keeps_the_answer_without_buttons(
        place: Place, monkeypatch: pytest.MonkeyPatch) -> None:
    world = place.world
    await place.give_level_roles()
    await world.command(world.admin, "xp set", {"member": world.alice, "amount": 300})   # level 2: 2 roles
    await settled(world)
    monkeypatch.setattr(xp_admin, "CONFIRM_SECONDS", 1.0)   # stands for 120 s against a big server's removals
    asked = await world.command(world.admin, "xp reset all")

    def removing_a_role(method: str, path: str, body: Any) -> bool:
        return method == "DELETE" and "/roles/" in path

    async with world.server.holding_requests(removing_a_role) as slow:      # a slow, rate-limited Discord
        await world.server.press_button(asked.message, world.admin, label="Reset everyone's XP")
        await slow.arrived(within=5)
        await asyncio.sleep(1.5)                                            # the question's time runs out
    await settled(world)
    message = world.server.message(asked.message.id)
    assert message.content == "Done: the XP of 1 member is back to 0."
    assert message.components == [], "the answer does not get its buttons back, even disabled"


@pytest.mark.quick
async def test_a_reset_meeting_a_file_locked_elsewhere_is_told_it_is_busy(place: Place) -> None:
    world = place.world
    world.server.timeout = 20.0  # the bot waits busy_timeout (5 s) before it gives up on the file
    await world.command(world.admin, "xp set", {"member": world.alice, "amount": 300})
    asked = await world.command(world.admin, "xp reset all")
    with locked_from_outside(world.tenant_file(world.guild)):
        pressed = await world.server.press_button(asked.message, world.admin, label="Reset everyone's XP")
        await eventually(lambda: world.server.message(asked.message.id).content == RESET_BUSY,
                         within=15, what="the question closed with the reason")
    question = world.server.message(asked.message.id)
    assert pressed.late_by is None
    # Before: the generic apology, then the question kept buttons that only said "already answered".
    assert question.content == RESET_BUSY and question.components == []
    assert await place.stored_xp() == {world.alice.id: 300}


async def test_a_reset_question_from_before_a_restart_expires_and_changes_nothing(place: Place) -> None:
    world = place.world
    await world.command(world.admin, "xp set", {"member": world.alice, "amount": 300})
    asked = await world.command(world.admin, "xp reset all")
    await world.restart()
    pressed = await world.server.press_button(asked.message, world.admin, label="Reset everyone's XP")
    await settled(world)
    assert pressed.callback_type == 7, "the question itself is answered (edited), not left failing"
    assert world.server.message(asked.message.id).content == EXPIRED
    assert world.server.message(asked.message.id).components == []
    assert await place.stored_xp() == {world.alice.id: 300}
    assert [action for action, *_ in place.audit()] == ["set"]


async def test_chat_xp_reaches_the_file_within_about_a_second_without_a_forced_flush(place: Place) -> None:
    """The bot as built writes buffered chat XP on its own every second (issue 4), no flush forced."""
    await place.chat(place.world.alice)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 2.5  # one interval plus a margin for a slow machine
    while place.world.alice.id not in place.xp_rows():
        assert loop.time() < deadline, "chat XP still only in memory 2.5 s after the message"
        await asyncio.sleep(0.1)
