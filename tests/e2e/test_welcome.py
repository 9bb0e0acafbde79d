"""Welcome and goodbye through the real bot: join and leave messages from the server's templates,
the DM and auto-role on join, `/welcome test`, and templates refused by `/config set`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from malabot.sandbox import Channel, FakeDiscord, Message, Role, User
from tests.e2e.data_dump import eventually
from tests.e2e.world import World, make_world
from tests.e2e.xp_place import settled

EPHEMERAL = 64


@dataclass
class Place:
    world: World
    welcome_channel: Channel
    goodbye_channel: Channel
    newcomer_role: Role
    staff: Role          # above the bot's role
    carol: User          # not a member yet

    async def configure(self, **values: Any) -> None:
        await self.world.live.guild_settings.update(self.world.guild.id, self.world.admin.id, **values)

    async def switch_everything_on(self, **values: Any) -> None:
        await self.configure(**{
            "welcome_enabled": True, "welcome_channel_id": self.welcome_channel.id,
            "welcome_template": "Hi {member}, welcome to {server}! You are member {member_count}.",
            "welcome_dm_enabled": True, "welcome_dm_template": "Glad you joined {server}, {member}.",
            "goodbye_enabled": True, "goodbye_channel_id": self.goodbye_channel.id,
            "goodbye_template": "{member} left {server}; {member_count} remain.",
            "autorole_id": self.newcomer_role.id, **values})

    def posted(self, channel: Channel) -> list[str]:
        return [m.content for m in self.bot_messages(channel)]

    def bot_messages(self, channel: Channel) -> list[Message]:
        return self.world.server.messages_in(channel, author=self.world.server.bot_user)

    def dms_to(self, user: User) -> list[str]:
        return self.posted(self.world.server.dm_channel(user))

    def roles_of(self, user: User) -> set[int]:
        member = self.world.server.member(self.world.guild, user)
        assert member is not None
        return set(member.roles)

    def member_count(self) -> int:
        return len(self.world.server.guild(self.world.guild).members)


@pytest.fixture
async def place(discord_server: FakeDiscord, tmp_path: Path) -> AsyncIterator[Place]:
    made: dict[str, Any] = {}

    def prepare(world: World) -> None:
        server, guild = world.server, world.guild
        made["welcome_channel"] = server.add_channel(guild, "welcome")
        made["goodbye_channel"] = server.add_channel(guild, "goodbye")
        made["newcomer_role"] = server.add_role(guild, "Newcomer")
        made["staff"] = server.add_role(guild, "Staff", above_bot=True)
        made["carol"] = server.add_user("carol", global_name="Carol *the* Great")

    async for world in make_world(discord_server, tmp_path, prepare=prepare):
        yield Place(world=world, **made)


async def test_join_posts_the_welcome_sends_the_dm_and_gives_the_auto_role(place: Place) -> None:
    await place.switch_everything_on()
    carol = place.carol
    await place.world.server.member_join(place.world.guild, carol)
    # The role, the welcome and then the DM: once the DM is there, everything is.
    await eventually(lambda: bool(place.dms_to(carol)), what="the welcome DM")
    assert place.newcomer_role.id in place.roles_of(carol)

    count = place.member_count()
    guild_name = place.world.guild.name
    assert place.posted(place.welcome_channel) == [
        f"Hi <@{carol.id}>, welcome to {guild_name}! You are member {count}."]
    assert place.dms_to(carol) == [f"Glad you joined {guild_name}, <@{carol.id}>."]
    assert place.posted(place.goodbye_channel) == []


async def test_a_welcome_pings_the_newcomer_and_nobody_else_the_template_names(place: Place) -> None:
    world, carol = place.world, place.carol
    await place.switch_everything_on(welcome_template=f"Hi {{member}}! Questions? Ask <@{world.bob.id}>.",
                                     welcome_dm_template=f"Welcome, {{member}}. <@{world.bob.id}> can help.")
    await world.server.member_join(world.guild, carol)
    await eventually(lambda: bool(place.dms_to(carol)), what="the welcome DM")

    only_carol = {"parse": [], "users": [carol.id]}
    [post] = world.server.requests_to("POST", f"/channels/{place.welcome_channel.id}/messages")
    assert post.json["allowed_mentions"] == only_carol, "Discord is told to ping the newcomer alone"
    [dm] = world.server.requests_to("POST", f"/channels/{world.server.dm_channel(carol).id}/messages")
    assert dm.json["allowed_mentions"] == only_carol


async def test_only_what_is_switched_on_is_sent(place: Place) -> None:
    await place.configure(goodbye_enabled=True, goodbye_channel_id=place.goodbye_channel.id,
                          welcome_channel_id=place.welcome_channel.id)  # welcome, DM and auto-role stay off
    await place.world.server.member_join(place.world.guild, place.carol)
    await settled(place.world)  # the join is handled: whatever it would send or give is there now
    assert place.newcomer_role.id not in place.roles_of(place.carol)
    assert place.posted(place.welcome_channel) == []
    assert place.dms_to(place.carol) == []
    await place.world.server.remove_member(place.world.guild, place.carol)
    await eventually(lambda: bool(place.posted(place.goodbye_channel)), what="the goodbye message")


async def test_leave_posts_the_goodbye_with_the_plain_name(place: Place) -> None:
    await place.switch_everything_on()
    await place.world.server.member_join(place.world.guild, place.carol)
    await place.world.server.remove_member(place.world.guild, place.carol)
    await eventually(lambda: bool(place.posted(place.goodbye_channel)), what="the goodbye message")

    # The name is escaped for markdown and never a mention: the member is gone.
    assert place.posted(place.goodbye_channel) == [
        rf"Carol \*the\* Great left {place.world.guild.name}; {place.member_count()} remain."]


async def test_a_goodbye_pings_nobody_whatever_the_departed_name_holds(place: Place) -> None:
    await place.switch_everything_on()
    world = place.world
    trickster = world.server.add_user("trickster", global_name=f"# <@{world.alice.id}> @everyone")
    await world.server.member_join(world.guild, trickster)
    await world.server.remove_member(world.guild, trickster)
    await eventually(lambda: bool(place.posted(place.goodbye_channel)), what="the goodbye message")

    [goodbye] = place.posted(place.goodbye_channel)
    assert goodbye.startswith("\\# <@\u200b")  # no heading, no mention: the text shows as typed
    assert "@\u200beveryone" in goodbye
    posts = world.server.requests_to("POST", f"/channels/{place.goodbye_channel.id}/messages")
    assert posts[-1].json["allowed_mentions"] == {"parse": []}, "and Discord is told to ping nobody"


async def test_a_welcome_dm_to_a_member_who_has_left_is_logged_without_blaming_closed_dms(
        place: Place, caplog: pytest.LogCaptureFixture) -> None:
    # Discord answers 50007 both to closed DMs and to a user who shares no server with the bot.
    world, carol = place.world, place.carol
    await place.switch_everything_on()
    caplog.set_level(logging.WARNING, logger="malabot.cogs.welcome")

    def opening_a_dm(method: str, path: str, body: Any) -> bool:
        return method == "POST" and path == "/users/@me/channels"

    async with world.server.holding_requests(opening_a_dm) as slow_discord:
        await world.server.member_join(world.guild, carol)
        await slow_discord.arrived(within=5)
        await world.server.remove_member(world.guild, carol)   # gone before the DM goes out
    dm_channel = world.server.dm_channel(carol)
    await eventually(lambda: bool(world.server.requests_to("POST", f"/channels/{dm_channel.id}/messages")),
                     what="the welcome DM to be tried")
    [refused] = world.server.requests_to("POST", f"/channels/{dm_channel.id}/messages")
    assert refused.status == 403 and refused.response["code"] == 50007
    await eventually(lambda: any("cannot DM" in r.getMessage() for r in caplog.records), what="the log line")
    [line] = [r.getMessage() for r in caplog.records if "cannot DM" in r.getMessage()]
    assert line == (f"guild {world.guild.id}: welcome of member {carol.id}: cannot DM carol (Carol *the* Great): "
                    "Discord refuses DMs to them (DMs closed, or no server shared with me)")


async def test_a_bot_that_joins_and_leaves_is_neither_welcomed_nor_given_the_auto_role(place: Place) -> None:
    world = place.world
    await place.switch_everything_on()
    helper_bot = world.server.add_user("helper", bot=True)
    await world.server.member_join(world.guild, helper_bot)
    await settled(world)   # the join is handled: whatever it would send or give is there now
    assert place.posted(place.welcome_channel) == []
    dm_channel = world.server.dm_channel(helper_bot)
    assert world.server.requests_to("POST", f"/channels/{dm_channel.id}/messages") == [], "a DM to a bot fails"
    assert autorole_requests(place, helper_bot) == []

    await world.server.remove_member(world.guild, helper_bot)
    await settled(world)
    assert place.posted(place.goodbye_channel) == []


def autorole_requests(place: Place, user: User) -> list[Any]:
    return place.world.server.requests_to("PUT", f"/guilds/{place.world.guild.id}/members/{user.id}/roles/*")


async def test_the_auto_role_waits_for_membership_screening_and_the_welcome_does_not(place: Place) -> None:
    world, carol = place.world, place.carol
    await place.switch_everything_on()
    await world.server.member_join(world.guild, carol, pending=True)    # rules not accepted yet
    await eventually(lambda: bool(place.dms_to(carol)), what="the welcome DM")
    await settled(world)
    assert place.posted(place.welcome_channel), "the welcome does not wait"
    assert autorole_requests(place, carol) == [], "a role now would let them skip the server's rules"

    await world.server.update_member(world.guild, carol, nick="still reading")   # pending all along
    await settled(world)
    assert autorole_requests(place, carol) == []

    await world.server.update_member(world.guild, carol, pending=False)          # they accept the rules
    await settled(world)
    assert place.newcomer_role.id in place.roles_of(carol)
    await world.server.update_member(world.guild, carol, nick="Carol")           # later updates give nothing
    await settled(world)
    [given] = autorole_requests(place, carol)
    assert given.reason == "auto-role after membership screening"


async def test_a_member_who_uses_the_bot_before_discord_says_they_passed_screening_still_gets_the_auto_role(
        place: Place) -> None:
    # Discord's update often comes seconds after the member accepted the rules. A command meanwhile
    # brings their fresh data (no longer pending) into the bot's cache ahead of it.
    world, carol = place.world, place.carol
    await place.configure(autorole_id=place.newcomer_role.id)
    await world.server.member_join(world.guild, carol, pending=True)
    await settled(world)
    async with world.server.holding_events(lambda name, payload: name == "GUILD_MEMBER_UPDATE"):
        await world.server.update_member(world.guild, carol, pending=False)          # they accept the rules
        assert "level 0" in (await world.command(carol, "rank")).content
    await settled(world)
    assert place.newcomer_role.id in place.roles_of(carol)
    await world.server.update_member(world.guild, carol, nick="Carol")               # later updates give nothing
    await settled(world)
    assert len(autorole_requests(place, carol)) == 1


async def test_a_member_given_the_auto_role_by_hand_during_screening_is_not_given_it_again(place: Place) -> None:
    world, carol = place.world, place.carol
    await place.configure(autorole_id=place.newcomer_role.id)
    await world.server.member_join(world.guild, carol, pending=True)
    await settled(world)
    # They already hold the auto-role (a moderator gave it) when their screening ends: nothing to give.
    await world.server.update_member(world.guild, carol, roles=[place.newcomer_role], pending=False)
    await settled(world)
    assert autorole_requests(place, carol) == []
    assert place.newcomer_role.id in place.roles_of(carol)


async def test_the_auto_role_is_given_at_start_to_a_member_who_passed_screening_while_the_bot_was_offline(
        place: Place) -> None:
    world, carol, dave = place.world, place.carol, place.world.server.add_user("dave")
    await place.configure(autorole_id=place.newcomer_role.id)
    await world.server.member_join(world.guild, carol, pending=True)
    await world.server.member_join(world.guild, dave, pending=True)
    await settled(world)
    await world.stop()
    world.server.member(world.guild, carol).pending = False   # accepts the rules; the bot hears nothing
    await world.start()
    await settled(world)
    assert place.newcomer_role.id in place.roles_of(carol)
    [given] = autorole_requests(place, carol)
    assert given.reason == "auto-role after membership screening"
    assert autorole_requests(place, dave) == [], "still reading the rules: they wait on"

    # Carol is no longer waited for: an admin may take the role away, and no start gives it back.
    world.server.member(world.guild, carol).roles.remove(place.newcomer_role.id)
    await world.restart()
    await settled(world)
    assert len(autorole_requests(place, carol)) == 1
    await world.server.update_member(world.guild, dave, pending=False)   # and Dave's comes as it happens
    await settled(world)
    assert place.newcomer_role.id in place.roles_of(dave)


async def test_the_auto_role_is_given_after_an_outage_during_which_the_member_passed_screening(
        place: Place) -> None:
    await place.configure(autorole_id=place.newcomer_role.id)
    await passes_screening_in_an_outage(place)
    assert place.newcomer_role.id in place.roles_of(place.carol)


async def joined_in_screening_while_offline(place: Place) -> User:
    """Carol joins a server with an auto-role while the bot is offline, and is still reading the rules
    when it is back."""
    world, carol = place.world, place.carol
    await place.configure(autorole_id=place.newcomer_role.id)
    await world.stop()
    world.server.add_member(world.guild, carol).pending = True
    await world.start()
    await settled(world)
    return carol


async def test_a_member_who_joined_in_screening_while_the_bot_was_offline_is_waited_for_from_the_start(
        place: Place) -> None:
    world, carol = place.world, await joined_in_screening_while_offline(place)
    assert autorole_requests(place, carol) == [], "still in screening"
    await world.stop()
    world.server.member(world.guild, carol).pending = False      # accepts the rules, again unheard
    await world.start()
    await settled(world)
    assert place.newcomer_role.id in place.roles_of(carol)
    [given] = autorole_requests(place, carol)
    assert given.reason == "auto-role after membership screening"


async def test_a_start_gives_the_auto_role_to_nobody_who_was_not_waiting_for_it(place: Place) -> None:
    # Alice is a member without the auto-role (an admin took it, or it came after she joined): a
    # start must not hand it to everyone who lacks it.
    world = place.world
    await place.configure(autorole_id=place.newcomer_role.id)
    await world.restart()
    await settled(world)
    assert autorole_requests(place, world.alice) == []


async def test_a_role_the_bot_cannot_give_does_not_stop_the_welcome(place: Place) -> None:
    await place.switch_everything_on(autorole_id=place.staff.id, welcome_dm_enabled=False)
    await place.world.server.member_join(place.world.guild, place.carol)
    await eventually(lambda: bool(place.posted(place.welcome_channel)), what="the welcome message")
    # The role was tried first and refused by Discord; the welcome went out all the same.
    [attempt] = place.world.server.requests_to("PUT", f"/guilds/*/members/{place.carol.id}/roles/*")
    assert attempt.status == 403
    assert place.staff.id not in place.roles_of(place.carol)


def giving_a_role(method: str, path: str, body: Any) -> bool:
    return method == "PUT" and "/roles/" in path


async def test_an_auto_role_for_a_member_who_left_meanwhile_is_logged_as_their_leaving(
        place: Place, caplog: pytest.LogCaptureFixture) -> None:
    world, carol = place.world, place.carol
    await place.configure(autorole_id=place.newcomer_role.id)
    caplog.set_level(logging.INFO, logger="malabot.cogs.welcome")
    async with world.server.holding_requests(giving_a_role) as slow_discord:
        await world.server.member_join(world.guild, carol)
        await slow_discord.arrived(within=5)
        await world.server.remove_member(world.guild, carol)   # gone before the role is given
    await settled(world)

    [refused] = autorole_requests(place, carol)
    assert refused.status == 404 and refused.response["code"] == 10007
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", f"guild {world.guild.id}: member {carol.id} left before the auto-role could be given")]


async def test_an_auto_role_deleted_meanwhile_is_logged_as_gone(place: Place,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    world, carol, role = place.world, place.carol, place.newcomer_role
    await place.configure(autorole_id=role.id)
    caplog.set_level(logging.INFO, logger="malabot.cogs.welcome")
    async with world.server.holding_requests(giving_a_role) as slow_discord:
        await world.server.member_join(world.guild, carol)
        await slow_discord.arrived(within=5)
        del world.server.guild(world.guild).roles[role.id]   # deleted on Discord; the bot has not heard yet
    await settled(world)

    [refused] = autorole_requests(place, carol)
    assert refused.status == 404 and refused.response["code"] == 10011
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", f"guild {world.guild.id}: a welcome: the auto-role {role.id} no longer exists")]


async def test_what_admins_can_fix_is_told_to_the_mod_log_once_a_day(place: Place) -> None:
    """Nobody who could fix a deleted welcome channel or an auto-role above the bot's is in the
    conversation when a member joins; a member's closed DMs are nobody's to fix."""
    world, server = place.world, place.world.server
    mod_log = await server.create_channel(world.guild, "mod-log")
    await place.switch_everything_on(autorole_id=place.staff.id, mod_log_channel_id=mod_log.id)
    await server.delete_channel(place.welcome_channel)
    await server.delete_channel(place.goodbye_channel)
    dave = server.add_user("dave", accepts_dms=False)
    for user in (place.carol, dave):
        await server.member_join(world.guild, user)
    await server.remove_member(world.guild, dave)
    await settled(world)

    assert place.posted(mod_log) == [
        "⚠️ A welcome could not do everything; an admin can fix this:\n"
        "• cannot give the auto-role @Staff (it must be below my highest role; I need Manage Roles)\n"
        f"• channel {place.welcome_channel.id} is not a text channel of this server",
        "⚠️ A goodbye could not do everything; an admin can fix this:\n"
        f"• channel {place.goodbye_channel.id} is not a text channel of this server",
    ], "each problem once a day, and not dave's closed DMs"


async def test_welcome_test_previews_every_message_with_the_admin_as_member(place: Place) -> None:
    await place.switch_everything_on(goodbye_enabled=False, autorole_id=place.staff.id)
    admin = place.world.admin
    reply = await place.world.command(admin, "welcome test")

    assert reply.flags & EPHEMERAL
    [embed] = reply.embeds
    text = embed["description"]
    guild_name, count = place.world.guild.name, place.member_count()
    assert (f"**Welcome** (on, in <#{place.welcome_channel.id}>):\n"
            f"Hi <@{admin.id}>, welcome to {guild_name}! You are member {count}.") in text
    assert f"**Welcome DM** (on):\nGlad you joined {guild_name}, <@{admin.id}>." in text
    assert (f"**Goodbye** (off, in <#{place.goodbye_channel.id}>):\n"
            f"admin left {guild_name}; {count} remain.") in text
    assert f"The role <@&{place.staff.id}> is not below my highest role, so I cannot give it" in text
    assert place.posted(place.welcome_channel) == [] and place.dms_to(admin) == [], "a preview sends nothing"


async def test_welcome_test_shortens_long_previews_each_and_shows_every_problem_whole(place: Place) -> None:
    long = "x" * 1400 + " {member}"   # three of them do not fit one embed together
    await place.switch_everything_on(welcome_template=long, welcome_dm_template=long, goodbye_template=long,
                                     autorole_id=place.staff.id)   # a problem the admins must see
    reply = await place.world.command(place.world.admin, "welcome test")

    [embed] = reply.embeds
    text = embed["description"]
    assert len(text) <= 4096, "Discord refuses a longer embed description"
    welcome, dm, goodbye, autorole, problems = text.split("\n\n")
    for preview in (welcome, dm, goodbye):
        assert preview.endswith("x…"), "each preview is shortened, and shows it"
    assert goodbye.startswith("**Goodbye** (on")
    assert autorole == f"**Auto-role**: <@&{place.staff.id}>"
    assert problems == (f"**Problems**:\n• The role <@&{place.staff.id}> is not below my highest role, so I cannot "
                        "give it; move my role above it in the server settings.")


async def test_welcome_test_can_send_them_for_real(place: Place) -> None:
    await place.switch_everything_on()
    admin = place.world.admin
    reply = await place.world.command(admin, "welcome test", {"post": True})

    assert reply.deferred, "acknowledged before the posts and the DM (Discord allows 3 s for an answer)"
    assert reply.ephemeral
    assert "**Sent for testing**: welcome, DM, goodbye." in reply.embeds[0]["description"]
    assert place.posted(place.welcome_channel) == [
        f"Hi <@{admin.id}>, welcome to {place.world.guild.name}! You are member {place.member_count()}."]
    assert place.dms_to(admin) == [f"Glad you joined {place.world.guild.name}, <@{admin.id}>."]
    assert len(place.posted(place.goodbye_channel)) == 1
    assert place.newcomer_role.id not in place.roles_of(admin), "a test send gives no role"
    [post] = place.world.server.requests_to("POST", f"/channels/{place.welcome_channel.id}/messages")
    assert post.json["allowed_mentions"] == {"parse": [], "users": [admin.id]}, "it pings the admin alone"


async def test_welcome_test_is_for_admins(place: Place) -> None:
    reply = await place.world.command(place.world.alice, "welcome test")
    assert reply.flags & EPHEMERAL
    assert reply.content == "You need the Manage Server permission to use this command."


@pytest.mark.parametrize("template, expected", [
    ("Hi {user}", "Unknown placeholder {user}"),
    ("Hi {member.name}", "Unknown placeholder {member.name}"),
    ("Hi {member", "unmatched {"),
])
async def test_templates_with_other_placeholders_are_refused(place: Place, template: str, expected: str) -> None:
    reply = await place.world.command(place.world.admin, "config set",
                                      {"setting": "welcome_template", "value": template})
    assert reply.flags & EPHEMERAL
    assert expected in reply.content
    assert "{member}, {server}, {member_count}" in reply.content
    settings = await place.world.live.guild_settings.get(place.world.guild.id)
    assert settings.welcome_template == "Welcome to {server}, {member}! You are member #{member_count}."


async def passes_screening_in_an_outage(place: Place) -> None:
    """Carol joins in Membership Screening and accepts the rules while her server is out: Discord sends
    the bot nothing about it."""
    world = place.world
    await world.server.member_join(world.guild, place.carol, pending=True)
    await settled(world)
    await world.server.guild_outage(world.guild)
    world.server.member(world.guild, place.carol).pending = False
    await world.server.end_guild_outage(world.guild)
    await settled(world)


async def test_an_auto_role_taken_after_an_outage_catch_up_is_not_given_again(place: Place) -> None:
    world, carol = place.world, place.carol
    await place.configure(autorole_id=place.newcomer_role.id)
    await passes_screening_in_an_outage(place)
    assert place.newcomer_role.id in place.roles_of(carol)
    # A moderator takes the auto-role away: that update is not the end of her screening.
    await world.server.update_member(world.guild, carol, roles=[])
    await settled(world)
    assert place.newcomer_role.id not in place.roles_of(carol)
    assert len(autorole_requests(place, carol)) == 1


async def test_a_member_who_joined_in_screening_while_the_bot_was_offline_and_used_it_at_once_gets_the_auto_role(
        place: Place) -> None:
    world, carol = place.world, await joined_in_screening_while_offline(place)
    async with world.server.holding_events(lambda name, payload: name == "GUILD_MEMBER_UPDATE"):
        await world.server.update_member(world.guild, carol, pending=False)          # accepts the rules
        assert "level 0" in (await world.command(carol, "rank")).content
    await settled(world)
    assert place.newcomer_role.id in place.roles_of(carol)


async def test_an_auto_role_set_after_an_outage_is_not_given_on_a_later_update(place: Place) -> None:
    world, carol = place.world, place.carol
    await passes_screening_in_an_outage(place)
    await place.configure(autorole_id=place.newcomer_role.id)  # later, for newcomers
    await world.server.update_member(world.guild, carol, nick="Caz")
    await settled(world)
    assert autorole_requests(place, carol) == []


async def test_a_member_who_left_in_screening_and_rejoined_without_it_is_not_given_a_later_auto_role(
        place: Place) -> None:
    world, carol = place.world, place.carol
    await world.server.member_join(world.guild, carol, pending=True)
    await settled(world)
    await world.server.remove_member(world.guild, carol)       # leaves while reading the rules
    await settled(world)
    await world.server.member_join(world.guild, carol)          # screening since turned off: not pending
    await settled(world)
    await place.configure(autorole_id=place.newcomer_role.id)  # later, for newcomers
    await world.server.update_member(world.guild, carol, nick="Caz")
    await settled(world)
    assert autorole_requests(place, carol) == []
