"""The order and the bookkeeping of loading member lists after a start (malabot.member_list_loading).

py-cord's side is a small stand-in here: which requests are sent in which order, and what happens as
their answers come, in any order or never. The whole path through py-cord and the sandbox is in
tests/e2e/test_lifecycle.py."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from malabot.member_list_loading import MemberListLoader


@dataclass
class StandInGuild:
    id: int
    chunked: bool = False
    unavailable: bool = False
    me: Any = None
    members: list[Any] = field(default_factory=list)   # none cached here

    def get_member(self, user_id: int) -> Any:
        return None


@dataclass
class StandInConnection:
    """py-cord's connection state: `chunk_guild(wait=False)` sends a request and returns its answer's future."""

    asked: list[int] = field(default_factory=list)
    asked_at: list[float] = field(default_factory=list)
    answers: dict[int, asyncio.Future[list[Any]]] = field(default_factory=dict)
    _chunk_requests: dict[int, Any] = field(default_factory=dict)  # none kept here: nothing to give up

    async def chunk_guild(self, guild: StandInGuild, *, wait: bool) -> asyncio.Future[list[Any]]:
        assert wait is False
        self.asked.append(guild.id)
        self.asked_at.append(time.monotonic())
        return self.answers.setdefault(guild.id, asyncio.get_running_loop().create_future())

    def answer(self, guild: StandInGuild) -> None:
        guild.chunked = True
        self.answers[guild.id].set_result([])


class StandInBot:
    def __init__(self, *guilds: StandInGuild) -> None:
        self.guilds = {guild.id: guild for guild in guilds}
        self._connection = StandInConnection()
        self.ws = object()  # the gateway connection requests go out on

    def get_guild(self, guild_id: int) -> StandInGuild | None:
        return self.guilds.get(guild_id)


async def loader_for(bot: StandInBot, *, wait_seconds: float = 5.0,
                     **pacing: Any) -> tuple[MemberListLoader, list[int]]:
    loader = MemberListLoader(bot, wait_seconds=wait_seconds, **pacing)  # type: ignore[arg-type]
    arrived: list[int] = []

    async def record(guild: Any) -> None:
        arrived.append(guild.id)

    loader.when_arrived(record)
    return loader, arrived


async def until_idle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_server_loaded_first_is_asked_for_before_those_already_queued() -> None:
    first, second, joined = StandInGuild(1), StandInGuild(2), StandInGuild(3)
    bot = StandInBot(first, second, joined)
    loader, _ = await loader_for(bot)
    loader.load([first, second])
    loader.load_first(joined)
    await until_idle()
    assert bot._connection.asked == [3, 1, 2]
    loader.close()


async def test_each_server_is_handed_over_as_its_own_list_comes_and_the_loading_then_settles(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="malabot.member_list_loading")
    guilds = [StandInGuild(number) for number in (1, 2, 3)]
    bot = StandInBot(*guilds)
    loader, arrived = await loader_for(bot)
    assert not loader.settled.is_set(), "a start is not over before its first load"
    loader.load(guilds)
    await until_idle()
    bot._connection.answer(guilds[2])
    bot._connection.answer(guilds[0])
    await until_idle()
    assert arrived == [3, 1]
    assert not loader.settled.is_set()
    bot._connection.answer(guilds[1])
    await asyncio.wait_for(loader.settled.wait(), timeout=1)
    assert arrived == [3, 1, 2]
    [summary] = [record.getMessage() for record in caplog.records]
    assert summary.startswith("member lists: 3 of 3 servers complete in ")
    assert summary.endswith(" s (0 did not arrive in time)")


async def test_a_list_that_never_comes_is_given_up_and_the_others_still_count(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="malabot.member_list_loading")
    silent, answered = StandInGuild(1), StandInGuild(2)
    bot = StandInBot(silent, answered)
    loader, arrived = await loader_for(bot, wait_seconds=0.05)
    loader.load([silent, answered])
    await until_idle()
    bot._connection.answer(answered)
    await asyncio.wait_for(loader.settled.wait(), timeout=1)
    assert arrived == [2]
    assert "guild 1: its member list did not arrive within" in caplog.text
    assert "member lists: 1 of 2 servers complete in " in caplog.text
    assert "(1 did not arrive in time)" in caplog.text


async def test_complete_servers_are_handed_over_unasked_and_gone_or_unavailable_ones_skipped() -> None:
    complete, out, gone = StandInGuild(1, chunked=True), StandInGuild(2, unavailable=True), StandInGuild(3)
    bot = StandInBot(complete, out)
    loader, arrived = await loader_for(bot)
    loader.load([complete, out, gone])
    await asyncio.wait_for(loader.settled.wait(), timeout=1)
    assert bot._connection.asked == [] and arrived == [1]


async def test_loading_nothing_settles_at_once() -> None:
    loader, _ = await loader_for(StandInBot())
    loader.load([])
    assert loader.settled.is_set()


async def test_requests_keep_within_their_rate_over_any_window() -> None:
    """Below py-cord's own gateway limit, so that nothing else the bot sends waits behind the loading."""
    guilds = [StandInGuild(number) for number in range(5)]
    bot = StandInBot(*guilds)
    loader, _ = await loader_for(bot, requests_per_window=2, window_seconds=0.2)
    loader.load(guilds)
    await eventually_asked(bot, 5)
    times = bot._connection.asked_at
    assert all(later - earlier >= 0.19 for earlier, later in zip(times, times[2:], strict=False)), times
    assert times[1] - times[0] < 0.1, "within the rate, no wait"
    loader.close()


async def test_a_new_session_drops_the_queue_until_its_on_ready_loads_again() -> None:
    """From READY to on_ready the servers are being sent afresh: nothing queued before is asked for."""
    old, again = StandInGuild(1), StandInGuild(2)
    bot = StandInBot(old, again)
    loader, _ = await loader_for(bot)
    loader.load([old])
    loader.new_session()
    loader.load_first(again)  # a server back meanwhile waits for on_ready too
    await until_idle()
    assert bot._connection.asked == []
    loader.load([old])
    await eventually_asked(bot, 2)
    assert bot._connection.asked == [2, 1]
    loader.close()


async def eventually_asked(bot: StandInBot, count: int) -> None:
    for _ in range(200):
        if len(bot._connection.asked) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"asked for {bot._connection.asked}, expected {count} requests")


async def test_a_list_that_came_out_of_date_is_asked_for_once_more_then_given_up(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="malabot.member_list_loading")
    guild = StandInGuild(1)
    bot = StandInBot(guild)
    loader, arrived = await loader_for(bot)
    loader.load([guild])
    await until_idle()
    bot._connection.answers.pop(1).set_result([])     # answered, yet not matching the member count
    await until_idle()
    assert bot._connection.asked == [1, 1]
    bot._connection.answers.pop(1).set_result([])
    await asyncio.wait_for(loader.settled.wait(), timeout=1)
    assert bot._connection.asked == [1, 1] and arrived == []
    assert "guild 1: its member list came out of date; asking for it once more" in caplog.text
    assert "member lists: 0 of 2 servers complete in " in caplog.text


async def test_leaves_are_remembered_only_while_the_servers_list_is_on_its_way() -> None:
    awaited, done = StandInGuild(1), StandInGuild(2, chunked=True)
    bot = StandInBot(awaited, done)
    loader, _ = await loader_for(bot)
    loader.load([awaited, done])
    await until_idle()
    loader.member_left(2, 20)                          # its list is in: py-cord's cache is right
    loader.member_left(1, 10)
    loader.member_left(1, 11)
    loader.member_joined(1, 11)                        # back before the list came
    assert loader._left_meanwhile == {1: {10}}
    bot._connection.answer(awaited)
    await asyncio.wait_for(loader.settled.wait(), timeout=1)
    assert loader._left_meanwhile == {}
