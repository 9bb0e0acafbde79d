"""Benchmark: a member leaving a big server: the purge, and the commits of the minute after it.

    python bench/privacy.py
    python bench/privacy.py --scale 0.2     # a fifth of the rows (quicker)

One server file with big member tables (at scale 1: 100,000 XP rows, 200,000 audit rows, 50,000
moderation cases, 100,000 legacy roast-log rows, 20,000 game verifications, 5,000 appeals, 50,000
verification requests, ids drawn from 100,000 members), made by the tenant manager and filled with
plain sqlite3. Two copies side by side in one process, each behind its own services
(`malabot.app.build_services`, as the bot wires them):
  now       the file as the migrations make it;
  baseline  the same file with the member-column indexes of migrations/0004 dropped (what every
            file had before them).
Measured on each, in rounds that alternate between the two:
  leave     `MemberData.member_left` of a member named in those tables (the bot's on_member_remove):
            one transaction that purges or anonymises their rows in every member table;
  commit    a small admin write (`/xp set`, one row) in the minute after leaves, while the members who
            left are still remembered: each commit first looks for them in every member column.
Each call timed on its own; medians and p95 per side, and the ratio baseline / now (above 1: faster now).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from malabot.app import Services, build_services  # noqa: E402
from malabot.features.xp import repository as xp_repository  # noqa: E402
from malabot.settings import Settings  # noqa: E402
from malabot.tenancy.manager import TenantManager  # noqa: E402

GUILD = 100_000_000_000_000_001
FIRST_MEMBER = 200_000_000_000_000_000
MEMBERS = 100_000
BASELINE_DROPS = ("mod_cases_by_moderator", "verification_requests_by_reviewer", "game_verifications_by_user",
                  "game_verifications_by_reviewer", "appeals_by_user", "appeals_by_reviewer",
                  "audit_log_by_actor", "legacy_roast_log_by_user", "legacy_roast_log_by_target")
AT = "2026-06-15T12:00:00+00:00"


def fill(path: Path, scale: float, rng: random.Random) -> None:
    def member() -> int:
        return FIRST_MEMBER + rng.randrange(MEMBERS)

    def rows(count: int) -> range:
        return range(max(int(count * scale), 1))

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO xp (user_id, xp, messages) VALUES (?, ?, 1)",
                     [(FIRST_MEMBER + n, rng.randrange(10_000)) for n in rows(MEMBERS)])
    conn.executemany("INSERT INTO audit_log (at, category, action, actor_id, target_id, details) "
                     "VALUES (?, 'xp', 'add', ?, ?, '{}')", [(AT, member(), member()) for _ in rows(200_000)])
    conn.executemany("INSERT INTO mod_cases (action, target_id, moderator_id, reason, created_at) "
                     "VALUES ('warn', ?, ?, 'spam', ?)", [(member(), member(), AT) for _ in rows(50_000)])
    conn.executemany("INSERT INTO legacy_roast_log (user_id, target_id, action, created_at) "
                     "VALUES (?, ?, 'roast', ?)", [(member(), member(), AT) for _ in rows(100_000)])
    conn.executemany("INSERT INTO game_verifications (user_id, activision_id, platform, reviewer_id) "
                     "VALUES (?, 'name#1', 'pc', ?)", [(member(), member()) for _ in rows(20_000)])
    conn.executemany("INSERT INTO appeals (user_id, appeal_text, reviewer_id) VALUES (?, 'please', ?)",
                     [(member(), member()) for _ in rows(5_000)])
    conn.executemany("INSERT OR IGNORE INTO verification_requests (user_id, status, requested_at, reviewer_id) "
                     "VALUES (?, 'verified', ?, ?)", [(member(), AT, member()) for _ in rows(50_000)])
    conn.execute("COMMIT")
    conn.close()


async def make_file(folder: Path) -> Path:
    services = build_services(Settings(tenants_dir=folder))
    await services.tenants.start()
    await services.tenants.ensure(GUILD)
    await services.tenants.close_all()
    return services.tenants.paths.live(GUILD)


def named_members(path: Path, count: int, rng: random.Random) -> list[int]:
    """Members who appear as actors or moderators (rows a purge must find), in random order."""
    conn = sqlite3.connect(path)
    found = [row[0] for row in conn.execute(
        "SELECT actor_id FROM audit_log UNION SELECT moderator_id FROM mod_cases")]
    conn.close()
    return rng.sample(found, count)


async def timed(work: Awaitable[object]) -> float:
    started = time.perf_counter()
    await work
    return (time.perf_counter() - started) * 1000


async def admin_write(tenants: TenantManager, value: int) -> None:
    """A small write of the kind /xp set makes: one row, in a transaction."""
    async with tenants.transaction(GUILD) as conn:
        await xp_repository.set_xp(conn, FIRST_MEMBER, value)


async def measure(folders: dict[str, Path], leaving: dict[str, list[int]], rounds: int,
                  per_round: int) -> dict[str, dict[str, list[float]]]:
    services: dict[str, Services] = {}
    for side, folder in folders.items():
        services[side] = build_services(Settings(tenants_dir=folder))
        await services[side].tenants.start()
        await services[side].tenants.ensure(GUILD)
    times: dict[str, dict[str, list[float]]] = {side: {"leave": [], "commit": []} for side in folders}
    for round_ in range(rounds):
        for side in folders if round_ % 2 == 0 else reversed(list(folders)):
            member_data, tenants = services[side].member_data, services[side].tenants
            for index in range(per_round):
                user_id = leaving[side][round_ * per_round + index]
                times[side]["leave"].append(await timed(member_data.member_left(GUILD, user_id)))
            for _ in range(per_round):
                times[side]["commit"].append(await timed(admin_write(tenants, round_)))
    for side in folders:
        await services[side].tenants.close_all()
    return times


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(int(len(ordered) * 0.95), len(ordered) - 1)]
    return f"median {statistics.median(ordered):7.2f} ms  p95 {p95:7.2f} ms  (n={len(ordered)})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the rows listed above")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=10, help="leaves (and commits) per round and side")
    args = parser.parse_args()
    rng = random.Random(11)
    print(f"Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}", flush=True)
    with tempfile.TemporaryDirectory(prefix="malabot-bench-privacy-") as scratch:
        folders = {"now": Path(scratch) / "now", "baseline": Path(scratch) / "baseline"}
        started = time.perf_counter()
        made = asyncio.run(make_file(folders["now"]))
        fill(made, args.scale, rng)
        folders["baseline"].mkdir()
        copy = folders["baseline"] / made.name
        shutil.copyfile(made, copy)
        conn = sqlite3.connect(copy, isolation_level=None)
        for index in BASELINE_DROPS:
            conn.execute(f"DROP INDEX {index}")
        conn.close()
        print(f"file: {made.stat().st_size / 2**20:.0f} MiB, built in {time.perf_counter() - started:.1f} s",
              flush=True)
        # Each side loses different members (a purged member is gone), drawn the same way.
        needed = args.rounds * args.per_round
        chosen = named_members(made, 2 * needed, rng)
        leaving = {"now": chosen[:needed], "baseline": chosen[needed:]}
        times = asyncio.run(measure(folders, leaving, args.rounds, args.per_round))
    for kind in ("leave", "commit"):
        for side in ("now", "baseline"):
            print(f"{kind:6s} {side:8s} {summary(times[side][kind])}")
        ratio = statistics.median(times["baseline"][kind]) / statistics.median(times["now"][kind])
        print(f"{kind:6s} ratio baseline / now (medians): {ratio:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
