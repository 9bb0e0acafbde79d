"""Benchmark: members leaving a big server: the purge, the commits of the minute after it, the start-up
purge and a mass leave.

    python bench/privacy.py                          # the member-column indexes (as below)
    python bench/privacy.py startup mass-leave       # the purges of many members (at the end)
    python bench/privacy.py --scale 0.2              # a fifth of the rows (quicker)

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

`startup` and `mass-leave` compare the code of now with the way it was before 2026-12-07 (session 8),
on two copies of the same file (fresh copies and services each round; rounds alternate the order):
  startup     `MemberData.purge_absent` with 10,000 banned ex-members (their cases are kept) in the
              file: (a) nobody else absent, a purge that changes nothing; (b) also 3,000 members who
              left while the bot was offline. Baseline: every id of the covered columns (the kept ones
              too), each purged by every handler statement by statement, in one transaction (the
              code of then, `startup_purge_before` below). A `/rank` asked 20 ms into the purge is
              timed too: it waits for the server's file.
  mass-leave  1,000 `member_left` at once (a mass ban, Discord's member prune). Baseline: each
              purge's own transaction also re-checks every member who just left (its before-commit
              hooks ran in every transaction then). A one-row admin write asked 20 ms into the
              burst is timed too.
After each round both copies must hold the same rows (checked with EXCEPT both ways, every table).
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
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from functools import partial
from pathlib import Path

import aiosqlite

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from malabot.app import Services, build_services  # noqa: E402
from malabot.features.xp import repository as xp_repository  # noqa: E402
from malabot.privacy import ids_named_in  # noqa: E402
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


def indexes(args: argparse.Namespace) -> None:
    rng = random.Random(11)
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


# -- many members at once: the code of now against the way it was before 2026-12-07 (session 8) --

BANNED = 10_000
LEFT_OFFLINE = 3_000
MASS_LEAVE = 1_000
FIRST_EX_MEMBER = 300_000_000_000_000_000  # ids of people banned long ago: named in cases only


def is_member(user_id: int) -> bool:
    return FIRST_MEMBER <= user_id < FIRST_MEMBER + MEMBERS


def is_member_but_the_first(count: int) -> Callable[[int], bool]:
    """The server's member list once its first `count` members left while the bot was offline."""
    return lambda user_id: FIRST_MEMBER + count <= user_id < FIRST_MEMBER + MEMBERS


def add_banned_ex_members(path: Path, count: int, rng: random.Random) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO mod_cases (action, target_id, moderator_id, reason, created_at) "
                     "VALUES ('ban', ?, ?, 'raid', ?)",
                     [(FIRST_EX_MEMBER + n, FIRST_MEMBER + rng.randrange(MEMBERS), AT) for n in range(count)])
    conn.execute("COMMIT")
    conn.close()


async def startup_purge_before(services: Services, is_member: Callable[[int], bool]) -> int:
    """`MemberData.purge_absent` as it was before 2026-12-07 (session 8): every id named in a covered
    column, the kept ones too (a banned ex-member's cases), purged by every handler one id at a time,
    in one transaction. Returns how many had rows changed."""
    member_data, tenants = services.member_data, services.tenants
    async with tenants.reading(GUILD, create=False) as conn:
        named = await ids_named_in(conn, member_data.covered_columns())
    absent = sorted(user_id for user_id in named if not is_member(user_id))
    for user_id in absent:
        await member_data.forget(GUILD, user_id)
    purged = 0
    async with tenants.transaction(GUILD, create=False) as conn:
        for user_id in absent:
            if sum([await handler.purge(conn, user_id) for handler in member_data.handlers]):
                purged += 1
    for user_id in absent:
        await member_data.forget(GUILD, user_id)
    return purged


async def startup_purge_now(services: Services, is_member: Callable[[int], bool]) -> int:
    return len((await services.member_data.purge_absent(GUILD, is_member)).user_ids)


def hooks_in_every_transaction(tenants: TenantManager) -> None:
    """The baseline of a mass leave: before 2026-12-07 (session 8) the before-commit hooks (the
    re-check of members who just left) ran in every transaction, a purge's own included."""
    transaction = tenants.transaction

    def every(guild_id: int, *, create: bool = True,
              before_commit: bool = True) -> AbstractAsyncContextManager[aiosqlite.Connection]:
        return transaction(guild_id, create=create)

    tenants.transaction = every  # type: ignore[method-assign,assignment]


async def mass_leave(services: Services, leaving: list[int]) -> None:
    await asyncio.gather(*(services.member_data.member_left(GUILD, user_id) for user_id in leaving))


async def started_services(folder: Path) -> Services:
    services = build_services(Settings(tenants_dir=folder))
    await services.tenants.start()
    await services.tenants.ensure(GUILD)  # opened before the clock starts
    return services


async def while_waiting(work: Awaitable[int | None], waiting: Callable[[], Awaitable[object]]
                        ) -> tuple[float, float, int | None]:
    """Seconds `work` took, seconds `waiting()` asked 20 ms into it took, and what `work` returned."""
    async def asked_meanwhile() -> float:
        await asyncio.sleep(0.02)
        return await timed(waiting()) / 1000

    began = time.perf_counter()
    other = asyncio.create_task(asked_meanwhile())
    result = await work
    took = time.perf_counter() - began
    return took, await other, result


def same_rows(first: Path, second: Path) -> bool:
    conn = sqlite3.connect(first)
    conn.execute("ATTACH DATABASE ? AS other", (str(second),))
    try:
        tables = [row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        differ = ("SELECT (SELECT count(*) FROM (SELECT * FROM main.{0} EXCEPT SELECT * FROM other.{0}))"
                  " + (SELECT count(*) FROM (SELECT * FROM other.{0} EXCEPT SELECT * FROM main.{0}))")
        return all(conn.execute(differ.format(table)).fetchone() == (0,)
                   for table in tables if table not in ("tenant_meta", "schema_migrations"))
    finally:
        conn.close()


def sides(round_: int) -> Iterator[str]:
    return iter(("now", "baseline") if round_ % 2 == 0 else ("baseline", "now"))


async def many_at_once(made: Path, scratch: Path, what: list[str], rounds: int, banned: int,
                       rng: random.Random) -> list[str]:
    lines: list[str] = []
    leaving = named_members(made, MASS_LEAVE, rng)
    cases: list[tuple[str, Callable[[Services, str], Awaitable[int | None]],
                      Callable[[Services], Awaitable[object]]]] = []
    if "startup" in what:
        for name, members in ((f"startup purge, {banned:,} banned ex-members, nobody else absent", is_member),
                              (f"startup purge, {banned:,} banned ex-members + {LEFT_OFFLINE:,} who left "
                               "while offline", is_member_but_the_first(LEFT_OFFLINE))):
            def purge(services: Services, side: str, members: Callable[[int], bool] = members) -> Awaitable[int]:
                return (startup_purge_now if side == "now" else startup_purge_before)(services, members)

            cases.append((name, purge, lambda services: services.xp.rank(GUILD, FIRST_MEMBER + MEMBERS - 1)))
    if "mass-leave" in what:
        def leave(services: Services, side: str) -> Awaitable[None]:
            if side == "baseline":
                hooks_in_every_transaction(services.tenants)
            return mass_leave(services, leaving)

        cases.append((f"{MASS_LEAVE:,} leaves at once", leave,
                      lambda services: admin_write(services.tenants, 7)))
    for name, work, waiting in cases:
        took: dict[str, list[float]] = {"now": [], "baseline": []}
        waited: dict[str, list[float]] = {"now": [], "baseline": []}
        purged: dict[str, int | None] = {}
        for round_ in range(rounds):
            files: dict[str, Path] = {}
            for side in sides(round_):
                folder = scratch / f"{side}-{round_}-{len(lines)}"
                folder.mkdir()
                shutil.copyfile(made, folder / made.name)
                services = await started_services(folder)
                files[side] = services.tenants.paths.live(GUILD)
                seconds, waiting_seconds, purged[side] = await while_waiting(work(services, side),
                                                                             partial(waiting, services))
                took[side].append(seconds)
                waited[side].append(waiting_seconds)
                await services.tenants.close_all()
            assert same_rows(files["now"], files["baseline"]), f"{name}: the two ways left different rows"
            for path in files.values():
                shutil.rmtree(path.parent)
        ratio = statistics.median(took["baseline"]) / statistics.median(took["now"])
        counted = "-" if purged["now"] is None else f"{purged['now']:,} / {purged['baseline']:,}"
        line = (f"| {name} | {', '.join(f'{value:.2f}' for value in took['now'])} "
                f"| {', '.join(f'{value:.2f}' for value in took['baseline'])} | **{ratio:,.0f}** "
                f"| {', '.join(f'{value:.2f}' for value in waited['now'])} "
                f"| {', '.join(f'{value:.2f}' for value in waited['baseline'])} "
                f"| {counted} |")
        print(line, flush=True)
        lines.append(line)
    return lines


def purges(args: argparse.Namespace) -> None:
    rng = random.Random(13)
    with tempfile.TemporaryDirectory(prefix="malabot-bench-privacy-") as scratch:
        started = time.perf_counter()
        made = asyncio.run(make_file(Path(scratch) / "made"))
        fill(made, args.scale, rng)
        banned = max(int(BANNED * args.scale), 1)
        add_banned_ex_members(made, banned, rng)
        print(f"file: {made.stat().st_size / 2**20:.0f} MiB, built in {time.perf_counter() - started:.1f} s",
              flush=True)
        print("| case | now s | baseline s | baseline / now (medians) | a command meanwhile waited, now s "
              "| baseline s | members purged now / baseline |")
        print("|---|---|---|---:|---|---|---|", flush=True)
        asyncio.run(many_at_once(made, Path(scratch), args.what, args.purge_rounds, banned, rng))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", nargs="*", metavar="indexes|startup|mass-leave",
                        help="which comparisons (default: indexes)")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the rows listed above")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=10, help="leaves (and commits) per round and side")
    parser.add_argument("--purge-rounds", type=int, default=2, help="rounds of startup and mass-leave per side")
    args = parser.parse_args()
    args.what = args.what or ["indexes"]
    if unknown := set(args.what) - {"indexes", "startup", "mass-leave"}:
        parser.error(f"unknown comparison: {', '.join(sorted(unknown))}")
    print(f"Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}", flush=True)
    if "indexes" in args.what:
        indexes(args)
    if "startup" in args.what or "mass-leave" in args.what:
        purges(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
