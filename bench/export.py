"""Benchmark: removing repeated rows from a member's `/mydata export`, and the event loop during one.

    python bench/export.py
    python bench/export.py loop

A member named in many rows (a long-serving moderator's cases, say) is exported table by table; a
row naming them in two columns, or exported by two handlers, must appear once. Measured side by side
in one process on the same rows (dicts shaped like exported `mod_cases` rows, one in ten repeated):
  now       `malabot.privacy.without_repeats` (a set of each row's items);
  baseline  the list scan the export used before 2026-12-07 (`row not in kept`, quadratic).
Best of three runs per side and size; the ratio baseline / now (above 1: faster now).

`loop`: the worst stall of the event loop (a task sleeping 2 ms at a time, how much later it woke)
during one `MyDataService.export` of a moderator with 20,000 and 50,000 cases, in a tenant file made
as the bot makes it. Side by side, three runs each, alternating:
  now       the export as it is (dicts made in the connection's thread, repeats dropped once per
            table in a thread, the JSON in a thread);
  baseline  as it was before 2026-12-07 (session 8): dicts made on the loop, repeats dropped on the
            loop by the handler and again by the registry (`export_before` below), the JSON in a thread.
Both must give the same bytes.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from malabot.app import Services, build_services  # noqa: E402
from malabot.features.mydata.export import export_json  # noqa: E402
from malabot.privacy import without_repeats  # noqa: E402
from malabot.settings import Settings  # noqa: E402

Row = dict[str, Any]


def list_scan(rows: list[Row]) -> list[Row]:
    """The baseline: each row compared with every row kept before it."""
    kept: list[Row] = []
    kept.extend(row for row in rows if row not in kept)
    return kept


def exported_rows(count: int) -> list[Row]:
    unique = [{"case_number": number, "action": "warn", "target_id": 10**17 + number % 977,
               "moderator_id": 10**17 + 1, "reason": f"spam in #general ({number})",
               "created_at": "2026-12-07T03:00:00+00:00", "expires_at": None}
              for number in range(count - count // 10)]
    return unique + [dict(row) for row in unique[: count // 10]]  # repeats, as a second column finds them


def best_of(work: Callable[[list[Row]], list[Row]], rows: list[Row], runs: int = 3) -> tuple[float, int]:
    best, kept = float("inf"), 0
    for _ in range(runs):
        started = time.perf_counter()
        kept = len(work(rows))
        best = min(best, time.perf_counter() - started)
    return best, kept


GUILD = 100_000_000_000_000_001
MODERATOR = 200_000_000_000_000_003
MOMENT = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


async def export_before(services: Services, guild_id: int, user_id: int) -> bytes:
    """`/mydata export` as it was before 2026-12-07 (session 8): each handler's rows made into dicts
    on the event loop and their repeats dropped there, then dropped again over every table."""
    await services.xp.flush(guild_id)
    exported: dict[str, list[Row]] = {}
    async with services.tenants.reading(guild_id) as conn:
        for handler in services.member_data.handlers:
            found: dict[str, list[Row]] = {}
            for table, column in sorted(handler.covers):
                async with conn.execute(f"SELECT * FROM {table} WHERE {column} = ?", (user_id,)) as cursor:
                    names = [description[0] for description in cursor.description]
                    rows = [dict(zip(names, row, strict=True)) for row in await cursor.fetchall()]
                found.setdefault(table, []).extend(rows)
            for table, rows in found.items():
                exported.setdefault(table, []).extend(without_repeats(rows))
    tables = {table: without_repeats(rows) for table, rows in exported.items()}
    return await asyncio.to_thread(export_json, guild_id, user_id, MOMENT, tables)


async def export_now(services: Services, guild_id: int, user_id: int) -> bytes:
    return (await services.mydata.export(guild_id, user_id)).content


async def worst_stall(work: Awaitable[bytes]) -> tuple[float, float, bytes]:
    """The longest the event loop stood still during `work` (ms), how long it took (s), its bytes."""
    loop = asyncio.get_running_loop()
    lags: list[float] = [0.0]
    done = asyncio.Event()

    async def probe() -> None:
        while not done.is_set():
            began = loop.time()
            await asyncio.sleep(0.002)
            lags.append(loop.time() - began - 0.002)

    probing = asyncio.create_task(probe())
    await asyncio.sleep(0.01)
    began = time.perf_counter()
    content = await work
    took = time.perf_counter() - began
    done.set()
    await probing
    return max(lags) * 1000, took, content


async def loop_stalls(folder: Path, cases: int) -> str:
    services = build_services(Settings(tenants_dir=folder), clock=lambda: MOMENT)
    await services.tenants.start()
    await services.tenants.ensure(GUILD)
    await services.tenants.close(GUILD)
    conn = sqlite3.connect(services.tenants.paths.live(GUILD), isolation_level=None)
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO mod_cases (action, target_id, moderator_id, reason, created_at) "
                     "VALUES ('warn', ?, ?, ?, '2026-12-07T03:00:00+00:00')",
                     [(MODERATOR + 10 + number, MODERATOR, f"spam in #general ({number})") for number in range(cases)])
    conn.execute("COMMIT")
    conn.close()
    await services.tenants.ensure(GUILD)
    ways: dict[str, Callable[[Services, int, int], Awaitable[bytes]]] = {"now": export_now, "baseline": export_before}
    stalls: dict[str, list[float]] = {side: [] for side in ways}
    took: dict[str, list[float]] = {side: [] for side in ways}
    contents: set[bytes] = set()
    for run in range(3):
        for side in ways if run % 2 == 0 else reversed(list(ways)):
            stall, seconds, content = await worst_stall(ways[side](services, GUILD, MODERATOR))
            stalls[side].append(stall)
            took[side].append(seconds)
            contents.add(content)
    await services.tenants.close_all()
    assert len(contents) == 1, "both ways export the same bytes"

    def listed(values: list[float], form: str) -> str:
        return ", ".join(format(value, form) for value in values)

    return (f"| {cases:,} | {listed(stalls['now'], '.0f')} | {listed(stalls['baseline'], '.0f')} "
            f"| {min(stalls['baseline']) / max(stalls['now']):.1f} | {listed(took['now'], '.2f')} "
            f"| {listed(took['baseline'], '.2f')} | {len(next(iter(contents))) / 2**20:.1f} |")


def loop() -> None:
    print("| cases as moderator | worst stall now ms | baseline ms | best baseline / worst now "
          "| export now s | baseline s | JSON MiB |")
    print("|---:|---|---|---:|---|---|---:|", flush=True)
    with tempfile.TemporaryDirectory(prefix="malabot-bench-export-") as scratch:
        for cases in (20_000, 50_000):
            print(asyncio.run(loop_stalls(Path(scratch) / str(cases), cases)), flush=True)


def main() -> int:
    print(f"Python {sys.version.split()[0]}")
    if sys.argv[1:] == ["loop"]:
        loop()
        return 0
    print("| rows | now s | baseline s | baseline / now | rows kept |")
    print("|---:|---:|---:|---:|---:|")
    for count in (2_500, 5_000, 10_000, 20_000):
        rows = exported_rows(count)
        now, kept = best_of(without_repeats, rows)
        baseline, kept_before = best_of(list_scan, rows, runs=1 if count > 5_000 else 3)
        assert kept == kept_before, "both keep the same rows"
        print(f"| {count:,} | {now:.4f} | {baseline:.2f} | {baseline / now:,.0f} | {kept:,} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
