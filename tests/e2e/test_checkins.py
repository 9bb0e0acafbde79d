"""Daily check-ins through the real bot: once per server-local day, streaks and their reward, two
check-ins at the same instant, level-ups from the reward, /streak and the streak leaderboard.

The world starts on Wednesday 2026-11-25 at 12:00 UTC.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from malabot.sandbox import FakeDiscord, InteractionReply, User
from tests.e2e.data_dump import all_rows
from tests.e2e.xp_place import Place, make_place, settled


@pytest.fixture
async def place(discord_server: FakeDiscord, tmp_path: Path) -> AsyncIterator[Place]:
    async for made in make_place(discord_server, tmp_path):
        yield made


async def check_in(place: Place, user: User) -> InteractionReply:
    reply = await place.world.command(user, "checkin")
    await settled(place.world)
    return reply


def checkin_days(place: Place) -> list[tuple[object, ...]]:
    return all_rows(place.file)["checkin_days"]


async def test_checkin_once_a_day_with_a_growing_streak(place: Place) -> None:
    world, alice = place.world, place.world.alice
    first = await check_in(place, alice)
    assert not first.ephemeral
    assert first.content == "✅ Checked in for Wednesday 25 November: +50 XP, streak 1 day."

    again = await check_in(place, alice)
    assert again.ephemeral
    assert again.content == "You already checked in today. Your next check-in opens in 12h 00m."

    world.clock.advance(days=1)
    second = await check_in(place, alice)
    assert second.content == "✅ Checked in for Thursday 26 November: +60 XP, streak 2 days."

    world.clock.advance(days=2)                     # Friday missed: the streak starts again
    third = await check_in(place, alice)
    assert third.content == "✅ Checked in for Saturday 28 November: +50 XP, streak 1 day (best 2 days)."
    assert await place.stored_xp() == {alice.id: 160}
    assert sorted(row[1] for row in checkin_days(place)) == ["2026-11-25", "2026-11-26", "2026-11-28"]


async def test_streak_bonus_stops_growing_after_seven_days(place: Place) -> None:
    rewards = []
    for _ in range(10):
        reply = await check_in(place, place.world.alice)
        rewards.append(int(reply.content.split("+")[1].split(" ")[0]))
        place.world.clock.advance(days=1)
    assert rewards == [50, 60, 70, 80, 90, 100, 110, 120, 120, 120]
    assert await place.stored_xp() == {place.world.alice.id: sum(rewards)}


async def test_the_day_is_the_servers_calendar_day(place: Place) -> None:
    world = place.world
    reply = await world.command(world.admin, "config set", {"setting": "timezone", "value": "Pacific/Auckland"})
    assert reply.ephemeral and "Pacific/Auckland" in reply.content
    # 12:00 UTC is 01:00 on Thursday the 26th in Auckland (UTC+13 in November).
    first = await check_in(place, world.alice)
    assert "Thursday 26 November" in first.content

    world.clock.advance(hours=12)                   # a new day in UTC, but 13:00 the same day in Auckland
    assert (await check_in(place, world.alice)).ephemeral
    world.clock.advance(hours=10, minutes=59)       # 23:59 in Auckland
    assert (await check_in(place, world.alice)).ephemeral
    world.clock.advance(minutes=1)                  # Auckland midnight (11:00 UTC)
    after_midnight = await check_in(place, world.alice)
    assert after_midnight.content == "✅ Checked in for Friday 27 November: +60 XP, streak 2 days."


async def test_two_checkins_at_the_same_instant_reward_once(place: Place) -> None:
    alice = place.world.alice
    replies = await asyncio.gather(place.world.command(alice, "checkin"), place.world.command(alice, "checkin"))
    await settled(place.world)

    assert sorted(reply.ephemeral for reply in replies) == [False, True]
    refused = next(reply for reply in replies if reply.ephemeral)
    assert refused.content.startswith("You already checked in today.")
    assert await place.stored_xp() == {alice.id: 50}
    assert len(checkin_days(place)) == 1


async def test_a_reward_that_levels_up_is_announced_and_gives_the_level_role(place: Place) -> None:
    world = place.world
    await place.give_level_roles()
    await world.live.xp_admin.set(world.guild.id, world.admin.id, world.alice.id, 80)
    await check_in(place, world.alice)              # 130 XP: level 1
    assert [m.content for m in place.bot_messages()][-1] == f"GG <@{world.alice.id}>, you reached level 1!"
    assert place.roles_of(world.alice) == {place.level_roles[0].id}


async def test_streak_shows_a_nickname_with_markdown_as_typed(place: Place) -> None:
    world = place.world
    await world.server.update_member(world.guild, world.alice, nick="**Luna** ~~x")
    reply = await world.command(world.alice, "streak")
    assert reply.content.startswith("**\\*\\*Luna\\*\\* \\~\\~x** has never checked in."), reply.content


async def test_streak_shows_current_and_best(place: Place) -> None:
    world = place.world
    never = await world.command(world.alice, "streak")
    assert never.content == "**alice** has never checked in. `/checkin` starts a streak."
    for _ in range(3):
        await check_in(place, world.bob)
        world.clock.advance(days=1)
    shown = await world.command(world.alice, "streak", {"member": world.bob})
    assert not shown.ephemeral
    assert shown.content == ("🔥 **bob**: current streak 3 days, best 3 days, 3 check-ins in all "
                             "(not checked in yet today).")
    world.clock.advance(days=1)                     # a day missed: the current streak is gone
    shown = await world.command(world.bob, "streak")
    assert shown.content.startswith("🔥 **bob**: current streak 0 days, best 3 days")
    robot = await world.command(world.alice, "streak", {"member": place.robot})
    assert robot.ephemeral and robot.content == "Bots do not earn XP or check in."


async def test_checkin_leaderboard_current_and_best_without_checking_in(place: Place) -> None:
    world = place.world
    alice, bob, carol = world.alice, world.bob, place.carol
    for day in range(4):                            # bob: 4 days in a row; alice: the first 2 only
        await check_in(place, bob)
        if day < 2:
            await check_in(place, alice)
        world.clock.advance(days=1)
    await check_in(place, carol)                    # carol starts today; bob checked in yesterday

    current = await world.command(alice, "checkin", {"leaderboard": "current"})
    assert not current.ephemeral
    assert current.embeds[0]["title"] == "Current check-in streaks"
    assert current.embeds[0]["description"].splitlines() == [
        f"**1.** <@{bob.id}> — 4 days", f"**2.** <@{carol.id}> — 1 day"]
    best = await world.command(alice, "checkin", {"leaderboard": "best"})
    assert best.embeds[0]["description"].splitlines() == [
        f"**1.** <@{bob.id}> — 4 days", f"**2.** <@{alice.id}> — 2 days", f"**3.** <@{carol.id}> — 1 day"]
    assert not any(row[0] == alice.id and row[1] == "2026-11-29" for row in checkin_days(place)), \
        "showing the board checks nobody in"

    paged = await world.command(alice, "checkin", {"page": 1})
    assert paged.embeds[0]["title"] == "Current check-in streaks"
    zero = await world.command(alice, "checkin", {"leaderboard": "best", "page": 0})
    assert zero.ephemeral and zero.content == "The page number must be 1 or more."
    empty = await world.command(alice, "checkin", {"leaderboard": "best", "page": 2})
    assert empty.ephemeral and empty.content == "Page 2 is empty: the leaderboard is shorter than that."


async def test_moving_the_timezone_east_keeps_the_streak_of_a_member_who_missed_nothing(place: Place) -> None:
    world, alice = place.world, place.world.alice
    await check_in(place, alice)                    # Wed 25 Nov 12:00 UTC, the server on the default UTC
    world.clock.advance(days=1, hours=11, minutes=30)
    await check_in(place, alice)                    # Thu 26 Nov 23:30 UTC: Fri 27 08:30 in Tokyo
    world.clock.advance(hours=16)                   # Fri 27 15:30 UTC: Sat 28 00:30 in Tokyo
    await world.command(world.admin, "config set", {"setting": "timezone", "value": "Asia/Tokyo"})

    # By Tokyo's calendar Alice's last check-in was yesterday: her streak is alive, and /streak, the
    # board and her next check-in agree.
    shown = await world.command(alice, "streak")
    assert shown.content.startswith("🔥 **alice**: current streak 2 days, best 2 days")
    board = await world.command(alice, "checkin", {"leaderboard": "current"})
    assert board.embeds[0]["description"].splitlines() == [f"**1.** <@{alice.id}> — 2 days"]
    third = await check_in(place, alice)
    assert third.content == "✅ Checked in for Saturday 28 November: +70 XP, streak 3 days."
