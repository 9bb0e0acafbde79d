"""Birthdays through the real bot: the /birthday commands, /config, and the pass with its scheduler.

The world starts on 2026-11-25 12:00 UTC (servers default to UTC, announcements from 09:00).
`world.clock` is the services' clock: moving it while the bot is stopped simulates downtime.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import discord
import pytest

from malabot.cogs.birthdays import BirthdaysCog
from malabot.cogs.mydata import birthday_role_kept
from malabot.features.birthdays.announcer import PassReport
from malabot.sandbox import Channel, FakeDiscord, InteractionReply, Message, Role, User
from malabot.scheduling import BIRTHDAY_PASS
from tests.e2e.data_dump import all_rows, eventually, rows_mentioning
from tests.e2e.discord_failures import drop_role_changes
from tests.e2e.test_backup import snapshot_ids, take_nightly_snapshots
from tests.e2e.test_mydata import delete_my_data
from tests.e2e.world import World, make_world
from tests.e2e.xp_place import settled

EXTRA_MEMBERS = 9  # with admin, alice and bob: 12 members, more than one page of 10


@dataclass
class Birthdays:
    """The world plus what the birthday tests add to it: a channel and a role."""

    world: World
    channel: Channel
    role: Role

    @property
    def cog(self) -> BirthdaysCog:
        cog = self.world.running.get_cog("Birthdays")
        assert isinstance(cog, BirthdaysCog)
        return cog

    async def settle(self) -> None:
        """Wait for the start-up passes of the running bot, then hold the scheduled job (it follows the
        real clock and could fire at a quarter hour during a test), so that the test's own passes run
        alone."""
        await asyncio.wait_for(self.cog.caught_up.wait(), timeout=10)
        await settled(self.world)  # and the passes of servers whose member list came in after it
        self.world.live.scheduler.pause_job(BIRTHDAY_PASS)

    async def run_pass(self) -> PassReport:
        return await self.cog.run_birthday_pass()

    async def configure(self, **values: Any) -> None:
        """Announce in #birthdays with the Birthday role; level-ups (100 birthday XP = level 1) go to
        #general unless a test says otherwise."""
        values = {"birthday_channel_id": self.channel.id, "birthday_role_id": self.role.id,
                  "levelup_channel_id": self.world.general.id, **values}
        await self.world.live.guild_settings.update(self.world.guild.id, self.world.admin.id, **values)

    def announcements(self) -> list[Message]:
        return self.world.server.messages_in(self.channel, author=self.world.server.bot_user)

    def has_role(self, user: User) -> bool:
        member = self.world.server.member(self.world.guild, user)
        return member is not None and self.role.id in member.roles

    def celebrations(self) -> list[tuple[object, ...]]:
        return all_rows(self.world.tenant_file(self.world.guild))["birthday_celebrations"]

    def stored(self) -> list[tuple[object, ...]]:
        return all_rows(self.world.tenant_file(self.world.guild))["birthdays"]

    def xp_of(self, user: User) -> int:
        rows = [row for row in all_rows(self.world.tenant_file(self.world.guild))["xp"] if row[0] == user.id]
        if not rows:
            return 0
        xp = rows[0][1]
        assert isinstance(xp, int)
        return xp


def add_extra_members(world: World) -> None:
    for number in range(EXTRA_MEMBERS):
        world.server.add_member(world.guild, world.server.add_user(f"member{number}"))


@pytest.fixture
async def bd(discord_server: FakeDiscord, tmp_path: Path) -> AsyncIterator[Birthdays]:
    async for world in make_world(discord_server, tmp_path, prepare=add_extra_members):
        channel = await world.server.create_channel(world.guild, "birthdays")
        role = await world.server.create_role(world.guild, "Birthday")
        birthdays = Birthdays(world, channel, role)
        await birthdays.settle()
        yield birthdays


def allowed_mentions_of(world: World, reply: InteractionReply) -> dict[str, Any]:
    [callback] = world.server.requests_to("POST", f"/interactions/{reply.id}/*")
    return dict(callback.json["data"]["allowed_mentions"])


async def set_birthday(world: World, user: User, month: int, day: int, year: int | None = None
                       ) -> InteractionReply:
    options: dict[str, Any] = {"month": month, "day": day}
    if year is not None:
        options["year"] = year
    return await world.command(user, "birthday set", options)


# ---- commands -------------------------------------------------------------------------------------

async def test_when_the_servers_message_shows_ages_members_giving_a_year_are_told(bd: Birthdays) -> None:
    world = bd.world
    await world.command(world.admin, "config set", {"setting": "birthday_template",
                                                    "value": "Happy {age}th birthday {member}!"})
    saved = await set_birthday(world, world.alice, 3, 5, 1990)
    assert saved.ephemeral and saved.content.endswith(
        "when you turn 37. This server's birthday message shows your age; to keep your birth year to "
        "yourself, set your birthday again without `year`.")
    without_year = await set_birthday(world, world.alice, 3, 5)
    assert without_year.content == "Saved: your birthday is March 5; next celebrated in 100 days (March 5, 2027)."


async def test_a_birthday_message_that_would_be_empty_without_a_year_is_refused(bd: Birthdays) -> None:
    world = bd.world
    refused = await world.command(world.admin, "config set", {"setting": "birthday_template", "value": "{age}th"})
    assert refused.ephemeral and refused.content.startswith(
        "That birthday message would be empty for members who saved no birth year")
    assert (await world.live.guild_settings.get(world.guild.id)).birthday_template == "Happy birthday {member}! 🎂"


async def test_set_show_and_remove_keep_the_year_private(bd: Birthdays) -> None:
    world = bd.world
    saved = await set_birthday(world, world.alice, 3, 5, 1990)
    assert saved.ephemeral
    assert saved.content == ("Saved: your birthday is March 5, 1990; next celebrated in 100 days "
                             "(March 5, 2027), when you turn 37. Only you can see your birth year.")

    own = await world.command(world.alice, "birthday show")
    assert own.ephemeral
    assert "March 5, 1990" in own.content and "turn 37" in own.content

    seen_by_bob = await world.command(world.bob, "birthday show", {"member": world.alice})
    assert not seen_by_bob.ephemeral
    assert seen_by_bob.content == f"<@{world.alice.id}>'s birthday is March 5 (in 100 days)."
    assert allowed_mentions_of(world, seen_by_bob)["parse"] == []
    assert not allowed_mentions_of(world, seen_by_bob).get("users")

    removed = await world.command(world.alice, "birthday remove")
    assert removed.ephemeral and removed.content == "Your birthday was removed from this server."
    assert bd.stored() == []
    again = await world.command(world.alice, "birthday remove")
    assert again.ephemeral and again.content == "You have no birthday set, so there was nothing to remove."
    gone = await world.command(world.bob, "birthday show", {"member": world.alice})
    assert gone.ephemeral and gone.content == f"<@{world.alice.id}> has not shared a birthday."


async def test_bad_dates_are_refused_ephemerally_and_nothing_is_written(bd: Birthdays) -> None:
    world = bd.world
    await set_birthday(world, world.alice, 7, 1)
    before = bd.stored()
    refusals = {
        (2, 30, None): "February has no day 30: use 1 to 29.",
        (13, 1, None): "There is no month 13: use 1 (January) to 12 (December).",
        (0, 1, None): "There is no month 0: use 1 (January) to 12 (December).",
        (4, 31, None): "April has no day 31: use 1 to 30.",
        (5, 1, 2030): "2030 is in the future: use your birth year, or leave the year out.",
        (12, 24, 2026): "December 24, 2026 is in the future.",
        (5, 1, 1899): "Use a birth year from 1900 on, or leave the year out.",
        (2, 29, 2023): "February 29, 2023 did not exist: 2023 was not a leap year.",
    }
    for (month, day, year), sentence in refusals.items():
        reply = await set_birthday(world, world.alice, month, day, year)
        assert reply.ephemeral, (month, day, year)
        assert reply.content == sentence
    assert bd.stored() == before

    leap = await set_birthday(world, world.alice, 2, 29)
    assert leap.ephemeral and leap.content.startswith("Saved: your birthday is February 29;")
    leap_year = await set_birthday(world, world.bob, 2, 29, 2004)
    assert "February 29, 2004" in leap_year.content


async def test_list_is_paged_and_shows_only_this_servers_members_without_years(bd: Birthdays) -> None:
    world = bd.world
    guild_id = world.guild.id
    members = [user_id for user_id in world.server.guild(world.guild).members if user_id != world.server.bot_user.id]
    assert len(members) == 12
    for number, user_id in enumerate(members):
        await world.live.birthdays.set(guild_id, user_id, 1 + number, 10, 1990 + number)
    stranger = world.server.add_user("stranger")  # stored, but not a member (any more)
    await world.live.birthdays.set(guild_id, stranger.id, 1, 1)

    first = await world.command(world.alice, "birthday list")
    assert not first.ephemeral
    lines = first.content.splitlines()
    assert lines[0] == "**Birthdays** (12)"
    assert lines[1] == f"• January 10: <@{members[0]}>"
    assert len(lines) == 1 + 10 + 1
    assert lines[-1] == "Page 1 of 2 · next: `/birthday list page:2`"
    assert str(stranger.id) not in first.content
    assert not re.search(r", \d{4}", first.content), "no birth year in a public list, not even the viewer's"
    assert allowed_mentions_of(world, first)["parse"] == []

    second = await world.command(world.alice, "birthday list", {"page": 2})
    assert second.content.splitlines()[1:] == [f"• November 10: <@{members[10]}>",
                                               f"• December 10: <@{members[11]}>", "Page 2 of 2"]
    too_far = await world.command(world.alice, "birthday list", {"page": 3})
    assert too_far.ephemeral and too_far.content == "There are only 2 pages: choose 1 to 2."


async def test_list_of_a_server_without_birthdays(bd: Birthdays) -> None:
    reply = await bd.world.command(bd.world.alice, "birthday list")
    assert reply.content == "Nobody here has shared a birthday yet. Add yours with `/birthday set`."


async def test_upcoming_defaults_to_a_week_and_takes_a_number_of_days(bd: Birthdays) -> None:
    world = bd.world
    await set_birthday(world, world.alice, 11, 25, 2000)   # today
    await set_birthday(world, world.bob, 11, 28)           # in 3 days
    await set_birthday(world, world.admin, 12, 10)         # in 15 days

    week = await world.command(world.bob, "birthday upcoming")
    assert not week.ephemeral
    assert week.content.splitlines() == [
        "**Birthdays in the next 7 days**",
        f"• November 25 (today): <@{world.alice.id}>",
        f"• November 28 (in 3 days): <@{world.bob.id}>",
    ]
    assert allowed_mentions_of(world, week)["parse"] == []

    month = await world.command(world.bob, "birthday upcoming", {"days": 30})
    assert month.content.splitlines()[-1] == f"• December 10 (in 15 days): <@{world.admin.id}>"
    tomorrow = await world.command(world.bob, "birthday upcoming", {"days": 1})
    assert tomorrow.content.splitlines()[0] == "**Birthdays today and tomorrow**"

    refused = await world.command(world.bob, "birthday upcoming", {"days": 0})
    assert refused.ephemeral and refused.content == "Choose between 1 and 365 days."


async def test_upcoming_with_more_birthdays_than_one_message_holds_says_how_many_are_left_out(
        discord_server: FakeDiscord, tmp_path: Path) -> None:
    # Discord refuses a message longer than 2,000 characters: a busy month must still get an answer.
    many: list[User] = []

    def prepare(world: World) -> None:
        for number in range(60):
            many.append(world.server.add_user(f"celebrant{number:02d}"))
            world.server.add_member(world.guild, many[-1])

    async for world in make_world(discord_server, tmp_path, prepare=prepare):
        for number, user in enumerate(many):
            await world.live.birthdays.set(world.guild.id, user.id, 12, 1 + number % 28)
        month = await world.command(world.bob, "birthday upcoming", {"days": 40})
        assert not month.ephemeral and len(month.content) <= 2000
        lines = month.content.splitlines()
        assert lines[0] == "**Birthdays in the next 40 days**"
        assert lines[1] == f"• December 1 (in 6 days): <@{many[0].id}>"
        shown = len(lines) - 2
        assert 20 < shown < 60
        assert lines[-1] == f"… and {60 - shown} more; ask for fewer days to see them."


# ---- settings through /config -------------------------------------------------------------------

async def test_birthday_settings_through_config_drive_the_announcement(bd: Birthdays) -> None:
    world = bd.world
    changes = {
        "birthday_channel_id": f"<#{bd.channel.id}>",
        "birthday_role_id": f"<@&{bd.role.id}>",
        "birthday_hour": "13",
        "birthday_template": "Cake for {member}!",
        "birthday_xp": "40",
    }
    for setting, value in changes.items():
        reply = await world.command(world.admin, "config set", {"setting": setting, "value": value})
        assert reply.ephemeral and reply.content.startswith(f"`{setting}` is now"), reply.content
    refused = await world.command(world.admin, "config set", {"setting": "birthday_hour", "value": "24"})
    assert refused.ephemeral and "birthday_hour" in refused.content
    settings = await world.live.guild_settings.get(world.guild.id)
    assert (settings.birthday_channel_id, settings.birthday_role_id, settings.birthday_hour,
            settings.birthday_template, settings.birthday_xp) == (bd.channel.id, bd.role.id, 13,
                                                                  "Cake for {member}!", 40)

    await set_birthday(world, world.alice, 11, 25)
    early = await bd.run_pass()        # 12:00 UTC: before the server's hour 13
    assert early.celebrated == 0 and bd.announcements() == []
    world.clock.advance(hours=1)
    report = await bd.run_pass()
    assert report.announced == 1
    [message] = bd.announcements()
    assert message.content == f"Cake for <@{world.alice.id}>!"
    assert bd.has_role(world.alice)
    assert bd.xp_of(world.alice) == 40


# ---- the pass -----------------------------------------------------------------------------------

async def test_birthday_xp_that_levels_up_announces_the_level_once(bd: Birthdays) -> None:
    world = bd.world
    await bd.configure(levelup_channel_id=None)   # level-ups then go beside the birthday message
    await set_birthday(world, world.alice, 11, 25)
    await bd.run_pass()
    expected = [f"Happy birthday <@{world.alice.id}>! 🎂", f"GG <@{world.alice.id}>, you reached level 1!"]
    assert [message.content for message in bd.announcements()] == expected

    await world.restart()
    await bd.settle()
    await bd.run_pass()
    assert [message.content for message in bd.announcements()] == expected
    assert bd.xp_of(world.alice) == 100


async def test_announcement_role_and_xp_on_the_day_ping_only_the_member(bd: Birthdays) -> None:
    world = bd.world
    await bd.configure(birthday_template="Happy birthday {member}! @everyone <@&" + str(bd.role.id) + ">")
    await set_birthday(world, world.alice, 11, 26, 1990)
    await set_birthday(world, world.bob, 11, 27)
    world.clock.advance(days=1)                # 2026-11-26 12:00: Alice's day, after 09:00

    report = await bd.run_pass()
    assert (report.celebrated, report.announced, report.roles_added, report.failures) == (1, 1, 1, 0)
    [message] = bd.announcements()
    assert message.content.startswith(f"Happy birthday <@{world.alice.id}>!")
    [post] = world.server.requests_to("POST", f"/channels/{bd.channel.id}/messages")
    mentions = post.json["allowed_mentions"]
    assert mentions["parse"] == [] and [int(u) for u in mentions["users"]] == [world.alice.id]
    assert not mentions.get("roles")
    assert bd.has_role(world.alice) and not bd.has_role(world.bob)
    assert bd.xp_of(world.alice) == 100

    second = await bd.run_pass()
    assert (second.celebrated, second.announced, second.roles_added) == (0, 0, 0)
    assert len(bd.announcements()) == 1


async def test_no_second_announcement_role_or_xp_after_a_restart(bd: Birthdays) -> None:
    world = bd.world
    await bd.configure()
    await set_birthday(world, world.alice, 11, 25)
    await bd.run_pass()
    assert len(bd.announcements()) == 1
    role_posts = len(world.server.requests_to("PUT", f"/guilds/{world.guild.id}/members/*/roles/*"))
    assert role_posts == 1

    await world.restart()
    await bd.settle()                          # the start-up pass ran and found nothing to do
    await bd.run_pass()
    assert len(bd.announcements()) == 1
    assert len(world.server.requests_to("PUT", f"/guilds/{world.guild.id}/members/*/roles/*")) == role_posts
    assert bd.xp_of(world.alice) == 100
    assert len(bd.celebrations()) == 1


async def test_catch_up_after_downtime_the_same_day(bd: Birthdays) -> None:
    world = bd.world
    await bd.configure()
    await set_birthday(world, world.alice, 11, 26)
    await world.stop()
    world.clock.advance(hours=23)              # 2026-11-26 11:00: down through the server's 09:00
    await world.start()
    await eventually(lambda: len(bd.announcements()) == 1, what="the missed announcement on start")
    await bd.settle()
    assert bd.has_role(world.alice)
    assert bd.announcements()[0].content == f"Happy birthday <@{world.alice.id}>! 🎂"


async def test_no_catch_up_once_the_day_is_over(bd: Birthdays) -> None:
    world = bd.world
    await bd.configure()
    await set_birthday(world, world.alice, 11, 26)
    await world.stop()
    world.clock.advance(days=1, hours=12)      # 2026-11-27 00:00: the birthday has passed
    await world.start()
    await bd.settle()
    assert bd.announcements() == []
    assert bd.celebrations() == []


async def test_catch_up_follows_the_servers_timezone(bd: Birthdays) -> None:
    world = bd.world
    # Auckland is UTC+13 in November: 2026-11-25 21:00 UTC is 10:00 on the 26th there, past the 09:00
    # announcement hour. By UTC it is still the 25th: a pass on UTC would pick bob, not alice.
    await bd.configure(timezone="Pacific/Auckland")
    await set_birthday(world, world.alice, 11, 26)
    await set_birthday(world, world.bob, 11, 25)
    await world.stop()
    world.clock.advance(hours=9)               # 2026-11-25 21:00 UTC
    await world.start()
    await bd.settle()                          # the start-up pass has run
    assert [m.content for m in bd.announcements()] == [f"Happy birthday <@{world.alice.id}>! 🎂"]
    assert bd.has_role(world.alice) and not bd.has_role(world.bob)


async def test_a_birthday_set_for_today_after_the_hour_is_celebrated_at_once(bd: Birthdays) -> None:
    world = bd.world
    await bd.configure()
    reply = await set_birthday(world, world.alice, 11, 25)     # 12:00, the pass ran at 09:00
    assert "next celebrated today" in reply.content
    await eventually(lambda: len(bd.announcements()) == 1, what="the announcement, without waiting an hour")
    await bd.settle()  # the role follows the announcement
    assert bd.has_role(world.alice) and bd.xp_of(world.alice) == 100
    again = await bd.run_pass()
    assert (again.celebrated, again.announced) == (0, 0)
    assert len(bd.announcements()) == 1


async def test_a_birthday_changed_after_this_years_celebration_is_promised_for_next_year(bd: Birthdays) -> None:
    world = bd.world
    await bd.configure()
    await set_birthday(world, world.alice, 11, 25)             # today, after the hour: celebrated at once
    await bd.cog.birthday_pass.run_for(world.guild.id)          # whatever the command started has run
    assert len(bd.announcements()) == 1
    # Alice typed the wrong day; she fixes it to the 28th. Once a year: her next celebration is in 2027.
    changed = await set_birthday(world, world.alice, 11, 28)
    assert changed.ephemeral and changed.content == (
        "Saved: your birthday is November 28; already celebrated this year; next celebrated on November 28, 2027.")
    upcoming = await world.command(world.bob, "birthday upcoming")
    assert upcoming.content == "No birthdays in the next 7 days."
    seen = await world.command(world.bob, "birthday show", {"member": world.alice})
    assert seen.content == f"<@{world.alice.id}>'s birthday is November 28 (already celebrated this year)."

    world.clock.advance(days=3)                                 # 2026-11-28 12:00
    await bd.run_pass()
    assert len(bd.announcements()) == 1
    shown = await world.command(world.alice, "birthday show")
    assert shown.content == ("Your birthday is November 28; already celebrated this year; "
                             "next celebrated on November 28, 2027.")


@pytest.mark.parametrize("answer_lost", [False, True])
async def test_a_birthday_set_in_the_last_hour_of_the_servers_day_is_still_celebrated_that_day(
        bd: Birthdays, answer_lost: bool) -> None:
    world = bd.world
    # Auckland is UTC+13 in November: 2026-11-25 10:50 UTC is 23:50 there, after the day's last pass.
    await bd.configure(timezone="Pacific/Auckland")
    world.clock.advance(hours=-1, minutes=-10)
    if answer_lost:  # the birthday is stored: the celebration must not wait for its answer
        world.lose_next_answer()
    await set_birthday(world, world.alice, 11, 25)
    await eventually(lambda: len(bd.announcements()) == 1, what="the announcement before the day ends")


async def test_a_birthday_set_for_today_before_the_hour_waits_for_the_pass(bd: Birthdays) -> None:
    world = bd.world
    await bd.configure(birthday_hour=15)
    await set_birthday(world, world.alice, 11, 25)             # 12:00, announcements from 15:00
    await bd.cog.birthday_pass.run_for(world.guild.id)          # whatever the command started has run
    assert bd.announcements() == []
    world.clock.advance(hours=3)
    report = await bd.run_pass()
    assert report.announced == 1


async def celebrate_alice_with_the_role(bd: Birthdays) -> None:
    """Alice's birthday is today (November 25): the pass announces it and gives her the role."""
    await bd.configure()
    await set_birthday(bd.world, bd.world.alice, 11, 25)
    await bd.run_pass()
    assert bd.has_role(bd.world.alice)


async def test_the_role_is_taken_back_the_next_day(bd: Birthdays) -> None:
    world = bd.world
    await celebrate_alice_with_the_role(bd)

    world.clock.advance(hours=11)              # 23:00, still the birthday
    await bd.run_pass()
    assert bd.has_role(world.alice)
    world.clock.advance(hours=2)               # 01:00 the next day, before the announcement hour
    report = await bd.run_pass()
    assert report.roles_removed == 1
    assert not bd.has_role(world.alice)
    assert len(bd.announcements()) == 1


async def test_erasing_your_data_on_your_birthday_takes_the_role_back_at_once(bd: Birthdays) -> None:
    world = bd.world
    await celebrate_alice_with_the_role(bd)

    await delete_my_data(world, world.alice)
    assert not bd.has_role(world.alice), "the row that said what to take back is gone with the data"
    assert set(rows_mentioning(world.tenant_file(world.guild), world.alice.id)) == {"member_erasures"}


@pytest.mark.parametrize("failure", ["429s past py-cord's retries", "a connection dropped"])
async def test_a_birthday_role_an_erasure_could_not_take_back_is_named_to_the_admins(
        bd: Birthdays, failure: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing remembers the role once her data is erased: the admins take it off by hand.
    world = bd.world
    await celebrate_alice_with_the_role(bd)
    await world.live.guild_settings.update(world.guild.id, world.admin.id, mod_log_channel_id=world.general.id)
    if failure == "a connection dropped":
        drop_role_changes(monkeypatch, "DELETE")
    else:
        world.server.rate_limit(lambda method, path, body: method == "DELETE"
                                and path.endswith(f"/members/{world.alice.id}/roles/{bd.role.id}"), times=5)

    done = await delete_my_data(world, world.alice)
    assert done.content.startswith("Done: your data in this server is erased")
    await settled(world)
    told = "\n".join(message.content for message in world.server.messages_in(world.general,
                                                                             author=world.server.bot_user))
    assert f"• {birthday_role_kept(world.alice.id, bd.role.id)}" in told


async def test_level_roles_follow_an_erasure_when_the_mod_log_post_also_drops(
        bd: Birthdays, monkeypatch: pytest.MonkeyPatch) -> None:
    world = bd.world
    mod_log = await world.server.create_channel(world.guild, "mod-log")
    level_role = await world.server.create_role(world.guild, "Chatter")
    await world.command(world.admin, "levelrole add", {"level": 1, "role": level_role})
    await world.command(world.admin, "xp set", {"member": world.alice, "amount": 100})
    await settled(world)
    assert level_role.id in world.server.member(world.guild, world.alice).roles
    await celebrate_alice_with_the_role(bd)
    await world.live.guild_settings.update(world.guild.id, world.admin.id, mod_log_channel_id=mod_log.id)

    request = discord.http.HTTPClient.request

    async def dropping(self: discord.http.HTTPClient, route: discord.http.Route, **kwargs: Any) -> Any:
        # A flaky connection: the birthday role's removal and the mod-log post are dropped.
        if route.method == "DELETE" and route.path.endswith("/roles/{role_id}") \
                and route.url.endswith(f"/roles/{bd.role.id}"):
            raise aiohttp.ServerDisconnectedError()
        if route.method == "POST" and route.path == "/channels/{channel_id}/messages" \
                and int(route.channel_id) == mod_log.id:
            raise aiohttp.ServerDisconnectedError()
        return await request(self, route, **kwargs)

    monkeypatch.setattr(discord.http.HTTPClient, "request", dropping)
    done = await delete_my_data(world, world.alice)
    assert done.content.startswith("Done: your data in this server is erased")
    await settled(world)
    assert level_role.id not in world.server.member(world.guild, world.alice).roles, "her XP is erased"


async def test_erasing_your_data_while_the_pass_gives_your_role_still_takes_it_back(bd: Birthdays) -> None:
    # The pass claimed her celebration (the role recorded) and waits for Discord; she erases her data
    # meanwhile, which takes back a role she does not hold yet. The pass then gives it: taken back at once.
    world = bd.world
    await bd.configure()
    await set_birthday(world, world.alice, 11, 26)
    world.clock.advance(days=1)

    def announcement(method: str, path: str, body: Any) -> bool:
        return method == "POST" and path == f"/channels/{bd.channel.id}/messages"

    async with world.server.holding_requests(announcement) as slow:
        passing = asyncio.create_task(bd.run_pass())
        await slow.arrived(within=5)
        await delete_my_data(world, world.alice)
        assert set(rows_mentioning(world.tenant_file(world.guild), world.alice.id)) == {"member_erasures"}
        slow.release()
        await passing
    await settled(world)
    assert not bd.has_role(world.alice)


async def celebrate_alice_who_holds_the_role_already(bd: Birthdays) -> None:
    """Alice was given the role before her birthday (today), by hand or as another setting's role."""
    world = bd.world
    await world.server.update_member(world.guild, world.alice, roles=[bd.role])
    await bd.configure()
    await set_birthday(world, world.alice, 11, 25)  # after the hour: celebrated at once
    await bd.run_pass()
    assert len(bd.announcements()) == 1 and bd.has_role(world.alice)


async def test_a_role_the_member_held_before_their_birthday_is_kept_after_the_day(bd: Birthdays) -> None:
    world = bd.world
    await celebrate_alice_who_holds_the_role_already(bd)

    world.clock.advance(hours=13)              # 01:00 the next day
    report = await bd.run_pass()
    assert (report.roles_removed, report.failures) == (0, 0)
    assert bd.has_role(world.alice)
    [row] = bd.celebrations()
    assert row[5] is None, "nothing recorded to take back"


async def test_erasing_your_data_keeps_a_role_held_before_the_birthday(bd: Birthdays) -> None:
    world = bd.world
    await celebrate_alice_who_holds_the_role_already(bd)

    await delete_my_data(world, world.alice)
    assert bd.has_role(world.alice), "only what the birthday gave is taken back"


async def test_the_role_is_taken_back_after_downtime(bd: Birthdays) -> None:
    world = bd.world
    await celebrate_alice_with_the_role(bd)
    await world.stop()
    world.clock.advance(days=3)
    await world.start()
    await eventually(lambda: not bd.has_role(world.alice), what="the old birthday role to be taken back")
    await bd.settle()
    [row] = bd.celebrations()
    assert row[6] is not None, "role_removed_at recorded"


async def test_a_server_in_an_outage_at_start_gets_the_role_taken_back_once_it_is_back(bd: Birthdays) -> None:
    world = bd.world
    await celebrate_alice_with_the_role(bd)
    await world.stop()
    await world.server.guild_outage(world.guild)   # READY lists the server as unavailable
    world.clock.advance(hours=14)                   # 02:00 the next day
    await world.start()
    await bd.settle()                               # the start-up pass saw no members: nothing decided
    [row] = bd.celebrations()
    assert row[6] is None, "not recorded as taken back while the server was out"
    assert bd.has_role(world.alice)

    await world.server.end_guild_outage(world.guild)
    await settled(world)  # back, its member list in, and the pass for it run at once
    assert world.running.get_guild(world.guild.id).chunked
    assert not bd.has_role(world.alice)
    [row] = bd.celebrations()
    assert row[6] is not None, "recorded as taken back"
    assert (await bd.run_pass()).roles_removed == 0, "nothing left for the next pass"


async def test_a_start_leaves_a_role_to_take_back_for_when_the_member_list_is_in(
        bd: Birthdays, caplog: pytest.LogCaptureFixture) -> None:
    """The start's pass runs before the server's member list is in: whether alice still holds the role
    cannot be judged then. Not a failure (no warning, no first failure day starting the give-up
    clock): the server's pass takes the role back once the list is in."""
    world = bd.world
    await celebrate_alice_with_the_role(bd)
    await world.stop()
    world.clock.advance(hours=14)                   # 02:00 the next day: the role is owed back
    caplog.set_level(logging.WARNING, logger="malabot.features.birthdays")
    async with world.server.holding_member_lists(world.guild) as member_list:
        await world.start(member_lists=False)
        await member_list.arrived(within=5)
        await asyncio.wait_for(bd.cog.caught_up.wait(), timeout=10)
        [row] = bd.celebrations()
        assert row[6] is None and row[-1] is None, "neither taken back nor failed"
        assert bd.has_role(world.alice)
    await bd.settle()
    assert [record.getMessage() for record in caplog.records] == []
    assert not bd.has_role(world.alice)
    [row] = bd.celebrations()
    assert row[6] is not None, "taken back once the list was in"


async def test_birthday_lists_right_after_a_start_name_members_whose_list_is_not_in_yet(bd: Birthdays) -> None:
    world = bd.world
    await set_birthday(world, world.alice, 12, 3)
    await set_birthday(world, world.bob, 12, 4)
    full = await world.command(world.alice, "birthday list")
    await world.stop()
    async with world.server.holding_member_lists(world.guild) as member_list:
        await world.start(member_lists=False)
        await member_list.arrived(within=5)
        listed = await world.command(world.alice, "birthday list")
        upcoming = await world.command(world.alice, "birthday upcoming", {"days": 30})
    assert listed.content == full.content
    assert f"<@{world.bob.id}>" in upcoming.content


async def test_a_birthday_due_during_an_outage_is_celebrated_once_the_server_is_back(bd: Birthdays) -> None:
    """The bot forgets a server's members while it is in an outage (its list is rebuilt when it comes
    back): a pass meanwhile sees nobody, decides nothing and fails nothing; once the list is back,
    the server's pass runs at once and celebrates."""
    world = bd.world
    await bd.configure()
    await set_birthday(world, world.alice, 11, 26)
    await world.server.guild_outage(world.guild)
    world.clock.advance(days=1)
    report = await bd.run_pass()
    assert (report.celebrated, report.failures) == (0, 0)
    assert bd.announcements() == [] and not bd.has_role(world.alice)

    await world.server.end_guild_outage(world.guild)
    await settled(world)  # back, its member list in, and the pass for it run at once
    assert len(bd.announcements()) == 1 and bd.has_role(world.alice)
    report = await bd.run_pass()
    assert (report.celebrated, report.announced, report.roles_added) == (0, 0, 0), "celebrated once"


async def test_a_role_the_bot_cannot_give_is_not_retried_and_the_announcement_still_goes_out(
        bd: Birthdays) -> None:
    world = bd.world
    above = await world.server.create_role(world.guild, "Too high", above_bot=True)
    await bd.configure(birthday_role_id=above.id)
    await set_birthday(world, world.alice, 11, 26)
    world.clock.advance(days=1)
    report = await bd.run_pass()
    assert (report.announced, report.roles_added, report.failures) == (1, 0, 1)
    member = world.server.member(world.guild, world.alice)
    assert member is not None and above.id not in member.roles
    [row] = bd.celebrations()
    assert row[5] is None, "nothing recorded to take back"

    world.clock.advance(days=1)
    later = await bd.run_pass()
    assert later.roles_removed == 0 and later.failures == 0


async def test_what_the_pass_cannot_do_is_told_to_the_mod_log_once_a_day(bd: Birthdays) -> None:
    """Nobody waits for the pass's answer: a deleted birthday channel or a role above the bot's would
    go unseen in the bot's log."""
    world, server = bd.world, bd.world.server
    mod_log = await server.create_channel(world.guild, "mod-log")
    above = await server.create_role(world.guild, "Too high", above_bot=True)
    await bd.configure(mod_log_channel_id=mod_log.id, birthday_role_id=above.id)
    await server.delete_channel(bd.channel)
    for user in (world.alice, world.bob):
        await set_birthday(world, user, 11, 26)
    world.clock.advance(days=1)
    report = await bd.run_pass()
    assert (report.celebrated, report.announced, report.roles_added) == (2, 0, 0)

    header = "⚠️ The birthday pass could not do everything; an admin can fix this:\n• "
    assert [message.content for message in server.messages_in(mod_log, author=server.bot_user)] == [
        header + f"The birthday channel (id {bd.channel.id}) is gone or is not a text channel, so birthdays are "
                 "not announced; choose another with `/config set birthday_channel_id`.",
        header + f"Birthday role: The role <@&{above.id}> is not below my highest role, so I cannot give it; "
                 "move my role above it in the server settings.",
    ], "each problem once, not once per member"


async def test_the_role_of_a_member_who_joined_after_a_restored_snapshot_is_still_taken_back(
        bd: Birthdays) -> None:
    """Their celebration since the snapshot is carried into the restored data: it says to take the role back."""
    world = bd.world
    await bd.configure()
    world.clock.advance(hours=15, minutes=30)          # 2026-11-26 03:30 UTC: the nightly snapshot
    await take_nightly_snapshots(world)
    [snapshot] = snapshot_ids(world)
    world.clock.advance(hours=1)                       # 04:30: carol joins
    carol = world.server.add_user("carol")
    await world.server.member_join(world.guild, carol)
    await set_birthday(world, carol, 11, 26)
    world.clock.advance(hours=7, minutes=30)           # 12:00: her birthday pass gives the role
    await bd.run_pass()
    assert bd.has_role(carol)
    world.clock.advance(hours=2)                       # 14:00: the owner restores last night's snapshot
    await restore(world, snapshot)
    world.clock.advance(hours=12)                      # 02:00 the next day: the role of the day goes
    await bd.run_pass()
    assert not bd.has_role(carol)


async def test_a_birthday_on_the_day_dst_skips_its_hour_23_is_announced_that_day(bd: Birthdays) -> None:
    """America/Nuuk's Saturday 2027-03-27 goes from 22:59 straight to Sunday 00:00: no later pass that
    day could catch the hour up. One pass per quarter hour, as the job runs."""
    world = bd.world
    await bd.configure(timezone="America/Nuuk", birthday_hour=23)
    await set_birthday(world, world.alice, 3, 27)
    world.clock.advance(datetime(2027, 3, 27, 3, tzinfo=UTC) - world.clock.now)   # Sat 01:00 in Nuuk
    while world.clock.now <= datetime(2027, 3, 28, 3, tzinfo=UTC):                # Sun 04:00 in Nuuk
        await bd.run_pass()
        world.clock.advance(minutes=15)
    [announcement] = bd.announcements()
    assert announcement.content == f"Happy birthday <@{world.alice.id}>! 🎂"


async def celebrate_in_screening(bd: Birthdays) -> tuple[User, PassReport]:
    """Carol joins and stays in Membership Screening; the pass of her birthday (tomorrow) runs."""
    world = bd.world
    await bd.configure()
    carol = world.server.add_user("carol")
    await world.server.member_join(world.guild, carol, pending=True)
    await world.live.birthdays.set(world.guild.id, carol.id, 11, 26)
    world.clock.advance(days=1)
    return carol, await bd.run_pass()


async def test_a_member_in_membership_screening_gets_the_role_once_they_pass_it_that_day(bd: Birthdays) -> None:
    # Discord lets a member given any role skip the server's rules: the role waits for the screening,
    # which is no failure of the pass.
    world = bd.world
    carol, report = await celebrate_in_screening(bd)
    assert (report.announced, report.roles_added, report.failures) == (1, 0, 0)
    assert not bd.has_role(carol)
    assert world.server.member(world.guild, carol).pending, "the bot let them skip the rules"
    [row] = bd.celebrations()
    assert row[5] is None, "nothing recorded to take back"

    await world.server.update_member(world.guild, carol, pending=False)    # they accept the rules
    await settled(world)
    assert bd.has_role(carol)
    [row] = bd.celebrations()
    assert row[5] == bd.role.id, "recorded, to be taken back after the day"
    again = await bd.run_pass()
    assert (again.roles_added, again.failures) == (0, 0)

    world.clock.advance(days=1)
    after_the_day = await bd.run_pass()
    assert after_the_day.roles_removed == 1 and not bd.has_role(carol)


async def test_a_member_who_passes_screening_while_the_pass_shows_other_birthdays_gets_the_role(
        bd: Birthdays) -> None:
    world = bd.world
    await bd.configure()
    carol, dave = world.server.add_user("carol"), world.server.add_user("dave")
    assert carol.id < dave.id  # the pass goes by member id: carol first
    await world.server.member_join(world.guild, carol, pending=True)
    await world.server.member_join(world.guild, dave)
    for member in (carol, dave):
        await world.live.birthdays.set(world.guild.id, member.id, 11, 26)
    world.clock.advance(days=1)

    def daves_announcement(method: str, path: str, body: Any) -> bool:
        return (method == "POST" and path == f"/channels/{bd.channel.id}/messages"
                and f"<@{dave.id}>" in str((body or {}).get("content")))

    async with world.server.holding_requests(daves_announcement) as slow:
        running = asyncio.ensure_future(bd.run_pass())
        await slow.arrived(within=5)                       # carol's turn is over
        await world.server.update_member(world.guild, carol, pending=False)   # she accepts the rules
        await settled(world)
        slow.release()
        report = await running
    await settled(world)
    assert (report.roles_added, report.failures) == (1, 0)
    assert bd.has_role(dave) and bd.has_role(carol)
    assert {row[0]: row[5] for row in bd.celebrations()} == {carol.id: bd.role.id, dave.id: bd.role.id}


async def test_a_member_who_passes_screening_after_their_birthday_gets_no_birthday_role(bd: Birthdays) -> None:
    world = bd.world
    carol, _ = await celebrate_in_screening(bd)
    world.clock.advance(days=1)
    await world.server.update_member(world.guild, carol, pending=False)
    await settled(world)
    assert not bd.has_role(carol)
    [row] = bd.celebrations()
    assert row[5] is None


async def test_a_member_who_leaves_takes_their_birthday_with_them(bd: Birthdays) -> None:
    world = bd.world
    await bd.configure()
    await set_birthday(world, world.alice, 11, 25, 1990)
    await set_birthday(world, world.bob, 11, 25)
    await world.live.birthdays.set(world.other_guild.id, world.bob.id, 11, 25)
    await bd.run_pass()
    assert rows_mentioning(world.tenant_file(world.guild), world.bob.id).get("birthday_celebrations") == 1

    await world.server.remove_member(world.guild, world.bob)
    await eventually(lambda: not rows_mentioning(world.tenant_file(world.guild), world.bob.id),
                     what="bob's birthday rows to be purged")
    assert [row[0] for row in bd.stored()] == [world.alice.id]
    assert rows_mentioning(world.tenant_file(world.other_guild), world.bob.id).get("birthdays") == 1
    listed = await world.command(world.alice, "birthday list")
    assert str(world.bob.id) not in listed.content


# ---- a restore ------------------------------------------------------------------------------------
# The nightly snapshot (03:30 UTC) is taken before the day's celebrations (09:00): what those did on
# Discord stays done whatever the restored file says.

async def snapshot_then_celebrate_alice(bd: Birthdays) -> str:
    """Alice's birthday is tomorrow (November 26): last night's snapshot, then her celebration at
    12:00 with the role. Returns the snapshot's id."""
    world = bd.world
    await bd.configure()
    await set_birthday(world, world.alice, 11, 26)
    world.clock.advance(hours=15, minutes=30)          # 2026-11-26 03:30 UTC: the nightly snapshot
    await take_nightly_snapshots(world)
    [snapshot] = snapshot_ids(world)
    world.clock.advance(hours=8, minutes=30)           # 12:00: Alice's day, after 09:00
    await bd.run_pass()
    assert bd.has_role(world.alice) and len(bd.announcements()) == 1
    return snapshot


async def restore(world: World, snapshot: str) -> None:
    reply = await world.command(world.admin, "backup restore", {"id": snapshot})
    assert reply.content.startswith(f"Restored snapshot `{snapshot}`"), reply.content


async def test_the_birthday_role_given_after_the_restored_snapshot_is_still_taken_back(bd: Birthdays) -> None:
    world = bd.world
    snapshot = await snapshot_then_celebrate_alice(bd)
    world.clock.advance(days=1)                        # the next day the owner restores last night's snapshot
    await restore(world, snapshot)
    await bd.run_pass()
    assert not bd.has_role(world.alice), "the birthday role is taken back"
    world.clock.advance(hours=12)
    await bd.run_pass()
    assert len(bd.announcements()) == 1


async def test_a_restore_on_the_birthday_does_not_celebrate_it_again(bd: Birthdays) -> None:
    world = bd.world
    snapshot = await snapshot_then_celebrate_alice(bd)
    world.clock.advance(hours=2)                       # 14:00: the owner restores last night's snapshot
    await restore(world, snapshot)
    assert bd.xp_of(world.alice) == 0, "the snapshot's XP, from before the celebration"
    world.clock.advance(hours=1)
    report = await bd.run_pass()                       # the next pass
    assert (report.celebrated, report.roles_added) == (0, 0)
    assert len(bd.announcements()) == 1
    assert bd.xp_of(world.alice) == 0, "the birthday XP is not awarded again"
    world.clock.advance(hours=12)                      # 03:00 the next day: the role of the day goes
    await bd.run_pass()
    assert not bd.has_role(world.alice)


async def test_a_restore_brings_back_no_celebration_of_a_member_who_erased_their_data(bd: Birthdays) -> None:
    world = bd.world
    snapshot = await snapshot_then_celebrate_alice(bd)
    await delete_my_data(world, world.alice)
    await restore(world, snapshot)
    assert set(rows_mentioning(world.tenant_file(world.guild), world.alice.id)) == {"member_erasures"}
    world.clock.advance(days=1)
    await bd.run_pass()
    assert not bd.has_role(world.alice) and len(bd.announcements()) == 1


async def test_a_restore_keeps_the_celebration_of_a_member_who_came_back_after_erasing(bd: Birthdays) -> None:
    world = bd.world
    snapshot = await snapshot_then_celebrate_alice(bd)
    await delete_my_data(world, world.alice)
    await set_birthday(world, world.alice, 11, 26)     # set again: celebrated again, with the role
    await eventually(lambda: bd.has_role(world.alice), what="the second celebration's role")
    # The restore erases her again in the snapshot, then keeps the celebration that came after.
    await restore(world, snapshot)
    assert set(rows_mentioning(world.tenant_file(world.guild), world.alice.id)) == {
        "member_erasures", "birthday_celebrations"}
    world.clock.advance(days=1)
    await bd.run_pass()
    assert not bd.has_role(world.alice), "the role of the second celebration is taken back"


async def test_a_restore_brings_back_no_celebration_of_a_member_who_left(bd: Birthdays) -> None:
    world = bd.world
    snapshot = await snapshot_then_celebrate_alice(bd)
    await world.server.remove_member(world.guild, world.alice)
    await eventually(lambda: not rows_mentioning(world.tenant_file(world.guild), world.alice.id),
                     what="alice's rows to be purged")
    await restore(world, snapshot)
    assert bd.celebrations() == []
