"""Benchmark: a start of the real bot in many servers, py-cord's start-up chunking against this build's
member-list loading, side by side in one run.

    python bench/startup.py                 # 250 servers of 20 members
    python bench/startup.py --guilds 120

Without the presences intent Discord's GUILD_CREATE carries no member list, so every server's must be
asked for over the gateway (op 8), which py-cord's rate limiter lets through at 110 a minute. The real
MalaBot (the services `build_services` makes, every cog, py-cord's default `guild_ready_timeout`) starts
against the sandbox (malabot.sandbox on 127.0.0.1, a fresh one per run) with every server's file already
there, as at a restart:

  chunking   the baseline: py-cord's own start-up chunking (`chunk_guilds_at_startup=True`), which asks
             for every list and waits for them before it fires on_ready
  loading    this build: on_ready at once, then the lists one after another (malabot.member_list_loading)

Each run reports, in seconds from `bot.start()`: on_ready; the files opened and the scheduled jobs added
(`guilds_opened`); the first, the median and the last server caught up (its purge of who left while the bot was
offline done, `on_member_list_complete` dispatched); and every list asked for in. The ratios are
baseline over this build.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import discord

from malabot.app import build_bot, build_services, start_services, stop_services
from malabot.runtime import finish_handlers
from malabot.sandbox import FakeDiscord, running_bot
from malabot.settings import Settings
from malabot.tenancy.manager import TenantManager

FIRST_GUILD = 1_300_000_000_000_000_000
# py-cord's own limit on the wait for on_ready in the baseline: every list, at 110 a minute, and more.
READY_WITHIN_SECONDS = 1_800.0


def sandbox_with(guilds: int, members: int) -> FakeDiscord:
    server = FakeDiscord(sync_events=False, timeout=120)
    for index in range(guilds):
        guild = server.add_guild(f"bench {index}", id=FIRST_GUILD + index)
        for number in range(members - 2):  # with the owner and the bot
            server.add_member(guild, server.add_user(f"m{index}-{number}"))
    return server


async def make_tenants(folder: Path, guilds: int) -> None:
    tenants = TenantManager(folder)
    await tenants.start()
    try:
        for index in range(guilds):
            await tenants.ensure(FIRST_GUILD + index)
    finally:
        await tenants.close_all()


async def measure_start(template: Path, work: Path, guilds: int, members: int, *, chunking: bool) -> dict[str, float]:
    tenants_dir = work / ("chunking" if chunking else "loading")
    shutil.copytree(template, tenants_dir)
    server = sandbox_with(guilds, members)
    await server.start()
    services = build_services(Settings(tenants_dir=tenants_dir, api_base_url=server.api_base_url,
                                       token=server.token, _env_file=None))  # type: ignore[call-arg]
    await start_services(services)
    caught_up: list[float] = []
    try:
        bot = build_bot(services, chunk_guilds_at_startup=chunking)
        assert isinstance(bot, discord.Bot)
        started = time.perf_counter()

        async def list_complete(guild: discord.Guild) -> None:
            caught_up.append(time.perf_counter() - started)

        bot.add_listener(list_complete, "on_member_list_complete")
        async with running_bot(server, bot, ready_within=READY_WITHIN_SECONDS):
            ready = time.perf_counter() - started
            await bot.guilds_opened.wait()  # type: ignore[attr-defined]
            opened = time.perf_counter() - started
            await bot.member_lists.settled.wait()  # type: ignore[attr-defined]
            settled = time.perf_counter() - started
            # The last listeners (dispatched as the loading ended) and the birthday passes they began.
            await finish_handlers(within=60)
    finally:
        await stop_services(services)
        await server.stop()
    return {"on_ready_s": round(ready, 2), "files_and_jobs_s": round(opened, 2),
            "first_caught_up_s": round(min(caught_up), 2), "median_caught_up_s": round(statistics.median(caught_up), 2),
            "last_caught_up_s": round(max(caught_up), 2),
            "all_lists_in_s": round(settled, 2), "servers_caught_up": len(caught_up)}


async def measure(guilds: int, members: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="malabot-bench-startup-") as folder:
        work = Path(folder)
        template = work / "template"
        await make_tenants(template, guilds)
        baseline = await measure_start(template, work, guilds, members, chunking=True)
        loading = await measure_start(template, work, guilds, members, chunking=False)

    def ratio(key: str) -> float:
        return round(baseline[key] / max(loading[key], 0.01), 1)

    return {"guilds": guilds, "members_per_guild": members, "chunking_baseline": baseline, "loading": loading,
            "baseline_over_loading": {key: ratio(key) for key in ("on_ready_s", "files_and_jobs_s",
                                                                   "first_caught_up_s", "median_caught_up_s",
                                                                   "last_caught_up_s")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guilds", type=int, default=250)
    parser.add_argument("--members", type=int, default=20, help="members per server, the owner and the bot included")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.guilds, args.members)), indent=2))


if __name__ == "__main__":
    main()
