"""Benchmark: one hourly birthday pass over 1,000 and 10,000 tenants.

    python bench/birthdays.py                 # 1,000 and 10,000 tenants
    python bench/birthdays.py --tenants 1000  # one size

Each size gets a fresh folder of tenant files: one real tenant is created through the TenantManager,
then copied with its identity row rewritten (creating 10,000 tenants one by one would measure
migrations, not the pass). Every tenant has 40 birthdays, 2 of them today, and one of six timezones,
so about half the servers have reached their announcement hour at the benchmark's instant; half of
them give a birthday role.

The folder is synced to disk before measuring, and the passes run in a child process so its peak
RSS is its own. Measured per size, in this order:
  cold pass   the first pass after a start: settings not cached, every tenant opened (catch-up run)
  warm pass   an hour later: settings cached, servers settled earlier that day skipped, one zone
              (New York) reaching its announcement hour (the usual hourly case)
  next day    24 hours after the cold pass: a new local day everywhere, yesterday's roles taken back
Open files and threads are sampled every 2 ms during the passes; the same sampler records the worst
event-loop lag (how late its 2 ms sleep woke up), i.e. the longest stretch the pass blocked the loop.
Target: the cold pass over 1,000 tenants within 5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from malabot.features.birthdays.announcer import DEFAULT_CONCURRENCY, build_birthday_pass  # noqa: E402
from malabot.features.birthdays.repository import save_birthday  # noqa: E402
from malabot.features.birthdays.rules import Birthday  # noqa: E402
from malabot.features.birthdays.service import BirthdayService  # noqa: E402
from malabot.features.settings.service import SettingsService  # noqa: E402
from malabot.features.xp.service import XpService  # noqa: E402
from malabot.tenancy.manager import TenantManager  # noqa: E402

INSTANT = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
TODAY = date(2026, 6, 15)
# Local hour at INSTANT: 12, 14, 21, 8, 5, 22 -> due at the default 09:00 in UTC, Berlin, Tokyo, Sydney.
ZONES = ("UTC", "Europe/Berlin", "Asia/Tokyo", "America/New_York", "America/Los_Angeles", "Australia/Sydney")
BIRTHDAYS_PER_TENANT = 40
TODAY_PER_TENANT = 2
FIRST_GUILD = 100_000_000_000_000_000
MAX_OPEN = 256  # the bot's default cap (Settings.max_open_tenants)


class NoisyDiscord:
    """Effects that succeed at once; the pass's own cost is what is measured."""

    def __init__(self) -> None:
        self.announcements = 0

    async def announce(self, guild_id: int, channel_id: int, user_id: int, text: str) -> bool:
        self.announcements += 1
        return True

    async def add_role(self, guild_id: int, user_id: int, role_id: int) -> bool:
        return True

    async def remove_role(self, guild_id: int, user_id: int, role_id: int) -> bool:
        return True

    def is_member(self, guild_id: int, user_id: int) -> bool:
        return True

    def holds_role(self, guild_id: int, user_id: int, role_id: int) -> bool:
        return False


# -- building the tenants folder -------------------------------------------------------------------

async def build_template(folder: Path) -> Path:
    """One real tenant with the birthdays every copy shares."""
    tenants = TenantManager(folder)
    await tenants.start()
    async with tenants.transaction(FIRST_GUILD) as conn:
        for n in range(BIRTHDAYS_PER_TENANT):
            today = n < TODAY_PER_TENANT
            when = Birthday(6, 15, 1990 + n % 20) if today else Birthday(1 + n % 12, 1 + n % 28)
            await save_birthday(conn, 10_000 + n, when, INSTANT)
    await tenants.close_all()
    path = folder / f"{FIRST_GUILD}.sqlite3"
    conn_ = sqlite3.connect(path, isolation_level=None)
    conn_.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn_.close()
    return path


def settings_rows(index: int) -> list[tuple[str, str, str]]:
    values: dict[str, object] = {"timezone": ZONES[index % len(ZONES)], "birthday_channel_id": 500}
    if index % 2 == 0:
        values["birthday_role_id"] = 600
    now = INSTANT.isoformat()
    return [(key, json.dumps(value), now) for key, value in values.items()]


def build_folder(folder: Path, count: int) -> None:
    template = asyncio.run(build_template(folder))
    for index in range(count):
        guild_id = FIRST_GUILD + index
        path = folder / f"{guild_id}.sqlite3"
        if index > 0:
            shutil.copyfile(template, path)
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN")
        conn.execute("UPDATE tenant_meta SET guild_id = ?", (guild_id,))
        conn.execute("DELETE FROM settings")
        conn.executemany("INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)",
                         settings_rows(index))
        conn.execute("COMMIT")
        conn.close()
    os.sync()  # measure the pass, not the write-back of the files just made


# -- the measured pass (child process) -------------------------------------------------------------

def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


async def measure(folder: Path) -> dict[str, object]:
    peak_files = open_files()
    peak_threads = threading.active_count()
    worst_lag = 0.0
    sampling = True

    async def sample() -> None:
        """Also measures how late a 2 ms sleep wakes up: the longest the pass kept the loop busy."""
        nonlocal peak_files, peak_threads, worst_lag
        while sampling:
            peak_files = max(peak_files, open_files())
            peak_threads = max(peak_threads, threading.active_count())
            asleep = time.perf_counter()
            await asyncio.sleep(0.002)
            worst_lag = max(worst_lag, time.perf_counter() - asleep - 0.002)

    now = INSTANT
    tenants = TenantManager(folder, max_open=MAX_OPEN)
    await tenants.start()
    settings = SettingsService(tenants)
    xp = XpService(tenants, settings, clock=lambda: now)
    discord = NoisyDiscord()
    birthday_pass = build_birthday_pass(tenants, settings, BirthdayService(tenants, settings), discord, xp,
                                        clock=lambda: now)
    sampler = asyncio.create_task(sample())
    timings = {}
    reports = {}
    for name, at in (("cold", INSTANT), ("warm", INSTANT + timedelta(hours=1)),
                     ("next_day", INSTANT + timedelta(days=1))):
        now = at
        started = time.perf_counter()
        reports[name] = await birthday_pass.run()
        timings[name] = round(time.perf_counter() - started, 2)
    sampling = False
    await sampler
    await tenants.close_all()
    cold, warm, next_day = reports["cold"], reports["warm"], reports["next_day"]
    return {
        "tenants": cold.tenants,
        "cold_seconds": timings["cold"],
        "warm_seconds": timings["warm"],
        "next_day_seconds": timings["next_day"],
        "cold_visited": cold.visited,
        "warm_visited": warm.visited,
        "next_day_visited": next_day.visited,
        "celebrated": cold.celebrated,
        "announced": discord.announcements,
        "roles_removed": next_day.roles_removed,
        "failures": cold.failures + warm.failures + next_day.failures,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_open_files": peak_files,
        "peak_threads": peak_threads,
        "worst_loop_lag_ms": round(worst_lag * 1000, 1),
    }


def run_child(folder: Path) -> dict[str, object]:
    output = subprocess.run([sys.executable, __file__, "--measure", str(folder)], check=True,
                            capture_output=True, text=True).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenants", type=int, action="append", help="sizes to measure (default 1000, 10000)")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure is not None:
        print(json.dumps(asyncio.run(measure(args.measure))))
        return 0
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    print(f"Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs, "
          f"RLIMIT_NOFILE {limit}, max_open {MAX_OPEN}, pass concurrency {DEFAULT_CONCURRENCY}")
    print("| tenants | cold pass s (visited) | warm pass s (visited) | next day s (visited) | celebrated "
          "| roles taken back | peak RSS MB | peak open files | peak threads | worst loop lag ms |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for count in args.tenants or [1000, 10_000]:
        with tempfile.TemporaryDirectory(prefix="malabot-bench-") as scratch:
            folder = Path(scratch) / "tenants"
            folder.mkdir()
            started = time.perf_counter()
            build_folder(folder, count)
            built = time.perf_counter() - started
            result = run_child(folder)
        print(f"| {result['tenants']} | {result['cold_seconds']} ({result['cold_visited']}) "
              f"| {result['warm_seconds']} ({result['warm_visited']}) "
              f"| {result['next_day_seconds']} ({result['next_day_visited']}) | {result['celebrated']} "
              f"| {result['roles_removed']} | {result['peak_rss_mb']} | {result['peak_open_files']} "
              f"| {result['peak_threads']} | {result['worst_loop_lag_ms']} |", flush=True)
        if result["failures"]:
            print(f"  failures: {result}", file=sys.stderr)
        print(f"  (folder built in {built:.1f} s; announced {result['announced']})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
