"""Verification through the real bot: `/verify setup`, the panel's button, account age, manual review
with Approve/Deny, and both kinds of buttons after a restart.

The world starts on 2026-11-25 12:00 UTC. Members whose account age matters get ids made from a
creation time (a Discord id carries it), relative to that clock.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import discord
import pytest

from malabot.commands import ANSWER_LOST
from malabot.sandbox import ALL_PERMISSIONS, Channel, FakeDiscord, InteractionReply, Message, Overwrite, Role, User
from malabot.sandbox.permissions import Permission
from malabot.sandbox.snowflakes import snowflake_at
from malabot.tenancy.failures import BUSY_ANSWER
from tests.e2e.data_dump import all_rows, eventually
from tests.e2e.discord_failures import drop_original_edits, fail_answers, http_error
from tests.e2e.world import World, make_world, marked_quick
from tests.e2e.xp_place import settled
from tests.file_holds import file_in_use, locked_from_outside

EPHEMERAL = 64
DIFFERENT_ROLES = ("The verified and unverified roles must be different roles: verifying gives the one and takes "
                   "the other away.")


@dataclass
class Place:
    """The world plus what verification needs: its roles, channels and a moderator who may review."""

    world: World
    verified: Role
    unverified: Role
    staff: Role          # above the bot's role: it cannot give it
    panel_channel: Channel
    review_channel: Channel
    reviewer: User       # has Manage Roles, not Manage Server
    junior: User         # Manage Server and Manage Roles, but a highest role below Verified
    newcomer: User       # account 2 days old
    veteran: User        # account 400 days old

    async def setup(self, user: User | None = None, role: Role | None = None) -> Any:
        return await self.world.command(user or self.world.admin, "verify setup",
                                        {"channel": self.panel_channel, "role": role or self.verified})

    async def configure(self, **values: Any) -> None:
        await self.world.live.guild_settings.update(self.world.guild.id, self.world.admin.id, **values)

    def panel(self) -> Message:
        posted = self.world.server.messages_in(self.panel_channel, author=self.world.server.bot_user)
        assert posted, "no verification panel was posted"
        return posted[-1]

    def reviews(self) -> list[Message]:
        return self.world.server.messages_in(self.review_channel, author=self.world.server.bot_user)

    async def press_review(self, user: User, label: str) -> Any:
        """Approve or Deny the first request; a decision made now edits the request when it is done
        (the button is acknowledged first, since roles and a DM follow)."""
        review = self.reviews()[0]
        reply = await self.world.server.press_button(review, user, label=label)
        if reply.deferred:
            await eventually(lambda: not self.world.server.message(review).buttons(),
                             what="the request to show the decision")
        return reply

    async def request_reviewed(self, user: User) -> Message:
        """Verification set up with manual review and an unverified role; `user` asks: their request."""
        await self.setup()
        await self.configure(verify_review_channel_id=self.review_channel.id, unverified_role_id=self.unverified.id)
        await self.press_verify(user)
        [review] = self.reviews()
        return review

    async def press_verify(self, user: User) -> Any:
        return await self.world.server.press_button(self.panel(), user, label="Verify")

    def roles_of(self, user: User) -> set[int]:
        member = self.world.server.member(self.world.guild, user)
        assert member is not None
        return set(member.roles)

    def requests(self) -> list[tuple[object, ...]]:
        return all_rows(self.world.tenant_file(self.world.guild))["verification_requests"]

    def request_of(self, user: User) -> tuple[object, ...] | None:
        found = [row for row in self.requests() if row[0] == user.id]
        return found[0] if found else None

    def dms_to(self, user: User) -> list[str]:
        channel = self.world.server.dm_channel(user)
        return [m.content for m in self.world.server.messages_in(channel, author=self.world.server.bot_user)]


@pytest.fixture
async def place(request: pytest.FixtureRequest, discord_server: FakeDiscord, tmp_path: Path) -> AsyncIterator[Place]:
    made: dict[str, Any] = {}

    def prepare(world: World) -> None:
        server, guild = world.server, world.guild
        # Made first, so it sits below every role made after it (Verified included).
        juniors = server.add_role(guild, "Junior admins",
                                  permissions=int(Permission.MANAGE_GUILD | Permission.MANAGE_ROLES))
        made["junior"] = server.add_user("junior")
        server.add_member(guild, made["junior"], roles=[juniors])
        made["verified"] = server.add_role(guild, "Verified")
        made["unverified"] = server.add_role(guild, "Unverified")
        made["staff"] = server.add_role(guild, "Staff", above_bot=True)
        reviewers = server.add_role(guild, "Reviewers", permissions=int(Permission.MANAGE_ROLES))
        made["panel_channel"] = server.add_channel(guild, "verify")
        made["review_channel"] = server.add_channel(guild, "review")
        made["reviewer"] = server.add_user("reviewer")
        server.add_member(guild, made["reviewer"], roles=[reviewers])
        for name, age in (("newcomer", 2), ("veteran", 400)):
            made[name] = server.add_user(name, id=snowflake_at(world.clock.now - timedelta(days=age)))
            server.add_member(guild, made[name], roles=[made["unverified"]])
        alice = server.member(guild, world.alice)
        assert alice is not None
        alice.roles.append(made["unverified"].id)  # unverified, as an auto-role on join would leave her

    async for world in make_world(discord_server, tmp_path, prepare=prepare, quick=marked_quick(request)):
        yield Place(world=world, **made)


# -- /verify setup ----------------------------------------------------------------------------------


async def test_setup_posts_the_panel_and_stores_the_role(place: Place) -> None:
    reply = await place.setup()
    assert reply.flags & EPHEMERAL
    assert f"<#{place.panel_channel.id}>" in reply.content and f"<@&{place.verified.id}>" in reply.content
    panel = place.panel()
    assert [button["custom_id"] for button in panel.buttons()] == ["malabot:verify"]
    assert [(e["title"], e["description"]) for e in panel.embeds] == [
        ("Verification", "Press **Verify** to get access to Mala Town.")]
    assert (await place.world.live.guild_settings.get(place.world.guild.id)).verified_role_id == place.verified.id


async def test_without_embed_links_the_panel_is_posted_as_text(place: Place) -> None:
    # Discord drops the embeds of a bot lacking Embed Links: an embed-only panel would be a lone button.
    world = place.world
    await world.set_bot_permissions(ALL_PERMISSIONS & ~Permission.ADMINISTRATOR)  # overwrites apply to it
    await world.server.set_overwrite(place.panel_channel,
                                     Overwrite.for_role(world.bot_role(), deny=int(Permission.EMBED_LINKS)))
    reply = await place.setup()
    assert reply.flags & EPHEMERAL and f"<#{place.panel_channel.id}>" in reply.content
    panel = place.panel()
    assert panel.embeds == []
    assert panel.content == "**Verification**\nPress **Verify** to get access to Mala Town."
    assert [button["label"] for button in panel.buttons()] == ["Verify"]
    pressed = await place.press_verify(world.alice)
    assert pressed.content == "You are verified. Welcome!"


async def test_setup_answers_discord_before_it_posts_the_panel(place: Place) -> None:
    server = place.world.server

    def panel_post(method: str, path: str, body: Any) -> bool:
        return method == "POST" and path == f"/channels/{place.panel_channel.id}/messages"

    server.answer_deadline = 0.2  # Discord's 3 s rule, sooner: the panel's post is held past it
    async with server.holding_requests(panel_post) as slow_discord:
        setting_up = asyncio.create_task(place.setup())
        await slow_discord.arrived(within=5)
        await asyncio.sleep(0.3)
    reply = await setting_up   # a first answer after the deadline fails here (10062 Unknown interaction)
    assert reply.callback_type == 5, "deferred before the panel's post"
    assert f"<#{place.panel_channel.id}>" in reply.content and reply.flags & EPHEMERAL


async def test_setup_goes_through_discord_rate_limits(place: Place) -> None:
    # Discord may answer 429 to any call; py-cord waits retry_after and tries again.
    server = place.world.server
    panel_path = f"/channels/{place.panel_channel.id}/messages"
    panel_post = server.rate_limit(lambda method, path, body: method == "POST" and path == panel_path, times=2)
    answer = server.rate_limit(lambda method, path, body: method == "POST" and path.startswith("/webhooks/"))
    reply = await place.setup()
    assert reply.flags & EPHEMERAL and reply.content.startswith("Posted the verification panel")
    assert (panel_post.hits, answer.hits) == (2, 1)
    assert [r.status for r in server.requests_to("POST", panel_path)] == [429, 429, 200]
    assert len(server.messages_in(place.panel_channel)) == 1
    assert (await place.world.live.guild_settings.get(place.world.guild.id)).verified_role_id == place.verified.id


@pytest.mark.parametrize("which, expected", [
    ("everyone", "@everyone cannot be the verified role"),
    ("staff", "is not below my highest role, so I cannot give it"),
    ("bot role", "is managed by an integration"),
])
async def test_setup_refuses_roles_the_bot_cannot_give(place: Place, which: str, expected: str) -> None:
    guild = place.world.server.guild(place.world.guild)
    roles = {"everyone": place.world.server.role(guild, guild.id), "staff": place.staff,
             "bot role": next(r for r in guild.roles.values() if r.managed)}
    reply = await place.setup(role=roles[which])
    assert reply.flags & EPHEMERAL
    assert expected in reply.content
    assert not place.world.server.messages_in(place.panel_channel), "no panel is posted"
    assert (await place.world.live.guild_settings.get(place.world.guild.id)).verified_role_id is None


async def test_an_admin_may_only_choose_a_role_they_could_give_themselves(place: Place) -> None:
    world = place.world
    manage_server_only = await place.setup(user=world.bob)         # Moderators: Manage Server only
    assert manage_server_only.flags & EPHEMERAL
    assert manage_server_only.content == ("You need the Manage Roles permission to choose a role that I give "
                                          "to members.")
    below = await place.setup(user=place.junior)
    assert below.content == (f"You can only choose a role below your own highest role, and "
                             f"<@&{place.verified.id}> is not.")
    for user in (world.bob, place.junior):
        reply = await world.command(user, "config set", {"setting": "verified_role_id",
                                                         "value": f"<@&{place.verified.id}>"})
        assert reply.flags & EPHEMERAL and reply.content.startswith("You ")
    assert not world.server.messages_in(place.panel_channel), "no panel is posted"
    assert (await world.live.guild_settings.get(world.guild.id)).verified_role_id is None
    by_owner = await world.command(world.admin, "config set", {"setting": "autorole_id",
                                                                "value": f"<@&{place.verified.id}>"})
    assert by_owner.content == f"`autorole_id` is now <@&{place.verified.id}>."



async def test_the_verified_and_unverified_roles_must_be_different_roles(place: Place) -> None:
    # Verifying gives the one and takes the other: with one role for both the member would be told
    # "You are verified" and be left without it.
    world = place.world
    same = DIFFERENT_ROLES
    await place.configure(unverified_role_id=place.unverified.id)
    reply = await place.setup(role=place.unverified)
    assert reply.flags & EPHEMERAL and reply.content == same
    assert not world.server.messages_in(place.panel_channel), "no panel is posted"
    by_config = await world.command(world.admin, "config set", {"setting": "verified_role_id",
                                                                 "value": f"<@&{place.unverified.id}>"})
    assert by_config.flags & EPHEMERAL and by_config.content == same
    assert (await world.live.guild_settings.get(world.guild.id)).verified_role_id is None

    await place.configure(unverified_role_id=None)
    await place.setup()
    the_other_way = await world.command(world.admin, "config set", {"setting": "unverified_role_id",
                                                                     "value": f"<@&{place.verified.id}>"})
    assert the_other_way.content == same
    assert (await world.live.guild_settings.get(world.guild.id)).unverified_role_id is None


@pytest.mark.parametrize(("taken_by", "answer"), [
    ("autorole", "`autorole_id` and `verified_role_id` must be different roles: every member who joins would "
                 "be verified without verifying."),
    ("level 5", "`verified_role_id`: that role is the level role of level 5, and levels give and take their "
                "roles. Choose another role, or stop giving it at that level first with `/levelrole remove`."),
])
async def test_setup_with_a_role_another_setting_or_a_level_gives_is_refused_before_posting(
        place: Place, taken_by: str, answer: str) -> None:
    """/verify setup follows the rules /config set does, and refuses before it posts a panel."""
    world = place.world
    if taken_by == "autorole":
        await place.configure(autorole_id=place.verified.id)
    else:
        await world.command(world.admin, "levelrole add", {"level": 5, "role": place.verified})
    reply = await place.setup()
    assert reply.flags & EPHEMERAL and reply.content == answer
    assert not world.server.messages_in(place.panel_channel), "no panel is posted"
    assert (await world.live.guild_settings.get(world.guild.id)).verified_role_id is None


async def test_a_setup_refused_after_its_panel_was_posted_takes_the_panel_back(place: Place) -> None:
    """Another admin makes the role the auto-role while the panel is on its way: the write refuses it."""
    world = place.world

    def posting_the_panel(method: str, path: str, body: Any) -> bool:
        return method == "POST" and path.endswith(f"/channels/{place.panel_channel.id}/messages")

    async with world.server.holding_requests(posting_the_panel) as panel_on_its_way:
        setting_up = asyncio.create_task(place.setup())
        await panel_on_its_way.arrived(within=5)
        await place.configure(autorole_id=place.verified.id)
    reply = await setting_up
    assert reply.flags & EPHEMERAL and reply.content.startswith("`autorole_id` and `verified_role_id` must be")
    await eventually(lambda: not world.server.messages_in(place.panel_channel), what="the panel taken back")
    assert (await world.live.guild_settings.get(world.guild.id)).verified_role_id is None


async def setup_meeting_a_locked_file(place: Place) -> Message | InteractionReply:
    """/verify setup whose settings write finds the file locked by another program (an operator's sqlite3
    session) once its panel is posted; the admin's answer."""
    world = place.world
    world.server.timeout = 20.0  # the bot waits out the busy timeout before it gives up on the file

    def posting_the_panel(method: str, path: str, body: Any) -> bool:
        return method == "POST" and path.endswith(f"/channels/{place.panel_channel.id}/messages")

    async with world.server.holding_requests(posting_the_panel) as panel_on_its_way:
        setting_up = asyncio.create_task(place.setup())
        await panel_on_its_way.arrived(within=5)
        with locked_from_outside(world.tenant_file(world.guild)):
            panel_on_its_way.release()
            reply = await setting_up
            [told] = await reply.wait_for_messages(1) if not reply.content else [reply]
    return told


@pytest.mark.quick
async def test_a_setup_whose_write_finds_the_file_locked_takes_the_panel_back(place: Place) -> None:
    """The admin is told to try again, so a panel left behind would be a second one at the retry."""
    world = place.world
    told = await setup_meeting_a_locked_file(place)
    assert told.flags & EPHEMERAL and told.content == BUSY_ANSWER
    await eventually(lambda: not world.server.messages_in(place.panel_channel), what="the panel taken back")
    assert (await world.live.guild_settings.get(world.guild.id)).verified_role_id is None


@pytest.mark.quick
async def test_a_setup_whose_panel_cannot_be_taken_back_still_tells_why_it_failed(
        place: Place, monkeypatch: pytest.MonkeyPatch) -> None:
    request = discord.http.HTTPClient.request

    async def unreachable_for_the_delete(self: discord.http.HTTPClient, route: discord.http.Route,
                                         **kwargs: Any) -> Any:
        if route.method == "DELETE" and route.channel_id == place.panel_channel.id:
            raise aiohttp.ClientConnectionError("Connection reset by peer")
        return await request(self, route, **kwargs)

    monkeypatch.setattr(discord.http.HTTPClient, "request", unreachable_for_the_delete)
    told = await setup_meeting_a_locked_file(place)
    assert told.flags & EPHEMERAL and told.content == BUSY_ANSWER, "the busy file is the news, not the delete"


async def test_one_role_chosen_as_both_at_the_same_moment_is_stored_as_only_one(place: Place) -> None:
    # Two admins at once (or one, in two windows). Each change is checked against the settings as stored
    # when it is made, not as cached before the other one: else both pass, and the role would be given
    # and taken at once.
    world, role = place.world, f"<@&{place.verified.id}>"
    await world.live.guild_settings.get(world.guild.id)  # cached, as on any busy server
    as_verified, as_unverified = await asyncio.gather(
        world.command(world.admin, "config set", {"setting": "verified_role_id", "value": role}),
        world.command(world.admin, "config set", {"setting": "unverified_role_id", "value": role}))
    settings = await world.live.guild_settings.get(world.guild.id)
    stored = (settings.verified_role_id, settings.unverified_role_id)
    assert stored in ((place.verified.id, None), (None, place.verified.id))
    kept = "verified_role_id" if stored[0] else "unverified_role_id"
    assert {as_verified.content, as_unverified.content} == {f"`{kept}` is now {role}.", DIFFERENT_ROLES}
    assert as_verified.flags & as_unverified.flags & EPHEMERAL


async def test_setup_needs_manage_server(place: Place) -> None:
    reply = await place.setup(user=place.world.alice)
    assert reply.flags & EPHEMERAL
    assert reply.content == "You need the Manage Server permission to use this command."
    assert not place.world.server.messages_in(place.panel_channel)


# -- the panel ---------------------------------------------------------------------------------------


async def test_pressing_verify_gives_the_role_and_takes_the_unverified_one_once(place: Place) -> None:
    await place.setup()
    await place.world.command(place.world.admin, "config set",
                              {"setting": "unverified_role_id", "value": f"<@&{place.unverified.id}>"})
    alice = place.world.alice

    first = await place.press_verify(alice)
    assert first.flags & EPHEMERAL and first.content == "You are verified. Welcome!"
    assert place.verified.id in place.roles_of(alice) and place.unverified.id not in place.roles_of(alice)
    row = place.request_of(alice)
    assert row is not None and row[1] == "verified" and row[3] is None  # no reviewer

    again = await place.press_verify(alice)
    assert again.content == "You are already verified."
    assert place.requests() == [row], "pressing twice stores nothing new"


def unverified_role_kept(place: Place) -> str:
    return (f"I could not take away the unverified role <@&{place.unverified.id}> (I need Manage Roles and my "
            "role above it); please tell an admin.")


async def test_an_unverified_role_the_bot_cannot_take_does_not_undo_the_verification(place: Place) -> None:
    await place.setup()
    await place.configure(unverified_role_id=place.unverified.id)
    # Since then an admin moved Unverified above the bot's role (py-cord has not heard: Discord answers 403).
    place.world.server.role(place.world.guild, place.unverified).position = 999
    alice = place.world.alice

    reply = await place.press_verify(alice)
    assert reply.flags & EPHEMERAL
    assert reply.content == f"You are verified. Welcome! But {unverified_role_kept(place)}"
    assert place.verified.id in place.roles_of(alice) and place.unverified.id in place.roles_of(alice)
    assert place.request_of(alice)[1] == "verified"  # type: ignore[index]


async def test_roles_above_the_bot_that_need_no_change_are_not_reported(place: Place) -> None:
    # Verifying gives and takes both roles whatever the cache shows, and Discord refuses either for a
    # role above the bot's even when it would change nothing: that is no problem to report.
    await place.setup()
    await place.configure(unverified_role_id=place.unverified.id)
    carol = place.world.server.add_user("carol")
    await place.world.server.member_join(place.world.guild, carol)              # never marked unverified
    await settled(place.world)
    place.world.server.role(place.world.guild, place.unverified).position = 999
    assert (await place.press_verify(carol)).content == "You are verified. Welcome!"
    place.world.server.role(place.world.guild, place.verified).position = 998   # after she verified
    assert (await place.press_verify(carol)).content == "You are already verified."
    assert place.roles_of(carol) == {place.verified.id}


async def test_pressing_before_setup_is_refused(place: Place) -> None:
    await place.setup()
    await place.configure(verified_role_id=None)  # e.g. reset with /config reset
    reply = await place.press_verify(place.world.alice)
    assert reply.flags & EPHEMERAL
    assert "Verification is not set up on this server yet" in reply.content
    assert place.requests() == []


async def test_a_member_still_in_membership_screening_is_asked_to_accept_the_rules_first(place: Place) -> None:
    world = place.world
    await place.setup()
    carol = world.server.add_user("carol")
    await world.server.member_join(world.guild, carol, pending=True)
    await settled(world)

    refused = await place.press_verify(carol)
    assert refused.flags & EPHEMERAL
    assert refused.content == ("Please accept this server's rules first (Discord shows them to you on joining); "
                               "then press Verify again.")
    assert place.verified.id not in place.roles_of(carol) and place.request_of(carol) is None

    await world.server.update_member(world.guild, carol, pending=False)  # she accepts the rules
    await settled(world)
    assert (await place.press_verify(carol)).content == "You are verified. Welcome!"
    assert place.verified.id in place.roles_of(carol)


async def newcomer_marked_unverified(place: Place, **settings: Any) -> User:
    """Carol joins, in Membership Screening, a server whose auto-role is its Unverified role."""
    await place.setup()
    await place.configure(unverified_role_id=place.unverified.id, autorole_id=place.unverified.id, **settings)
    carol = place.world.server.add_user("carol")
    await place.world.server.member_join(place.world.guild, carol, pending=True)
    await settled(place.world)
    return carol


async def test_an_unverified_auto_role_is_not_given_to_a_member_who_verified_before_discord_said_they_passed_screening(
        place: Place) -> None:
    # Discord's update often comes seconds after the member accepted the rules: they may have pressed
    # Verify meanwhile (the press brings their fresh data), and the update still carries their old roles.
    world = place.world
    carol = await newcomer_marked_unverified(place)
    async with world.server.holding_events(lambda name, payload: name == "GUILD_MEMBER_UPDATE"):
        await world.server.update_member(world.guild, carol, pending=False)  # she accepts the rules
        assert (await place.press_verify(carol)).content == "You are verified. Welcome!"
    await settled(world)
    assert place.roles_of(carol) == {place.verified.id}
    await world.restart()  # nothing is owed to her at the next start either
    await settled(world)
    assert place.roles_of(carol) == {place.verified.id}


async def test_an_approval_takes_an_unverified_auto_role_whose_news_has_not_reached_the_bot(place: Place) -> None:
    # Carol accepts the rules and at once asks to be verified; Discord's word that she passed screening
    # comes, and the bot gives her the Unverified auto-role. The moderator approves before Discord's news
    # of that role has come back: the approval must go by her roles as Discord has them.
    world = place.world
    carol = await newcomer_marked_unverified(place, verify_review_channel_id=place.review_channel.id)
    async with world.server.holding_events(lambda name, payload: name == "GUILD_MEMBER_UPDATE") as lagging:
        await world.server.update_member(world.guild, carol, pending=False)  # she accepts the rules
        await place.press_verify(carol)
        await settled(world)
        await lagging.send(1)  # the news that she passed screening
        await settled(world)
        assert place.roles_of(carol) == {place.unverified.id}
        await place.press_review(place.reviewer, "Approve")
        await settled(world)
    await settled(world)
    assert place.roles_of(carol) == {place.verified.id}


async def test_verify_pressed_while_the_unverified_auto_role_is_being_given_ends_verified_only(
        place: Place) -> None:
    # The member accepts the rules and presses Verify at once, while Discord is slow to give the
    # auto-role and its news of the roles runs behind.
    world = place.world
    carol = await newcomer_marked_unverified(place)
    async with world.server.holding_requests(lambda method, path, body: method == "PUT" and path.endswith(
            f"/members/{carol.id}/roles/{place.unverified.id}")) as slow:
        await world.server.update_member(world.guild, carol, pending=False)  # she accepts the rules
        await slow.arrived(5)  # the auto-role is on its way
        async with world.server.holding_events(lambda name, payload: name == "GUILD_MEMBER_UPDATE"):
            pressing = asyncio.create_task(place.press_verify(carol))
            await asyncio.sleep(0.2)
            slow.release()
            assert (await pressing).content == "You are verified. Welcome!"
    await settled(world)
    assert place.roles_of(carol) == {place.verified.id}


async def test_the_panel_still_works_after_a_restart(place: Place) -> None:
    await place.setup()
    await place.world.restart()
    reply = await place.press_verify(place.world.alice)
    assert reply.content == "You are verified. Welcome!"
    assert place.verified.id in place.roles_of(place.world.alice)


async def test_accounts_younger_than_the_minimum_are_refused(place: Place) -> None:
    await place.setup()
    await place.configure(verify_min_account_age_days=7)

    young = await place.press_verify(place.newcomer)
    assert young.flags & EPHEMERAL
    ready = (place.world.clock.now + timedelta(days=5)).strftime("%Y-%m-%d %H:%M UTC")
    assert young.content == ("Your Discord account is too new to verify here: it must be at least 7 days old. "
                             f"Try again after {ready}.")
    assert place.verified.id not in place.roles_of(place.newcomer)
    assert place.request_of(place.newcomer) is None, "a refusal stores nothing"

    old = await place.press_verify(place.veteran)
    assert old.content == "You are verified. Welcome!"

    place.world.clock.advance(days=6)
    later = await place.press_verify(place.newcomer)
    assert later.content == "You are verified. Welcome!"


# -- manual review -------------------------------------------------------------------------------------


async def test_review_request_waits_for_a_moderator_and_is_not_duplicated(place: Place) -> None:
    await place.setup()
    await place.configure(verify_review_channel_id=place.review_channel.id, unverified_role_id=place.unverified.id)
    alice = place.world.alice

    sent = await place.press_verify(alice)
    assert sent.content.startswith("Your request was sent to the moderators")
    assert place.verified.id not in place.roles_of(alice)
    [review] = place.reviews()
    assert f"<@{alice.id}>" in review.content
    assert [b["custom_id"] for b in review.buttons()] == [f"malabot:review:approve:{alice.id}",
                                                          f"malabot:review:deny:{alice.id}"]
    row = place.request_of(alice)
    assert row is not None and row[1] == "pending" and row[5] == review.id

    again = await place.press_verify(alice)
    assert again.content == "Your request is waiting for a moderator."
    assert len(place.reviews()) == 1 and len(place.requests()) == 1


async def test_a_request_in_a_review_channel_deleted_since_is_sent_to_the_new_one(place: Place) -> None:
    alice, server = place.world.alice, place.world.server
    first = await place.request_reviewed(alice)
    new_review = await server.create_channel(place.world.guild, "review-2")
    await place.configure(verify_review_channel_id=new_review.id)
    await server.delete_channel(place.review_channel)

    again = await place.press_verify(alice)
    assert again.content.startswith("Your request was no longer in front of the moderators (its message is gone), "
                                    "so I sent it again")
    [posted] = server.messages_in(new_review, author=server.bot_user)
    assert f"<@{alice.id}>" in posted.content and posted.buttons()
    row = place.request_of(alice)
    assert row is not None and row[1] == "pending" and row[5] == posted.id != first.id
    await server.press_button(posted, place.world.admin, label="Approve")
    await eventually(lambda: place.verified.id in place.roles_of(alice), what="the approval of the new request")


async def test_a_request_whose_review_message_was_deleted_is_posted_again(place: Place) -> None:
    alice, server = place.world.alice, place.world.server
    first = await place.request_reviewed(alice)
    await server.delete_message(first)  # a moderator tidies the review channel

    again = await place.press_verify(alice)
    assert again.content.startswith("Your request was no longer in front of the moderators")
    [posted] = [message for message in place.reviews() if message.id != first.id]
    assert place.request_of(alice)[5] == posted.id  # type: ignore[index]
    assert (await place.press_verify(alice)).content == "Your request is waiting for a moderator."
    assert len(place.reviews()) == 1, "the request is posted again only while its message is gone"


async def test_a_double_click_on_a_request_whose_message_is_gone_posts_it_once(place: Place) -> None:
    alice, server = place.world.alice, place.world.server
    first = await place.request_reviewed(alice)
    await server.delete_message(first)

    def checking_the_message(method: str, path: str, body: Any) -> bool:
        return method == "GET" and path.endswith(f"/messages/{first.id}")

    async with server.holding_requests(checking_the_message) as checking:
        one = asyncio.ensure_future(place.press_verify(alice))
        await checking.arrived(within=5)  # the first press is asking whether its message is gone
        two = asyncio.ensure_future(place.press_verify(alice))
        await asyncio.sleep(0.2)
    answers = sorted(reply.content for reply in await asyncio.gather(one, two))
    assert answers[0] == "Your request is waiting for a moderator."
    assert answers[1].startswith("Your request was no longer in front of the moderators")
    [posted] = [message for message in place.reviews() if message.id != first.id]
    assert place.request_of(alice)[5] == posted.id  # type: ignore[index]


async def test_a_request_stored_but_never_posted_is_posted_at_the_next_press(place: Place) -> None:
    """The bot stopped between storing the request and posting it: after a minute the next press posts it."""
    alice = place.world.alice
    await place.setup()
    await place.configure(verify_review_channel_id=place.review_channel.id)
    await place.world.live.verification.request(place.world.guild.id, alice.id)  # stored, not posted
    assert (await place.press_verify(alice)).content == "Your request is waiting for a moderator."
    assert place.reviews() == [], "a press seconds later finds the first press still posting it"
    place.world.clock.advance(minutes=2)

    again = await place.press_verify(alice)
    assert again.content.startswith("Your request was no longer in front of the moderators")
    [posted] = place.reviews()
    assert place.request_of(alice)[5] == posted.id  # type: ignore[index]


async def test_approval_after_a_restart_gives_the_role(place: Place) -> None:
    await place.setup()
    await place.configure(verify_review_channel_id=place.review_channel.id, unverified_role_id=place.unverified.id)
    alice = place.world.alice
    await place.press_verify(alice)
    await place.world.restart()

    refused = await place.world.server.press_button(place.reviews()[0], place.world.bob, label="Approve")
    assert refused.flags & EPHEMERAL
    assert refused.content == "You need the Manage Roles permission to review verification requests."
    assert place.request_of(alice)[1] == "pending"  # type: ignore[index]

    approved = await place.press_review(place.reviewer, "Approve")
    review = place.reviews()[0]
    assert approved.deferred, "acknowledged before the roles and the DM (Discord allows 3 s)"
    assert approved.original is review
    assert review.content.endswith(f"✅ Approved by <@{place.reviewer.id}>.")
    assert review.buttons() == [], "the buttons are gone once answered"
    assert place.verified.id in place.roles_of(alice) and place.unverified.id not in place.roles_of(alice)
    row = place.request_of(alice)
    assert row is not None and row[1] == "verified" and row[3] == place.reviewer.id
    assert place.dms_to(alice) == [f"You are verified in {place.world.guild.name}. Welcome!"]
    assert (await place.press_verify(alice)).content == "You are already verified."


async def test_review_buttons_need_manage_roles_on_the_server_not_in_the_review_channel(place: Place) -> None:
    world, server, alice = place.world, place.world.server, place.world.alice
    await place.setup()
    await place.configure(verify_review_channel_id=place.review_channel.id, unverified_role_id=place.unverified.id)
    await place.press_verify(alice)
    # bob manages the server (Moderators), not its roles; here he may manage #review's permissions.
    await server.set_overwrite(place.review_channel, Overwrite.for_member(world.bob,
                                                                          allow=int(Permission.MANAGE_ROLES)))
    # The reviewer has Manage Roles on the server, but not #review's "Manage Permissions".
    reviewers = next(role for role in server.guild(world.guild).roles.values() if role.name == "Reviewers")
    await server.set_overwrite(place.review_channel, Overwrite.for_role(reviewers,
                                                                        deny=int(Permission.MANAGE_ROLES)))

    refused = await place.press_review(world.bob, "Approve")
    assert refused.content == "You need the Manage Roles permission to review verification requests."
    assert place.request_of(alice)[1] == "pending"  # type: ignore[index]
    assert place.verified.id not in place.roles_of(alice)

    await place.press_review(place.reviewer, "Approve")
    assert place.reviews()[0].content.endswith(f"✅ Approved by <@{place.reviewer.id}>.")
    assert place.verified.id in place.roles_of(alice)


async def test_an_approval_the_bot_cannot_carry_out_is_explained_to_the_reviewer_alone(place: Place) -> None:
    await place.setup()
    await place.configure(verify_review_channel_id=place.review_channel.id)
    alice = place.world.alice
    await place.press_verify(alice)
    await place.configure(verified_role_id=place.staff.id)  # since the request: a role above the bot's

    approved = await place.press_review(place.reviewer, "Approve")
    assert place.reviews()[0].content.endswith(f"✅ Approved by <@{place.reviewer.id}>.")
    [_, problem] = await approved.wait_for_messages(2)
    assert problem.flags & EPHEMERAL, "the review channel does not see it, the reviewer does"
    assert problem.content == ("Approved, but: I am not allowed to give the verified role (I need Manage Roles "
                               "and my role above the verification roles); please tell an admin.")
    assert place.staff.id not in place.roles_of(alice)
    assert place.dms_to(alice) == [], "no welcome for a role she did not get"


async def test_an_approval_meeting_a_discord_failure_is_carried_out_by_pressing_approve_again(place: Place) -> None:
    # Before the fix the approval was stored, the role never given (the reviewer got the generic
    # apology), and pressing Approve again only said "This request was already approved".
    world, alice = place.world, place.world.alice
    review = await place.request_reviewed(alice)

    def giving_the_role(method: str, path: str, body: Any) -> bool:
        return method == "PUT" and f"/members/{alice.id}/roles/" in path

    world.server.rate_limit(giving_the_role, times=5)  # py-cord's five tries all meet a 429
    failed = await world.server.press_button(review, place.reviewer, label="Approve")
    [_, problem] = await failed.wait_for_messages(2)
    assert problem.flags & EPHEMERAL
    assert problem.content == ("Approved, but: Discord did not let me give the roles just now (error 429); "
                               "press Approve again in a moment.")
    assert place.verified.id not in place.roles_of(alice) and place.dms_to(alice) == []
    assert place.request_of(alice)[1] == "verified"  # type: ignore[index]
    assert review.buttons(), "the request keeps its buttons until its roles are given"

    denied = await world.server.press_button(review, world.admin, label="Deny")
    [_, told] = await denied.wait_for_messages(2)
    assert told.content == f"This request was already approved by <@{place.reviewer.id}>."
    assert place.verified.id not in place.roles_of(alice)

    await place.press_review(world.admin, "Approve")
    assert review.content.endswith(f"✅ Approved by <@{place.reviewer.id}>.")
    assert place.verified.id in place.roles_of(alice) and place.unverified.id not in place.roles_of(alice)
    assert place.dms_to(alice) == [f"You are verified in {world.guild.name}. Welcome!"]


async def test_an_approval_failing_as_it_takes_the_unverified_role_is_finished_by_pressing_approve_again(
        place: Place) -> None:
    world, alice = place.world, place.world.alice
    review = await place.request_reviewed(alice)

    def taking_the_unverified_role(method: str, path: str, body: Any) -> bool:
        return method == "DELETE" and path.endswith(f"/members/{alice.id}/roles/{place.unverified.id}")

    world.server.rate_limit(taking_the_unverified_role, times=5)  # py-cord's five tries all meet a 429
    failed = await world.server.press_button(review, place.reviewer, label="Approve")
    [_, problem] = await failed.wait_for_messages(2)
    assert problem.content == ("Approved, but: Discord did not let me give the roles just now (error 429); "
                               "press Approve again in a moment.")
    assert place.verified.id in place.roles_of(alice) and place.unverified.id in place.roles_of(alice)

    await place.press_review(world.admin, "Approve")
    assert review.content.endswith(f"✅ Approved by <@{place.reviewer.id}>.")
    assert place.unverified.id not in place.roles_of(alice)
    assert place.dms_to(alice) == [f"You are verified in {world.guild.name}. Welcome!"]


async def test_an_approval_that_cannot_take_the_unverified_role_still_verifies(place: Place) -> None:
    await place.setup()
    await place.configure(verify_review_channel_id=place.review_channel.id, unverified_role_id=place.unverified.id)
    alice = place.world.alice
    await place.press_verify(alice)
    place.world.server.role(place.world.guild, place.unverified).position = 999  # above the bot's role now

    approved = await place.press_review(place.reviewer, "Approve")
    [_, problem] = await approved.wait_for_messages(2)
    assert problem.flags & EPHEMERAL
    assert problem.content == f"Approved, but: {unverified_role_kept(place)}"
    assert place.verified.id in place.roles_of(alice)
    assert place.dms_to(alice) == [f"You are verified in {place.world.guild.name}. Welcome!"]


async def test_a_verified_role_deleted_as_verify_is_pressed_is_explained(place: Place) -> None:
    await place.setup()
    del place.world.server.guild(place.world.guild).roles[place.verified.id]  # py-cord has not heard yet
    reply = await place.press_verify(place.world.alice)
    assert reply.flags & EPHEMERAL
    assert reply.content == "The verified role no longer exists; please ask an admin to run `/verify setup`."


async def test_a_review_message_deleted_as_it_is_approved_still_verifies_the_member(place: Place) -> None:
    await place.setup()
    await place.configure(verify_review_channel_id=place.review_channel.id)
    alice = place.world.alice
    await place.press_verify(alice)
    [review] = place.reviews()
    # A moderator deletes the request while another approves it: the bot cannot show the decision.
    approved, _ = await asyncio.gather(place.world.server.press_button(review, place.reviewer, label="Approve"),
                                       place.world.server.delete_message(review))
    await settled(place.world)
    [edit] = [request for request in place.world.server.requests
              if request.method == "PATCH" and request.path.endswith("/messages/@original")]
    assert edit.status == 404
    assert approved.messages == [], "no apology: the member was verified all the same"
    assert place.dms_to(alice) == [f"You are verified in {place.world.guild.name}. Welcome!"]
    assert place.verified.id in place.roles_of(alice)


async def test_two_moderators_answering_at_once_decide_once(place: Place) -> None:
    await place.setup()
    await place.configure(verify_review_channel_id=place.review_channel.id)
    alice = place.world.alice
    await place.press_verify(alice)
    review = place.reviews()[0]

    approve, deny = await asyncio.gather(
        place.world.server.press_button(review, place.reviewer, label="Approve"),
        place.world.server.press_button(review, place.world.admin, label="Deny"))

    answers = [approve, deny]
    await eventually(lambda: not review.buttons(), what="the request to show the decision")
    await settled(place.world)
    # Both presses are acknowledged at once (the file may keep them waiting); the later one is told why.
    assert all(a.deferred and a.original is review for a in answers)
    late = [a for a in answers if a.followups]
    assert len(late) == 1
    row = place.request_of(alice)
    assert row is not None
    verdict, first = ("approved", place.reviewer) if row[1] == "verified" else ("denied", place.world.admin)
    assert row[3] == first.id
    [told] = late[0].followups
    assert told.flags & EPHEMERAL
    assert told.content == f"This request was already {verdict} by <@{first.id}>."
    assert (place.verified.id in place.roles_of(alice)) == (verdict == "approved")


async def test_a_second_approve_while_the_gateway_lags_tells_the_member_once(place: Place) -> None:
    # Discord's events often come seconds after its HTTP answers: the role the first Approve gave is not
    # in the bot's member cache yet when a double click, or a second moderator, presses Approve.
    world, alice = place.world, place.world.alice
    review = await place.request_reviewed(alice)
    async with world.server.holding_events(lambda name, payload: name == "GUILD_MEMBER_UPDATE"):
        answers = await asyncio.gather(world.server.press_button(review, place.reviewer, label="Approve"),
                                       world.server.press_button(review, world.admin, label="Approve"))
        await eventually(lambda: not review.buttons(), what="the request to show the decision")
        await settled(world)
    await settled(world)
    assert place.dms_to(alice) == [f"You are verified in {world.guild.name}. Welcome!"]
    [late] = [answer for answer in answers if answer.followups]
    row = place.request_of(alice)
    assert row is not None and row[1] == "verified"
    assert [told.content for told in late.followups] == [f"This request was already approved by <@{row[3]}>."]


@pytest.mark.quick
async def test_a_review_approved_while_the_file_is_in_use_still_gives_the_role(place: Place) -> None:
    # Before the fix the decision was written first: stored as approved, then Discord had dropped the
    # press (10062), so the role was never given and the request kept its buttons.
    world = place.world
    world.server.timeout = 20.0
    await place.setup()
    await place.configure(verify_review_channel_id=place.review_channel.id, unverified_role_id=place.unverified.id)
    alice = world.alice
    await place.press_verify(alice)
    review = place.reviews()[0]

    async with file_in_use(world.live.tenants, world.guild.id):  # a long backup of the file, say
        pressing = asyncio.create_task(world.server.press_button(review, place.reviewer, label="Approve"))
        await asyncio.sleep(world.server.answer_deadline + 0.5)
    approved = await pressing
    await eventually(lambda: not review.buttons(), what="the request to show the decision")
    await settled(world)

    assert approved.deferred and approved.late_by is None
    assert review.content.endswith(f"✅ Approved by <@{place.reviewer.id}>.")
    row = place.request_of(alice)
    assert row is not None and row[1] == "verified"
    assert place.verified.id in place.roles_of(alice) and place.unverified.id not in place.roles_of(alice)
    assert place.dms_to(alice) == [f"You are verified in {world.guild.name}. Welcome!"]


@pytest.mark.quick
async def test_a_review_meeting_a_file_locked_elsewhere_is_told_it_is_busy(place: Place) -> None:
    world = place.world
    world.server.timeout = 20.0  # the bot waits busy_timeout (5 s) before it gives up on the file
    await place.setup()
    await place.configure(verify_review_channel_id=place.review_channel.id)
    alice = world.alice
    await place.press_verify(alice)
    review = place.reviews()[0]

    with locked_from_outside(world.tenant_file(world.guild)):
        pressed = await world.server.press_button(review, place.reviewer, label="Approve")
        [_, told] = await pressed.wait_for_messages(2)

    assert pressed.late_by is None
    assert told.flags & EPHEMERAL and told.content == BUSY_ANSWER
    assert place.request_of(alice)[1] == "pending"  # type: ignore[index]
    assert review.buttons(), "nothing was decided: the moderator can press again"
    await place.press_review(place.reviewer, "Approve")
    assert place.verified.id in place.roles_of(alice)


async def test_a_denial_goes_through_while_discord_fails_to_look_members_up(place: Place) -> None:
    # Only an approval needs the member's roles as Discord has them; a denial tells them from the cache.
    world, alice = place.world, place.world.alice
    review = await place.request_reviewed(alice)
    world.server.rate_limit(lambda method, path, body: method == "GET"
                            and path == f"/guilds/{world.guild.id}/members/{alice.id}", times=5)
    await world.server.press_button(review, place.reviewer, label="Deny")
    await settled(world)
    assert place.dms_to(alice) == [f"Your verification request in {world.guild.name} was denied."]
    assert review.content.endswith(f"❌ Denied by <@{place.reviewer.id}>.")


async def test_a_denial_right_after_a_start_goes_through_while_discord_fails_to_look_members_up(
        place: Place) -> None:
    # Until the member list is in after a start, the cache does not know her: the DM is skipped, not the denial.
    world, alice = place.world, place.world.alice
    review = await place.request_reviewed(alice)
    await world.stop()
    async with world.server.holding_member_lists(world.guild) as member_list:
        await world.start(member_lists=False)
        await member_list.arrived(within=5)
        world.server.rate_limit(lambda method, path, body: method == "GET"
                                and path == f"/guilds/{world.guild.id}/members/{alice.id}", times=5)
        pressed = await world.server.press_button(review, place.reviewer, label="Deny")
        await eventually(lambda: not world.server.message(review).buttons(), what="the request to show the denial")
        assert world.server.message(review).content.endswith(f"❌ Denied by <@{place.reviewer.id}>.")
        assert pressed.followups == [], "no 'please try again later'"


async def test_a_denial_whose_dm_loses_its_connection_is_still_shown_as_denied(
        place: Place, monkeypatch: pytest.MonkeyPatch) -> None:
    world, alice = place.world, place.world.alice
    review = await place.request_reviewed(alice)
    request = discord.http.HTTPClient.request

    async def dropping(self: discord.http.HTTPClient, route: discord.http.Route, **kwargs: Any) -> Any:
        if route.path == "/users/@me/channels":  # opening the DM
            raise aiohttp.ServerDisconnectedError()
        return await request(self, route, **kwargs)

    monkeypatch.setattr(discord.http.HTTPClient, "request", dropping)
    pressed = await world.server.press_button(review, place.reviewer, label="Deny")
    await settled(world)
    assert world.server.message(review).content.endswith(f"❌ Denied by <@{place.reviewer.id}>.")
    assert pressed.followups == [], "no 'please try again later'"


async def test_denied_members_are_told_and_cannot_ask_again(place: Place) -> None:
    await place.setup()
    await place.configure(verify_review_channel_id=place.review_channel.id)
    alice = place.world.alice
    await place.press_verify(alice)

    await place.press_review(place.reviewer, "Deny")
    assert place.reviews()[0].content.endswith(f"❌ Denied by <@{place.reviewer.id}>.")
    assert place.verified.id not in place.roles_of(alice)
    assert place.request_of(alice)[1] == "denied"  # type: ignore[index]
    assert place.dms_to(alice) == [f"Your verification request in {place.world.guild.name} was denied."]

    again = await place.press_verify(alice)
    assert again.flags & EPHEMERAL
    assert again.content == "A moderator denied your verification request; please contact the moderators."
    assert len(place.reviews()) == 1


async def test_a_denial_is_undone_with_verify_reset(place: Place) -> None:
    world = place.world
    await place.setup()
    await place.configure(verify_review_channel_id=place.review_channel.id)
    alice = world.alice
    await place.press_verify(alice)
    await place.press_review(place.reviewer, "Deny")

    reset = await world.command(place.reviewer, "verify reset", {"member": alice})
    assert reset.flags & EPHEMERAL
    assert reset.content == f"<@{alice.id}>'s verification request was reset; they can press Verify again."
    assert place.request_of(alice) is None
    [(action, actor, target, details)] = [(row[3], row[4], row[5], json.loads(row[7]))
                                          for row in all_rows(world.tenant_file(world.guild))["audit_log"]
                                          if row[2] == "verification"]
    assert (action, actor, target) == ("reset", place.reviewer.id, alice.id)
    assert details == {"status": "denied"}, "what the reset forgot"

    again = await place.press_verify(alice)
    assert again.content.startswith("Your request was sent to the moderators")
    [_, review] = place.reviews()
    await world.server.press_button(review, place.reviewer, label="Approve")
    await eventually(lambda: not review.buttons(), what="the new request to show the decision")
    assert place.verified.id in place.roles_of(alice)


async def test_verify_reset_of_a_pending_request_takes_the_buttons_of_its_review_message(place: Place) -> None:
    world = place.world
    review = await place.request_reviewed(world.alice)
    reset = await world.command(place.reviewer, "verify reset", {"member": world.alice})
    assert reset.content == f"<@{world.alice.id}>'s verification request was reset; they can press Verify again."
    await eventually(lambda: not world.server.message(review).buttons(), what="the old request's buttons taken")
    assert place.request_of(world.alice) is None


async def test_a_review_message_from_before_a_reset_is_out_of_date(place: Place) -> None:
    """Its buttons stayed (Discord failed as the reset took them): they must not decide the new request."""
    world, alice = place.world, place.world.alice
    old = await place.request_reviewed(alice)

    def taking_the_old_buttons(method: str, path: str, body: Any) -> bool:
        return method == "PATCH" and path.endswith(f"/messages/{old.id}")

    refused = world.server.rate_limit(taking_the_old_buttons, times=5)  # py-cord's five tries all meet a 429
    reset = await world.command(place.reviewer, "verify reset", {"member": alice})
    assert reset.flags & EPHEMERAL and "was reset" in reset.content, "a reset does not fail for its buttons"
    await settled(world)
    assert refused.hits == 5 and old.buttons()
    await place.press_verify(alice)
    [_, new] = place.reviews()

    pressed = await world.server.press_button(old, place.reviewer, label="Approve")
    [_, told] = await pressed.wait_for_messages(2)
    assert told.flags & EPHEMERAL and told.content == "This request message is out of date; use the newest one."
    await eventually(lambda: not world.server.message(old).buttons(), what="the old message's buttons taken")
    assert place.request_of(alice)[1] == "pending"  # type: ignore[index]
    assert place.verified.id not in place.roles_of(alice)

    await world.server.press_button(new, world.admin, label="Deny")
    await eventually(lambda: not world.server.message(new).buttons(), what="the new request to show the decision")
    assert world.server.message(new).content.endswith(f"❌ Denied by <@{world.admin.id}>.")


async def test_verify_reset_with_nothing_to_reset_or_without_manage_roles_is_refused(place: Place) -> None:
    world = place.world
    await place.setup()
    alice = world.alice

    nothing = await world.command(place.reviewer, "verify reset", {"member": alice})
    assert nothing.flags & EPHEMERAL
    assert nothing.content == f"<@{alice.id}> has no verification request to reset."

    await place.press_verify(alice)
    refused = await world.command(world.bob, "verify reset", {"member": alice})  # Manage Server, not Roles
    assert refused.flags & EPHEMERAL
    assert refused.content == "You need the Manage Roles permission to use this command."
    assert place.request_of(alice) is not None
    # A reviewer may reset requests, not set verification up.
    not_setup = await place.setup(user=place.reviewer)
    assert not_setup.content == "You need the Manage Server permission to use this command."


async def test_a_member_who_left_cannot_be_approved(place: Place) -> None:
    await place.setup()
    await place.configure(verify_review_channel_id=place.review_channel.id)
    alice = place.world.alice
    await place.press_verify(alice)
    review = place.reviews()[0]
    await place.world.server.remove_member(place.world.guild, alice)
    await eventually(lambda: place.requests() == [], what="the leave purge to remove the request")

    reply = await place.world.server.press_button(review, place.reviewer, label="Approve")
    [_, told] = await reply.wait_for_messages(2)  # the request's message, untouched, then the answer
    assert told.flags & EPHEMERAL
    assert told.content == (f"There is no verification request from <@{alice.id}> any more "
                            "(they may have left the server).")
    assert review.buttons(), "nothing was decided"


async def test_a_missing_review_channel_withdraws_the_request(place: Place) -> None:
    await place.setup()
    await place.configure(verify_review_channel_id=place.review_channel.id)
    await place.world.server.dispatch("CHANNEL_DELETE", {
        "id": str(place.review_channel.id), "type": 0, "guild_id": str(place.world.guild.id),
        "name": "review", "position": 0, "permission_overwrites": []}, guild_id=place.world.guild.id)

    reply = await place.press_verify(place.world.alice)
    assert reply.flags & EPHEMERAL
    assert reply.content == "The review channel is missing; please tell an admin."
    assert place.requests() == [], "the member can ask again once the channel is fixed"


async def test_two_approves_while_discord_is_slow_to_give_the_role_tell_the_member_once(place: Place) -> None:
    world, alice = place.world, place.world.alice
    review = await place.request_reviewed(alice)
    async with world.server.holding_requests(lambda method, path, body: method == "PUT" and path.endswith(
            f"/members/{alice.id}/roles/{place.verified.id}")) as slow:
        first = asyncio.create_task(world.server.press_button(review, place.reviewer, label="Approve"))
        await slow.arrived(5)
        second = asyncio.create_task(world.server.press_button(review, world.admin, label="Approve"))
        await asyncio.sleep(1.0)
        slow.release()
        await asyncio.gather(first, second)
        await eventually(lambda: not review.buttons(), what="the request to show the decision")
        await settled(world)
    await settled(world)
    assert place.dms_to(alice) == [f"You are verified in {world.guild.name}. Welcome!"]


async def test_verify_pressed_while_the_auto_role_is_held_long_ends_verified_only(place: Place) -> None:
    world = place.world
    carol = await newcomer_marked_unverified(place)
    async with world.server.holding_requests(lambda method, path, body: method == "PUT" and path.endswith(
            f"/members/{carol.id}/roles/{place.unverified.id}")) as slow:
        await world.server.update_member(world.guild, carol, pending=False)  # she accepts the rules
        await slow.arrived(5)
        async with world.server.holding_events(lambda name, payload: name == "GUILD_MEMBER_UPDATE"):
            pressing = asyncio.create_task(place.press_verify(carol))
            await asyncio.wait({pressing}, timeout=1.5)  # a press not kept waiting gets to take the role
            slow.release()
            assert (await pressing).content == "You are verified. Welcome!"
    await settled(world)
    assert place.roles_of(carol) == {place.verified.id}


async def test_verify_gives_the_role_back_when_the_cache_still_shows_it(place: Place) -> None:
    world, alice = place.world, place.world.alice
    await place.setup()
    assert (await place.press_verify(alice)).content == "You are verified. Welcome!"
    await settled(world)
    async with world.server.holding_events(lambda name, payload: name == "GUILD_MEMBER_UPDATE"):
        await world.server.update_member(world.guild, alice, roles=[])   # a moderator took it by mistake
        reply = await place.press_verify(alice)
    await settled(world)
    assert place.verified.id in place.roles_of(alice), reply.content


async def test_an_unverified_role_above_the_bot_is_reported_when_discord_cannot_say(place: Place) -> None:
    world = place.world
    await place.setup()
    await place.configure(unverified_role_id=place.unverified.id)
    carol = world.server.add_user("carol")
    await world.server.member_join(world.guild, carol, roles=[place.unverified])
    await settled(world)
    world.server.role(world.guild, place.unverified).position = 999
    world.server.rate_limit(lambda method, path, body: method == "GET"
                            and path == f"/guilds/{world.guild.id}/members/{carol.id}", times=5)
    reply = await place.press_verify(carol)
    assert place.unverified.id in place.roles_of(carol)
    assert "could not take away the unverified role" in reply.content, reply.content


async def test_a_verified_role_above_the_bot_is_refused_when_discord_cannot_say(place: Place) -> None:
    world = place.world
    await place.setup()
    carol = world.server.add_user("carol")
    await world.server.member_join(world.guild, carol)
    await settled(world)
    world.server.role(world.guild, place.verified).position = 999
    world.server.rate_limit(lambda method, path, body: method == "GET"
                            and path == f"/guilds/{world.guild.id}/members/{carol.id}", times=5)
    reply = await place.press_verify(carol)
    assert place.verified.id not in place.roles_of(carol)
    assert "not allowed to give the verified role" in reply.content, reply.content


async def test_a_member_verified_by_hand_during_screening_is_not_marked_unverified(place: Place) -> None:
    world = place.world
    carol = await newcomer_marked_unverified(place)
    await world.server.update_member(world.guild, carol, roles=[place.verified], pending=False)
    await settled(world)
    assert place.roles_of(carol) == {place.verified.id}


async def test_a_reset_whose_button_removal_loses_its_connection_is_said_once(
        place: Place, monkeypatch: pytest.MonkeyPatch) -> None:
    world, alice = place.world, place.world.alice
    await place.request_reviewed(alice)
    request = discord.http.HTTPClient.request

    async def dropping(self: discord.http.HTTPClient, route: discord.http.Route, **kwargs: Any) -> Any:
        if route.method == "PATCH" and route.path.endswith("/messages/{message_id}"):
            raise aiohttp.ServerDisconnectedError()
        return await request(self, route, **kwargs)

    monkeypatch.setattr(discord.http.HTTPClient, "request", dropping)
    reset = await world.command(place.reviewer, "verify reset", {"member": alice})
    await settled(world)
    assert [message.content for message in reset.messages] == [
        f"<@{alice.id}>'s verification request was reset; they can press Verify again."]
    assert place.request_of(alice) is None


@pytest.mark.parametrize("failure", ["429s", "a dropped connection"])
async def test_an_approval_whose_request_cannot_show_it_is_no_failure(
        place: Place, monkeypatch: pytest.MonkeyPatch, failure: str) -> None:
    world, alice = place.world, place.world.alice
    review = await place.request_reviewed(alice)
    if failure == "429s":
        world.server.rate_limit(lambda method, path, body: method == "PATCH" and path.endswith("/messages/@original"),
                                times=5, retry_after=0.01)
    else:
        drop_original_edits(monkeypatch)
    pressed = await world.server.press_button(review, place.reviewer, label="Approve")
    await settled(world)
    assert place.verified.id in place.roles_of(alice)
    assert pressed.followups == [], "no 'please try again later' after the approval was carried out"


@pytest.mark.parametrize("failure", [http_error(500), aiohttp.ServerDisconnectedError()], ids=["500", "dropped"])
async def test_a_verify_press_whose_answer_is_lost_says_it_may_be_done(
        place: Place, monkeypatch: pytest.MonkeyPatch, failure: Exception) -> None:
    world, alice = place.world, place.world.alice
    await place.setup()
    fail_answers(monkeypatch, [failure])
    pressed = await place.press_verify(alice)
    await settled(world)
    assert [message.content for message in pressed.messages] == [ANSWER_LOST]
    assert place.verified.id in place.roles_of(alice)


async def test_an_out_of_date_request_whose_buttons_cannot_be_taken_still_says_so(
        place: Place, monkeypatch: pytest.MonkeyPatch) -> None:
    world, alice = place.world, place.world.alice
    old = await place.request_reviewed(alice)
    world.server.rate_limit(lambda method, path, body: method == "PATCH" and path.endswith(f"/messages/{old.id}"),
                            times=5)  # the reset cannot take the old message's buttons
    await world.command(place.reviewer, "verify reset", {"member": alice})
    await settled(world)
    await place.press_verify(alice)  # a new request, a new message
    drop_original_edits(monkeypatch)
    pressed = await world.server.press_button(old, place.reviewer, label="Approve")
    await settled(world)
    assert [message.content for message in pressed.followups] == [
        "This request message is out of date; use the newest one."]
