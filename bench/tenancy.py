"""Benchmark: the tenant manager's latency, its overhead over plain sqlite3, and 10,000 tenants in a pool.

    python bench/tenancy.py                   # everything (about a minute, ~1.2 GB of temporary files)
    python bench/tenancy.py --tenants 2000    # a smaller pool run
    python bench/tenancy.py --dir /some/disk  # where the temporary tenants folder goes (default: $TMPDIR)
    python bench/tenancy.py --only latency    # or upserts, scale, or visits

1. Latency, each call timed on its own (median, p95); targets: open existing p95 <= 5 ms,
   create+migrate p95 <= 20 ms.
   create+migrate  `ensure()` of a new guild: temporary file, every migration, identity row, fsync,
                   publish under the live name, then the pooled connection opens.
   open existing   `ensure()` of a closed tenant: identity and migration-history check with plain sqlite3
                   in a worker thread, then the aiosqlite connection opens. Measured with room in the
                   pool, and with a full pool (the least recently used tenant is closed first).
2. Upsert throughput: single-row upserts, each its own transaction, through `transaction()` against
   plain sqlite3 (BEGIN IMMEDIATE … COMMIT, same pragmas) on the same file in the same run, and a bare
   aiosqlite connection making the same three calls (BEGIN, upsert, COMMIT: three thread round trips),
   which separates the manager's cost from aiosqlite's. Rounds alternate between the three; the median
   round of each is reported with the ratios.
3. Scale, in a child process so its peak RSS is its own: N tenant files (copies of one made by the
   manager, each with its own identity row) touched once each — one upsert through `transaction()` —
   with 1,024 touches in flight against a pool of 256 (MALABOT_MAX_OPEN_TENANTS' default). Every touch
   opens a closed tenant and evicts another. Threads (/proc/self/task) and open fds (/proc/self/fd)
   are sampled every 2 ms; targets: threads <= pool + 16, fds <= 3 x pool + 64.
4. Write visits to closed files, the XP flush's pattern (no target; it shows how much of a visit is
   SQLite's own): 1,000 closed tenant files each get one transaction of 30 upserts, 4 at a time,
   through a fresh manager with a pool of 256 (every visit opens a file and, past the cap, closes
   another) against plain sqlite3 in 4 threads doing the same per file (open with the identity and
   migration check, BEGIN IMMEDIATE, upserts, COMMIT, close). Rounds alternate; medians and their
   ratio. Also the memory of one open plain connection and of one open tenant in the manager
   (1,000 opened each, one after the other, RSS difference). Where a
   plain visit's time goes: the same visits in one thread, closing as SQLite does by default (the
   last connection checkpoints the -wal into the file, with its fsyncs, and removes it) against
   closing with SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE (the -wal stays; Python >= 3.12 only), each on its
   own copy of the files.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiosqlite

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from malabot.tenancy.manager import TenantManager  # noqa: E402
from malabot.tenancy.migrations import MigrationSet  # noqa: E402
from malabot.tenancy.opening import open_tenant  # noqa: E402
from malabot.tenancy.paths import TenantPaths  # noqa: E402

FIRST_GUILD = 100_000_000_000_000_000
POOL = 256
IN_FLIGHT = 1024
UPSERT = ("INSERT INTO xp (user_id, xp, messages) VALUES (?, 1, 1)"
          " ON CONFLICT (user_id) DO UPDATE SET xp = xp + 1, messages = messages + 1")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def latency_line(name: str, seconds: list[float], target_ms: float | None = None) -> dict[str, float]:
    median, p95 = statistics.median(seconds) * 1000, percentile(seconds, 0.95) * 1000
    verdict = ""
    if target_ms is not None:
        verdict = f"  (target p95 <= {target_ms:g} ms: {'met' if p95 <= target_ms else 'MISSED'})"
    print(f"  {name:<34} median {median:6.2f} ms   p95 {p95:6.2f} ms   n={len(seconds)}{verdict}")
    return {"median_ms": round(median, 3), "p95_ms": round(p95, 3), "n": len(seconds)}


async def timed(work: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    await work()
    return time.perf_counter() - start


# -- 1. latency ----------------------------------------------------------------------------------


async def measure_latency(root: Path, count: int) -> dict[str, object]:
    print(f"1. latency ({count} guilds)")
    guilds = [FIRST_GUILD + n for n in range(count)]
    tenants = TenantManager(root, max_open=count + 1)
    created = [await timed(lambda g=g: tenants.ensure(g)) for g in guilds]  # type: ignore[misc]
    await tenants.close_all()

    tenants = TenantManager(root, max_open=count + 1)
    random.Random(1).shuffle(guilds)
    opened = [await timed(lambda g=g: tenants.ensure(g)) for g in guilds]  # type: ignore[misc]
    await tenants.close_all()

    full = TenantManager(root, max_open=count // 2)  # every second open must close the LRU tenant
    opened_full = [await timed(lambda g=g: full.ensure(g)) for g in guilds]  # type: ignore[misc]
    await full.close_all()
    return {
        "create_migrate": latency_line("create+migrate (ensure new)", created, 20),
        "open_existing": latency_line("open existing, room in pool", opened, 5),
        "open_existing_full_pool": latency_line("open existing, pool full (evicts)",
                                                opened_full[count // 2:], 5),
    }


# -- 2. upsert throughput ------------------------------------------------------------------------


async def manager_round(tenants: TenantManager, guild_id: int, users: list[int]) -> float:
    start = time.perf_counter()
    for user_id in users:
        async with tenants.transaction(guild_id) as conn:
            await conn.execute(UPSERT, (user_id,))
    return len(users) / (time.perf_counter() - start)


async def aiosqlite_round(path: Path, users: list[int]) -> float:
    """The same three calls per upsert on a bare aiosqlite connection: what the manager adds is the rest."""
    conn = await aiosqlite.connect(path, isolation_level=None)
    try:
        await conn.execute("PRAGMA foreign_keys = ON")
        await conn.execute("PRAGMA synchronous = NORMAL")
        start = time.perf_counter()
        for user_id in users:
            await conn.execute("BEGIN IMMEDIATE")
            await conn.execute(UPSERT, (user_id,))
            await conn.execute("COMMIT")
        return len(users) / (time.perf_counter() - start)
    finally:
        await conn.close()


def plain_round(path: Path, users: list[int]) -> float:
    conn = sqlite3.connect(path, isolation_level=None, timeout=5)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = NORMAL")
    try:
        start = time.perf_counter()
        for user_id in users:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(UPSERT, (user_id,))
            conn.execute("COMMIT")
        return len(users) / (time.perf_counter() - start)
    finally:
        conn.close()


async def measure_upserts(root: Path, per_round: int, rounds: int) -> dict[str, object]:
    print(f"2. single-row upserts, one transaction each ({rounds} rounds of {per_round} per side)")
    guild_id = FIRST_GUILD - 1
    rng = random.Random(2)
    tenants = TenantManager(root)
    await tenants.ensure(guild_id)
    through_manager, through_aiosqlite, through_plain = [], [], []
    live = tenants.paths.live(guild_id)
    for _ in range(rounds):
        users = [rng.randrange(1, 1000) for _ in range(per_round)]
        through_manager.append(await manager_round(tenants, guild_id, users))
        await tenants.close(guild_id)  # one connection at a time on the file
        through_aiosqlite.append(await aiosqlite_round(live, users))
        through_plain.append(plain_round(live, users))
    await tenants.close_all()
    manager, bare, plain = (statistics.median(through_manager), statistics.median(through_aiosqlite),
                            statistics.median(through_plain))
    print(f"  through transaction()   {manager:9.0f} upserts/s")
    print(f"  bare aiosqlite          {bare:9.0f} upserts/s   (same 3 calls; manager/bare {manager / bare:.2f})")
    print(f"  plain sqlite3           {plain:9.0f} upserts/s")
    print(f"  ratio manager/plain     {manager / plain:9.2f}")
    return {"manager_per_s": round(manager), "aiosqlite_per_s": round(bare), "plain_per_s": round(plain),
            "ratio": round(manager / plain, 3), "ratio_to_aiosqlite": round(manager / bare, 3)}


# -- 3. scale (child process) --------------------------------------------------------------------


def build_tenants(root: Path, count: int) -> None:
    """One tenant made by the manager, copied per guild with its identity row rewritten."""
    template_root = root.parent / "template"

    async def make_template() -> Path:
        tenants = TenantManager(template_root)
        await tenants.ensure(FIRST_GUILD)
        await tenants.close_all()
        return tenants.paths.live(FIRST_GUILD)

    template = asyncio.run(make_template()).read_bytes()
    paths = TenantPaths(root)
    root.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        live = paths.live(FIRST_GUILD + n)
        live.write_bytes(template)
        conn = sqlite3.connect(live, isolation_level=None)
        conn.execute("UPDATE tenant_meta SET guild_id = ?", (FIRST_GUILD + n,))
        conn.close()
    shutil.rmtree(template_root)


def count_entries(folder: str) -> int:
    return len(os.listdir(folder))


async def touch_all(root: Path, count: int) -> dict[str, object]:
    tenants = TenantManager(root, max_open=POOL)
    await tenants.start()
    peaks = {"threads": count_entries("/proc/self/task"), "fds": count_entries("/proc/self/fd")}
    baseline = dict(peaks)
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            peaks["threads"] = max(peaks["threads"], count_entries("/proc/self/task"))
            peaks["fds"] = max(peaks["fds"], count_entries("/proc/self/fd"))
            await asyncio.sleep(0.002)

    gate = asyncio.Semaphore(IN_FLIGHT)

    async def touch(guild_id: int) -> None:
        async with gate, tenants.transaction(guild_id, create=False) as conn:
            await conn.execute(UPSERT, (1,))

    guilds = [FIRST_GUILD + n for n in range(count)]
    random.Random(3).shuffle(guilds)
    sampler = asyncio.create_task(sample())
    start = time.perf_counter()
    await asyncio.gather(*(touch(guild_id) for guild_id in guilds))
    wall = time.perf_counter() - start
    done.set()
    await sampler
    open_at_end = tenants.open_count
    await tenants.close_all()
    return {"tenants": count, "pool": POOL, "in_flight": IN_FLIGHT, "wall_s": round(wall, 2),
            "touches_per_s": round(count / wall), "peak_threads": peaks["threads"],
            "peak_fds": peaks["fds"], "baseline_threads": baseline["threads"],
            "baseline_fds": baseline["fds"], "open_at_end": open_at_end,
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def measure_scale(root: Path, count: int) -> dict[str, object]:
    print(f"3. {count} tenant files touched once each through a pool of {POOL} ({IN_FLIGHT} in flight)")
    start = time.perf_counter()
    build_tenants(root, count)
    print(f"  (built {count} files from a template in {time.perf_counter() - start:.1f} s)")
    child = subprocess.run([sys.executable, __file__, "--child-scale", str(root), str(count)],
                           capture_output=True, text=True, check=True)
    result: dict[str, object] = json.loads(child.stdout)
    thread_cap, fd_cap = POOL + 16, 3 * POOL + 64
    print(f"  wall time               {result['wall_s']} s ({result['touches_per_s']} tenants/s)")
    print(f"  peak RSS                {result['peak_rss_mib']} MiB")
    print(f"  peak threads            {result['peak_threads']} (target <= {thread_cap}: "
          f"{'met' if int(str(result['peak_threads'])) <= thread_cap else 'MISSED'};"
          f" {result['baseline_threads']} before the run)")
    print(f"  peak open fds           {result['peak_fds']} (target <= {fd_cap}: "
          f"{'met' if int(str(result['peak_fds'])) <= fd_cap else 'MISSED'};"
          f" {result['baseline_fds']} before the run)")
    print(f"  open at the end         {result['open_at_end']}")
    return result


# -- 4. write visits to closed files -------------------------------------------------------------

VISIT_ROWS = [(user_id,) for user_id in range(30)]
NO_CHECKPOINT_ON_CLOSE: int | None = getattr(sqlite3, "SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE", None)


async def manager_visits(root: Path, guild_ids: list[int]) -> float:
    tenants = TenantManager(root, max_open=POOL)
    await tenants.start()
    gate = asyncio.Semaphore(4)

    async def visit(guild_id: int) -> None:
        async with gate, tenants.transaction(guild_id, create=False) as conn:
            await conn.executemany(UPSERT, VISIT_ROWS)

    start = time.perf_counter()
    await asyncio.gather(*(visit(guild_id) for guild_id in guild_ids))
    wall = time.perf_counter() - start
    await tenants.close_all()
    return wall


def plain_visit(paths: TenantPaths, migrations: MigrationSet, guild_id: int, *,
                checkpoint_on_close: bool = True) -> None:
    conn, _ = open_tenant(paths, guild_id, migrations, create=False)
    if not checkpoint_on_close:
        conn.setconfig(NO_CHECKPOINT_ON_CLOSE, True)  # type: ignore[attr-defined]  # Python >= 3.12
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(UPSERT, VISIT_ROWS)
        conn.execute("COMMIT")
    finally:
        conn.close()


def plain_visits(root: Path, guild_ids: list[int]) -> float:
    paths, migrations = TenantPaths(root), MigrationSet.load()
    start = time.perf_counter()
    with ThreadPoolExecutor(4) as threads:
        list(threads.map(lambda guild_id: plain_visit(paths, migrations, guild_id), guild_ids))
    return time.perf_counter() - start


def one_thread_visits(root: Path, guild_ids: list[int], *, checkpoint_on_close: bool) -> float:
    paths, migrations = TenantPaths(root), MigrationSet.load()
    start = time.perf_counter()
    for guild_id in guild_ids:
        plain_visit(paths, migrations, guild_id, checkpoint_on_close=checkpoint_on_close)
    return time.perf_counter() - start


def measure_checkpoint_share(root: Path, guild_ids: list[int], rounds: int) -> dict[str, object]:
    """One-thread visits with and without the close-time checkpoint, each side on its own copy."""
    if NO_CHECKPOINT_ON_CLOSE is None:
        print("  one thread, no checkpoint on close: needs Python >= 3.12 (Connection.setconfig)")
        return {}
    kept = root.parent / "kept-wal"
    shutil.copytree(root, kept)
    with_checkpoint, without = [], []
    for _ in range(rounds):
        with_checkpoint.append(one_thread_visits(root, guild_ids, checkpoint_on_close=True))
        without.append(one_thread_visits(kept, guild_ids, checkpoint_on_close=False))
    shutil.rmtree(kept)
    folded, left = statistics.median(with_checkpoint), statistics.median(without)
    print(f"  one thread, checkpoint on close    {folded:.2f} s ({folded / len(guild_ids) * 1000:.2f} ms per file)")
    print(f"  one thread, -wal left on close     {left:.2f} s ({left / len(guild_ids) * 1000:.2f} ms per file)")
    return {"one_thread_checkpoint_s": round(folded, 3), "one_thread_wal_left_s": round(left, 3),
            "one_thread_checkpoint_rounds_s": [round(run, 3) for run in with_checkpoint],
            "one_thread_wal_left_rounds_s": [round(run, 3) for run in without]}


def rss_kib() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


async def manager_tenant_kib(root: Path, guild_ids: list[int]) -> float:
    """The memory of one open tenant in the manager (its aiosqlite connection and thread), with room
    in the pool for all of them; measured the same way as the plain connection."""
    tenants = TenantManager(root, max_open=len(guild_ids) + 1)
    await tenants.start()
    before = rss_kib()
    for guild_id in guild_ids:
        async with tenants.transaction(guild_id, create=False) as conn:
            await conn.executemany(UPSERT, VISIT_ROWS)
    grown = rss_kib() - before
    await tenants.close_all()
    return grown / len(guild_ids)


def connection_kib(root: Path, kind: str) -> float:
    """`plain_connection_kib` or `manager_tenant_kib` in a fresh child process: in one process the
    second would reuse memory the first freed."""
    child = subprocess.run([sys.executable, __file__, "--child-memory", kind, str(root)],
                           capture_output=True, text=True, check=True)
    return float(child.stdout.strip().splitlines()[-1])


def child_memory(kind: str, root: Path) -> float:
    guild_ids = TenantPaths(root).live_guild_ids()
    if kind == "plain":
        return plain_connection_kib(root, guild_ids)
    return asyncio.run(manager_tenant_kib(root, guild_ids))


def plain_connection_kib(root: Path, guild_ids: list[int]) -> float:
    """SQLite's memory for one open connection that has read and written its file."""
    paths, migrations = TenantPaths(root), MigrationSet.load()
    before = rss_kib()
    connections = []
    for guild_id in guild_ids:
        conn, _ = open_tenant(paths, guild_id, migrations, create=False)
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(UPSERT, VISIT_ROWS)
        conn.execute("COMMIT")
        connections.append(conn)
    grown = rss_kib() - before
    for conn in connections:
        conn.close()
    return grown / len(guild_ids)


def measure_visits(root: Path, count: int, rounds: int) -> dict[str, object]:
    print(f"4. write visits to {count} closed tenant files, 4 at a time, {rounds} rounds each side")
    build_tenants(root, count)
    guild_ids = [FIRST_GUILD + n for n in range(count)]
    manager_runs, plain_runs = [], []
    for _ in range(rounds):
        manager_runs.append(asyncio.run(manager_visits(root, guild_ids)))
        plain_runs.append(plain_visits(root, guild_ids))
    manager, plain = statistics.median(manager_runs), statistics.median(plain_runs)
    kib, tenant_kib = connection_kib(root, "plain"), connection_kib(root, "manager")
    print(f"  through the manager (pool {POOL})  {manager:.2f} s ({manager / count * 1000:.2f} ms per file)")
    print(f"  plain sqlite3, 4 threads          {plain:.2f} s ({plain / count * 1000:.2f} ms per file)")
    print(f"  ratio manager / plain             {manager / plain:.2f}")
    print(f"  one open plain connection         {kib:.0f} KiB of RSS")
    print(f"  one open tenant in the manager    {tenant_kib:.0f} KiB of RSS (connection and thread)")
    checkpoint_share = measure_checkpoint_share(root, guild_ids, rounds)
    return {"files": count, "manager_s": round(manager, 3), "plain_s": round(plain, 3),
            "ratio": round(manager / plain, 3), "plain_connection_kib": round(kib),
            "manager_tenant_kib": round(tenant_kib),
            "manager_rounds_s": [round(run, 3) for run in manager_runs],
            "plain_rounds_s": [round(run, 3) for run in plain_runs], **checkpoint_share}


# -- main ----------------------------------------------------------------------------------------


def environment(folder: Path) -> dict[str, object]:
    filesystem = subprocess.run(["df", "-T", str(folder)], capture_output=True, text=True).stdout
    kind = filesystem.splitlines()[-1].split()[1] if filesystem.strip() else "?"
    return {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
            "cpus": os.cpu_count(), "filesystem": kind, "machine": platform.machine(),
            "load_average_1m": os.getloadavg()[0]}  # other work on the machine skews every figure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tenants", type=int, default=10_000, help="files in the scale run")
    parser.add_argument("--latency-guilds", type=int, default=400)
    parser.add_argument("--upserts", type=int, default=5_000, help="upserts per round and side")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None, help="parent of the temporary tenants folder")
    parser.add_argument("--only", choices=("latency", "upserts", "scale", "visits"), help="run one measurement")
    parser.add_argument("--visit-files", type=int, default=1000, help="files in the write-visits run")
    parser.add_argument("--child-scale", nargs=2, metavar=("ROOT", "COUNT"), help=argparse.SUPPRESS)
    parser.add_argument("--child-memory", nargs=2, metavar=("KIND", "ROOT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_memory:
        print(child_memory(args.child_memory[0], Path(args.child_memory[1])))
        return
    if args.child_scale:
        print(json.dumps(asyncio.run(touch_all(Path(args.child_scale[0]), int(args.child_scale[1])))))
        return

    work = Path(tempfile.mkdtemp(prefix="malabot-bench-", dir=args.dir))
    try:
        env = environment(work)
        print("environment:", ", ".join(f"{key} {value}" for key, value in env.items()))
        results: dict[str, object] = {"environment": env}
        if args.only in (None, "latency"):
            results["latency"] = asyncio.run(measure_latency(work / "latency", args.latency_guilds))
        if args.only in (None, "upserts"):
            results["upserts"] = asyncio.run(measure_upserts(work / "upserts", args.upserts, args.rounds))
        if args.only in (None, "scale"):
            results["scale"] = measure_scale(work / "scale" / "tenants", args.tenants)
        if args.only in (None, "visits"):
            results["visits"] = measure_visits(work / "visits" / "tenants", args.visit_files, args.rounds)
        results["load_average_1m_after"] = os.getloadavg()[0]
        print(json.dumps(results))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
