"""Loading every server's member list after a start without holding the start up.

Without the GUILD_PRESENCES intent, Discord's GUILD_CREATE carries no member list (only the bot's own
member), so every server's list must be asked for over the gateway (op 8), and the gateway takes
about 110 such requests a minute. py-cord's own start-up chunking asks for them all before it fires
on_ready, and then waits up to 5 s for each in turn: with 1,000 servers, nine minutes or more during
which no file is opened, no scheduled job runs and nobody who left while the bot was offline is
purged. So the bot turns that chunking off (`chunk_guilds_at_startup=False`) and loads the lists
here instead, after on_ready: one request at a time through py-cord's rate limit, a server the bot
just joined or that is back from an outage ahead of the rest, and each server handed to `arrived`
as soon as its own list is in, not once all are.

It uses py-cord's connection state (`chunk_guild(wait=False)`: send the request, get the future of
its answer), which has no public form; `MemberListRetry` (member_lists.py) asks again for a list
Discord refused, which completes the same future. py-cord keeps a request pending until its answer
comes, and every later wait for that server joins it: so one that could not be sent (disconnected)
or was not answered in time is given up, the former sent again after a RESUME (a new session's
on_ready loads every server again anyway). A member who leaves while a list is on its way is heard
before chunks built earlier that still name them, and py-cord caches them from those: they are
dropped once the list is in, so that it matches the server's member count.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import discord

from malabot.member_lists import drop_cached_members, give_up_member_list_request

log = logging.getLogger(__name__)

# How long a server's list may take once asked for (py-cord's own wait is 60 s; a refused request
# is asked again after up to 30 s).
MEMBER_LIST_WAIT_SECONDS = 120.0
# A progress line this often while a long load runs (a start with hundreds of servers).
PROGRESS_EVERY = 100
# Requests sent per minute at most: py-cord's gateway limit is 110, and a payload that finds it spent
# waits, even py-cord's answer to Discord asking for a heartbeat, which holds up every event meanwhile.
# Kept below it, the rest of the bot never waits for the loading.
REQUESTS_PER_MINUTE = 100

Arrived = Callable[[discord.Guild], Awaitable[None]]


@dataclass
class LoadingTally:
    """What one run of loading (from idle back to idle) did, for its progress lines and summary."""

    started: float
    asked: int = 0
    arrived: int = 0
    given_up: int = 0

    def summary(self) -> str:
        return (f"member lists: {self.arrived} of {self.asked} servers complete in "
                f"{time.monotonic() - self.started:.1f} s ({self.given_up} did not arrive in time)")


async def _nothing_to_do(guild: discord.Guild) -> None:
    return None


class MemberListLoader:
    """Asks Discord for servers' member lists in order, and calls `arrived(guild)` once each is in.

    `settled` is set whenever nothing is queued or awaited: every list asked for has arrived or was
    given up on. `close()` stops the loading (a stop, or the end of the client)."""

    def __init__(self, bot: discord.Client, *, wait_seconds: float = MEMBER_LIST_WAIT_SECONDS,
                 requests_per_window: int = REQUESTS_PER_MINUTE, window_seconds: float = 60.0) -> None:
        self._bot = bot
        self._arrived: Arrived = _nothing_to_do
        self._wait_seconds = wait_seconds
        self._requests_per_window, self._window_seconds = requests_per_window, window_seconds
        self._sent_at: collections.deque[float] = collections.deque()  # when the last requests went
        self._paused = False  # from a new session's READY until its on_ready loads every server
        self._closed = False
        self._queue: collections.deque[int] = collections.deque()
        self._queued = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()  # waits for answers, hand-overs
        self._sender: asyncio.Task[None] | None = None
        self._sending = False
        self._answer_awaited: set[int] = set()  # servers whose request is sent and its answer awaited
        self._unsent: set[int] = set()   # servers whose request failed to go out (disconnected)
        self._sent_on: dict[int, object] = {}  # the connection each awaited request went out on
        self._ask_again: set[int] = set()  # awaited requests given up at a RESUME: asked for anew
        self._out_of_date: set[int] = set()  # lists that came not matching the member count (once each)
        # Members heard leaving a server while its list was on its way: chunks built before the leave
        # still name them, and py-cord caches them after the leave. Dropped once the list is in.
        self._left_meanwhile: dict[int, set[int]] = {}
        self._tally: LoadingTally | None = None
        # Clear until the first load (on_ready's) is done: a start is not over before that.
        self.settled = asyncio.Event()

    def when_arrived(self, arrived: Arrived) -> None:
        """Call `arrived(guild)` for each server whose list is complete (the purge of who left unheard)."""
        self._arrived = arrived

    def load(self, guilds: Iterable[discord.Guild]) -> None:
        """Queue these servers' lists behind those already queued (a start: every server)."""
        self._paused = False
        queued = set(self._queue)
        for guild in guilds:
            self._unsent.discard(guild.id)
            if guild.id not in queued:
                self._queue.append(guild.id)
                queued.add(guild.id)
        self._wake()

    def load_first(self, guild: discord.Guild) -> None:
        """Queue this server's list ahead of the others (just joined, or back from an outage)."""
        if guild.id in self._queue:
            self._queue.remove(guild.id)
        self._queue.appendleft(guild.id)
        self._wake()

    def ask_again_after_resume(self) -> None:
        """The connection is back (RESUME): ask again for the lists whose request could not be sent,
        and for those awaited since before: py-cord drops a send silently once the connection is
        closing, and Discord replays events, not requests it never got. (An answer it did send
        before comes back before RESUMED, and then nothing is asked again.)"""
        current = self._bot.ws
        for guild_id in [guild_id for guild_id in self._answer_awaited if self._sent_on.get(guild_id) is not current]:
            self._ask_again.add(guild_id)
            give_up_member_list_request(self._bot._connection, guild_id)  # its wait ends, and asks anew
        unsent, self._unsent = self._unsent, set()
        self.load(guild for guild_id in sorted(unsent)
                  if (guild := self._bot.get_guild(guild_id)) is not None and not guild.chunked)

    def new_session(self) -> None:
        """A new session (READY): the servers are being sent afresh and its on_ready loads them all;
        nothing queued for the old one is asked for meanwhile (it would be handed over twice)."""
        self._queue.clear()
        self._unsent.clear()
        self._out_of_date.clear()
        self._paused = True

    def member_left(self, guild_id: int, user_id: int) -> None:
        """A member left (heard on the gateway): if the server's list is on its way, chunks built
        before the leave may still name them; they are dropped from it once it is in."""
        if guild_id in self._answer_awaited:
            self._left_meanwhile.setdefault(guild_id, set()).add(user_id)

    def member_joined(self, guild_id: int, user_id: int) -> None:
        self._left_meanwhile.get(guild_id, set()).discard(user_id)  # back: a member again

    def close(self) -> None:
        self._closed = True
        self._queue.clear()
        for task in [self._sender, *self._tasks]:
            if task is not None:
                task.cancel()

    def _wake(self) -> None:
        if self._closed:
            return
        if not self._queue:
            self._settle_if_idle()
            return
        if self._tally is None:
            self._tally = LoadingTally(time.monotonic())
        self.settled.clear()
        self._queued.set()
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_requests(), name="member-list-loader")

    async def _send_requests(self) -> None:
        while True:
            while not self._queue or self._paused:
                self._queued.clear()
                self._settle_if_idle()
                await self._queued.wait()
            await self._pace()
            if not self._queue or self._paused:  # a new session meanwhile
                continue
            guild = self._bot.get_guild(self._queue.popleft())
            # Removed since (nothing to load), in an outage (its return queues it again), or its list
            # already awaited (a server back from an outage while its request was under way).
            if guild is None or guild.unavailable or guild.id in self._answer_awaited:
                continue
            self._sending = True
            self._count("asked")
            try:
                answer = await self._ask(guild)
            finally:
                self._sending = False
            if answer is not None:
                self._answer_awaited.add(guild.id)
                self._sent_on[guild.id] = self._bot.ws
                self._await(self._wait_for(guild, answer))

    async def _ask(self, guild: discord.Guild) -> asyncio.Future[list[discord.Member]] | None:
        """Send the request for `guild`'s list (or join one already sent); None when it is complete."""
        if guild.chunked:
            self._await(self._hand_over(guild))
            return None
        self._sent_at.append(time.monotonic())
        connection = self._bot.ws
        try:
            return await self._bot._connection.chunk_guild(guild, wait=False)  # type: ignore[no-any-return]
        except (discord.ConnectionClosed, OSError) as error:
            # Disconnected: py-cord keeps the unsent request pending, and every later wait for this
            # server would join it. Given up, and asked again on the connection that replaced it, or
            # once the connection is back (a RESUME; a new session's on_ready loads every server).
            give_up_member_list_request(self._bot._connection, guild.id)
            log.debug("guild %s: could not ask for its member list (%s)", guild.id, error)
            if self._bot.ws is not connection:  # replaced already (a RESUME that came first)
                self._queue.append(guild.id)
            else:
                self._unsent.add(guild.id)
            return None

    async def _pace(self) -> None:
        """Wait until one more request keeps within REQUESTS_PER_MINUTE over the last minute."""
        while len(self._sent_at) >= self._requests_per_window:
            wait = self._sent_at[0] + self._window_seconds - time.monotonic()
            if wait <= 0:
                self._sent_at.popleft()
            else:
                await asyncio.sleep(wait)

    async def _wait_for(self, guild: discord.Guild, answer: asyncio.Future[list[discord.Member]]) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(answer), timeout=self._wait_seconds)
        except TimeoutError:
            give_up_member_list_request(self._bot._connection, guild.id)  # or every later wait would join it
            log.warning("guild %s: its member list did not arrive within %d s; members who left while the "
                        "bot was offline are purged at the next start", guild.id, self._wait_seconds)
            self._count("given_up")
            return
        finally:
            self._answer_awaited.discard(guild.id)
            self._sent_on.pop(guild.id, None)
            left_meanwhile = self._left_meanwhile.pop(guild.id, set())
        if left_meanwhile:
            drop_cached_members(guild, left_meanwhile)
        asked_anew = guild.id in self._ask_again
        self._ask_again.discard(guild.id)
        if not guild.chunked:  # given up (at a RESUME: asked for anew; with a lost session), or out of date
            if asked_anew or self._ask_again_if_out_of_date(guild):
                self.load([guild])
            else:
                self._count("given_up")
            return
        await self._hand_over(guild)

    def _ask_again_if_out_of_date(self, guild: discord.Guild) -> bool:
        """True when this answered list, which does not match the member count, is to be asked for once
        more. Members heard leaving while it was on its way are dropped from it already (`member_left`),
        so this is a safety net for a cache gone wrong some other way. It never will match, since
        py-cord only adds members: the cached ones are dropped first."""
        current = self._bot.get_guild(guild.id) is guild  # not a lost session's (the new one asks anew)
        if not current or guild.id in self._out_of_date:
            return False
        self._out_of_date.add(guild.id)
        log.info("guild %s: its member list came out of date; asking for it once more", guild.id)
        drop_cached_members(guild)
        return True

    async def _hand_over(self, guild: discord.Guild) -> None:
        self._count("arrived")
        try:
            await self._arrived(guild)
        except Exception:  # one server's catch-up must not stop the others'
            log.exception("guild %s: catching up once its member list arrived failed", guild.id)

    def _await(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._settle_if_idle()

    def _count(self, what: Literal["asked", "arrived", "given_up"]) -> None:
        tally = self._tally
        if tally is None:
            return
        setattr(tally, what, getattr(tally, what) + 1)
        if what == "arrived" and tally.arrived % PROGRESS_EVERY == 0:
            log.info("member lists: %d servers complete so far, %d asked for", tally.arrived, tally.asked)

    def _settle_if_idle(self) -> None:
        if self._queue or self._tasks or self._sending:
            return
        if self._tally is not None and self._tally.asked:
            log.info(self._tally.summary())
        self._tally = None
        self.settled.set()
