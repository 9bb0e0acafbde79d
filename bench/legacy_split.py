"""Benchmark: `malabot legacy split` against a row-by-row Python copy of the same legacy file.

    python bench/legacy_split.py                      # 1,000,000 rows over 10,000 and over 1,000 guilds
    python bench/legacy_split.py --rows 100000 --guilds 1000
    python bench/legacy_split.py --variant global     # global variant: placement by evidence, copies
    python bench/legacy_split.py --dir /some/disk     # where the temporary files go (default: $TMPDIR)

For each (rows, guilds) a legacy file is generated from tests/fixtures/legacy/schema-global.sql
(per-guild variant by default: every row belongs to a server), then, each in its own child process so
that time and peak RSS are their own:
  split      `split_legacy()` exactly as the CLI runs it (lock, read, place, build, write every file
             under a temporary name, fsync, rename, report); targets: 10,000 guilds <= 60 s,
             1,000 guilds <= 10 s.
  row copy   the naive script: read each table, group by guild, and per guild create and migrate the
             file the same way, then one execute() per row (no mapping, no evidence, no ledger), one
             transaction per guild, fsync, rename.
Both write real tenant files to a fresh folder; the results are printed as JSON lines.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from legacy_fixtures import GLOBAL, PER_GUILD, create_legacy  # noqa: E402

FIRST_GUILD = 400_000_000_000_000_000
FIRST_USER = 100_000_000_000_000_000
# Share of the rows each table gets (users are global profiles; the rest belong to servers).
SHARES = {"user_xp": 0.36, "daily_checkins": 0.12, "birthdays": 0.10, "roast_log": 0.08, "audit_log": 0.10,
          "verifications": 0.05, "mod_logs": 0.05, "appeals": 0.02, "settings": 0.05, "level_roles": 0.02,
          "users": 0.05}
SETTING_KEYS = ("xp_progression_type", "xp_per_message", "xp_channel", "welcome_channel", "welcome_message",
                "welcome_title", "birthday_channel", "birthday_time", "timezone", "mod_role", "custom_key")
SETTING_VALUES = {"xp_progression_type": "gradual", "xp_per_message": "12", "welcome_message":
                  "Hi {member.mention} to {server.name}", "welcome_title": "Hello", "birthday_time": "09:00",
                  "timezone": "Europe/Berlin", "custom_key": "x"}


# --- the legacy file ----------------------------------------------------------------------------

def generate(path: Path, rows: int, guilds: int, variant: str, seed: int = 7) -> dict[str, int]:
    """A legacy file with about `rows` rows spread evenly over `guilds` servers."""
    rng = random.Random(seed)
    conn = create_legacy(path, variant)
    conn.execute("PRAGMA synchronous = OFF")
    per_guild = {table: max(1, int(rows * share) // guilds)
                 for table, share in SHARES.items() if table != "users"}
    per_guild["settings"] = min(per_guild["settings"], len(SETTING_KEYS))
    # The global users table takes up the rest, so that the file has `rows` rows (roast_xp has 5).
    users_count = max(0, rows - 5 - sum(per_guild.values()) * guilds)
    population = max(rows // 5, 10 * guilds, users_count)
    members_per_guild = max(per_guild["user_xp"], per_guild["daily_checkins"], per_guild["birthdays"]) + 5
    users = [FIRST_USER + n for n in range(population)]
    global_rows = variant == GLOBAL
    # Users: global profiles (with XP and a birthday in the global variant).
    conn.executemany(
        "INSERT INTO users (user_id, username, discriminator, total_messages) VALUES (?, 'Unknown', '0', ?)"
        if not global_rows else
        "INSERT INTO users (user_id, username, discriminator, total_messages, xp)"
        " VALUES (?, 'Unknown', '0', ?, ?)",
        [((user, rng.randrange(500)) if not global_rows else (user, rng.randrange(500), rng.randrange(60000)))
         for user in users[:users_count]])
    done_global: set[tuple[str, int]] = set()
    for number in range(guilds):
        guild = FIRST_GUILD + number
        members = rng.sample(users, members_per_guild)
        _guild_rows(conn, rng, guild, members, per_guild, variant, done_global)
    conn.commit()
    result = {name: conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0] for name in
              [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                               "AND name NOT LIKE 'sqlite_%'")]}
    conn.close()
    return result


def _guild_rows(conn: sqlite3.Connection, rng: random.Random, guild: int, members: list[int],
                per_guild: dict[str, int], variant: str, done_global: set[tuple[str, int]]) -> None:
    pick = members.__getitem__
    scoped = variant == PER_GUILD

    def once(table: str, user: int) -> bool:
        """Global tables are UNIQUE(user_id): each member's row is written by the first server only."""
        if scoped:
            return True
        if (table, user) in done_global:
            return False
        done_global.add((table, user))
        return True

    conn.executemany("INSERT INTO user_xp (user_id, guild_id, xp, level) VALUES (?, ?, ?, 0)",
                     [(pick(n), guild, rng.randrange(60000)) for n in range(per_guild["user_xp"])])
    checkins = [(pick(n), f"2024-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}", rng.randrange(1, 40))
                for n in range(per_guild["daily_checkins"])]
    birthdays = [(pick(n), f"{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}", 2024)
                 for n in range(per_guild["birthdays"])]
    verifications = [(pick(n), f"Player#{n}", "pc", "verified") for n in range(per_guild["verifications"])]
    roasts = [(rng.choice(members), rng.choice(members), "roast_success", 15, "ouch")
              for _ in range(per_guild["roast_log"])]
    if scoped:
        conn.executemany("INSERT INTO daily_checkins (user_id, last_checkin, checkin_streak, guild_id)"
                         " VALUES (?, ?, ?, ?)", [(*row, guild) for row in checkins])
        conn.executemany("INSERT INTO birthdays (user_id, birthday, announced_year, guild_id)"
                         " VALUES (?, ?, ?, ?)",
                         [(*row, guild) for row in birthdays])
        conn.executemany("INSERT INTO verifications (discord_id, activision_id, platform, status, guild_id)"
                         " VALUES (?, ?, ?, ?, ?)", [(*row, guild) for row in verifications])
        conn.executemany("INSERT INTO roast_log (user_id, target_id, action, xp_gained, message_content,"
                         " guild_id)"
                         " VALUES (?, ?, ?, ?, ?, ?)", [(*row, guild) for row in roasts])
    else:
        conn.executemany("INSERT INTO daily_checkins (user_id, last_checkin, checkin_streak)"
                         " VALUES (?, ?, ?)",
                         [row for row in checkins if once("daily_checkins", row[0])])
        conn.executemany("INSERT INTO birthdays (user_id, birthday, announced_year) VALUES (?, ?, ?)",
                         [row for row in birthdays if once("birthdays", row[0])])
        conn.executemany("INSERT INTO verifications (discord_id, activision_id, platform, status)"
                         " VALUES (?, ?, ?, ?)", verifications)
        conn.executemany("INSERT INTO roast_log (user_id, target_id, action, xp_gained, message_content)"
                         " VALUES (?, ?, ?, ?, ?)", roasts)
    conn.executemany("INSERT INTO audit_log (category, action, user_id, guild_id, timestamp)"
                     " VALUES ('xp', 'edit', ?, ?, '2024-01-01 10:00:00')",
                     [(rng.choice(members), guild) for _ in range(per_guild["audit_log"])])
    conn.executemany("INSERT INTO mod_logs (guild_id, user_id, moderator_id, action, reason, timestamp)"
                     " VALUES (?, ?, ?, 'warn', 'spam', '2024-01-01 10:00:00')",
                     [(guild, rng.choice(members), members[0]) for _ in range(per_guild["mod_logs"])])
    conn.executemany("INSERT INTO appeals (user_id, guild_id, appeal_text) VALUES (?, ?, 'sorry')",
                     [(rng.choice(members), guild) for _ in range(per_guild["appeals"])])
    keys = SETTING_KEYS[:per_guild["settings"]]
    conn.executemany("INSERT INTO settings (guild_id, setting_key, value) VALUES (?, ?, ?)",
                     [(guild, key, SETTING_VALUES.get(key, str(guild % 10**12 + 1))) for key in keys])
    conn.executemany("INSERT INTO level_roles (guild_id, level, role_id) VALUES (?, ?, ?)",
                     [(guild, level, guild + level) for level in range(1, per_guild["level_roles"] + 1)])


# --- the two contenders -------------------------------------------------------------------------

def run_split(legacy: Path, tenants: Path) -> dict[str, object]:
    from malabot.legacy.split import SplitOptions, split_legacy

    started = time.perf_counter()
    report = split_legacy(SplitOptions(legacy_db=legacy, tenants_dir=tenants))
    seconds = time.perf_counter() - started
    totals = report.ledger.totals()
    return {"seconds": round(seconds, 2), "accounted": report.accounted, "files": report.written_files,
            "read": sum(t.read for t in totals.values()), "written": sum(t.written for t in totals.values())}


def run_row_copy(legacy: Path, tenants: Path) -> dict[str, object]:
    """The naive script: group by guild, then one execute() per row into a freshly migrated file."""
    from malabot.tenancy.migrations import MigrationSet, migrate
    from malabot.tenancy.opening import fsync_file
    from malabot.tenancy.paths import TenantPaths

    started = time.perf_counter()
    paths = TenantPaths(tenants)
    tenants.mkdir(parents=True, exist_ok=True)
    migrations = MigrationSet.load()
    source = sqlite3.connect(f"file:{legacy}?mode=ro", uri=True)
    copies = {  # legacy query → target insert (columns in the same order)
        "SELECT guild_id, user_id, xp, 0, last_message_time FROM user_xp":
            "INSERT OR IGNORE INTO xp (user_id, xp, messages, last_message_at) VALUES (?, ?, ?, ?)",
        "SELECT guild_id, user_id, last_checkin, checkin_streak, checkin_streak, checkin_streak"
        " FROM daily_checkins"
        " WHERE guild_id IS NOT NULL":
            "INSERT OR IGNORE INTO checkins (user_id, last_day, streak, best_streak, total)"
            " VALUES (?, ?, ?, ?, ?)",
        "SELECT guild_id, user_id, CAST(substr(birthday, 1, 2) AS INTEGER),"
        " CAST(substr(birthday, 4, 2) AS INTEGER),"
        " created_at FROM birthdays WHERE guild_id IS NOT NULL":
            "INSERT OR IGNORE INTO birthdays (user_id, month, day, created_at) VALUES (?, ?, ?, ?)",
        "SELECT guild_id, id, discord_id, activision_id, platform, status FROM verifications"
        " WHERE guild_id IS NOT NULL":
            "INSERT INTO game_verifications (id, user_id, activision_id, platform, status)"
            " VALUES (?, ?, ?, ?, ?)",
        "SELECT guild_id, id, user_id, action FROM roast_log WHERE guild_id IS NOT NULL":
            "INSERT INTO legacy_roast_log (id, user_id, action) VALUES (?, ?, ?)",
        "SELECT guild_id, id, timestamp, category, action, user_id FROM audit_log WHERE guild_id IS NOT NULL":
            "INSERT INTO audit_log (id, at, category, action, actor_id) VALUES (?, ?, ?, ?, ?)",
        "SELECT guild_id, id, action, user_id, moderator_id, timestamp FROM mod_logs":
            "INSERT INTO mod_cases (case_number, action, target_id, moderator_id, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
        "SELECT guild_id, id, user_id, appeal_text FROM appeals":
            "INSERT INTO appeals (id, user_id, appeal_text) VALUES (?, ?, ?)",
        "SELECT guild_id, setting_key, value FROM settings WHERE guild_id IS NOT NULL":
            "INSERT INTO legacy_settings (key, value) VALUES (?, ?)",
        "SELECT guild_id, level, role_id FROM level_roles":
            "INSERT INTO level_roles (level, role_id) VALUES (?, ?)",
    }
    columns = {table: {row[1] for row in source.execute(f"PRAGMA table_info({table})")}
               for table in ("daily_checkins", "birthdays", "verifications", "roast_log")}
    grouped: dict[int, list[tuple[str, tuple[object, ...]]]] = {}
    copied = 0
    for query, insert in copies.items():
        table = query.split(" FROM ")[1].split()[0]
        if table in columns and "guild_id" not in columns[table]:
            continue
        for guild, *values in source.execute(query):
            grouped.setdefault(guild, []).append((insert, tuple(values)))
    source.close()
    for guild, statements in grouped.items():
        staging = paths.staging(guild, "bench")
        conn = sqlite3.connect(staging, isolation_level=None)
        conn.execute("PRAGMA journal_mode = MEMORY")
        conn.execute("PRAGMA synchronous = OFF")
        migrate(conn, migrations, f"guild {guild}")
        conn.execute("BEGIN")
        conn.execute("INSERT INTO tenant_meta (singleton, guild_id, created_at) VALUES (1, ?, 'now')",
                     (guild,))
        for insert, values in statements:
            conn.execute(insert, values)
            copied += 1
        conn.execute("COMMIT")
        conn.close()
        fsync_file(staging)
        os.replace(staging, paths.live(guild))
    return {"seconds": round(time.perf_counter() - started, 2), "files": len(grouped), "copied": copied}


def child(kind: str, legacy: Path, tenants: Path) -> None:
    result = run_split(legacy, tenants) if kind == "split" else run_row_copy(legacy, tenants)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    # The split's forked workers (ru_maxrss of the largest one; they share pages with the parent).
    result["worker_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
    print(json.dumps(result))


def measure(kind: str, legacy: Path, tenants: Path) -> dict[str, object]:
    shutil.rmtree(tenants, ignore_errors=True)
    output = subprocess.run([sys.executable, __file__, "--child", kind, str(legacy), str(tenants)],
                            check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--guilds", type=int, nargs="*", default=[10_000, 1_000])
    parser.add_argument("--variant", choices=[PER_GUILD, GLOBAL], default=PER_GUILD)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--child", nargs=3, metavar=("KIND", "LEGACY", "TENANTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]))
        return
    targets = {10_000: 60.0, 1_000: 10.0}
    print(json.dumps({"python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
                      "cpus": os.cpu_count(), "variant": args.variant}))
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="legacy-bench-") as folder:
        for guilds in args.guilds:
            legacy = Path(folder) / f"bot-{guilds}.db"
            started = time.perf_counter()
            counts = generate(legacy, args.rows, guilds, args.variant)
            generated = round(time.perf_counter() - started, 1)
            split = measure("split", legacy, Path(folder) / "tenants-split")
            copy = measure("row copy", legacy, Path(folder) / "tenants-copy")
            target = targets.get(guilds)
            print(json.dumps({
                "guilds": guilds, "legacy_rows": sum(counts.values()),
                "legacy_mb": round(legacy.stat().st_size / 2**20),
                "generate_s": generated, "split": split, "row_copy": copy,
                "split_vs_row_copy": round(float(split["seconds"]) / float(copy["seconds"]), 2),  # type: ignore[arg-type]
                "target_s": target, "met": None if target is None else float(split["seconds"]) <= target,  # type: ignore[arg-type]
            }))
            legacy.unlink()


if __name__ == "__main__":
    main()
