"""Benchmark: chat XP through XpService.on_message across 1,000 guilds (also through py-cord's dispatch),
and /rank in a 100,000-member guild.

    python bench/xp.py                      # both measurements, chat with pools of 256 and 1024 tenants
    python bench/xp.py --only chat --max-open 256
    python bench/xp.py --only rank
    python bench/xp.py --only pycord        # no-op listener vs the XP listener, through py-cord

Chat (targets: at least 5,000 messages/s, peak RSS at most 256 MiB). The tenants folder is built first:
one real tenant made by the TenantManager, copied per guild with its identity row rewritten. Each guild
has 100 members. Messages pick a random guild and member and reach `record_message` (what the cog's
listener calls) the way py-cord hands events to listeners: each message its own task, up to 256 in
flight. The service runs on the real clock with its background flush every second, as in the bot.
Phases, all in one child process (its peak RSS is reported), with the tenant pool size given (the bot's
default is 256):
  cold       every member's first message: nothing known in memory, each award needs the member's stored
             total (read per guild in batches); timed until every award's level change is known
  sustained  5,000 messages/s offered for 30 s on a schedule (open loop), cooldown 10 s so about two in
             three messages earn XP and every guild has XP to write every second; reports the rate
             achieved and the background flush cycles (how long writing every guild's buffer took)
  burst      300,000 messages as fast as they go, default 60 s cooldown (most messages are cooldown hits)
  awarding   200,000 messages as fast as they go with the cooldown at 0: every message earns XP
After each phase everything buffered is flushed and timed; at the end the files are checked: messages
counted in the files must equal the awards the service reported.

Rank (target: p95 at most 5 ms). One guild with 100,000 members whose XP follows a long-tailed
distribution (many ties at the bottom); /rank of 2,000 random members through XpService.rank, each
timed on its own; also leaderboard pages and rank with a member filter (scans the rows above). Then
/rank again in a second 100,000-member guild where no two members share a total (1 to 10 million),
the worst case of the counts /rank reads (migrations/0003_xp_rank_counts.sql).

Chat through py-cord (`--only pycord`): the chat streams as MESSAGE_CREATE events through the sandbox
gateway (malabot.sandbox, on 127.0.0.1) into a real py-cord client with MalaBot's intents, in one child
process, run twice against the same server with the same streams: once with a no-op on_message
listener (py-cord's own work: read the frame, parse it, build the Message, schedule the listener) and
once with MalaBot's XP listener (malabot.cogs.xp.XpCog on the services `build_services` makes, with the
bot's tenant pool and background flush). Phases: cold (every member's first message), burst (random
messages, default 60 s cooldown) and awarding (random messages, cooldown 0). Each is timed from the
first event sent until py-cord parsed the last one and every listener call finished, with the reads
of stored totals and level-ups it left running; the report gives wall-clock and CPU rates and, per
phase, the ratio no-op rate / XP rate (1.0: the XP listener costs nothing next to py-cord's own
dispatch). The sandbox's sending runs in the same process and counts in
both runs alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import discord  # noqa: E402

from malabot.app import Services, build_services, start_services, stop_services  # noqa: E402
from malabot.bot import intents  # noqa: E402
from malabot.cogs.xp import XpCog  # noqa: E402
from malabot.features.settings.service import SettingsService  # noqa: E402
from malabot.features.xp.service import XpService  # noqa: E402
from malabot.features.xp.slow_rounds import FlushRound  # noqa: E402
from malabot.sandbox import FakeDiscord, running_bot, sandbox_client_options  # noqa: E402
from malabot.sandbox.payloads import message_payload  # noqa: E402
from malabot.settings import Settings  # noqa: E402
from malabot.tenancy.manager import TenantManager  # noqa: E402

FIRST_GUILD = 100_000_000_000_000_000
FIRST_MEMBER = 200_000_000_000_000_000
CHANNEL = 300_000_000_000_000_000
DEFAULT_MAX_OPEN = 256    # the bot's default cap (Settings.max_open_tenants)
MEMBERS_PER_GUILD = 100
IN_FLIGHT = 256           # messages dispatched at once
TICK = 0.01               # the open-loop schedule sends a batch every 10 ms

Sender = Callable[[int, int, int], Awaitable[object]]


@dataclass
class ChatResult:
    messages: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


async def run_chat_load(send: Sender, messages: Iterable[tuple[int, int]], *, rate: float | None = None,
                        then: Callable[[], Awaitable[None]] | None = None) -> ChatResult:
    """Send (guild_id, user_id) messages, each its own task, at most IN_FLIGHT at once; the time
    includes `then()` (waiting for work the sends left running).

    Without `rate` they go as fast as the sender takes them (closed loop). With `rate` they are
    offered on a schedule (open loop): a sender that cannot keep up falls behind it, and the rate
    achieved shows by how much. Any Sender fits: the service itself, or py-cord's dispatch.
    """
    pending: set[asyncio.Future[object]] = set()
    sent = 0
    started = time.perf_counter()
    for guild_id, user_id in messages:
        if rate is not None:
            due = started + sent / rate
            if (ahead := due - time.perf_counter()) > TICK:
                await asyncio.sleep(ahead)
        if len(pending) >= IN_FLIGHT:
            _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        pending.add(asyncio.ensure_future(send(guild_id, user_id, CHANNEL)))
        sent += 1
    if pending:
        await asyncio.wait(pending)
    if then is not None:
        await then()
    return ChatResult(sent, time.perf_counter() - started)


def xp_sender(xp: XpService, awards: list[int]) -> Sender:
    """Straight to the service, as the cog's on_message listener calls it (not waiting for the level
    change of a member whose stored total is being read); counts awards."""
    async def send(guild_id: int, user_id: int, channel_id: int) -> None:
        if await xp.record_message(guild_id, user_id, channel_id, (), is_bot=False) is not None:
            awards[0] += 1
    return send


# Tasks the XP listener leaves behind a finished listener call: reads of stored totals, then level-ups.
XP_FOLLOW_UP_TASKS = ("xp-load-totals", "xp-level-up")


async def follow_ups_done() -> None:
    """Wait until every award's level change is known and handled."""
    while busy := [task for task in asyncio.all_tasks() if task.get_name() in XP_FOLLOW_UP_TASKS]:
        await asyncio.wait(busy)


# -- the tenants folder ----------------------------------------------------------------------------

async def make_template(folder: Path) -> Path:
    tenants = TenantManager(folder)
    await tenants.start()
    await tenants.ensure(FIRST_GUILD)
    await tenants.close_all()
    path = tenants.paths.live(FIRST_GUILD)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path


def build_folder(folder: Path, guilds: int) -> None:
    template = asyncio.run(make_template(folder))
    for index in range(1, guilds):
        guild_id = FIRST_GUILD + index
        path = folder / f"{guild_id}.sqlite3"
        shutil.copyfile(template, path)
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("UPDATE tenant_meta SET guild_id = ?", (guild_id,))
        conn.close()


# -- chat (child process) --------------------------------------------------------------------------

def chat_messages(rng: random.Random, guilds: int, count: int) -> Iterator[tuple[int, int]]:
    """Made on the fly: a list of 500,000 messages would weigh on the RSS being measured."""
    for _ in range(count):
        yield FIRST_GUILD + rng.randrange(guilds), FIRST_MEMBER + rng.randrange(MEMBERS_PER_GUILD)


def every_member_once(rng: random.Random, guilds: int) -> Iterator[tuple[int, int]]:
    order = list(range(guilds * MEMBERS_PER_GUILD))
    rng.shuffle(order)
    for index in order:
        guild, member = divmod(index, MEMBERS_PER_GUILD)
        yield FIRST_GUILD + guild, FIRST_MEMBER + member


def peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class FlushCycles:
    """Times each background flush cycle (XpService.flush_all called by its loop)."""

    def __init__(self, xp: XpService) -> None:
        self.cycles: list[tuple[int, float]] = []   # (guilds with buffered XP, seconds), when finished
        self._flush_all = xp.flush_all
        self._xp = xp
        setattr(xp, "flush_all", self._timed)  # noqa: B010 - instrumenting one instance for the bench

    async def _timed(self) -> FlushRound:
        started = time.perf_counter()
        flushed = await self._flush_all()
        self.cycles.append((flushed.guilds, time.perf_counter() - started))
        return flushed

    def take(self) -> dict[str, object]:
        """Cycles finished since the last take, leaving out those with nothing to write."""
        cycles = [(dirty, seconds) for dirty, seconds in self.cycles if dirty]
        self.cycles = []
        if not cycles:
            return {"cycles": 0}
        seconds = [s for _, s in cycles]
        return {"cycles": len(cycles), "mean_s": round(statistics.fmean(seconds), 3),
                "max_s": round(max(seconds), 3),
                "mean_dirty_guilds": round(statistics.fmean(dirty for dirty, _ in cycles)),
                "rounds_s": [round(s, 2) for s in seconds]}


async def measure_chat(folder: Path, guilds: int, sustained_seconds: float, rate: float, burst: int,
                       awarding: int, max_open: int, flush_concurrency: int) -> dict[str, object]:
    rng = random.Random(42)
    tenants = TenantManager(folder, max_open=max_open)
    await tenants.start()
    settings = SettingsService(tenants)
    xp = XpService(tenants, settings, rng=random.Random(7), flush_concurrency=flush_concurrency)
    cycles = FlushCycles(xp)
    awards = [0]
    send = xp_sender(xp, awards)
    for index in range(guilds):  # settings are cached after the first read, as in a running bot
        await settings.get(FIRST_GUILD + index)
    await xp.start()
    phases: dict[str, object] = {}

    async def set_cooldown(seconds: int) -> None:
        for index in range(guilds):
            await settings.update(FIRST_GUILD + index, None, xp_cooldown_seconds=seconds)

    async def phase(name: str, messages: Iterable[tuple[int, int]], rate: float | None = None) -> None:
        before = awards[0]
        result = await run_chat_load(send, messages, rate=rate, then=follow_ups_done)
        background = cycles.take()
        dirty = sum(1 for guild in xp._guilds.values() if guild.dirty)
        started = time.perf_counter()
        await xp.flush_all()
        cycles.take()
        phases[name] = {"messages": result.messages, "seconds": round(result.seconds, 1),
                        "per_s": round(result.rate), "awards": awards[0] - before,
                        "background_flush": background,
                        "final_flush": {"dirty_guilds": dirty, "s": round(time.perf_counter() - started, 3)},
                        "peak_rss_mib": peak_rss_mib()}

    await phase("cold", every_member_once(rng, guilds))
    await set_cooldown(10)
    await phase("sustained", chat_messages(rng, guilds, int(rate * sustained_seconds)), rate=rate)
    await set_cooldown(60)
    await phase("burst", chat_messages(rng, guilds, burst))
    await set_cooldown(0)
    await phase("awarding", chat_messages(rng, guilds, awarding))
    await xp.stop()
    counted = 0
    for index in range(guilds):
        async with tenants.reading(FIRST_GUILD + index) as conn, \
                conn.execute("SELECT coalesce(sum(messages), 0) FROM xp") as cursor:
            row = await cursor.fetchone()
            counted += int(row[0]) if row else 0
    await tenants.close_all()
    return {"guilds": guilds, "max_open": max_open, "flush_concurrency": flush_concurrency,
            "phases": phases, "awards": awards[0],
            "messages_in_files": counted, "peak_rss_mib": peak_rss_mib()}


# -- chat through py-cord's dispatch (child process) -----------------------------------------------

ON_MESSAGE_TASK = "pycord: on_message"  # the name py-cord gives each listener call it schedules


class BenchBot(discord.Bot):
    """A py-cord client with MalaBot's intents and services, carrying only the listener measured."""

    def __init__(self, services: Services) -> None:
        # No member chunking at start: 1,000 REQUEST_GUILD_MEMBERS would wait minutes on py-cord's
        # gateway rate limit, and message payloads carry the author's member data anyway.
        super().__init__(intents=intents(), chunk_guilds_at_startup=False, **sandbox_client_options())
        self.services = services


async def noop(message: discord.Message) -> None:
    """The baseline listener: py-cord does all its own work for the message, the listener none."""


class MessageEvents:
    """MESSAGE_CREATE payloads shaped by the sandbox, made on the fly for (guild, member) pairs."""

    def __init__(self, server: FakeDiscord, guilds: int) -> None:
        self.server = server
        self.channels = [int(server.guild(FIRST_GUILD + index).system_channel_id or 0) for index in range(guilds)]
        author = server.add_user("template-member")
        server.add_member(FIRST_GUILD, author)
        message = server.world.add_message(server.channel(self.channels[0]), author.id, "hello")
        self.template = message_payload(server.world, message)

    def payload(self, guild_id: int, user_id: int) -> dict[str, Any]:
        author = {**self.template["author"], "id": str(user_id), "username": f"member-{user_id}"}
        return {**self.template, "id": str(self.server.world.snowflakes.next()),
                "channel_id": str(self.channels[guild_id - FIRST_GUILD]), "guild_id": str(guild_id),
                "author": author}


def listener_backlog() -> int:
    """Listener calls py-cord has scheduled that have not finished."""
    return sum(1 for task in asyncio.all_tasks() if task.get_name() == ON_MESSAGE_TASK)


async def push(server: FakeDiscord, events: MessageEvents, messages: Iterable[tuple[int, int]],
               rate: float | None) -> dict[str, object]:
    """Send every message through the sandbox gateway (on a schedule of `rate` per second, or as fast as
    it goes); done once py-cord parsed them all and every on_message listener call finished, with the
    reads and level-ups it left running and the bot's own level-up messages. The backlog is sampled
    every 5,000 messages."""
    sent = backlog = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    for guild_id, user_id in messages:
        if rate is not None and (ahead := started + sent / rate - time.perf_counter()) > TICK:
            await asyncio.sleep(ahead)
        await server.gateway.dispatch("MESSAGE_CREATE", events.payload(guild_id, user_id), guild_id=guild_id)
        sent += 1
        if sent % 5000 == 0:
            backlog = max(backlog, listener_backlog())
    await server.sync_with_bot()
    parsed = time.perf_counter() - started
    while busy := [task for task in asyncio.all_tasks()
                   if task.get_name() in (ON_MESSAGE_TASK, *XP_FOLLOW_UP_TASKS)]:
        backlog = max(backlog, sum(1 for task in busy if task.get_name() == ON_MESSAGE_TASK))
        await asyncio.wait(busy)
        await server.sync_with_bot()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {"messages": sent, "seconds": round(seconds, 2), "per_s": round(sent / seconds),
            "all_parsed_after_s": round(parsed, 2), "cpu_s": round(cpu, 2), "per_cpu_s": round(sent / cpu),
            "max_listener_backlog": backlog, "peak_rss_mib_so_far": peak_rss_mib()}


def pycord_phases(guilds: int, rate: float, seconds: float, messages: int
                  ) -> list[tuple[str, int, Iterator[tuple[int, int]], float | None]]:
    """(phase, cooldown seconds, stream, offered rate): the same for every listener, from one seed."""
    rng = random.Random(42)
    return [("cold", 60, every_member_once(rng, guilds), None),
            ("sustained", 10, chat_messages(rng, guilds, int(rate * seconds)), rate),
            ("burst", 60, chat_messages(rng, guilds, messages), None),
            ("awarding", 0, chat_messages(rng, guilds, messages), None)]


async def measure_listener(server: FakeDiscord, folder: Path, listener: str, guilds: int, rate: float,
                           seconds: float, messages: int, max_open: int) -> dict[str, object]:
    settings = Settings(tenants_dir=folder, api_base_url=server.api_base_url, token=server.token,
                        max_open_tenants=max_open)
    services = build_services(settings)  # the bot's own graph: tenant pool, settings cache, XP flush
    await start_services(services)
    bot = BenchBot(services)
    if listener == "xp":
        bot.add_cog(XpCog(bot))  # type: ignore[arg-type]  # the cog uses nothing of MalaBot but services
    else:
        bot.add_listener(noop, "on_message")
    events = MessageEvents(server, guilds)
    phases: dict[str, object] = {}
    try:
        async with running_bot(server, bot, ready_within=120):
            for name, cooldown, stream, offered in pycord_phases(guilds, rate, seconds, messages):
                for index in range(guilds):
                    await services.guild_settings.update(FIRST_GUILD + index, None, xp_cooldown_seconds=cooldown)
                phases[name] = await push(server, events, stream, offered)
    finally:
        await stop_services(services)
    return phases


async def measure_pycord(folder: Path, guilds: int, rate: float, seconds: float, messages: int,
                         max_open: int) -> dict[str, object]:
    server = FakeDiscord(sync_events=False, timeout=120)
    for index in range(guilds):
        server.add_guild(f"bench {index}", id=FIRST_GUILD + index)
    await server.start()
    try:
        baseline = await measure_listener(server, folder, "noop", guilds, rate, seconds, messages, max_open)
        with_xp = await measure_listener(server, folder, "xp", guilds, rate, seconds, messages, max_open)
    finally:
        await server.stop()

    def ratio(phase: str, key: str) -> float:
        noop_phase, xp_phase = baseline[phase], with_xp[phase]
        assert isinstance(noop_phase, dict) and isinstance(xp_phase, dict)
        return round(noop_phase[key] / xp_phase[key], 2)

    ratios = {phase: {"wall": ratio(phase, "per_s"), "cpu": ratio(phase, "per_cpu_s")} for phase in baseline}
    return {"guilds": guilds, "max_open": max_open, "noop_listener": baseline, "xp_listener": with_xp,
            "noop_rate_over_xp_rate": ratios, "peak_rss_mib": peak_rss_mib()}


# -- rank (child process) --------------------------------------------------------------------------

def long_tail_xp(rng: random.Random) -> int:
    """Most members have little XP (many ties), a few have a lot."""
    return min(int(rng.paretovariate(1.1) * 20) - 20, 5_000_000)


async def measure_rank(folder: Path, members: int, samples: int) -> dict[str, object]:
    rng = random.Random(42)
    guild_id = FIRST_GUILD
    tenants = TenantManager(folder)
    await tenants.start()
    async with tenants.transaction(guild_id) as conn:
        await conn.executemany("INSERT INTO xp (user_id, xp, messages) VALUES (?, ?, ?)",
                               [(FIRST_MEMBER + n, long_tail_xp(rng), 1) for n in range(members)])
    # Reopened, as a big server's file is after a start: a file that was small when opened keeps no
    # SQLite page cache (malabot.tenancy.opening.SMALL_FILE_BYTES).
    await tenants.close(guild_id)
    settings = SettingsService(tenants)
    xp = XpService(tenants, settings)
    await xp.rank(guild_id, FIRST_MEMBER)  # open the tenant and cache settings: not part of a /rank

    async def timed(call: Callable[[], Awaitable[object]], count: int) -> list[float]:
        times = []
        for _ in range(count):
            started = time.perf_counter()
            await call()
            times.append((time.perf_counter() - started) * 1000)
        return times

    def member() -> int:
        return FIRST_MEMBER + rng.randrange(members)

    async with tenants.reading(guild_id) as conn:
        async with conn.execute("SELECT user_id FROM xp ORDER BY xp DESC LIMIT 1") as cursor:
            top_id = int((await cursor.fetchone() or (0,))[0])
        async with conn.execute("SELECT user_id FROM xp WHERE xp > 0 ORDER BY xp LIMIT 1") as cursor:
            low_id = int((await cursor.fetchone() or (0,))[0])
    rank_ms = await timed(lambda: xp.rank(guild_id, member()), samples)
    top = await timed(lambda: xp.rank(guild_id, top_id), 50)
    low = await timed(lambda: xp.rank(guild_id, low_id), 50)
    first_page = await timed(lambda: xp.leaderboard(guild_id, 1), 200)
    page_100 = await timed(lambda: xp.leaderboard(guild_id, 100), 50)
    everyone = frozenset(FIRST_MEMBER + n for n in range(members))
    filtered = await timed(lambda: xp.rank(guild_id, member(), is_member=everyone), 200)
    async with tenants.reading(guild_id) as conn, \
            conn.execute("SELECT count(*), count(DISTINCT xp), sum(xp = 0) FROM xp") as cursor:
        rows, distinct, zero = await cursor.fetchone()  # type: ignore[misc]
    # The counts /rank reads are per total and per block of totals: a board where no two members
    # share a total is their worst case.
    spread_guild = guild_id + 1
    async with tenants.transaction(spread_guild) as conn:
        totals = rng.sample(range(1, 10_000_000), members)
        await conn.executemany("INSERT INTO xp (user_id, xp, messages) VALUES (?, ?, ?)",
                               [(FIRST_MEMBER + n, total, 1) for n, total in enumerate(totals)])
    await tenants.close(spread_guild)
    await xp.rank(spread_guild, FIRST_MEMBER)
    spread = await timed(lambda: xp.rank(spread_guild, member()), samples)
    await xp.stop()
    await tenants.close_all()
    return {
        "members": rows, "distinct_totals": distinct, "members_without_xp": zero,
        "rank": summary(rank_ms), "rank_top_member": summary(top), "rank_lowest_ranked_member": summary(low),
        "leaderboard_page_1": summary(first_page), "leaderboard_page_100": summary(page_100),
        "rank_with_member_filter": summary(filtered),
        "rank_all_totals_different": summary(spread),
        "peak_rss_mib": peak_rss_mib(),
    }


def summary(times_ms: list[float]) -> dict[str, float]:
    ordered = sorted(times_ms)

    def pick(fraction: float) -> float:
        return round(ordered[min(int(len(ordered) * fraction), len(ordered) - 1)], 3)

    return {"n": len(ordered), "p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99),
            "max": round(ordered[-1], 3), "mean": round(statistics.fmean(ordered), 3)}


# -- driver ----------------------------------------------------------------------------------------

def run_child(*arguments: str) -> dict[str, object]:
    output = subprocess.run([sys.executable, __file__, *arguments], check=True, capture_output=True,
                            text=True).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["chat", "rank", "pycord"])
    parser.add_argument("--guilds", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=5000.0, help="messages/s offered when sustained")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the sustained phase")
    parser.add_argument("--burst", type=int, default=300_000)
    parser.add_argument("--awarding", type=int, default=200_000)
    parser.add_argument("--max-open", type=int, action="append",
                        help="tenant pool sizes for the chat run (default: 256, the bot's default, and 1024) "
                             "and the py-cord run (default: 256)")
    parser.add_argument("--flush-concurrency", type=int, default=4, help="guilds written at once")
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--pycord-messages", type=int, default=100_000,
                        help="messages of the burst and awarding phases through py-cord")
    parser.add_argument("--child", choices=["chat", "rank", "pycord"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "chat":
        chat = measure_chat(args.folder, args.guilds, args.seconds, args.rate, args.burst, args.awarding,
                            args.max_open[0], args.flush_concurrency)
        print(json.dumps(asyncio.run(chat)))
        return 0
    if args.child == "rank":
        print(json.dumps(asyncio.run(measure_rank(args.folder, args.members, args.samples))))
        return 0
    if args.child == "pycord":
        pycord = measure_pycord(args.folder, args.guilds, args.rate, args.seconds, args.pycord_messages,
                                args.max_open[0])
        print(json.dumps(asyncio.run(pycord)))
        return 0
    print(f"Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs",
          flush=True)
    if args.only in (None, "chat"):
        for max_open in args.max_open or [DEFAULT_MAX_OPEN, 1024]:
            with tempfile.TemporaryDirectory(prefix="malabot-bench-xp-") as scratch:
                folder = Path(scratch) / "tenants"
                folder.mkdir()
                started = time.perf_counter()
                build_folder(folder, args.guilds)
                print(f"chat: {args.guilds} tenant files built in {time.perf_counter() - started:.1f} s",
                      flush=True)
                result = run_child("--child", "chat", "--folder", str(folder), "--guilds", str(args.guilds),
                                   "--seconds", str(args.seconds), "--rate", str(args.rate),
                                   "--burst", str(args.burst), "--awarding", str(args.awarding),
                                   "--max-open", str(max_open),
                                   "--flush-concurrency", str(args.flush_concurrency))
                print("chat (XpService.on_message, no py-cord dispatch):", json.dumps(result), flush=True)
    if args.only in (None, "rank"):
        with tempfile.TemporaryDirectory(prefix="malabot-bench-xp-") as scratch:
            folder = Path(scratch) / "tenants"
            folder.mkdir()
            result = run_child("--child", "rank", "--folder", str(folder), "--members", str(args.members),
                               "--samples", str(args.samples))
            print("rank:", json.dumps(result), flush=True)
    if args.only in (None, "pycord"):
        for max_open in args.max_open or [DEFAULT_MAX_OPEN]:
            with tempfile.TemporaryDirectory(prefix="malabot-bench-xp-") as scratch:
                folder = Path(scratch) / "tenants"
                folder.mkdir()
                build_folder(folder, args.guilds)
                result = run_child("--child", "pycord", "--folder", str(folder), "--guilds", str(args.guilds),
                                   "--rate", str(args.rate), "--seconds", str(args.seconds),
                                   "--pycord-messages", str(args.pycord_messages), "--max-open", str(max_open))
                print("chat through py-cord (no-op listener vs XP listener):", json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
