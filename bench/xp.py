"""Benchmark: chat XP through XpService.on_message across 1,000 guilds, and /rank in a 100,000-member guild.

    python bench/xp.py                      # both measurements, chat with pools of 256 and 1024 tenants
    python bench/xp.py --only chat --max-open 256
    python bench/xp.py --only rank

Chat (targets: at least 5,000 messages/s, peak RSS at most 256 MiB). The tenants folder is built first:
one real tenant made by the TenantManager, copied per guild with its identity row rewritten. Each guild
has 100 members. Messages pick a random guild and member and reach `on_message` the way py-cord hands
events to listeners: each message its own task, up to 256 in flight. The service runs on the real clock
with its background flush every second, as in the bot. Phases, all in one child process (its peak RSS
is reported), with the tenant pool size given (the bot's default is 256):
  cold       every member's first message: nothing known in memory, each award reads the member's total
  sustained  5,000 messages/s offered for 30 s on a schedule (open loop), cooldown 10 s so about two in
             three messages earn XP and every guild has XP to write every second; reports the rate
             achieved and the background flush cycles (how long writing every guild's buffer took)
  burst      300,000 messages as fast as they go, default 60 s cooldown (most messages are cooldown hits)
  awarding   200,000 messages as fast as they go with the cooldown at 0: every message earns XP
After each phase everything buffered is flushed and timed; at the end the files are checked: messages
counted in the files must equal the awards the service reported.

Rank (target: p95 at most 5 ms). One guild with 100,000 members whose XP follows a long-tailed
distribution (many ties at the bottom); /rank of 2,000 random members through XpService.rank, each
timed on its own; also leaderboard pages and rank with a member filter (scans the rows above).

A second chat measurement, through the real py-cord dispatch with a no-op listener, plugs into
`run_chat_load`: it takes any `Sender` (guild_id, user_id, channel_id) -> awaitable. `xp_sender` sends
straight to the service; a py-cord sender would feed MESSAGE_CREATE payloads to a client's gateway
parser with a listener that calls XpService.on_message. That sender is not written yet, so this script
measures the service alone and says so in its output.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from malabot.features.settings.service import SettingsService  # noqa: E402
from malabot.features.xp.service import XpService  # noqa: E402
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


async def run_chat_load(send: Sender, messages: Iterable[tuple[int, int]], *, rate: float | None = None
                        ) -> ChatResult:
    """Send (guild_id, user_id) messages, each its own task, at most IN_FLIGHT at once.

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
    return ChatResult(sent, time.perf_counter() - started)


def xp_sender(xp: XpService, awards: list[int]) -> Sender:
    """Straight to the service, as a cog's on_message listener would call it; counts awards."""
    async def send(guild_id: int, user_id: int, channel_id: int) -> None:
        if await xp.on_message(guild_id, user_id, channel_id, (), is_bot=False) is not None:
            awards[0] += 1
    return send


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

    async def _timed(self) -> None:
        dirty = sum(1 for guild in self._xp._guilds.values() if guild.dirty)
        started = time.perf_counter()
        await self._flush_all()
        self.cycles.append((dirty, time.perf_counter() - started))

    def take(self) -> dict[str, object]:
        """Cycles finished since the last take, leaving out those with nothing to write."""
        cycles = [(dirty, seconds) for dirty, seconds in self.cycles if dirty]
        self.cycles = []
        if not cycles:
            return {"cycles": 0}
        seconds = [s for _, s in cycles]
        return {"cycles": len(cycles), "mean_s": round(statistics.fmean(seconds), 3),
                "max_s": round(max(seconds), 3),
                "mean_dirty_guilds": round(statistics.fmean(dirty for dirty, _ in cycles))}


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
        result = await run_chat_load(send, messages, rate=rate)
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
    await xp.stop()
    await tenants.close_all()
    return {
        "members": rows, "distinct_totals": distinct, "members_without_xp": zero,
        "rank": summary(rank_ms), "rank_top_member": summary(top), "rank_lowest_ranked_member": summary(low),
        "leaderboard_page_1": summary(first_page), "leaderboard_page_100": summary(page_100),
        "rank_with_member_filter": summary(filtered),
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
    parser.add_argument("--only", choices=["chat", "rank"])
    parser.add_argument("--guilds", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=5000.0, help="messages/s offered when sustained")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the sustained phase")
    parser.add_argument("--burst", type=int, default=300_000)
    parser.add_argument("--awarding", type=int, default=200_000)
    parser.add_argument("--max-open", type=int, action="append",
                        help="tenant pool sizes for the chat run (default: 256, the bot's default, and 1024)")
    parser.add_argument("--flush-concurrency", type=int, default=4, help="guilds written at once")
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--child", choices=["chat", "rank"], help=argparse.SUPPRESS)
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
