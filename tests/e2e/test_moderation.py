"""Moderation through the real bot: each command's happy path and refusals, case numbering per server,
mod-log posts, warn thresholds, and Discord's own 403 answered with a sentence.

The server (beside the standard world): the bot's role at position 50 holds every permission except
Administrator (so channel overwrites apply to it); `mod` holds Mods (timeout, kick, ban, manage
messages); `senior` has a plain role above Mods; `boss` a role above the bot's; `ada` an Administrator
role below Mods; `carol` is a plain member like alice; #mod-log is the mod-log channel.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import discord
import pytest

from malabot.bot import APOLOGY
from malabot.commands import ANSWER_LOST
from malabot.guild_settings import WarnThreshold
from malabot.sandbox import (
    ALL_PERMISSIONS,
    Channel,
    FakeDiscord,
    InteractionReply,
    Message,
    Overwrite,
    Permission,
    Role,
    User,
)
from malabot.sandbox.payloads import channel_payload, role_payload
from malabot.sandbox.state import GUILD_STAGE_VOICE
from malabot.tenancy.failures import BUSY_ANSWER
from tests.e2e.data_dump import eventually, rows_mentioning
from tests.e2e.discord_failures import fail_answers, http_error
from tests.e2e.world import World, make_world, marked_quick
from tests.file_holds import locked_from_outside

MOD_PERMISSIONS = (Permission.MODERATE_MEMBERS | Permission.KICK_MEMBERS | Permission.BAN_MEMBERS
                   | Permission.MANAGE_MESSAGES)
BOT_PERMISSIONS = ALL_PERMISSIONS & ~Permission.ADMINISTRATOR


@dataclass
class Cast:
    world: World
    mod: User
    senior: User
    boss: User
    ada: User
    carol: User
    mods: Role
    boss_role: Role
    mod_log: Channel

    @property
    def server(self) -> FakeDiscord:
        return self.world.server

    async def run(self, user: User, command: str, options: dict[str, Any] | None = None, *,
                  guild: Any = "default", channel: Channel | None = None) -> InteractionReply:
        reply = await self.world.command(user, command, options, guild=guild, channel=channel)
        assert reply.ephemeral, f"/{command} answered publicly: {reply.content!r}"
        return reply

    def cases(self, guild: Any = None) -> list[dict[str, Any]]:
        """The mod_cases rows of a server's file, oldest first."""
        conn = sqlite3.connect(self.world.tenant_file(guild or self.world.guild))
        conn.row_factory = sqlite3.Row
        try:
            return [dict(row) for row in conn.execute("SELECT * FROM mod_cases ORDER BY case_number")]
        finally:
            conn.close()

    def log_posts(self) -> list[Message]:
        return self.server.messages_in(self.mod_log, author=self.server.bot_user)

    def bot_role(self) -> Role:
        return self.world.bot_role()

    async def set_bot_permissions(self, permissions: int) -> None:
        await self.world.set_bot_permissions(permissions)

    def is_member(self, user: User) -> bool:
        return self.server.member(self.world.guild, user) is not None

    def timed_out_until(self, user: User) -> datetime | None:
        member = self.server.member(self.world.guild, user)
        assert member is not None
        return member.communication_disabled_until


def build_cast(world: World) -> dict[str, Any]:
    server, guild = world.server, world.guild
    bot_role = next(role for role in guild.roles.values() if role.bot_id == server.bot_user.id)
    bot_role.permissions = int(BOT_PERMISSIONS)
    admins = server.add_role(guild, "Low admins", permissions=int(Permission.ADMINISTRATOR))
    mods = server.add_role(guild, "Mods", permissions=int(MOD_PERMISSIONS))
    seniors = server.add_role(guild, "Seniors")
    boss_role = server.add_role(guild, "Boss", above_bot=True)
    people = {name: server.add_user(name) for name in ("mod", "senior", "boss", "ada", "carol")}
    server.add_member(guild, people["mod"], roles=[mods])
    server.add_member(guild, people["senior"], roles=[seniors])
    server.add_member(guild, people["boss"], roles=[boss_role])
    server.add_member(guild, people["ada"], roles=[admins])
    server.add_member(guild, people["carol"])
    mod_log = server.add_channel(guild, "mod-log")
    return {**people, "mods": mods, "boss_role": boss_role, "mod_log": mod_log}


@pytest.fixture
async def cast(request: pytest.FixtureRequest, discord_server: FakeDiscord, tmp_path: Path) -> AsyncIterator[Cast]:
    built: dict[str, Any] = {}

    def prepare(world: World) -> None:
        built.update(build_cast(world))

    async for world in make_world(discord_server, tmp_path, prepare=prepare, quick=marked_quick(request)):
        await world.live.guild_settings.update(world.guild.id, world.admin.id,
                                               mod_log_channel_id=built["mod_log"].id)
        yield Cast(world=world, **built)


# -- registration ------------------------------------------------------------------------------------


async def test_commands_carry_their_default_member_permissions(cast: Cast) -> None:
    registered = {command.name: command.payload for command in cast.server.commands()}
    expected = {"warn": Permission.MODERATE_MEMBERS, "warnings": Permission.MODERATE_MEMBERS,
                "timeout": Permission.MODERATE_MEMBERS, "untimeout": Permission.MODERATE_MEMBERS,
                "kick": Permission.KICK_MEMBERS, "ban": Permission.BAN_MEMBERS, "unban": Permission.BAN_MEMBERS,
                "purge": Permission.MANAGE_MESSAGES}
    for name, permission in expected.items():
        assert int(registered[name]["default_member_permissions"]) == permission, name
    assert {option["name"] for option in registered["warnings"]["options"]} == {"list", "remove"}


# -- warn, warnings, case numbers, mod log -----------------------------------------------------------


async def test_warn_records_a_case_and_posts_it_to_the_mod_log(cast: Cast) -> None:
    alice = cast.world.alice
    reply = await cast.run(cast.mod, "warn", {"member": alice, "reason": "  Spamming links  "})
    assert reply.content == f"Case #1: warned <@{alice.id}> (1 active warning)."

    [case] = cast.cases()
    assert (case["action"], case["target_id"], case["moderator_id"], case["reason"]) == \
        ("warn", alice.id, cast.mod.id, "Spamming links")
    [post] = cast.log_posts()
    assert post.embeds[0]["title"] == "Case #1 · Warning"
    assert f"<@{alice.id}>" in post.text and "Spamming links" in post.text
    assert case["log_message_id"] == post.id
    listed = await cast.run(cast.mod, "warnings list")
    assert "The latest 1 case, newest last:" in listed.text


async def test_case_numbers_count_per_server(cast: Cast) -> None:
    world = cast.world
    for number, user in enumerate([world.alice, cast.carol, world.alice], start=1):
        reply = await cast.run(cast.mod, "warn", {"member": user, "reason": f"rule {number}"})
        assert reply.content.startswith(f"Case #{number}: ")
    elsewhere_owner = cast.server.user(cast.server.guild(world.other_guild).owner_id)
    reply = await cast.run(elsewhere_owner, "warn", {"member": world.bob, "reason": "rude"}, guild=world.other_guild)
    assert reply.content == f"Case #1: warned <@{world.bob.id}> (1 active warning)."
    assert [case["case_number"] for case in cast.cases()] == [1, 2, 3]
    assert [case["target_id"] for case in cast.cases(world.other_guild)] == [world.bob.id]


async def test_a_warning_whose_answer_discord_loses_is_not_said_to_have_failed(
        cast: Cast, caplog: pytest.LogCaptureFixture) -> None:
    # The warning is recorded and posted before the answer: "try again" would warn twice.
    cast.world.lose_next_answer(deferred=True)
    with caplog.at_level(logging.WARNING, logger="malabot.bot"):
        reply = await cast.run(cast.mod, "warn", {"member": cast.carol, "reason": "spam"})
    assert reply.content == ANSWER_LOST
    assert [(record.levelname, record.getMessage()) for record in caplog.records if record.name == "malabot.bot"] == [
        ("WARNING", f"command /warn in guild {cast.world.guild.id}: Discord did not take its answer")], \
        "Discord failing is no error of the bot's"
    assert [case["action"] for case in cast.cases()] == ["warn"]
    assert [post.embeds[0]["title"] for post in cast.log_posts()] == ["Case #1 · Warning"]


async def test_warnings_list_and_remove(cast: Cast) -> None:
    alice = cast.world.alice
    await cast.run(cast.mod, "warn", {"member": alice, "reason": "first"})
    await cast.run(cast.mod, "warn", {"member": cast.carol, "reason": "other member"})
    await cast.run(cast.mod, "warn", {"member": alice, "reason": "second"})

    listed = await cast.run(cast.mod, "warnings list", {"member": alice})
    assert listed.embeds[0]["title"] == "Cases of alice"
    assert listed.text.count("Warning") == 2 and "first" in listed.text and "other member" not in listed.text
    assert f"<@{alice.id}>: 2 active warnings, 2 cases in all." in listed.text

    removed = await cast.run(cast.mod, "warnings remove", {"case": 1, "reason": "appeal accepted"})
    assert removed.content == f"Case #4: warning #1 of <@{alice.id}> withdrawn."
    cases = cast.cases()
    assert cases[0]["removed_at"] is not None
    assert (cases[3]["action"], cases[3]["target_id"]) == ("unwarn", alice.id)
    posts = cast.log_posts()
    assert [post.embeds[0]["title"] for post in posts] == \
        ["Case #1 · Warning", "Case #2 · Warning", "Case #3 · Warning", "Case #4 · Warning removed"]
    assert "Removed" in posts[0].text, "the withdrawn warning's mod-log entry shows it"

    again = await cast.run(cast.mod, "warnings remove", {"case": 1})
    assert again.content == "Warning #1 was already removed."
    not_a_warning = await cast.run(cast.mod, "warnings remove", {"case": 4})
    assert not_a_warning.content.startswith("Case #4 is a warning removed, not a warning")
    missing = await cast.run(cast.mod, "warnings remove", {"case": 99})
    assert missing.content == "There is no case #99 in this server."
    assert len(cast.cases()) == 4

    after = await cast.run(cast.mod, "warnings list", {"member": alice})
    assert f"<@{alice.id}>: 1 active warning, 3 cases in all." in after.text
    recent = await cast.run(cast.mod, "warnings list")
    assert recent.embeds[0]["title"] == "Moderation cases"
    assert "The latest 4 cases, newest last:" in recent.text


async def test_warn_refusals_write_nothing(cast: Cast) -> None:
    world = cast.world
    refusals = [
        (world.alice, cast.carol, "You need the Timeout Members permission to use this command."),
        (world.bob, cast.carol, "You need the Timeout Members permission to use this command."),
        (cast.mod, cast.mod, "You cannot do that to yourself."),
        (cast.mod, world.admin, "You cannot do that to the server owner."),
        (cast.mod, cast.server.bot_user, "You cannot do that to the bot."),
        (cast.mod, cast.senior, f"You cannot do that to <@{cast.senior.id}>: their top role is not below yours."),
        (world.admin, cast.boss, f"I cannot do that to <@{cast.boss.id}>: their top role is not below mine."),
    ]
    for actor, target, sentence in refusals:
        reply = await cast.run(actor, "warn", {"member": target, "reason": "test"})
        assert reply.content == sentence, (actor.username, target.username)
    blank = await cast.run(cast.mod, "warn", {"member": cast.carol, "reason": "   "})
    assert blank.content == "Give a reason."
    stranger = cast.server.add_user("stranger")
    outside = await cast.run(cast.mod, "warn", {"member": stranger, "reason": "test"})
    assert outside.content == f"<@{stranger.id}> is not a member of this server."
    assert cast.cases() == [] and cast.log_posts() == []


# -- timeout, untimeout ------------------------------------------------------------------------------


async def test_timeout_and_untimeout(cast: Cast) -> None:
    alice = cast.world.alice
    before = datetime.now(UTC)
    reply = await cast.run(cast.mod, "timeout", {"member": alice, "duration": "2h", "reason": "cool down"})
    assert reply.content.startswith(f"Case #1: <@{alice.id}> is timed out for 2h (until <t:")
    until = cast.timed_out_until(alice)
    assert until is not None and before + timedelta(hours=2) <= until <= datetime.now(UTC) + timedelta(hours=2)
    [case] = cast.cases()
    assert (case["action"], case["duration_seconds"], case["reason"]) == ("timeout", 7200, "cool down")

    lifted = await cast.run(cast.mod, "untimeout", {"member": alice})
    assert lifted.content == f"Case #2: <@{alice.id}>'s timeout has ended."
    assert cast.timed_out_until(alice) is None
    again = await cast.run(cast.mod, "untimeout", {"member": alice})
    assert again.content == f"<@{alice.id}> is not timed out."
    assert [post.embeds[0]["title"] for post in cast.log_posts()] == ["Case #1 · Timeout", "Case #2 · Timeout removed"]


@pytest.mark.parametrize(("duration", "sentence"), [
    ("10", "“10” has no unit. Use a duration like 10m, 2h, 7d or 1h30m (units: d, h, m, s; at most 28 days)."),
    ("soon", "“soon” is not a duration. Use a duration like 10m, 2h, 7d or 1h30m (units: d, h, m, s; "
             "at most 28 days)."),
    ("29d", "“29d” is too long: the most is 28d."),
    ("0m", "The duration must be longer than zero."),
])
async def test_bad_durations_are_refused(cast: Cast, duration: str, sentence: str) -> None:
    reply = await cast.run(cast.mod, "timeout", {"member": cast.world.alice, "duration": duration, "reason": "x"})
    assert reply.content == sentence
    assert cast.timed_out_until(cast.world.alice) is None and cast.cases() == []


async def test_longest_timeout_is_28_days(cast: Cast) -> None:
    reply = await cast.run(cast.mod, "timeout", {"member": cast.carol, "duration": "28d", "reason": "long"})
    assert reply.content.startswith(f"Case #1: <@{cast.carol.id}> is timed out for 28d")
    assert cast.timed_out_until(cast.carol) is not None


async def test_timeout_refusals(cast: Cast) -> None:
    ada = await cast.run(cast.mod, "timeout", {"member": cast.ada, "duration": "1h", "reason": "x"})
    assert ada.content == f"Discord does not let anyone time out an administrator (<@{cast.ada.id}>)."
    senior = await cast.run(cast.mod, "timeout", {"member": cast.senior, "duration": "1h", "reason": "x"})
    assert senior.content == f"You cannot do that to <@{cast.senior.id}>: their top role is not below yours."
    kicker_only = cast.server.add_user("kicker")
    role = cast.server.add_role(cast.world.guild, "Kickers", permissions=int(Permission.KICK_MEMBERS))
    await cast.server.member_join(cast.world.guild, kicker_only, roles=[role])
    refused = await cast.run(kicker_only, "timeout", {"member": cast.carol, "duration": "1h", "reason": "x"})
    assert refused.content == "You need the Timeout Members permission to use this command."
    assert cast.cases() == []


# -- kick, ban, unban --------------------------------------------------------------------------------


async def test_kick_removes_the_member_and_their_cases_survive(cast: Cast) -> None:
    world, alice = cast.world, cast.world.alice
    await world.live.checkins.check_in(world.guild.id, alice.id)  # data the leave purge erases
    await cast.run(cast.mod, "warn", {"member": alice, "reason": "first"})
    reply = await cast.run(cast.mod, "kick", {"member": alice, "reason": "repeated spam"})
    assert reply.content == f"Case #2: <@{alice.id}> was kicked."
    assert not cast.is_member(alice)
    await eventually(lambda: set(rows_mentioning(world.tenant_file(world.guild), alice.id)) == {"mod_cases"},
                     what="the leave purge to erase everything of alice but her cases")
    assert [(case["action"], case["target_id"]) for case in cast.cases()] == [("warn", alice.id), ("kick", alice.id)]
    listed = await cast.run(cast.mod, "warnings list", {"member": alice})
    assert "1 active warning, 2 cases in all." in listed.text


@pytest.mark.parametrize(("command", "options"), [
    ("kick", {"reason": "spam"}),
    ("timeout", {"duration": "1h", "reason": "spam"}),
])
async def test_a_member_who_leaves_as_the_command_arrives_is_explained_and_no_case_recorded(
        cast: Cast, command: str, options: dict[str, Any]) -> None:
    # Discord resolved carol as a member when the moderator sent the command; she leaves before the
    # bot acts, so Discord answers 404 Unknown Member (10007).
    reply, _ = await asyncio.gather(cast.run(cast.mod, command, {"member": cast.carol, **options}),
                                    cast.server.remove_member(cast.world.guild, cast.carol))
    [attempt] = [request for request in cast.server.requests if request.method in ("DELETE", "PATCH")
                 and request.path.endswith(f"/members/{cast.carol.id}")]
    assert attempt.status == 404
    assert reply.content == f"<@{cast.carol.id}> is no longer on the server, so nothing was done."
    assert cast.cases() == []


async def share_position(cast: Cast, role: Role, with_role: Role) -> None:
    """Give `role` the position of `with_role`, as Discord's API can report two roles (GUILD_ROLE_UPDATE)."""
    role.position = with_role.position
    await cast.server.dispatch("GUILD_ROLE_UPDATE", {"guild_id": str(cast.world.guild.id),
                                                     "role": role_payload(role)}, guild_id=cast.world.guild.id)


async def test_a_younger_role_at_the_bots_position_ranks_below_the_bot(cast: Cast) -> None:
    world, server = cast.world, cast.server
    bot_role = cast.bot_role()
    seniors = server.role(world.guild, server.world.member(world.guild.id, cast.senior.id).roles[0])
    assert seniors.id > bot_role.id          # made after the bot's role: on a tie Discord ranks it lower
    await share_position(cast, seniors, bot_role)
    guild = world.running.get_guild(world.guild.id)
    assert guild is not None
    assert guild.me.top_role > guild.get_member(cast.senior.id).top_role  # py-cord agrees

    reply = await cast.run(world.admin, "kick", {"member": cast.senior, "reason": "test"})
    assert reply.content == f"Case #1: <@{cast.senior.id}> was kicked."
    assert not cast.is_member(cast.senior)


async def test_on_a_shared_position_the_moderator_may_act_only_on_the_younger_role(cast: Cast) -> None:
    world, server = cast.world, cast.server
    seniors = server.role(world.guild, server.world.member(world.guild.id, cast.senior.id).roles[0])
    low_admins = server.role(world.guild, server.world.member(world.guild.id, cast.ada.id).roles[0])
    assert low_admins.id < cast.mods.id < seniors.id
    for role in (low_admins, seniors):
        await share_position(cast, role, cast.mods)

    refused = await cast.run(cast.mod, "kick", {"member": cast.ada, "reason": "x"})
    assert refused.content == f"You cannot do that to <@{cast.ada.id}>: their top role is not below yours."
    kicked = await cast.run(cast.mod, "kick", {"member": cast.senior, "reason": "x"})
    assert kicked.content == f"Case #1: <@{cast.senior.id}> was kicked."


async def test_kick_and_ban_need_their_own_permissions(cast: Cast) -> None:
    timeouter = cast.server.add_user("timeouter")
    role = cast.server.add_role(cast.world.guild, "Timeouters", permissions=int(Permission.MODERATE_MEMBERS))
    await cast.server.member_join(cast.world.guild, timeouter, roles=[role])
    kick = await cast.run(timeouter, "kick", {"member": cast.carol, "reason": "x"})
    assert kick.content == "You need the Kick Members permission to use this command."
    ban = await cast.run(timeouter, "ban", {"member": cast.carol, "reason": "x"})
    assert ban.content == "You need the Ban Members permission to use this command."
    unban = await cast.run(timeouter, "unban", {"user_id": str(cast.carol.id)})
    assert unban.content == "You need the Ban Members permission to use this command."
    purge = await cast.run(timeouter, "purge", {"count": 5})
    assert purge.content == "You need the Manage Messages permission to use this command."
    kick_self = await cast.run(cast.mod, "kick", {"member": cast.mod, "reason": "x"})
    assert kick_self.content == "You cannot do that to yourself."
    ban_owner = await cast.run(cast.mod, "ban", {"member": cast.world.admin, "reason": "x"})
    assert ban_owner.content == "You cannot do that to the server owner."
    assert cast.is_member(cast.carol) and cast.cases() == []


async def test_ban_deletes_recent_messages_and_unban_lifts_it(cast: Cast) -> None:
    world, alice = cast.world, cast.world.alice
    recent = await cast.server.send_message(world.general, alice, "buy my stuff")
    old = await cast.server.send_message(world.general, alice, "hello from last week",
                                         at=datetime.now(UTC) - timedelta(days=3))
    reply = await cast.run(cast.mod, "ban", {"member": alice, "reason": "scam", "delete_message_days": 1})
    assert reply.content == (f"Case #1: <@{alice.id}> was banned. "
                             "Their messages of the last 1 day were deleted.")
    assert alice.id in cast.server.guild(world.guild).bans and not cast.is_member(alice)
    assert cast.server.message(recent).deleted and not cast.server.message(old).deleted

    not_banned = await cast.run(cast.mod, "unban", {"user_id": str(cast.carol.id)})
    assert not_banned.content == f"<@{cast.carol.id}> is not banned in this server."
    lifted = await cast.run(cast.mod, "unban", {"user_id": f"<@{alice.id}>", "reason": "appeal"})
    assert lifted.content == f"Case #2: <@{alice.id}> is no longer banned."
    assert alice.id not in cast.server.guild(world.guild).bans
    assert [(case["action"], case["target_id"]) for case in cast.cases()] == [("ban", alice.id), ("unban", alice.id)]
    assert [post.embeds[0]["title"] for post in cast.log_posts()] == ["Case #1 · Ban", "Case #2 · Unban"]


async def test_ban_of_a_user_outside_the_server(cast: Cast) -> None:
    raider = cast.server.add_user("raider")
    reply = await cast.run(cast.mod, "ban", {"member": raider, "reason": "raid account"})
    assert reply.content == f"Case #1: <@{raider.id}> was banned."
    assert raider.id in cast.server.guild(cast.world.guild).bans


async def test_a_second_ban_of_a_banned_user_is_refused_not_recorded_again(cast: Cast) -> None:
    # Discord takes it without a word: the bot's records would show two bans for one.
    raider = cast.server.add_user("raider")
    await cast.run(cast.mod, "ban", {"member": raider, "reason": "raid"})
    again = await cast.run(cast.mod, "ban", {"member": raider, "reason": "raid again"})
    assert again.ephemeral and again.content == f"<@{raider.id}> is already banned in this server; nothing was done."
    assert [(case["action"], case["reason"]) for case in cast.cases()] == [("ban", "raid")]
    assert len(cast.server.requests_to("PUT", "/guilds/*/bans/*")) == 1


async def test_a_threshold_ban_after_a_moderators_ban_is_not_a_second_ban(cast: Cast) -> None:
    """Carol is warned (ban at one warning); while that warning is posted to the mod log, an admin
    bans her by hand. The threshold then finds her banned."""
    world, server = cast.world, cast.server
    await world.live.guild_settings.update(world.guild.id, world.admin.id, warn_thresholds=(
        WarnThreshold(count=1, days=1, action="ban"),))

    def the_warnings_post(method: str, path: str, body: Any) -> bool:
        return (method == "POST" and path == f"/channels/{cast.mod_log.id}/messages"
                and body["embeds"][0]["title"] == "Case #1 · Warning")

    async with server.holding_requests(the_warnings_post) as slow:
        warning = asyncio.ensure_future(cast.run(cast.mod, "warn", {"member": cast.carol, "reason": "spam"}))
        await slow.arrived(within=5)
        manual = asyncio.ensure_future(cast.run(world.admin, "ban", {"member": cast.carol, "reason": "raid"}))
        await eventually(lambda: cast.carol.id in server.guild(world.guild).bans, what="the admin's ban")
    assert (await manual).content == f"Case #2: <@{cast.carol.id}> was banned."  # its post waited for the first
    reply = await warning
    assert reply.content.endswith(f"Warn threshold reached (1 warning within 1 day), but <@{cast.carol.id}> "
                                  "is already banned, so nothing more was done.")
    assert [case["action"] for case in cast.cases()] == ["warn", "ban"]


async def test_ban_and_unban_refuse_bad_values(cast: Cast) -> None:
    for days in (-1, 8):
        reply = await cast.run(cast.mod, "ban", {"member": cast.carol, "reason": "x", "delete_message_days": days})
        assert reply.content == f"delete_message_days must be between 0 and 7 (you gave {days})."
    not_an_id = await cast.run(cast.mod, "unban", {"user_id": "carol"})
    assert not_an_id.content == "“carol” is not a user id (a number like 123456789012345678)."
    assert cast.is_member(cast.carol) and cast.cases() == []


async def test_unban_refuses_digits_other_than_0_to_9(cast: Cast) -> None:
    # Superscripts pass str.isdigit() but not int(): they once ended in the generic apology.
    for typed in ("²", "¹²³", "<@²>"):
        reply = await cast.run(cast.mod, "unban", {"user_id": typed})
        assert reply.content == f"“{typed}” is not a user id (a number like 123456789012345678)."
    assert cast.server.requests_to("DELETE", "/guilds/*/bans/*") == [] and cast.cases() == []


# -- purge -------------------------------------------------------------------------------------------


async def test_purge_deletes_the_newest_messages_newer_than_14_days(cast: Cast) -> None:
    world, server = cast.world, cast.server
    ancient = await server.send_message(world.general, world.alice, "from last month",
                                        at=datetime.now(UTC) - timedelta(days=15))
    sent = [await server.send_message(world.general, user, f"message {n}")
            for n, user in enumerate([world.alice, world.bob, world.alice, cast.carol, world.alice])]

    mine = await cast.run(cast.mod, "purge", {"count": 10, "member": world.alice, "reason": "flood"})
    assert mine.content == f"Case #1: deleted 3 messages by <@{world.alice.id}>."
    assert [server.message(m).deleted for m in sent] == [True, False, True, False, True]
    assert not server.message(ancient).deleted, "messages older than 14 days are left alone"

    newest = await cast.run(cast.mod, "purge", {"count": 1})
    assert newest.content == "Case #2: deleted 1 message."
    assert server.message(sent[3]).deleted and not server.message(sent[1]).deleted
    cases = cast.cases()
    assert [(c["action"], c["target_id"], c["channel_id"], c["message_count"]) for c in cases] == \
        [("purge", world.alice.id, world.general.id, 3), ("purge", None, world.general.id, 1)]

    above = await cast.run(cast.mod, "purge", {"count": 5, "member": cast.senior})
    assert above.content == f"You cannot do that to <@{cast.senior.id}>: their top role is not below yours."
    nothing = await cast.run(cast.mod, "purge", {"count": 5, "member": world.alice})
    assert nothing.content == f"Nothing to delete: no unpinned messages by <@{world.alice.id}> newer than 14 days here."
    assert len(cast.cases()) == 2


async def test_purge_says_how_far_it_looked_when_a_busy_channel_hides_older_messages(cast: Cast) -> None:
    # Only the 500 newest messages are looked at: "nothing newer than 14 days" would be untrue.
    world, server = cast.world, cast.server
    general = server.channel(world.general)
    spam = server.world.add_message(general, cast.carol.id, "spam", at=datetime.now(UTC) - timedelta(hours=2))
    for n in range(500):
        server.world.add_message(general, world.alice.id, f"chat {n}",
                                 at=datetime.now(UTC) - timedelta(hours=1) + timedelta(seconds=n))
    nothing = await cast.run(cast.mod, "purge", {"count": 5, "member": cast.carol, "reason": "spam"})
    assert nothing.content == (f"Nothing to delete: no unpinned messages by <@{cast.carol.id}> among the 500 "
                               "newest messages here.")
    assert not server.message(spam).deleted
    server.world.add_message(general, cast.carol.id, "more spam")
    some = await cast.run(cast.mod, "purge", {"count": 5, "member": cast.carol, "reason": "spam"})
    assert some.content == (f"Case #1: deleted 1 message by <@{cast.carol.id}> among the 500 newest "
                            "messages here.")


async def test_purge_works_in_a_stage_channels_text_chat(cast: Cast) -> None:
    world, server = cast.world, cast.server
    stage = await server.create_channel(world.guild, "stage", type=GUILD_STAGE_VOICE)
    spam = await server.send_message(stage, world.alice, "spam")
    reply = await cast.run(cast.mod, "purge", {"count": 5}, channel=stage)
    assert reply.content == "Case #1: deleted 1 message." and server.message(spam).deleted


async def test_purge_of_your_own_the_bots_or_the_owners_messages_is_allowed(cast: Cast) -> None:
    # Deleting messages with Manage Messages knows no role hierarchy, and an unfiltered purge deletes
    # these same messages: only a filter on a member senior to you is refused (pinned above).
    world, server = cast.world, cast.server
    spam = server.world.add_message(server.channel(world.general), server.bot_user.id, "level up spam")
    own = await server.send_message(world.general, cast.mod, "oops, wrong channel")
    owners = await server.send_message(world.general, world.admin, "test, please ignore")
    for case, (member, message) in enumerate([(server.bot_user, spam), (cast.mod, own), (world.admin, owners)],
                                             start=1):
        reply = await cast.run(cast.mod, "purge", {"count": 5, "member": member})
        assert reply.content == f"Case #{case}: deleted 1 message by <@{member.id}>."
        assert server.message(message).deleted
    assert [case["target_id"] for case in cast.cases()] == [server.bot_user.id, cast.mod.id, world.admin.id]


# Message types Discord never deletes (403, code 50021, for the whole request): recipient add/remove,
# call, channel name/icon change, a thread's starter message. The sandbox refuses them as Discord does;
# they occur in threads and group DMs, which the sandbox has not, so they are put in #general.
UNDELETABLE = [1, 2, 3, 4, 5, 21]


@pytest.mark.parametrize("kind", UNDELETABLE)
async def test_purge_leaves_out_system_messages_discord_never_deletes(cast: Cast, kind: int) -> None:
    world, server = cast.world, cast.server
    system = server.world.add_message(server.channel(world.general), world.alice.id, "", type=kind)
    sent = [await server.send_message(world.general, world.alice, f"spam {n}") for n in range(3)]

    reply = await cast.run(cast.mod, "purge", {"count": 10})
    assert reply.content == "Case #1: deleted 3 messages."
    assert all(server.message(m).deleted for m in sent) and not server.message(system).deleted
    [asked] = server.requests_to("POST", "/channels/*/messages/bulk-delete")
    assert str(system.id) not in asked.json["messages"]


async def test_purge_of_one_message_passes_over_a_newer_system_message(cast: Cast) -> None:
    world, server = cast.world, cast.server
    older = await server.send_message(world.general, world.alice, "spam")
    renamed = server.world.add_message(server.channel(world.general), world.alice.id, "", type=4)
    reply = await cast.run(cast.mod, "purge", {"count": 1})
    assert reply.content == "Case #1: deleted 1 message."
    assert server.message(older).deleted and not server.message(renamed).deleted


async def test_a_system_message_discord_still_refuses_is_named_in_the_answer(cast: Cast) -> None:
    # A type the bot does not know as undeletable (Discord may add one): here a message becomes a
    # thread starter while the delete is on its way, and Discord refuses the whole request.
    world, server = cast.world, cast.server
    sent = [await server.send_message(world.general, world.alice, f"spam {n}") for n in range(3)]

    def bulk_delete(method: str, path: str, body: Any) -> bool:
        return method == "POST" and path.endswith("/messages/bulk-delete")

    async with server.holding_requests(bulk_delete) as slow_discord:
        purging = asyncio.create_task(cast.run(cast.mod, "purge", {"count": 10}))
        await slow_discord.arrived(within=5)
        server.message(sent[0]).type = 21
    reply = await purging
    assert reply.content == ("Discord refused to delete these messages: one of them is a system message, "
                             "which Discord never deletes. Nothing was deleted.")
    assert not any(server.message(m).deleted for m in sent) and cast.cases() == []


async def test_purge_of_a_message_deleted_meanwhile_counts_it_as_deleted(cast: Cast) -> None:
    # py-cord deletes a single message with a plain DELETE, which Discord answers with 404 Unknown
    # Message (10008) when someone else deleted it first; Discord's bulk delete passes over such a message.
    world, server = cast.world, cast.server
    spam = await server.send_message(world.general, world.alice, "spam")

    def is_single_delete(method: str, path: str, body: Any) -> bool:
        return method == "DELETE" and path.endswith(f"/messages/{spam.id}")

    async with server.holding_requests(is_single_delete) as slow_discord:
        purging = asyncio.create_task(cast.run(cast.mod, "purge", {"count": 1}))
        await slow_discord.arrived(within=5)
        await server.delete_message(spam)  # the author (or another moderator) deletes it first
    reply = await purging
    assert reply.content == "Case #1: deleted 1 message."
    [attempt] = server.requests_to("DELETE", f"/channels/{world.general.id}/messages/{spam.id}")
    assert attempt.status == 404
    assert [(case["action"], case["message_count"]) for case in cast.cases()] == [("purge", 1)]


@pytest.mark.parametrize("count", [0, 101])
async def test_purge_counts_out_of_range_are_refused(cast: Cast, count: int) -> None:
    message = await cast.server.send_message(cast.world.general, cast.world.alice, "keep me")
    reply = await cast.run(cast.mod, "purge", {"count": count})
    assert reply.content == f"Purge between 1 and 100 messages (you asked for {count})."
    assert not cast.server.message(message).deleted and cast.cases() == []


async def test_purge_needs_the_bots_permissions_in_that_channel(cast: Cast) -> None:
    locked = await cast.server.create_channel(cast.world.guild, "locked", overwrites=[
        Overwrite.for_role(cast.bot_role(), deny=int(Permission.MANAGE_MESSAGES))])
    message = await cast.server.send_message(locked, cast.world.alice, "stays")
    reply = await cast.run(cast.mod, "purge", {"count": 5}, channel=locked)
    assert reply.content == "I need the Manage Messages permission to do that."
    assert not cast.server.message(message).deleted and cast.cases() == []


async def test_manage_messages_counts_in_the_channel_the_purge_runs_in(cast: Cast) -> None:
    # Manage Messages is a channel permission: carol has it in #general alone, and mod lacks it there.
    world, server = cast.world, cast.server
    await server.set_overwrite(world.general, Overwrite.for_member(cast.carol,
                                                                   allow=int(Permission.MANAGE_MESSAGES)))
    await server.set_overwrite(world.general, Overwrite.for_role(cast.mods, deny=int(Permission.MANAGE_MESSAGES)))
    message = await server.send_message(world.general, world.alice, "spam")
    refused = await cast.run(cast.mod, "purge", {"count": 1})
    assert refused.content == "You need the Manage Messages permission to use this command."
    elsewhere = await cast.run(cast.carol, "purge", {"count": 1}, channel=cast.mod_log)
    assert elsewhere.content == "You need the Manage Messages permission to use this command."
    purged = await cast.run(cast.carol, "purge", {"count": 1})
    assert purged.content == "Case #1: deleted 1 message."
    assert server.message(message).deleted


# -- the bot's permissions and Discord's own refusals --------------------------------------------------


async def test_missing_bot_permissions_are_refused_before_acting(cast: Cast) -> None:
    await cast.set_bot_permissions(BOT_PERMISSIONS & ~Permission.KICK_MEMBERS & ~Permission.MODERATE_MEMBERS)
    kick = await cast.run(cast.mod, "kick", {"member": cast.carol, "reason": "x"})
    assert kick.content == "I need the Kick Members permission to do that."
    timeout = await cast.run(cast.mod, "timeout", {"member": cast.carol, "duration": "1h", "reason": "x"})
    assert timeout.content == "I need the Timeout Members permission to do that."
    untimeout = await cast.run(cast.mod, "untimeout", {"member": cast.carol, "reason": "x"})
    assert untimeout.content == "I need the Timeout Members permission to do that."
    assert cast.is_member(cast.carol) and cast.timed_out_until(cast.carol) is None
    assert [request for request in cast.server.requests if request.method in ("DELETE", "PATCH")
            and "/members/" in request.path] == [], "the bot did not even try"
    warn = await cast.run(cast.mod, "warn", {"member": cast.carol, "reason": "a warning needs no permission"})
    assert warn.content.startswith("Case #1: warned")


async def test_a_discord_403_becomes_a_clear_sentence(cast: Cast) -> None:
    # The role moves above the bot's without telling the bot: its cache says it may act, Discord says no.
    seniors = cast.server.member(cast.world.guild, cast.senior)
    assert seniors is not None
    cast.server.role(cast.world.guild, seniors.roles[0]).position = 60
    reply = await cast.run(cast.world.admin, "kick", {"member": cast.senior, "reason": "x"})
    assert reply.content == (f"Discord refused to let me kick <@{cast.senior.id}>: my top role must be above "
                             "theirs and I need the Kick Members permission.")
    [attempt] = cast.server.requests_to("DELETE", f"/guilds/{cast.world.guild.id}/members/{cast.senior.id}")
    assert attempt.status == 403
    assert cast.is_member(cast.senior) and cast.cases() == []


async def test_a_timed_out_bots_refusal_says_it_is_timed_out(cast: Cast) -> None:
    # Discord takes a timed-out member's permissions but reading, which py-cord's guild_permissions
    # do not show: the bot's own checks pass and Discord answers 403.
    until = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    await cast.server.update_member(cast.world.guild, cast.server.bot_user, timed_out_until=until)
    timed_out = (f"I am timed out until <t:{int(until.timestamp())}:f>, and a timed-out member may do nothing "
                 "but read. A moderator can end my timeout.")
    reply = await cast.run(cast.mod, "kick", {"member": cast.carol, "reason": "x"})
    assert reply.content == f"I cannot kick <@{cast.carol.id}>: {timed_out}"
    assert cast.is_member(cast.carol) and cast.cases() == []
    # A purge too, although its channel permissions (masked by the timeout) look like a missing one.
    purge = await cast.run(cast.mod, "purge", {"count": 5})
    assert purge.content == f"I cannot delete messages here: {timed_out}"
    assert cast.server.requests_to("POST", "/channels/*/messages/bulk-delete") == []
    # A warning needs nothing from Discord: recorded, but its mod-log post is refused for the timeout.
    warned = await cast.run(cast.mod, "warn", {"member": cast.carol, "reason": "x"})
    assert warned.content == (f"Case #1: warned <@{cast.carol.id}> (1 active warning).\n"
                              f"Case #1 was not posted: {timed_out}")


# -- warn thresholds -----------------------------------------------------------------------------------


async def test_warn_threshold_times_the_member_out_and_records_it(cast: Cast) -> None:
    world, alice = cast.world, cast.world.alice
    await world.live.guild_settings.update(world.guild.id, world.admin.id, warn_thresholds=(
        WarnThreshold(count=2, days=7, action="timeout", timeout_minutes=30),))
    first = await cast.run(cast.mod, "warn", {"member": alice, "reason": "one"})
    assert "threshold" not in first.content and cast.timed_out_until(alice) is None

    second = await cast.run(cast.mod, "warn", {"member": alice, "reason": "two"})
    assert second.content == (f"Case #2: warned <@{alice.id}> (2 active warnings).\n"
                              f"Warn threshold reached (2 warnings within 7 days): case #3, <@{alice.id}> "
                              "was timed out for 30m automatically.")
    assert cast.timed_out_until(alice) is not None
    auto = cast.cases()[2]
    assert (auto["action"], auto["target_id"], auto["moderator_id"], auto["duration_seconds"]) == \
        ("timeout", alice.id, cast.server.bot_user.id, 1800)
    assert auto["reason"] == "Automatic timeout: 2 warnings within 7 days."
    assert [post.embeds[0]["title"] for post in cast.log_posts()] == \
        ["Case #1 · Warning", "Case #2 · Warning", "Case #3 · Timeout"]


async def test_a_threshold_timeout_never_shortens_a_longer_timeout(cast: Cast) -> None:
    world, alice = cast.world, cast.world.alice
    await world.live.guild_settings.update(world.guild.id, world.admin.id, warn_thresholds=(
        WarnThreshold(count=1, days=7, action="timeout", timeout_minutes=30),))
    await cast.run(cast.mod, "timeout", {"member": alice, "duration": "7d", "reason": "raid"})   # case 1
    until = cast.timed_out_until(alice)
    assert until is not None
    reply = await cast.run(cast.mod, "warn", {"member": alice, "reason": "raid"})                # case 2
    assert reply.content == (f"Case #2: warned <@{alice.id}> (1 active warning).\n"
                             f"Warn threshold reached (1 warning within 7 days), but <@{alice.id}> is already "
                             f"timed out for longer (until <t:{int(until.timestamp())}:f>), so that was left as "
                             "it is.")
    assert cast.timed_out_until(alice) == until                      # still seven days, not 30 minutes
    assert [case["action"] for case in cast.cases()] == ["timeout", "warn"]

    # A shorter timeout still running is replaced by the threshold's, as before.
    await cast.run(cast.mod, "timeout", {"member": alice, "duration": "1m", "reason": "short"})  # case 3
    extended = await cast.run(cast.mod, "warn", {"member": alice, "reason": "again"})
    assert extended.content.endswith(f"case #5, <@{alice.id}> was timed out for 30m automatically.")
    after = cast.timed_out_until(alice)
    assert after is not None and after > datetime.now(UTC) + timedelta(minutes=29)


@pytest.mark.parametrize(("action", "done", "title"), [("kick", "kicked", "Kick"), ("ban", "banned", "Ban")])
async def test_warn_threshold_kick_or_ban(cast: Cast, action: str, done: str, title: str) -> None:
    world = cast.world
    await world.live.guild_settings.update(world.guild.id, world.admin.id, warn_thresholds=(
        WarnThreshold(count=1, days=1, action=action),))
    reply = await cast.run(cast.mod, "warn", {"member": cast.carol, "reason": "last straw"})
    assert reply.content.endswith(f"case #2, <@{cast.carol.id}> was {done} automatically.")
    assert not cast.is_member(cast.carol)
    assert (cast.carol.id in cast.server.guild(world.guild).bans) == (action == "ban"), "banned, not just kicked"
    assert [case["action"] for case in cast.cases()] == ["warn", action]
    assert [post.embeds[0]["title"] for post in cast.log_posts()] == ["Case #1 · Warning", f"Case #2 · {title}"]


async def test_a_warning_can_only_be_withdrawn_by_someone_who_could_have_given_it(cast: Cast) -> None:
    world = cast.world
    await cast.run(world.admin, "warn", {"member": cast.mod, "reason": "rude"})       # case 1
    await cast.run(world.admin, "warn", {"member": cast.senior, "reason": "late"})    # case 2
    own = await cast.run(cast.mod, "warnings remove", {"case": 1})
    assert own.content == "You cannot do that to yourself."
    above = await cast.run(cast.mod, "warnings remove", {"case": 2})
    assert above.content == f"You cannot do that to <@{cast.senior.id}>: their top role is not below yours."
    assert [case["removed_at"] for case in cast.cases()] == [None, None]
    by_owner = await cast.run(world.admin, "warnings remove", {"case": 1})
    assert by_owner.content == f"Case #3: warning #1 of <@{cast.mod.id}> withdrawn."


async def test_a_warning_of_someone_above_is_not_withdrawn_while_the_member_list_loads(cast: Cast) -> None:
    """After a start the member lists load server by server; until this server's is in, the warned
    member is not in the bot's cache, and the rule must still hold (the bot asks Discord)."""
    world = cast.world
    await cast.run(world.admin, "warn", {"member": cast.senior, "reason": "late"})    # case 1
    await world.stop()
    async with world.server.holding_member_lists(world.guild) as member_list:
        await world.start(member_lists=False)
        await member_list.arrived(within=5)
        assert world.running.get_guild(world.guild.id).get_member(cast.senior.id) is None
        above = await cast.run(cast.mod, "warnings remove", {"case": 1})
    assert above.content == f"You cannot do that to <@{cast.senior.id}>: their top role is not below yours."
    assert [case["removed_at"] for case in cast.cases()] == [None]


async def test_two_warnings_at_once_at_a_kick_threshold_kick_once_and_explain_the_other(cast: Cast) -> None:
    world = cast.world
    await world.live.guild_settings.update(world.guild.id, world.admin.id, warn_thresholds=(
        WarnThreshold(count=1, days=1, action="kick"),))
    replies = await asyncio.gather(cast.run(cast.mod, "warn", {"member": cast.carol, "reason": "one"}),
                                   cast.run(cast.ada, "warn", {"member": cast.carol, "reason": "two"}))
    texts = sorted(reply.content for reply in replies)
    kicked = [text for text in texts if text.endswith("was kicked automatically.")]
    assert len(kicked) == 1 and not cast.is_member(cast.carol)
    [other] = [text for text in texts if text not in kicked]
    # Depending on which arrives first: refused (no longer a member when asked), or warned and then
    # told the kick found nobody; never the apology for an error.
    assert other == f"<@{cast.carol.id}> is not a member of this server." or other.endswith(
        f"but <@{cast.carol.id}> is no longer on the server, so nothing more was done."), other
    assert [case["action"] for case in cast.cases()].count("kick") == 1


async def test_warn_threshold_the_bot_cannot_apply_keeps_the_warning(cast: Cast) -> None:
    world = cast.world
    await world.live.guild_settings.update(world.guild.id, world.admin.id, warn_thresholds=(
        WarnThreshold(count=1, days=1, action="ban"),))
    await cast.set_bot_permissions(BOT_PERMISSIONS & ~Permission.BAN_MEMBERS)
    reply = await cast.run(cast.mod, "warn", {"member": cast.carol, "reason": "x"})
    assert reply.content == (f"Case #1: warned <@{cast.carol.id}> (1 active warning).\n"
                             "Warn threshold reached (1 warning within 1 day), but I could not apply it: "
                             "I need the Ban Members permission to do that.")
    assert cast.is_member(cast.carol) and [case["action"] for case in cast.cases()] == ["warn"]


async def test_warn_threshold_whose_action_discord_fails_keeps_the_warning_told(
        cast: Cast, caplog: pytest.LogCaptureFixture) -> None:
    # Any Discord error but 403 and 404 (here five 429s in a row, after which py-cord gives up; a 5xx
    # after its retries alike): the warning is recorded and posted, so the moderator hears of it
    # rather than "try again", which would warn twice.
    world, carol = cast.world, cast.carol
    await world.live.guild_settings.update(world.guild.id, world.admin.id, warn_thresholds=(
        WarnThreshold(count=1, days=1, action="kick"),))

    def is_the_kick(method: str, path: str, body: Any) -> bool:
        return method == "DELETE" and path.endswith(f"/members/{carol.id}")

    refusing = cast.server.rate_limit(is_the_kick, times=5, retry_after=0.01)
    with caplog.at_level(logging.ERROR):
        reply = await cast.run(cast.mod, "warn", {"member": carol, "reason": "last straw"})
    assert refusing.hits == 5
    assert reply.content == (f"Case #1: warned <@{carol.id}> (1 active warning).\n"
                             "Warn threshold reached (1 warning within 1 day), but I could not apply it: "
                             "Discord failed (HTTP 429).")
    assert cast.is_member(carol) and [case["action"] for case in cast.cases()] == ["warn"]
    assert [post.embeds[0]["title"] for post in cast.log_posts()] == ["Case #1 · Warning"]
    [logged] = [record for record in caplog.records if "warn threshold" in record.getMessage()]
    assert f"guild {world.guild.id}: " in logged.getMessage() and logged.exc_info is not None


async def test_warn_threshold_whose_action_cannot_reach_discord_keeps_the_warning_told(
        cast: Cast, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # A connection reset below HTTP (py-cord lets it through): "try again" would warn twice.
    world, carol = cast.world, cast.carol
    await world.live.guild_settings.update(world.guild.id, world.admin.id, warn_thresholds=(
        WarnThreshold(count=1, days=1, action="kick"),))
    request = discord.http.HTTPClient.request

    async def reset_on_the_kick(self: discord.http.HTTPClient, route: discord.http.Route, **kwargs: Any) -> Any:
        if route.method == "DELETE" and route.path.endswith("/members/{user_id}"):
            raise aiohttp.ClientConnectionError("Connection reset by peer")
        return await request(self, route, **kwargs)

    monkeypatch.setattr(discord.http.HTTPClient, "request", reset_on_the_kick)
    with caplog.at_level(logging.ERROR):
        reply = await cast.run(cast.mod, "warn", {"member": carol, "reason": "last straw"})
    assert reply.content == (f"Case #1: warned <@{carol.id}> (1 active warning).\n"
                             "Warn threshold reached (1 warning within 1 day), but I could not reach Discord to "
                             "apply it (its kick may have happened).")
    assert cast.is_member(carol) and [case["action"] for case in cast.cases()] == ["warn"]
    [logged] = [record for record in caplog.records if "could not reach Discord" in record.getMessage()]
    assert f"guild {world.guild.id}: " in logged.getMessage() and logged.exc_info is not None


async def test_warn_threshold_timeout_of_an_administrator_says_why_it_was_not_applied(cast: Cast) -> None:
    # ada's Administrator role sits below Mods: she may be warned, but Discord times out no administrator
    # (403), and the bot's role and permissions are fine, so the usual 403 sentence would mislead.
    world = cast.world
    await world.live.guild_settings.update(world.guild.id, world.admin.id, warn_thresholds=(
        WarnThreshold(count=1, days=1, action="timeout", timeout_minutes=60),))
    reply = await cast.run(cast.mod, "warn", {"member": cast.ada, "reason": "x"})
    assert reply.content == (f"Case #1: warned <@{cast.ada.id}> (1 active warning).\n"
                             "Warn threshold reached (1 warning within 1 day), but I could not apply it: "
                             f"Discord does not let anyone time out an administrator (<@{cast.ada.id}>).")
    assert cast.timed_out_until(cast.ada) is None and [case["action"] for case in cast.cases()] == ["warn"]


@pytest.mark.parametrize(("command", "options", "told"), [
    ("timeout", {"duration": "1h", "reason": "spam"}, "Case #1: <@{member}> is timed out"),
    ("warn", {"reason": "spam"}, "Case #1: warned <@{member}> (1 active warning)."),
], ids=["timeout", "warn"])
@pytest.mark.quick
async def test_a_recorded_action_whose_mod_log_link_cannot_be_stored_is_told_as_done(
        cast: Cast, caplog: pytest.LogCaptureFixture, command: str, options: dict[str, Any], told: str) -> None:
    # Before the fix the moderator heard "busy, please try again" and a retry recorded the action twice.
    world, carol = cast.world, cast.carol
    cast.server.timeout = 20.0  # the bot waits busy_timeout (5 s) for the lock before it gives up

    def is_the_log_post(method: str, path: str, body: Any) -> bool:
        return method == "POST" and path.endswith(f"/channels/{cast.mod_log.id}/messages")

    async with cast.server.holding_requests(is_the_log_post) as post:
        acting = asyncio.create_task(cast.run(cast.mod, command, {"member": carol, **options}))
        await post.arrived(within=5)  # carried out and recorded as case #1; the post is on its way
        with locked_from_outside(world.tenant_file(world.guild)), caplog.at_level(logging.WARNING):
            post.release()
            reply = await acting

    assert [case["action"] for case in cast.cases()] == [command]
    assert reply.content != BUSY_ANSWER, "done and recorded, yet told to try again"
    [line, note] = reply.content.split("\n")
    assert line.startswith(told.format(member=carol.id))
    assert note == (f"Case #1 was posted, but its mod-log message could not be noted with it ({FILE_LOCKED}): "
                    "a later change to the case will not show there.")
    [posted] = cast.log_posts()
    assert posted.embeds[0]["title"].startswith("Case #1 · ")
    assert cast.cases()[0]["log_message_id"] is None
    [logged] = [record for record in caplog.records if "message id was not stored" in record.getMessage()]
    assert f"guild {world.guild.id}: case 1 " in logged.getMessage() and logged.exc_info is not None


# -- the mod-log channel -------------------------------------------------------------------------------


async def test_a_mod_log_the_bot_cannot_post_in_is_reported_and_the_case_kept(cast: Cast) -> None:
    world = cast.world
    muted = await cast.server.create_channel(world.guild, "muted-log", overwrites=[
        Overwrite.for_role(cast.bot_role(), deny=int(Permission.SEND_MESSAGES))])
    await world.live.guild_settings.update(world.guild.id, world.admin.id, mod_log_channel_id=muted.id)
    reply = await cast.run(cast.mod, "warn", {"member": cast.carol, "reason": "x"})
    assert reply.content == (f"Case #1: warned <@{cast.carol.id}> (1 active warning).\n"
                             f"Case #1 was not posted: I may not send messages in <#{muted.id}>.")
    [case] = cast.cases()
    assert case["log_message_id"] is None


@pytest.mark.parametrize("failure", [aiohttp.ClientConnectionError("Connection reset by peer"),
                                     ConnectionResetError(104, "Connection reset by peer"), TimeoutError()],
                         ids=["aiohttp", "oserror", "timeout"])
async def test_a_kick_whose_mod_log_post_cannot_reach_discord_is_told_as_done(
        cast: Cast, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, failure: Exception) -> None:
    # py-cord lets errors below HTTP through: before the fix the moderator heard "try again" of a kick
    # carried out and recorded, and a retry would record it twice.
    world, carol = cast.world, cast.carol
    request = discord.http.HTTPClient.request

    async def cut_off_from_the_mod_log(self: discord.http.HTTPClient, route: discord.http.Route,
                                       **kwargs: Any) -> Any:
        if route.method == "POST" and route.channel_id == cast.mod_log.id:
            raise failure
        return await request(self, route, **kwargs)

    monkeypatch.setattr(discord.http.HTTPClient, "request", cut_off_from_the_mod_log)
    with caplog.at_level(logging.ERROR):
        reply = await cast.run(cast.mod, "kick", {"member": carol, "reason": "spam"})
    assert reply.content == (f"Case #1: <@{carol.id}> was kicked.\n"
                             "Case #1 was not posted: I could not reach Discord.")
    assert not cast.is_member(carol) and [case["action"] for case in cast.cases()] == ["kick"]
    assert cast.log_posts() == [] and cast.cases()[0]["log_message_id"] is None
    [logged] = [record for record in caplog.records if "could not reach Discord" in record.getMessage()]
    assert f"guild {world.guild.id}: posting Case #1 " in logged.getMessage() and logged.exc_info is not None


async def test_a_deleted_mod_log_channel_is_reported_and_the_case_kept(cast: Cast) -> None:
    world, server = cast.world, cast.server
    channel = server.channel(cast.mod_log)
    server.guild(world.guild).channel_ids.remove(channel.id)   # as Discord deletes it, unknown to the settings
    del server.world.channels[channel.id]
    await server.dispatch("CHANNEL_DELETE", channel_payload(server.world, channel), guild_id=world.guild.id)
    reply = await cast.run(cast.mod, "warn", {"member": cast.carol, "reason": "x"})
    assert reply.content == (f"Case #1: warned <@{cast.carol.id}> (1 active warning).\n"
                             f"Case #1 was not posted: the mod-log channel <#{channel.id}> no longer exists.")
    [case] = cast.cases()
    assert case["log_message_id"] is None


async def test_a_mod_log_post_discord_refuses_otherwise_is_reported_and_the_case_kept(cast: Cast) -> None:
    # Any HTTP error but 403: here five 429s in a row, after which py-cord gives up.
    def is_the_log_post(method: str, path: str, body: Any) -> bool:
        return method == "POST" and path.endswith(f"/channels/{cast.mod_log.id}/messages")

    refusing = cast.server.rate_limit(is_the_log_post, times=5, retry_after=0.01)
    reply = await cast.run(cast.mod, "warn", {"member": cast.carol, "reason": "x"})
    assert refusing.hits == 5
    assert reply.content == (f"Case #1: warned <@{cast.carol.id}> (1 active warning).\n"
                             "Case #1 was not posted: Discord refused the message.")
    assert cast.log_posts() == [] and [case["log_message_id"] for case in cast.cases()] == [None]


async def test_withdrawing_a_warning_whose_mod_log_post_was_deleted(cast: Cast) -> None:
    await cast.run(cast.mod, "warn", {"member": cast.carol, "reason": "first"})
    [post] = cast.log_posts()
    await cast.server.delete_message(post)
    reply = await cast.run(cast.mod, "warnings remove", {"case": 1, "reason": "appeal"})
    assert reply.content == f"Case #2: warning #1 of <@{cast.carol.id}> withdrawn."
    assert cast.cases()[0]["removed_at"] is not None
    [edit] = cast.server.requests_to("PATCH", f"/channels/{cast.mod_log.id}/messages/{post.id}")
    assert edit.status == 404, "the bot tried to show the withdrawal, and carried on without it"
    assert [p.embeds[0]["title"] for p in cast.log_posts()] == ["Case #2 · Warning removed"]


async def test_warnings_list_of_many_long_cases_is_cut_to_one_embed(cast: Cast) -> None:
    world, carol = cast.world, cast.carol
    for n in range(25):
        await world.live.moderation.record_warn(world.guild.id, carol.id, cast.mod.id, f"{n:02d} " + "x" * 500)
    of_carol = await cast.run(cast.mod, "warnings list", {"member": carol})
    recent = await cast.run(cast.mod, "warnings list")
    for reply in (of_carol, recent):
        [embed] = reply.embeds
        description = embed["description"]
        assert len(description) <= 4096
        header, *lines = description.split("\n")
        shown = len(lines)
        assert 0 < shown < 25 and header.endswith(f" ({25 - shown} older not shown)")
        assert lines[-1].startswith("#25 Warning") and lines[0].startswith(f"#{26 - shown} Warning")
    assert of_carol.embeds[0]["description"].startswith(f"<@{carol.id}>: 25 active warnings, 25 cases in all.")


async def test_without_a_mod_log_channel_nothing_is_posted(cast: Cast) -> None:
    world = cast.world
    await world.live.guild_settings.update(world.guild.id, world.admin.id, mod_log_channel_id=None)
    reply = await cast.run(cast.mod, "warn", {"member": cast.carol, "reason": "x"})
    assert reply.content == f"Case #1: warned <@{cast.carol.id}> (1 active warning)."
    assert cast.log_posts() == [] and len(cast.cases()) == 1


async def test_mod_log_falls_back_to_text_without_embed_links(cast: Cast) -> None:
    world = cast.world
    plain = await cast.server.create_channel(world.guild, "plain-log", overwrites=[
        Overwrite.for_role(cast.bot_role(), deny=int(Permission.EMBED_LINKS))])
    await world.live.guild_settings.update(world.guild.id, world.admin.id, mod_log_channel_id=plain.id)
    await cast.run(cast.mod, "warn", {"member": cast.carol, "reason": "plain words"})
    [post] = cast.server.messages_in(plain, author=cast.server.bot_user)
    assert post.embeds == [] and post.content.startswith(f"#1 Warning · <@{cast.carol.id}>")
    assert post.content.endswith(": plain words")


# -- an action carried out on Discord whose case the server's file cannot take ---------------------

FILE_LOCKED = "the server's data file is locked by another program"
NOT_IN_WARNINGS = "it has no case number and is not in `/warnings list`."


@pytest.mark.quick
async def test_a_ban_whose_case_cannot_be_recorded_is_told_as_done_and_still_posted(
        cast: Cast, caplog: pytest.LogCaptureFixture) -> None:
    world, carol = cast.world, cast.carol
    cast.server.timeout = 20.0  # the bot waits busy_timeout (5 s) for the lock before it gives up
    with locked_from_outside(world.tenant_file(world.guild)), caplog.at_level(logging.ERROR):
        reply = await cast.run(cast.mod, "ban", {"member": carol, "reason": "spam bot"})

    assert not cast.is_member(carol) and carol.id in cast.server.guild(world.guild).bans
    assert reply.content == (f"<@{carol.id}> was banned. Its case could not be recorded ({FILE_LOCKED}): "
                             f"{NOT_IN_WARNINGS}")
    assert cast.cases() == []
    [post] = cast.log_posts()
    assert post.embeds[0]["title"] == "Not recorded (no case number) · Ban"
    assert f"<@{carol.id}>" in post.text and "spam bot" in post.text
    [logged] = [record for record in caplog.records if "not recorded" in record.getMessage()]
    assert str(world.guild.id) in logged.getMessage() and logged.exc_info is not None


@pytest.mark.quick
async def test_a_threshold_kick_whose_case_cannot_be_recorded_is_told_as_done(cast: Cast) -> None:
    world, carol = cast.world, cast.carol
    cast.server.timeout = 20.0
    await world.live.guild_settings.update(world.guild.id, world.admin.id, warn_thresholds=(
        WarnThreshold(count=1, days=1, action="kick"),))

    def is_the_kick(method: str, path: str, body: Any) -> bool:
        return method == "DELETE" and path.endswith(f"/members/{carol.id}")

    async with cast.server.holding_requests(is_the_kick) as kick:
        warning = asyncio.create_task(cast.run(cast.mod, "warn", {"member": carol, "reason": "last straw"}))
        await kick.arrived(within=5)  # the warning is recorded; the file is locked before the kick's case
        with locked_from_outside(world.tenant_file(world.guild)):
            kick.release()
            reply = await warning

    assert not cast.is_member(carol)
    assert reply.content == (
        f"Case #1: warned <@{carol.id}> (1 active warning).\n"
        f"Warn threshold reached (1 warning within 1 day): <@{carol.id}> was kicked automatically. "
        f"Its case could not be recorded ({FILE_LOCKED}): {NOT_IN_WARNINGS}")
    assert [case["action"] for case in cast.cases()] == ["warn"]
    assert [post.embeds[0]["title"] for post in cast.log_posts()] == \
        ["Case #1 · Warning", "Not recorded (no case number) · Kick"]


async def test_a_warning_whose_answer_is_lost_to_a_connection_reset_is_not_said_to_have_failed(
        cast: Cast, monkeypatch: pytest.MonkeyPatch) -> None:
    fail_answers(monkeypatch, [aiohttp.ClientConnectionError("Connection reset by peer")])
    reply = await cast.run(cast.mod, "warn", {"member": cast.carol, "reason": "spam"})
    assert reply.content == ANSWER_LOST
    assert [case["action"] for case in cast.cases()] == ["warn"]


async def test_an_answer_discord_refuses_as_malformed_is_logged_as_the_bots_error(
        cast: Cast, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    fail_answers(monkeypatch, [http_error(400)])
    with caplog.at_level(logging.WARNING, logger="malabot.bot"):
        reply = await cast.run(cast.mod, "warn", {"member": cast.carol, "reason": "spam"})
    assert reply.content == ANSWER_LOST
    assert [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "malabot.bot"] == [
        ("ERROR", f"command /warn in guild {cast.world.guild.id}: Discord did not take its answer")]


async def test_a_500_on_the_answer_is_logged_as_discords_failure(
        cast: Cast, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    fail_answers(monkeypatch, [http_error(500)])
    with caplog.at_level(logging.WARNING, logger="malabot.bot"):
        await cast.run(cast.mod, "warn", {"member": cast.carol, "reason": "spam"})
    assert [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "malabot.bot"] == [
        ("WARNING", f"command /warn in guild {cast.world.guild.id}: Discord did not take its answer")]


async def test_an_error_answer_that_cannot_reach_discord_is_a_warning(
        cast: Cast, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    fail_answers(monkeypatch, [aiohttp.ClientConnectionError("reset"), aiohttp.ClientConnectionError("reset")])
    with caplog.at_level(logging.WARNING):
        try:
            await cast.run(cast.mod, "warn", {"member": cast.carol, "reason": "spam"})
        except Exception:  # noqa: BLE001  no answer ever arrives
            pass
    messages = [r.getMessage() for r in caplog.records]
    assert f"could not tell the user about an error in guild {cast.world.guild.id}" in messages, messages


async def test_a_withdrawal_whose_mod_log_edit_loses_its_connection_is_done_and_posted(
        cast: Cast, monkeypatch: pytest.MonkeyPatch) -> None:
    alice = cast.world.alice
    await cast.run(cast.mod, "warn", {"member": alice, "reason": "first"})
    request = discord.http.HTTPClient.request

    async def dropping(self: discord.http.HTTPClient, route: discord.http.Route, **kwargs: Any) -> Any:
        if route.method == "PATCH" and route.path.endswith("/messages/{message_id}"):  # the warning's entry
            raise aiohttp.ServerDisconnectedError()
        return await request(self, route, **kwargs)

    monkeypatch.setattr(discord.http.HTTPClient, "request", dropping)
    removed = await cast.run(cast.mod, "warnings remove", {"case": 1})
    assert removed.content == f"Case #2: warning #1 of <@{alice.id}> withdrawn."
    assert [post.embeds[0]["title"] for post in cast.log_posts()] == ["Case #1 · Warning", "Case #2 · Warning removed"]


async def test_a_withdrawal_whose_deferral_discord_refuses_changes_nothing(cast: Cast) -> None:
    await cast.run(cast.mod, "warn", {"member": cast.world.alice, "reason": "first"})
    cast.world.lose_next_answer()  # the deferral, before anything is stored
    removed = await cast.run(cast.mod, "warnings remove", {"case": 1})
    assert removed.content == APOLOGY, "nothing was done: trying again is right"
    assert [(case["action"], case["removed_at"]) for case in cast.cases()] == [("warn", None)]


async def test_a_kick_whose_mod_log_setting_cannot_be_read_is_done_and_says_why_it_was_not_posted(
        cast: Cast, monkeypatch: pytest.MonkeyPatch) -> None:
    async def failing(guild_id: int) -> Any:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(cast.world.live.moderation, "mod_log_channel", failing)
    reply = await cast.run(cast.mod, "kick", {"member": cast.carol, "reason": "spam"})
    assert "Case #1 was not posted: the mod-log setting could not be read" in reply.content
    assert not cast.is_member(cast.carol) and [case["action"] for case in cast.cases()] == ["kick"]
