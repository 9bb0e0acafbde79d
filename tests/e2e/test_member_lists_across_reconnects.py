"""Member-list loading across a dropped connection, through the real py-cord client.

A request waits its turn in py-cord's gateway rate limit (spent here on purpose: `spend_rate_limit`);
the connection drops meanwhile. py-cord keeps a request pending until its answer comes and lets every
later wait for that server join it, so a request that could not be sent must be given up and sent
again, and a server must be handed over (purge, `on_member_list_complete`) once per list, not twice.
The sandbox's event barrier is turned off around the drop (`sync_events`): py-cord answers it through
the same spent limit, which would hold its reader up as nothing on Discord does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import discord
import pytest

from malabot.member_lists import complete_member_list
from malabot.sandbox import FakeDiscord
from tests.e2e.data_dump import eventually
from tests.e2e.world import World, make_world, settled


@pytest.fixture
async def world(discord_server: FakeDiscord, tmp_path: Path) -> AsyncIterator[World]:
    async for running in make_world(discord_server, tmp_path):
        yield running


def spend_rate_limit(bot: discord.Client, seconds: float) -> None:
    """py-cord's gateway limit used up for `seconds` (up to a minute live): the next payload waits."""
    limiter = bot.ws._rate_limiter
    limiter.per, limiter.remaining, limiter.window = seconds, 0, time.time()


async def no_pause_before_identify(shard_id: int | None, *, initial: bool = False) -> None:
    """Instead of py-cord's 5 s pause before every IDENTIFY but the first."""


def record_hand_overs(bot: discord.Client) -> list[str]:
    events: list[str] = []

    async def on_member_list_complete(guild: discord.Guild) -> None:
        events.append(f"complete {guild.id}")

    async def on_ready() -> None:
        events.append("ready")

    bot.add_listener(on_member_list_complete)
    bot.add_listener(on_ready)
    return events


async def test_a_request_that_fails_after_the_resume_is_sent_again(world: World) -> None:
    bot = world.running
    await world.server.guild_outage(world.guild)
    spend_rate_limit(bot, 3.0)
    resumed = asyncio.ensure_future(bot.wait_for("resumed", timeout=10))
    world.server.sync_events = False
    await world.server.end_guild_outage(world.guild)  # its list asked for first, waiting its turn
    await eventually(bot.ws._rate_limiter.lock.locked, what="the request waiting in the rate limit")
    await world.server.disconnect_bot(resumable=True)
    await resumed  # before the old connection's send fails
    world.server.sync_events = True
    await eventually(lambda: bot.get_guild(world.guild.id).chunked, within=10,
                     what="the server's list asked for again on the new connection")
    await settled(world)


async def test_a_list_asked_for_by_a_command_that_could_not_be_sent_leaves_nothing_pending(world: World) -> None:
    """`/xp reset all` asks for the list itself; its send fails as the connection drops. The loading
    must not later join that request (never sent, never answered)."""
    bot = world.running
    guild = bot.get_guild(world.guild.id)
    guild._remove_member(guild.get_member(world.alice.id))  # the list not complete, as after a start
    spend_rate_limit(bot, 3.0)
    world.server.sync_events = False
    resumed = asyncio.ensure_future(bot.wait_for("resumed", timeout=10))
    asked = asyncio.ensure_future(complete_member_list(guild, within=30))
    await eventually(bot.ws._rate_limiter.lock.locked, what="its request waiting in the rate limit")
    await world.server.disconnect_bot(resumable=True)
    await resumed
    world.server.sync_events = True
    assert await asked is False
    assert world.guild.id not in bot._connection._chunk_requests
    await world.server.guild_outage(world.guild)
    await world.server.end_guild_outage(world.guild)  # the loading asks for its list first
    await eventually(lambda: bot.get_guild(world.guild.id).chunked, within=8, what="the list after its return")


async def test_a_new_session_hands_each_server_over_once_and_only_after_its_on_ready(world: World) -> None:
    bot = world.running
    bot.before_identify_hook = no_pause_before_identify  # type: ignore[method-assign]
    events = record_hand_overs(bot)
    await world.server.guild_outage(world.guild)
    await world.server.guild_outage(world.other_guild)
    bot._connection.guild_ready_timeout = 1.0  # on_ready comes a while after READY, as live (2 s)
    spend_rate_limit(bot, 1.0)
    world.server.sync_events = False
    await world.server.end_guild_outage(world.guild)        # both back, both lists queued,
    await world.server.end_guild_outage(world.other_guild)  # the first waiting its turn
    await eventually(bot.ws._rate_limiter.lock.locked, what="a request waiting in the rate limit")
    ready = asyncio.ensure_future(bot.wait_for("ready", timeout=15))
    await world.server.disconnect_bot(resumable=False)
    await ready
    world.server.sync_events = True
    await eventually(lambda: len(events) >= 3, within=10, what="both servers handed over after on_ready")
    await settled(world)
    assert events[0] == "ready", f"handed over before the new session's on_ready: {events}"
    assert sorted(events[1:]) == sorted([f"complete {world.guild.id}", f"complete {world.other_guild.id}"])


async def test_a_request_lost_with_a_session_is_not_sent_again_at_a_later_resume(world: World) -> None:
    bot = world.running
    bot.before_identify_hook = no_pause_before_identify  # type: ignore[method-assign]
    events = record_hand_overs(bot)
    await world.server.guild_outage(world.guild)
    spend_rate_limit(bot, 2.0)
    world.server.sync_events = False
    ready = asyncio.ensure_future(bot.wait_for("ready", timeout=15))
    await world.server.end_guild_outage(world.guild)
    await eventually(bot.ws._rate_limiter.lock.locked, what="the request waiting in the rate limit")
    await world.server.disconnect_bot(resumable=False)
    await ready
    world.server.sync_events = True
    await asyncio.sleep(2.5)  # the old connection's send has failed by now
    await settled(world)
    handed_over = events.count(f"complete {world.guild.id}")
    resumed = asyncio.ensure_future(bot.wait_for("resumed", timeout=10))
    await world.server.disconnect_bot(resumable=True)
    await resumed
    await settled(world)
    assert events.count(f"complete {world.guild.id}") == handed_over == 1
