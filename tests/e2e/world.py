"""A running MalaBot on the local Discord-compatible server: two servers, a few members, real files.

`World` is what the e2e tests talk to: it starts the same service graph `malabot run` builds (on a
temporary tenants folder), the real MalaBot class, and lets a test chat, use commands and restart.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from malabot.app import Services, Waits, build_bot, build_services, start_services, stop_services
from malabot.bot import MalaBot
from malabot.clock import MovableClock
from malabot.cogs.birthdays import BIRTHDAY_PASS_NOW
from malabot.sandbox import (
    Channel,
    FakeDiscord,
    Guild,
    InteractionReply,
    Role,
    User,
    running_bot,
    sandbox_client_options,
)
from malabot.sandbox.payloads import role_payload
from malabot.sandbox.permissions import Permission
from malabot.settings import Settings

# The bot's waits shortened for tests about the order of events rather than their lengths, in
# production's order: the watchdog defers well before Discord's deadline, which comes before the busy
# timeout gives up on a locked file (2 s < 3 s < 5 s in production). test_slow_commands keeps a test
# at the real pace, and tests/unit/test_waits.py pins the production values.
QUICK = Waits(defer_after=0.7, busy_timeout_ms=2000, owed_retry_seconds=0.5, wipe_retry_seconds=0.5)
QUICK_ANSWER_DEADLINE = 1.3  # the sandbox's Discord deadline with QUICK waits


def marked_quick(request: pytest.FixtureRequest) -> bool:
    """Whether the test is marked `quick`: its world runs with QUICK waits and QUICK_ANSWER_DEADLINE."""
    return request.node.get_closest_marker("quick") is not None


@dataclass
class World:
    server: FakeDiscord
    tenants_dir: Path
    clock: MovableClock
    guild: Guild
    other_guild: Guild
    general: Channel
    other_general: Channel
    admin: User
    alice: User
    bob: User           # a member of both servers
    waits: Waits = Waits()
    services: Services | None = None
    bot: MalaBot | None = None
    _stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    @property
    def running(self) -> MalaBot:
        assert self.bot is not None, "the bot is not running"
        return self.bot

    @property
    def live(self) -> Services:
        assert self.services is not None, "the bot is not running"
        return self.services

    async def start(self, *, member_lists: bool = True) -> MalaBot:
        """Start the bot; return once every server's file is open and (`member_lists`) every member
        list asked for at start is in, with the purges and catch-ups that follow each."""
        settings = Settings(tenants_dir=self.tenants_dir, api_base_url=self.server.api_base_url,
                            token=self.server.token)
        services = build_services(settings, clock=self.clock, monotonic=self.clock.monotonic, waits=self.waits)
        await start_services(services)
        self._stack.push_async_callback(stop_services, services)
        bot = build_bot(services, **sandbox_client_options())
        self.services, self.bot = services, bot  # type: ignore[assignment]
        await self._stack.enter_async_context(running_bot(self.server, bot))
        await asyncio.wait_for(bot.guilds_opened.wait(), timeout=10)
        if member_lists:
            await asyncio.wait_for(bot.member_lists.settled.wait(), timeout=10)
            await settled(self)  # and what each list's arrival set off (the birthday pass, say)
        return bot  # type: ignore[return-value]

    async def stop(self) -> None:
        await self._stack.aclose()
        self._stack = contextlib.AsyncExitStack()
        self.services, self.bot = None, None

    async def restart(self) -> MalaBot:
        await self.stop()
        return await self.start()

    async def command(self, user: User, name: str, options: dict[str, Any] | None = None, *,
                      guild: Guild | None | str = "default", channel: Channel | None = None) -> InteractionReply:
        where = self.guild if guild == "default" else guild
        place = channel if channel is not None else (self.general if where is self.guild else
                                                     self.other_general if where is self.other_guild else None)
        return await self.server.invoke_command(where, place, user, name, options)

    def lose_next_answer(self, *, deferred: bool = False) -> None:
        """Discord fails the next answer to a command past py-cord's retries (five 429s in a row): its
        first response, or (`deferred`) the follow-up after its deferral. (A 5xx on a first response
        would make py-cord wait out Discord's 3 s deadline, and no answer at all would arrive.)"""
        app_id = self.server.application_id

        def is_answer(method: str, path: str, body: Any) -> bool:
            return method == "POST" and (path.startswith(f"/webhooks/{app_id}/") if deferred
                                         else path.endswith("/callback"))

        self.server.rate_limit(is_answer, times=5, retry_after=0.01)

    def tenant_file(self, guild: Guild) -> Path:
        return self.tenants_dir / f"{guild.id}.sqlite3"

    def bot_role(self) -> Role:
        """The bot's own role in the main server (it starts with every permission, Administrator too)."""
        guild = self.server.guild(self.guild)
        return next(role for role in guild.roles.values() if role.bot_id == self.server.bot_user.id)

    async def set_bot_permissions(self, permissions: int) -> None:
        """Change the bot's role as an admin would (the bot hears GUILD_ROLE_UPDATE)."""
        role = self.bot_role()
        role.permissions = int(permissions)
        await self.server.dispatch("GUILD_ROLE_UPDATE", {"guild_id": str(self.guild.id),
                                                         "role": role_payload(role)}, guild_id=self.guild.id)


async def make_world(server: FakeDiscord, tmp_path: Path, *,
                     start: datetime = datetime(2026, 11, 25, 12, 0, tzinfo=UTC),
                     prepare: Callable[[World], None] | None = None,
                     quick: bool = False) -> AsyncIterator[World]:
    """`quick`: the bot waits QUICK, and Discord's deadline is QUICK_ANSWER_DEADLINE."""
    if quick:
        server.answer_deadline = QUICK_ANSWER_DEADLINE
    clock = MovableClock(start)
    server.world.now = clock  # members join on the bot's day (restores compare it with snapshot times)
    admin = server.add_user("admin")
    guild = server.add_guild("Mala Town", owner=admin)
    other = server.add_guild("Elsewhere")
    alice, bob = server.add_user("alice"), server.add_user("bob")
    moderators = server.add_role(guild, "Moderators", permissions=int(Permission.MANAGE_GUILD))
    server.add_member(guild, alice)
    server.add_member(guild, bob, roles=[moderators])
    server.add_member(other, bob)
    world = World(server=server, tenants_dir=tmp_path / "tenants", clock=clock, guild=guild,
                  other_guild=other, general=server.channel(guild.system_channel_id),
                  other_general=server.channel(other.system_channel_id), admin=admin, alice=alice, bob=bob,
                  waits=QUICK if quick else Waits())
    if prepare is not None:
        prepare(world)
    await world.start()
    try:
        yield world
    finally:
        await world.stop()


# Task names of py-cord's event handlers, of view (button) callbacks, and of the work chat XP leaves
# behind a finished listener (reading members' stored totals, then their level-ups).
BOT_TASK_PREFIXES = ("pycord: on_", "discord-ui-view-dispatch", "xp-load-totals", "xp-level-up", BIRTHDAY_PASS_NOW)


async def settled(world: World, *, within: float = 5.0) -> None:
    """Return once the bot has parsed every gateway event sent so far and finished handling them,
    including events its own actions caused (the MESSAGE_CREATE of a level-up message) and the member
    lists it asked for meanwhile (a server back from an outage, say)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        await world.server.sync_with_bot()
        busy = {task for task in asyncio.all_tasks()
                if task is not asyncio.current_task() and not task.done()
                and task.get_name().startswith(BOT_TASK_PREFIXES)}
        lists = world.running.member_lists.settled
        if not busy and lists.is_set():
            return
        if loop.time() > deadline:
            waiting = sorted(t.get_name() for t in busy) + ([] if lists.is_set() else ["member lists"])
            raise AssertionError(f"the bot is still busy with {waiting}")
        if busy:
            await asyncio.wait(busy, timeout=max(deadline - loop.time(), 0.01))
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lists.wait(), timeout=max(deadline - loop.time(), 0.01))
