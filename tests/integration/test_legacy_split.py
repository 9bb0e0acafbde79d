"""`malabot legacy split` on legacy files built from the old bot's schema, in all three variants."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import unprivileged
from legacy_fixtures import GLOBAL, HALF_WAY, PER_GUILD, LegacyDb, create_legacy

from malabot.__main__ import main
from malabot.errors import TenantsLocked
from malabot.features.xp.curves import level_for_xp
from malabot.legacy import reader, writer
from malabot.legacy import split as split_module
from malabot.legacy.build import Content
from malabot.legacy.evidence import MembersFileRefused
from malabot.legacy.schema_detect import LegacyInputRefused
from malabot.legacy.split import SplitOptions, SplitReport, split_legacy
from malabot.tenancy.lock import TenantsLock
from malabot.tenancy.migrations import MigrationSet
from malabot.tenancy.opening import create_tenant_file
from malabot.tenancy.paths import TenantPaths

A, B, C, D = 1001, 1002, 1003, 1004
MEMBER_TABLES = {  # new table → the column holding the member whose data it is
    "xp": "user_id", "birthdays": "user_id", "birthday_celebrations": "user_id", "checkins": "user_id",
    "checkin_days": "user_id", "game_verifications": "user_id", "legacy_roast_log": "user_id",
    "appeals": "user_id", "audit_log": "actor_id",
}


# --- helpers ------------------------------------------------------------------------------------

def run(legacy: Path, tenants: Path, **options: object) -> SplitReport:
    return split_legacy(SplitOptions(legacy_db=legacy, tenants_dir=tenants, **options))  # type: ignore[arg-type]


def rows(path: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def settings_of(path: Path) -> dict[str, object]:
    return {key: json.loads(str(value)) for key, value in rows(path, "SELECT key, value FROM settings")}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def folder_state(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): digest(path) for path in sorted(folder.rglob("*"))
            if path.is_file() and path.name != ".malabot.lock"}


def legacy_evidence(legacy: Path, members: dict[int, set[int]] | None = None) -> dict[int, set[int]]:
    """guild → users with a row in a server-scoped legacy table, computed straight from the file."""
    conn = sqlite3.connect(f"file:{legacy}?mode=ro", uri=True)
    found: dict[int, set[int]] = {guild: set(users) for guild, users in (members or {}).items()}
    queries = ["SELECT guild_id, user_id FROM user_xp", "SELECT guild_id, user_id FROM mod_logs",
               "SELECT guild_id, moderator_id FROM mod_logs", "SELECT guild_id, user_id FROM appeals",
               "SELECT guild_id, reviewed_by FROM appeals",
               "SELECT guild_id, user_id FROM audit_log WHERE guild_id IS NOT NULL"]
    for table, column in (("birthdays", "user_id"), ("daily_checkins", "user_id"),
                          ("verifications", "discord_id"), ("roast_log", "user_id")):
        columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if "guild_id" in columns:
            queries.append(f"SELECT guild_id, {column} FROM {table} WHERE guild_id IS NOT NULL")
    for query in queries:
        for guild, user in conn.execute(query):
            if user is not None:
                found.setdefault(guild, set()).add(user)
    conn.close()
    return found


def legacy_counts(legacy: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{legacy}?mode=ro", uri=True)
    names = [row[0] for row in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    counts = {name: conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0] for name in names}
    conn.close()
    return counts


def assert_only_where_evidence(legacy: Path, tenants: Path,
                               members: dict[int, set[int]] | None = None) -> None:
    """No member's row in a server without evidence that the member is in it."""
    evidence = legacy_evidence(legacy, members)
    paths = TenantPaths(tenants)
    for guild in paths.live_guild_ids():
        for table, column in MEMBER_TABLES.items():
            query = f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL"
            for (user,) in rows(paths.live(guild), query):
                assert user in evidence.get(guild, set()), f"{user} in {table} of {guild} without evidence"


def assert_conserved(report: SplitReport, legacy: Path) -> None:
    totals = report.ledger.totals()
    for table, count in legacy_counts(legacy).items():
        row = totals[table]
        assert row.read == count, table
        assert row.written + row.holding + sum(row.held.values()) == count, table
    assert report.accounted


# --- the standard scenario ----------------------------------------------------------------------

def standard_legacy(path: Path) -> Path:
    """A global-variant file with members in several servers, strays, and every kind of row."""
    db = LegacyDb(path, GLOBAL)
    db.user(11, xp=150, messages=12)       # in A (mod case target) and B (scratch user_xp row)
    db.user(12, xp=15050)                  # in A (audit actor) and C (appeal)
    db.user(13, xp=350000)                 # in B (moderator)
    db.user(14, xp=99)                     # no evidence anywhere
    db.user(15)                            # profile only
    db.user(16, xp=22000)                  # in C by the members CSV only
    db.user(17, birthday="05-05")          # in A (appeal); birthday only in the users table
    db.user_xp(11, B, 40)
    db.birthday(12, "02-29", announced_year=2023)
    db.birthday(14, "07-04")
    db.birthday(16, "13-01")               # no such month
    db.checkin(11, "2024-05-01", 3)
    db.checkin(13, "2024-02-30", 2)        # no such day
    db.verification(11, "Player#11")
    db.verification(14, "Stray#14", status="pending")
    db.setting(None, "timezone", "Europe/Berlin")
    db.setting(None, "timezone", "Asia/Tokyo")           # a later duplicate: the oldest wins
    db.setting(None, "xp_levelup_message", "{member.mention} reached level {level}!")
    db.setting(A, "xp_progression_type", "basic")
    db.setting(A, "xp_per_message", "20")
    db.setting(A, "welcome_channel", "5001")
    db.setting(A, "welcome_message", "Hi {member.mention}, welcome to {server.name} (#{member.count})")
    db.setting(A, "welcome_title", "Hello!")
    db.setting(A, "birthday_time", "08:30")
    db.setting(A, "fancy_key", "{\"a\": 1}")
    db.setting(B, "xp_progression_type", "gradual")
    db.setting(B, "timezone", "Asia/Tokyo")
    db.level_role(A, 5, 9001)
    db.level_role(A, 10, 9002)
    db.level_role(A, 15, 9001)                           # the same role twice
    db.mod_log(A, 11, 19)
    db.mod_log(A, 11, 19, "kick")
    db.mod_log(B, 20, 13, "ban")
    db.audit(A, 12)
    db.audit(None, 11)                                   # member of A and B: which one is unknown
    db.audit(None, 16)                                   # member of C only
    db.audit(None, None)                                 # nobody
    db.appeal(C, 12)
    db.appeal(A, 17, "approved")
    db.roast(12)                                         # member of A and C
    db.roast(13)                                         # member of B only
    db.process_rows()
    db.close()
    return path


@pytest.fixture
def legacy(tmp_path: Path) -> Path:
    return standard_legacy(tmp_path / "bot.db")


@pytest.fixture
def members_csv(tmp_path: Path) -> Path:
    path = tmp_path / "members.csv"
    path.write_text("guild_id,user_id\n1003,16\n", encoding="utf-8")
    return path


@pytest.fixture
def tenants(tmp_path: Path) -> Path:
    return tmp_path / "tenants"


def live_file_with(tenants: Path, guild: int, *statements: str) -> Path:
    """The guild's live tenant file, as a bot left it after `statements`."""
    paths = TenantPaths(tenants)
    create_tenant_file(paths, guild, MigrationSet.load())
    conn = sqlite3.connect(paths.live(guild))
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()
    return paths.live(guild)


def holding_file(tenants: Path) -> Path:
    [path] = (tenants / writer.HOLDING_DIR).glob("*.sqlite3")
    return path


# --- the global variant -------------------------------------------------------------------------

def test_global_rows_go_only_where_the_member_has_evidence(legacy: Path, tenants: Path,
                                                           members_csv: Path) -> None:
    report = run(legacy, tenants, members_csv=members_csv)

    assert_conserved(report, legacy)
    paths = TenantPaths(tenants)
    assert paths.live_guild_ids() == [A, B, C]
    assert_only_where_evidence(legacy, tenants, {C: {16}})
    assert rows(paths.live(A), "SELECT user_id, xp, messages FROM xp ORDER BY user_id") == [
        (11, 150, 12), (12, 15050, 0)]
    assert rows(paths.live(B), "SELECT user_id, xp FROM xp ORDER BY user_id") == [(11, 150), (13, 350000)]
    assert rows(paths.live(C), "SELECT user_id, xp FROM xp ORDER BY user_id") == [(12, 15050), (16, 22000)]
    # Global events go to the member's only server; with several, to the holding file.
    assert rows(paths.live(C), "SELECT actor_id FROM audit_log WHERE category = 'admin'") == [(16,)]
    assert rows(paths.live(B), "SELECT user_id FROM legacy_roast_log") == [(13,)]
    assert rows(paths.live(A), "SELECT user_id FROM legacy_roast_log") == []


def test_rows_without_evidence_wait_in_the_holding_file_with_their_reason(legacy: Path,
                                                                         tenants: Path) -> None:
    report = run(legacy, tenants)

    holding = holding_file(tenants)
    assert holding.parent.name == writer.HOLDING_DIR and not holding.name[0].isdigit()
    assert rows(holding, "SELECT user_id, xp FROM xp ORDER BY user_id") == [(14, 99), (16, 22000)]
    assert rows(holding, "SELECT user_id, activision_id FROM game_verifications") == [(14, "Stray#14")]
    reasons = dict(((table, user), reason) for table, _rowid, user, reason in
                   rows(holding, "SELECT source_table, source_rowid, user_id, reason FROM legacy_holding"))
    assert reasons[("users", 14)].startswith("no evidence")
    assert "2 servers" in reasons[("audit_log", 11)]
    assert rows(holding, "SELECT count(*) FROM tenant_meta") == [(0,)]  # not any server's file
    assert report.ledger.totals()["users"].holding == 2  # 14, and 16 without the members CSV


def test_assign_unknown_sends_rows_without_evidence_to_that_server(legacy: Path, tenants: Path) -> None:
    report = run(legacy, tenants, assign_unknown=A)

    assert_conserved(report, legacy)
    assert_only_where_evidence(legacy, tenants, {A: {14, 16, 17}})
    xp_of_a = dict(rows(TenantPaths(tenants).live(A), "SELECT user_id, xp FROM xp"))
    assert xp_of_a[14] == 99 and xp_of_a[16] == 22000
    assert 13 not in xp_of_a  # 13 has evidence (server B): never copied elsewhere
    # Only the events of members of several servers still wait in the holding file.
    assert {table for (table,) in rows(holding_file(tenants), "SELECT source_table FROM legacy_holding")} == {
        "audit_log", "roast_log"}


def test_users_whose_id_is_not_a_discord_id_get_no_xp_row_anywhere(tmp_path: Path, tenants: Path) -> None:
    db = LegacyDb(tmp_path / "bot.db", GLOBAL)
    db.user(0, xp=150)           # ids the old bot stored for nobody in particular
    db.user(-5, xp=300, birthday="05-05")
    db.user(11, xp=500)
    db.mod_log(A, 11, 12)
    db.close()

    report = run(tmp_path / "bot.db", tenants, assign_unknown=A)

    assert report.accounted
    assert dict(rows(TenantPaths(tenants).live(A), "SELECT user_id, xp FROM xp")) == {11: 500}
    assert rows(TenantPaths(tenants).live(A), "SELECT user_id FROM birthdays") == []
    assert dict(report.ledger.totals()["users"].held) == {
        "user 0 is not a Discord id": 1, "user -5 is not a Discord id": 1}


def test_scratch_user_xp_profile_rows_and_process_data_are_held_back_with_reasons(legacy: Path,
                                                                                  tenants: Path) -> None:
    totals = run(legacy, tenants).ledger.totals()

    assert dict(totals["user_xp"].held) == {
        "global variant: written only by birthday XP and never read by the old bot": 1}
    assert dict(totals["users"].held) == {"profile only (no XP, messages or birthday)": 1}
    for table, count in (("health_logs", 1), ("system_flags", 1), ("roast_xp", 5)):
        assert dict(totals[table].held) == {"process data of the old bot, not server data": count}


def test_settings_are_mapped_and_unknown_keys_kept_verbatim(legacy: Path, tenants: Path) -> None:
    run(legacy, tenants)

    paths = TenantPaths(tenants)
    assert settings_of(paths.live(A)) == {
        "level_curve": "basic", "xp_min": 20, "xp_max": 20, "timezone": "Europe/Berlin",
        "welcome_enabled": True, "welcome_channel_id": 5001,
        "welcome_template": "Hi {member}, welcome to {server} (#{member_count})", "birthday_hour": 8,
        "levelup_template": "{member} reached level {level}!"}
    assert dict(rows(paths.live(A), "SELECT key, value FROM legacy_settings")) == {
        "welcome_title": "Hello!", "birthday_time": "08:30", "fancy_key": "{\"a\": 1}"}
    # B sets its own timezone; C sets nothing: old defaults (custom curve, 10 XP) and the global keys.
    assert settings_of(paths.live(B))["timezone"] == "Asia/Tokyo"
    assert settings_of(paths.live(C)) == {
        "level_curve": "custom", "xp_min": 10, "xp_max": 10, "timezone": "Europe/Berlin",
        "levelup_template": "{member} reached level {level}!"}


def test_a_settings_value_that_is_binary_is_held_back_and_the_rest_mapped(tmp_path: Path,
                                                                          tenants: Path) -> None:
    db = LegacyDb(tmp_path / "bot.db", PER_GUILD)
    db.setting(A, "xp_levelup_message", b"Hey!")  # type: ignore[arg-type]  # a known key
    db.setting(A, "xp_progression_type", "basic")
    db.setting(B, "mystery_key", b"\x00\x01")  # type: ignore[arg-type]  # a key kept verbatim
    db.setting(B, "welcome_title", "Hello!")
    db.setting(None, "timezone", b"UTC")  # type: ignore[arg-type]  # a global default
    db.setting(B, b"k", "v")  # type: ignore[arg-type]
    db.close()

    report = run(db.path, tenants)

    assert report.accounted
    live = TenantPaths(tenants).live
    assert settings_of(live(A))["level_curve"] == "basic" and "levelup_template" not in settings_of(live(A))
    assert "timezone" not in settings_of(live(A))
    assert dict(rows(live(B), "SELECT key, value FROM legacy_settings")) == {"welcome_title": "Hello!"}
    assert dict(report.ledger.totals()["settings"].held) == {
        "the value is binary data (a BLOB), not text": 3, "the key b'k' is not text": 1}


def test_birthdays_checkins_and_records_keep_their_meaning(legacy: Path, tenants: Path) -> None:
    report = run(legacy, tenants)

    live = TenantPaths(tenants).live
    assert rows(live(A), "SELECT user_id, month, day, year FROM birthdays ORDER BY user_id") == [
        (12, 2, 29, None), (17, 5, 5, None)]
    # Announced in 2023 by the old bot, on Feb 28 (no Feb 29 that year): not again by the new one.
    assert rows(live(A), "SELECT user_id, year, local_day FROM birthday_celebrations") == [
        (12, 2023, "2023-02-28")]
    assert rows(live(A), "SELECT user_id, last_day, streak, best_streak, total FROM checkins") == [
        (11, "2024-05-01", 3, 3, 3)]
    assert rows(live(A), "SELECT user_id, day, xp_awarded FROM checkin_days") == [(11, "2024-05-01", 0)]
    cases = "SELECT case_number, action, target_id, moderator_id, created_at FROM mod_cases"
    assert rows(live(A), cases) == [
        (1, "warn", 11, 19, "2024-03-01T10:00:00+00:00"), (2, "kick", 11, 19, "2024-03-01T10:00:00+00:00")]
    assert rows(live(B), "SELECT case_number, action FROM mod_cases") == [(1, "ban")]
    assert rows(live(A), "SELECT level, role_id FROM level_roles ORDER BY level") == [(5, 9001), (10, 9002)]
    assert rows(live(C), "SELECT user_id, status FROM appeals") == [(12, "pending")]
    held = report.ledger.totals()
    assert "invalid birthday '13-01'" in held["birthdays"].held
    assert "invalid date '2024-02-30'" in held["daily_checkins"].held
    assert "role already given at level 5" in held["level_roles"].held


def test_a_birth_year_the_new_bot_refuses_is_left_out_and_named_in_the_report(tmp_path: Path, tenants: Path) -> None:
    db = LegacyDb(tmp_path / "bot.db", GLOBAL)
    db.birthday(11, "2999-05-01")                         # a birth date in the future: a negative age
    db.user(12, xp=70, birthday="1850-07-04")             # before 1900, in the users table
    db.birthday(13, "1990-07-04")
    db.mod_log(A, 11, 12)
    db.mod_log(A, 13, 12)
    db.close()

    report = run(db.path, tenants)

    assert_conserved(report, db.path)
    live = TenantPaths(tenants).live
    assert rows(live(A), "SELECT user_id, month, day, year FROM birthdays ORDER BY user_id") == [
        (11, 5, 1, None), (12, 7, 4, None), (13, 7, 4, 1990)]
    totals = report.ledger.totals()
    assert (totals["birthdays"].written, dict(totals["birthdays"].held)) == (2, {})
    assert dict(totals["birthdays"].partly) == {
        "a birth date in the future: '2999-05-01' (kept without its year)": 1}
    assert dict(totals["users"].partly) == {"a birth year before 1900: '1850-07-04' (kept without its year)": 1}
    assert "part of written rows: a birth date in the future: '2999-05-01' (kept without its year) (1)" in \
        report.render()


def test_what_is_left_of_a_written_row_is_named_in_the_report(tmp_path: Path, tenants: Path) -> None:
    db = LegacyDb(tmp_path / "bot.db", GLOBAL)
    db.user(11, xp=5000, messages=10, birthday="02-30")   # XP written, birthday impossible
    db.user(12, xp=70, birthday="03-15")                  # XP written, birthday beaten by the next row
    db.birthday(12, "04-01")
    db.mod_log(A, 11, 12)
    db.close()

    report = run(db.path, tenants)

    assert_conserved(report, db.path)
    users = report.ledger.totals()["users"]
    assert (users.written, dict(users.held)) == (2, {})
    assert dict(users.partly) == {"invalid birthday '02-30'": 1,
                                  "superseded by the member's newer birthday": 1}
    text = report.render()
    assert "part of written rows: invalid birthday '02-30' (1)" in text
    assert "held, part of written rows: users: invalid birthday '02-30' (1)" in text


def test_a_row_the_new_schema_refuses_is_held_back_and_the_rest_written(tmp_path: Path,
                                                                        tenants: Path) -> None:
    db = LegacyDb(tmp_path / "bot.db", PER_GUILD)
    db.verification(41, "Fine#41", guild_id=A)
    db.conn.execute("INSERT INTO verifications (guild_id, discord_id, activision_id, platform)"
                    " VALUES (?, 42, ?, 'pc')", (A, b"\x00binary"))  # the legacy column took a blob
    db.mod_log(A, 41, 9)
    db.close()

    report = run(db.path, tenants)

    assert report.accounted
    live = TenantPaths(tenants).live(A)
    assert rows(live, "SELECT user_id FROM game_verifications") == [(41,)]
    assert rows(live, "SELECT target_id FROM mod_cases") == [(41,)]
    [(reason, count)] = report.ledger.totals()["verifications"].held.items()
    assert reason.startswith("refused by the new schema") and count == 1


def test_legacy_timestamps_become_iso_utc_and_others_stay_verbatim(tmp_path: Path, tenants: Path) -> None:
    db = LegacyDb(tmp_path / "bot.db", PER_GUILD)
    stamps = ("2024-03-01 10:00:00", "2024-03-01 10:00:00.250", "2024-03-01T10:00:00Z",
              "2024-03-01 10:00:00+02:00", "yesterday", 1709287200)
    for stamp in stamps:
        db.conn.execute("INSERT INTO audit_log (category, action, guild_id, timestamp) VALUES ('admin', 'x', ?, ?)",
                        (A, stamp))
    db.close()

    run(db.path, tenants)

    assert [at for (at,) in rows(TenantPaths(tenants).live(A), "SELECT at FROM audit_log WHERE category = 'admin' "
                                                               "ORDER BY id")] == [
        "2024-03-01T10:00:00+00:00", "2024-03-01T10:00:00.250+00:00", "2024-03-01T10:00:00Z",
        "2024-03-01 10:00:00+02:00", "yesterday", "1709287200"]


def test_case_times_become_times_the_bot_reads(tmp_path: Path, tenants: Path) -> None:
    # The bot dates every case it lists and counts warnings by it: a time it cannot read would break
    # the server's case lists. Unreadable times fall back to the row's created_at, then to the split.
    db = LegacyDb(tmp_path / "bot.db", PER_GUILD)
    for stamp, created_at in (("2024-03-01 10:00:00.250", None), ("2024-03-01 10:00:00+02:00", None),
                              (1709287200, None), (1709287200123, None), ("1709287200", None),
                              ("yesterday", "2024-02-01 00:00:00"), ("yesterday", None), (1000, None)):
        db.conn.execute("INSERT INTO mod_logs (guild_id, user_id, moderator_id, action, timestamp, created_at)"
                        " VALUES (?, 1, 2, 'warn', ?, ?)", (A, stamp, created_at))
    db.close()

    report = run(db.path, tenants)

    *read, split_time, also_split_time = [at for (at,) in rows(
        TenantPaths(tenants).live(A), "SELECT created_at FROM mod_cases ORDER BY case_number")]
    assert read == [
        "2024-03-01T10:00:00.250000+00:00", "2024-03-01T08:00:00+00:00", "2024-03-01T10:00:00+00:00",
        "2024-03-01T10:00:00.123000+00:00", "2024-03-01T10:00:00+00:00", "2024-02-01T00:00:00+00:00"]
    assert split_time == also_split_time
    assert abs(datetime.fromisoformat(str(split_time)) - datetime.now(UTC)) < timedelta(minutes=5)
    assert dict(report.ledger.totals()["mod_logs"].partly) == {
        "its time is not a date or a Unix time; the case is dated at the split": 2}


def test_tenant_files_are_complete_malabot_files(legacy: Path, tenants: Path) -> None:
    run(legacy, tenants)

    live = TenantPaths(tenants).live(A)
    assert rows(live, "PRAGMA integrity_check") == [("ok",)]
    assert rows(live, "SELECT guild_id FROM tenant_meta") == [(A,)]
    assert rows(live, "PRAGMA user_version") == [(MigrationSet.load().latest,)]
    assert rows(live, "SELECT action FROM audit_log WHERE category = 'legacy'") == [("split",)]
    assert not list(tenants.glob(".*.tmp"))


# --- levels -------------------------------------------------------------------------------------

XP_VALUES = (0, 49, 50, 99, 100, 149, 250, 549, 550, 15049, 15050, 21999, 22000, 349999, 350000, 10**6)
CURVES = {A: "basic", B: "gradual", C: "custom", D: None}  # None: never set, the old default


def leveled_legacy(path: Path, variant: str) -> tuple[Path, dict[tuple[int, int], int]]:
    """Members with XP around every curve's thresholds in four servers, one per curve."""
    db = LegacyDb(path, variant)
    expected: dict[tuple[int, int], int] = {}
    for guild, curve in CURVES.items():
        if curve is not None:
            db.setting(guild, "xp_progression_type", curve)
    for number, xp in enumerate(XP_VALUES):
        user = 500 + number
        db.user(user, xp=xp)
        for offset, guild in enumerate(CURVES):
            guild_xp = xp + offset if variant == PER_GUILD else xp
            if variant != GLOBAL:
                db.user_xp(user, guild, guild_xp)
            db.appeal(guild, user)  # evidence in every server
            expected[guild, user] = guild_xp
    db.close()
    return path, expected


@pytest.mark.parametrize("variant", [GLOBAL, PER_GUILD, HALF_WAY])
def test_levels_are_what_members_saw_for_every_curve(tmp_path: Path, tenants: Path, variant: str) -> None:
    legacy, legacy_xp = leveled_legacy(tmp_path / "bot.db", variant)

    report = run(legacy, tenants)

    assert_conserved(report, legacy)
    assert_only_where_evidence(legacy, tenants)
    seen = set()
    for guild, old_curve in CURVES.items():
        path = TenantPaths(tenants).live(guild)
        new_curve = str(settings_of(path).get("level_curve", "standard"))
        assert new_curve == (old_curve or "custom")
        for user, xp in rows(path, "SELECT user_id, xp FROM xp"):
            before = level_for_xp(old_curve or "custom", legacy_xp[guild, int(user)])  # type: ignore[call-overload]
            assert level_for_xp(new_curve, int(xp)) == before, (guild, user)  # type: ignore[call-overload]
            seen.add((guild, user))
    # Every XP row arrived; a global profile with 0 XP has nothing to carry.
    assert seen == {key for key, xp in legacy_xp.items() if xp > 0 or variant != GLOBAL}


@pytest.mark.parametrize("variant", [GLOBAL, PER_GUILD])
def test_fractional_xp_from_a_multiplier_keeps_its_level(tmp_path: Path, tenants: Path, variant: str) -> None:
    db = LegacyDb(tmp_path / "bot.db", variant)
    db.setting(A, "xp_progression_type", "basic")          # level L at 100·L − 50
    for user, xp, messages in ((601, 1849.5, 120), (602, 949.75, 0), (603, 1850.0, 3)):
        db.user(user, xp=xp, messages=messages)  # type: ignore[arg-type]  # REAL, as a multiplier leaves it
        if variant != GLOBAL:
            db.user_xp(user, A, xp)  # type: ignore[arg-type]
        db.appeal(A, user)
    db.close()

    report = run(tmp_path / "bot.db", tenants)

    assert_conserved(report, tmp_path / "bot.db")
    stored = dict(rows(TenantPaths(tenants).live(A), "SELECT user_id, xp FROM xp"))
    assert stored == {601: 1849, 602: 949, 603: 1850}, "rounded down, never dropped"
    assert [level_for_xp("basic", stored[user]) for user in (601, 602, 603)] == [18, 9, 19]


def test_xp_too_large_to_keep_is_held_back_in_the_dry_run_as_in_the_real_run(tmp_path: Path,
                                                                             tenants: Path) -> None:
    db = LegacyDb(tmp_path / "bot.db", HALF_WAY)
    db.user(11, xp=1e20, messages=10)  # type: ignore[arg-type]  # REAL, beyond any SQLite integer
    db.user(12, xp=1e20)  # type: ignore[arg-type]  # and nothing else
    db.user_xp(13, A, 1e19)  # type: ignore[arg-type]
    db.user_xp(14, A, 10**15 + 1)      # an integer, but more than the XP feature lets a member hold
    db.user_xp(15, A, 700)
    db.mod_log(A, 11, 12)
    db.close()
    too_much = "is more than a member may hold (1,000,000,000,000,000)"

    for dry_run in (True, False):
        report = run(db.path, tenants, dry_run=dry_run)

        assert_conserved(report, db.path)
        totals = report.ledger.totals()
        assert dict(totals["user_xp"].held) == {f"XP 1e+19 {too_much}": 1, f"XP 1000000000000001 {too_much}": 1}
        assert dict(totals["users"].held) == {f"XP 1e+20 {too_much}": 1}
        assert dict(totals["users"].partly) == {f"XP 1e+20 {too_much}": 1}  # its messages are written
    assert rows(TenantPaths(tenants).live(A), "SELECT user_id, xp, messages FROM xp ORDER BY user_id") == [
        (11, 0, 10), (15, 700, 0)]


def test_a_number_too_large_for_sqlite_is_refused_for_its_row_only(tmp_path: Path) -> None:
    paths = TenantPaths(tmp_path / "tenants")
    content = Content(rows={"xp": [(11, 2**64, 0, None), (12, 50, 0, None)]},
                      origins={"xp": [("users", 1), ("users", 2)]}, sources={"users": [1, 2]})

    with writer.tenant_template(paths.root, MigrationSet.load()) as template:
        result = writer.create_tenant(paths, A, content, template, writer.Marker("f00d", "bot.db", "-"),
                                      "2024-01-01T00:00:00+00:00")

    assert result.written == {"users": {2}}
    [(origin, reason)] = result.refused
    assert origin == ("users", 1) and "too large" in reason
    assert rows(paths.live(A), "SELECT user_id, xp FROM xp") == [(12, 50)]


# --- the other variants -------------------------------------------------------------------------

def test_per_guild_variant_keeps_each_servers_own_rows(tmp_path: Path, tenants: Path) -> None:
    db = LegacyDb(tmp_path / "bot.db", PER_GUILD)
    db.user(21)
    db.user_xp(21, A, 300)
    db.user_xp(21, B, 7000)
    db.birthday(21, "12-24", guild_id=A)
    db.birthday(21, "01-01", guild_id=B)
    db.checkin(21, "2024-06-01", 5, guild_id=B)
    db.verification(21, "Per#21", guild_id=B)
    db.roast(21, guild_id=A)
    db.close()

    report = run(db.path, tenants)

    assert_conserved(report, db.path)
    assert report.summary.variant == "per-guild columns"
    assert_only_where_evidence(db.path, tenants)
    live = TenantPaths(tenants).live
    assert rows(live(A), "SELECT user_id, xp FROM xp") == [(21, 300)]
    assert rows(live(B), "SELECT user_id, xp FROM xp") == [(21, 7000)]
    assert rows(live(A), "SELECT month, day FROM birthdays") == [(12, 24)]
    assert rows(live(B), "SELECT month, day FROM birthdays") == [(1, 1)]
    assert rows(live(A), "SELECT count(*) FROM checkins") == [(0,)]
    assert rows(live(B), "SELECT activision_id FROM game_verifications") == [("Per#21",)]
    assert rows(live(A), "SELECT user_id, action FROM legacy_roast_log") == [(21, "roast_success")]
    assert dict(report.ledger.totals()["users"].held) == {"profile only (no XP, messages or birthday)": 1}


def test_half_way_file_null_rows_follow_evidence_and_server_rows_win(tmp_path: Path, tenants: Path) -> None:
    db = LegacyDb(tmp_path / "bot.db", HALF_WAY)
    db.user(31, xp=1000)
    db.user(32, xp=50)
    db.user_xp(31, A, 400)        # smaller than the global XP: the global XP is what members saw
    db.user_xp(32, B, 900)        # larger: written by the per-guild release, it wins
    db.birthday(31, "03-03")      # old row, guild_id NULL: goes where 31 has evidence (A)
    db.birthday(32, "04-04", guild_id=B)
    db.checkin(31, "2024-01-01", 1)
    db.checkin(32, "2024-01-02", 4, guild_id=B)
    db.close()

    report = run(db.path, tenants)

    assert_conserved(report, db.path)
    assert report.summary.variant == "half-way"
    assert_only_where_evidence(db.path, tenants)
    live = TenantPaths(tenants).live
    assert rows(live(A), "SELECT user_id, xp FROM xp") == [(31, 1000)]
    assert rows(live(B), "SELECT user_id, xp FROM xp") == [(32, 900)]
    assert rows(live(A), "SELECT user_id, month, day FROM birthdays") == [(31, 3, 3)]
    assert rows(live(B), "SELECT user_id, month, day FROM birthdays") == [(32, 4, 4)]
    assert rows(live(A), "SELECT user_id, last_day FROM checkins") == [(31, "2024-01-01")]
    assert rows(live(B), "SELECT user_id, last_day, streak FROM checkins") == [(32, "2024-01-02", 4)]
    held = report.ledger.totals()
    assert held["user_xp"].held == {"superseded by the member's larger global XP": 1}
    assert held["users"].held == {"superseded by the member's XP row of this server": 1}


# --- safety -------------------------------------------------------------------------------------

def test_a_second_run_changes_nothing_and_says_so(legacy: Path, tenants: Path, members_csv: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["legacy", "split", str(legacy), "--tenants-dir", str(tenants), "--members", str(members_csv)]
    assert main(argv) == 0
    before = folder_state(tenants)
    capsys.readouterr()

    assert main(argv) == 0

    assert folder_state(tenants) == before
    out = capsys.readouterr().out
    assert "Nothing to do: every server was already split from this file." in out
    assert "Every legacy row is accounted for" in out


def test_a_legacy_file_without_server_data_is_not_called_already_split(
        tmp_path: Path, tenants: Path, capsys: pytest.CaptureFixture[str]) -> None:
    LegacyDb(tmp_path / "bot.db", GLOBAL).close()  # the schema and the old bot's roast constants only

    assert main(["legacy", "split", str(tmp_path / "bot.db"), "--tenants-dir", str(tenants)]) == 0

    out = capsys.readouterr().out
    assert "Servers: none" in out and "Every legacy row is accounted for" in out
    assert "already split" not in out


def test_a_run_with_other_placement_options_does_not_merge_twice(legacy: Path, tenants: Path,
                                                                 members_csv: Path) -> None:
    run(legacy, tenants)
    before = folder_state(tenants)

    again = run(legacy, tenants, members_csv=members_csv, merge=True)

    assert {again.ledger.status[str(guild)] for guild in (A, B)} == {"skipped: split with other options"}
    assert again.accounted
    assert {name: digest for name, digest in folder_state(tenants).items() if name in before} == before
    assert dict(rows(TenantPaths(tenants).live(A), "SELECT user_id, xp FROM xp")) == {11: 150, 12: 15050}
    assert len(list((tenants / writer.HOLDING_DIR).glob("*.sqlite3"))) == 2  # one per set of options


def test_a_merge_after_the_legacy_file_changed_does_not_count_its_rows_twice(tmp_path: Path, tenants: Path) -> None:
    """The old bot's file in WAL mode, its rows still in the -wal: once anything closes it (the old bot
    stopping, `sqlite3 bot.db .tables`), SQLite folds the -wal in. Not one row changed, but the bytes
    did: the servers split from it are not merged again."""
    db = LegacyDb(tmp_path / "bot.db", GLOBAL)
    db.conn.execute("PRAGMA wal_autocheckpoint = 0")
    db.user(17, xp=1000, messages=50)
    db.appeal(A, 17)
    db.conn.commit()
    assert (tmp_path / "bot.db-wal").stat().st_size > 0
    live = TenantPaths(tenants).live(A)
    assert run(db.path, tenants).ledger.status[str(A)] == "new"
    db.close()
    assert not (tmp_path / "bot.db-wal").exists()
    before = folder_state(tenants)

    again = run(db.path, tenants, merge=True)

    assert again.accounted and again.ledger.status[str(A)] == "skipped: split from another version"
    assert rows(live, "SELECT xp, messages FROM xp") == [(1000, 50)]
    assert {name: digest for name, digest in folder_state(tenants).items() if name in before} == before
    assert "not merged again, which would count rows twice" in again.render()


def test_the_legacy_file_is_never_changed(tmp_path: Path, tenants: Path) -> None:
    legacy = standard_legacy(tmp_path / "bot.db")
    # Keep committed rows in the -wal, as a legacy bot that was killed would have left them.
    writer_conn = sqlite3.connect(legacy)
    writer_conn.execute("PRAGMA wal_autocheckpoint = 0")
    writer_conn.execute("INSERT INTO users (user_id, username, discriminator, xp)"
                        " VALUES (99, 'x', '0', 5000)")
    writer_conn.execute("INSERT INTO appeals (user_id, guild_id, appeal_text) VALUES (99, 1001, 'late')")
    writer_conn.commit()
    # The database and its -wal hold the data; the -shm is SQLite's shared lock memory, which every
    # reader of a WAL file takes part in.
    data_files = [legacy, legacy.with_name("bot.db-wal")]
    before = {path.name: digest(path) for path in data_files}

    report = run(legacy, tenants)

    after = {path.name: digest(path) for path in data_files}
    writer_conn.close()
    assert after == before
    assert (99, 5000) in rows(TenantPaths(tenants).live(A), "SELECT user_id, xp FROM xp")
    assert report.accounted


def _old_bot_writes(legacy: Path) -> None:
    """The old bot, still running, records a message of member 11."""
    conn = sqlite3.connect(legacy)
    conn.execute("UPDATE users SET xp = xp + 10, total_messages = total_messages + 1 WHERE user_id = 11")
    conn.commit()
    conn.close()


def test_a_legacy_file_written_while_it_is_read_is_refused_before_anything_is_written(
        legacy: Path, tenants: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_read = split_module.read_rows

    def read_while_the_old_bot_writes(*args: object) -> object:
        if args[2] == "mod_logs":  # users were read already; the rest is read after the write
            _old_bot_writes(legacy)
        return real_read(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(split_module, "read_rows", read_while_the_old_bot_writes)
    with pytest.raises(LegacyInputRefused, match="changed while it was read"):
        run(legacy, tenants)

    assert TenantPaths(tenants).live_guild_ids() == []
    monkeypatch.undo()
    report = run(legacy, tenants)  # "run again" works: the whole file, as it is now
    assert report.accounted and report.ledger.status[str(A)] == "new"
    assert (11, 160) in rows(TenantPaths(tenants).live(A), "SELECT user_id, xp FROM xp")


def test_a_legacy_file_written_after_it_was_read_is_named_as_the_cause(
        legacy: Path, tenants: Path, capsys: pytest.CaptureFixture[str]) -> None:
    written = []

    def progress(line: str) -> None:
        if not written:
            written.append(line)
            _old_bot_writes(legacy)

    with pytest.raises(LegacyInputRefused, match="changed after it was read") as refused:
        split_legacy(SplitOptions(legacy_db=legacy, tenants_dir=tenants), progress=progress)

    # What was written is the file as it was read, complete; the advice is not a bare "run again",
    # which would skip every server that now has a file and keep the stale rows.
    assert "move the files this run wrote" in str(refused.value)
    assert (11, 150) in rows(TenantPaths(tenants).live(A), "SELECT user_id, xp FROM xp")


def test_reading_leaves_no_companion_files_beside_the_legacy_file(legacy: Path, tenants: Path) -> None:
    names = sorted(path.name for path in legacy.parent.iterdir())

    run(legacy, tenants, dry_run=True)

    assert sorted(path.name for path in legacy.parent.iterdir()) == names


def test_reading_a_wal_file_without_its_shm_leaves_no_shm_behind(tmp_path: Path, tenants: Path) -> None:
    legacy = standard_legacy(tmp_path / "bot.db")
    writer_conn = sqlite3.connect(legacy)
    writer_conn.execute("PRAGMA wal_autocheckpoint = 0")
    writer_conn.execute("INSERT INTO appeals (user_id, guild_id, appeal_text) VALUES (99, 1001, 'late')")
    writer_conn.commit()
    # A copy of the old bot's files taken while it ran: the database and its -wal, no -shm.
    copied = tmp_path / "copy"
    copied.mkdir()
    for name in ("bot.db", "bot.db-wal"):
        copied.joinpath(name).write_bytes(tmp_path.joinpath(name).read_bytes())
    writer_conn.close()

    report = run(copied / "bot.db", tenants, dry_run=True)

    assert sorted(path.name for path in copied.iterdir()) == ["bot.db", "bot.db-wal"]
    assert report.ledger.totals()["appeals"].read == 3  # the -wal's row was read


def read_only_folder_holding(tmp_path: Path, names: tuple[str, ...]) -> Path:
    """The old bot's data/ as the operator may see it: readable, not writable (a read-only mount, or
    still owned by the old bot's user); `names` copied from a WAL-mode legacy file in tmp_path."""
    folder = tmp_path / "old-bot-data"
    folder.mkdir()
    for name in names:
        folder.joinpath(name).write_bytes(tmp_path.joinpath(name).read_bytes())
    folder.chmod(0o555)
    return folder


@pytest.mark.parametrize("dry_run", [True, False])
def test_a_wal_legacy_file_in_a_folder_that_cannot_be_written_is_split(tmp_path: Path, tenants: Path,
                                                                       dry_run: bool) -> None:
    standard_legacy(tmp_path / "bot.db")  # closed cleanly: nothing beside it, still in WAL mode
    assert (tmp_path / "bot.db").read_bytes()[18:20] == b"\x02\x02"
    folder = read_only_folder_holding(tmp_path, ("bot.db",))
    try:
        result = unprivileged.run_malabot("legacy", "split", str(folder / "bot.db"), "--tenants-dir", str(tenants),
                                          *(["--dry-run"] if dry_run else []))
    finally:
        folder.chmod(0o755)
    assert result.returncode == 0, result.stderr
    assert f"guild {A}: new" in result.stderr
    assert sorted(path.name for path in folder.iterdir()) == ["bot.db"]
    assert TenantPaths(tenants).live_guild_ids() == ([] if dry_run else [A, B, C])


def test_a_wal_legacy_file_with_its_wal_in_a_folder_that_cannot_be_written_says_what_to_do(
        tmp_path: Path, tenants: Path) -> None:
    legacy = standard_legacy(tmp_path / "bot.db")
    writer_conn = sqlite3.connect(legacy)  # rows only in the -wal: they must not be read past
    writer_conn.execute("PRAGMA wal_autocheckpoint = 0")
    writer_conn.execute("INSERT INTO appeals (user_id, guild_id, appeal_text) VALUES (99, 1001, 'late')")
    writer_conn.commit()
    folder = read_only_folder_holding(tmp_path, ("bot.db", "bot.db-wal"))
    writer_conn.close()
    try:
        result = unprivileged.run_malabot("legacy", "split", str(folder / "bot.db"), "--tenants-dir", str(tenants))
    finally:
        folder.chmod(0o755)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"malabot: {folder / 'bot.db'} has a bot.db-wal beside it in a folder SQLite may not write")
    assert line.endswith("; copy bot.db and bot.db-wal to a writable folder and split the copy")
    assert TenantPaths(tenants).live_guild_ids() == []


def test_an_interrupted_run_leaves_no_partial_file(legacy: Path, tenants: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    real_insert = writer._insert_all
    calls = []

    def interrupted(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C while the second server's rows are being written
        return real_insert(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(writer, "_insert_all", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(legacy, tenants)

    assert TenantPaths(tenants).live_guild_ids() == [A]
    assert [path.name for path in tenants.iterdir() if path.name.endswith(".tmp")] == []
    monkeypatch.undo()
    report = run(legacy, tenants)
    assert report.ledger.status == {str(A): "already split from this file", str(B): "new", str(C): "new",
                                    "holding": "new"}
    assert report.accounted


def many_servers_legacy(path: Path, servers: int = 6) -> Path:
    db = LegacyDb(path, GLOBAL)
    for number in range(servers):
        guild = 2000 + number
        db.user(100 + number, xp=100 * number + 60, birthday="03-15")
        db.mod_log(guild, 100 + number, 99)
        db.setting(guild, "xp_progression_type", ("basic", "gradual", "custom")[number % 3])
        db.level_role(guild, 5, 7000 + number)
    db.user(99, xp=5)  # the moderator: in every server
    db.close()
    return path


def test_worker_processes_write_the_same_files_as_one_process(tmp_path: Path) -> None:
    legacy = many_servers_legacy(tmp_path / "bot.db")

    alone = run(legacy, tmp_path / "alone", workers=1)
    shared = run(legacy, tmp_path / "shared", workers=3)

    assert alone.accounted and shared.accounted
    assert alone.ledger.totals() == shared.ledger.totals()
    assert alone.ledger.status == shared.ledger.status
    queries = ("SELECT * FROM xp", "SELECT user_id, month, day FROM birthdays", "SELECT * FROM mod_cases",
               "SELECT * FROM level_roles", "SELECT key, value FROM settings ORDER BY key")
    for guild in TenantPaths(tmp_path / "alone").live_guild_ids():
        for query in queries:
            assert rows(TenantPaths(tmp_path / "alone").live(guild), query) == rows(
                TenantPaths(tmp_path / "shared").live(guild), query), (guild, query)
    assert not list((tmp_path / "shared").glob(".*.tmp"))


def test_an_interrupted_worker_stops_the_run_and_leaves_no_partial_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    legacy = many_servers_legacy(tmp_path / "bot.db")
    tenants = tmp_path / "tenants"
    real_insert = writer._insert_all
    calls = []

    def interrupted(*args: object, **kwargs: object) -> object:
        calls.append(1)  # each worker counts its own calls
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_insert(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(writer, "_insert_all", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(legacy, tenants, workers=2)

    # At most each worker's first server is there (a worker told to stop before it began has none),
    # each complete; nothing half-written under any name.
    finished = TenantPaths(tenants).live_guild_ids()
    assert 1 <= len(finished) <= 2
    assert [path.name for path in tenants.iterdir() if path.name.endswith(".tmp")] == []
    for guild in finished:
        assert rows(TenantPaths(tenants).live(guild), "PRAGMA integrity_check") == [("ok",)]
        assert rows(TenantPaths(tenants).live(guild), "SELECT count(*) FROM mod_cases") == [(1,)]
    monkeypatch.undo()
    report = run(legacy, tenants, workers=2)
    assert report.accounted and len(TenantPaths(tenants).live_guild_ids()) == 6


def test_a_killed_runs_temporary_file_is_never_live_and_is_cleaned_up(legacy: Path, tenants: Path) -> None:
    tenants.mkdir()
    leftover = TenantPaths(tenants).staging(A, f"{writer.STAGING_PURPOSE}-0badf00d")
    leftover.write_bytes(b"half a database")
    assert TenantPaths(tenants).live_guild_ids() == []

    report = run(legacy, tenants)

    assert not leftover.exists()
    assert report.summary.removed_leftovers == 1
    assert TenantPaths(tenants).live_guild_ids() == [A, B, C]


def test_dry_run_prints_the_report_and_writes_nothing(legacy: Path, tenants: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["legacy", "split", str(legacy), "--tenants-dir", str(tenants), "--dry-run"]) == 0

    assert not tenants.exists()
    out = capsys.readouterr().out
    assert "DRY RUN" in out and "Every legacy row is accounted for" in out


def test_dry_run_reports_what_the_real_run_refuses_and_leaves_no_file_anywhere(
        tmp_path: Path, tenants: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = LegacyDb(tmp_path / "bot.db", PER_GUILD)
    db.mod_log(A, 11, 9)
    db.conn.execute("INSERT INTO mod_logs (guild_id, user_id, moderator_id, action)"
                    " VALUES (?, 'somebody', 9, 'warn')", (A,))             # text where an id belongs
    db.conn.execute("INSERT INTO mod_logs (guild_id, user_id, moderator_id, action, duration)"
                    " VALUES (?, 12, 9, 'timeout', 1.5)", (B,))             # a REAL duration
    db.level_role(B, 5, 7001)   # B is merged into its live file, which has another role at level 5
    db.level_role(B, 10, 7002)
    db.close()
    live_file_with(tenants, B, "INSERT INTO level_roles (level, role_id) VALUES (5, 7777)")
    before = folder_state(tenants)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))

    dry = run(db.path, tenants, dry_run=True, merge=True)

    assert folder_state(tenants) == before
    assert list(scratch.iterdir()) == []
    real = run(db.path, tenants, merge=True)
    assert dry.ledger.totals() == real.ledger.totals()
    assert dry.ledger.status == real.ledger.status == {str(A): "new", str(B): "merged"}
    assert sum(real.ledger.totals()["mod_logs"].held.values()) == 2
    assert real.ledger.totals()["level_roles"].written == 1


def test_refuses_while_a_bot_holds_the_tenants_folder(legacy: Path, tenants: Path) -> None:
    with TenantsLock(TenantPaths(tenants).lock_file, "malabot run"), pytest.raises(TenantsLocked):
        run(legacy, tenants)
    assert TenantPaths(tenants).live_guild_ids() == []


def test_a_server_with_a_live_file_is_skipped_without_merge(legacy: Path, tenants: Path) -> None:
    create_tenant_file(TenantPaths(tenants), A, MigrationSet.load())
    before = digest(TenantPaths(tenants).live(A))

    report = run(legacy, tenants)

    assert digest(TenantPaths(tenants).live(A)) == before
    assert report.ledger.status[str(A)] == "skipped: has a live file"
    assert report.accounted
    assert "use --merge" in report.render()


def test_merge_sums_per_member_backs_up_first_and_happens_once(legacy: Path, tenants: Path) -> None:
    paths = TenantPaths(tenants)
    create_tenant_file(paths, A, MigrationSet.load())
    conn = sqlite3.connect(paths.live(A))
    conn.execute("INSERT INTO xp (user_id, xp, messages) VALUES (11, 1000, 5)")
    conn.execute("INSERT INTO settings (key, value, updated_at) VALUES ('level_curve', '\"gradual\"', 'now')")
    conn.execute("INSERT INTO level_roles (level, role_id) VALUES (5, 7777)")
    conn.execute("INSERT INTO mod_cases (case_number, action, created_at) VALUES (1, 'warn', 'now')")
    conn.commit()
    conn.close()

    report = run(legacy, tenants, merge=True)

    assert report.accounted and report.ledger.status[str(A)] == "merged"
    live = paths.live(A)
    assert dict(rows(live, "SELECT user_id, xp FROM xp")) == {11: 1150, 12: 15050}
    assert rows(live, "SELECT messages FROM xp WHERE user_id = 11") == [(17,)]
    assert settings_of(live)["level_curve"] == "gradual"           # the server's own value wins
    assert settings_of(live)["xp_min"] == 20                        # what it did not set comes in
    assert rows(live, "SELECT level, role_id FROM level_roles ORDER BY level") == [(5, 7777), (10, 9002)]
    assert rows(live, "SELECT case_number FROM mod_cases ORDER BY case_number") == [(1,), (2,), (3,)]
    [backup] = report.summary.backups
    assert rows(Path(backup), "SELECT user_id, xp FROM xp") == [(11, 1000)]
    assert "XP and messages are summed" in report.render()

    again = run(legacy, tenants, merge=True)

    assert again.ledger.status[str(A)] == "already split from this file"
    assert dict(rows(live, "SELECT user_id, xp FROM xp")) == {11: 1150, 12: 15050}


def test_merge_keeps_the_servers_setting_over_a_legacy_value_equal_to_the_default_and_says_so(
        tmp_path: Path, tenants: Path) -> None:
    db = LegacyDb(tmp_path / "bot.db", PER_GUILD)
    db.setting(A, "birthday_time", "09:00")          # 9, the new default hour
    db.setting(A, "xp_progression_type", "gradual")
    db.close()
    live = live_file_with(tenants, A,
                          "INSERT INTO settings (key, value, updated_at) VALUES ('birthday_hour', '20', 'now')")

    report = run(db.path, tenants, merge=True)

    assert report.accounted
    assert settings_of(live)["birthday_hour"] == 20
    assert settings_of(live)["level_curve"] == "gradual"
    settings = report.ledger.totals()["settings"]
    assert (settings.written, dict(settings.held)) == (1, {"the server's own setting is kept": 1})



ERASED_HERE = "the member erased their data in this server (/mydata delete)"
ERASED_ACTOR = ("their id as moderator, reviewer or actor is left out: they erased their data in this "
                "server (/mydata delete)")


def test_merge_holds_back_the_rows_of_a_member_who_erased_their_data_in_that_server(
        tmp_path: Path, tenants: Path) -> None:
    erased, other = 555555555555555555, 666666666666666666
    db = LegacyDb(tmp_path / "bot.db", PER_GUILD)
    for user in (erased, other):
        db.user(user, messages=3)
        db.user_xp(user, A, 5000)
        db.birthday(user, "04-12", announced_year=2023, guild_id=A)
        db.checkin(user, "2024-03-01", 4, guild_id=A)
        db.roast(user, guild_id=A)
        db.verification(user, "ACT#1", guild_id=A)
        db.appeal(A, user)
        db.audit(A, user)            # the member as the one who acted
    db.mod_log(A, other, erased)     # the erased member as the moderator
    db.mod_log(A, erased, other)     # a case about them: /mydata delete keeps those too
    db.close()
    live = live_file_with(
        tenants, A,
        f"INSERT INTO member_erasures (user_id, erased_at) VALUES ({erased}, '2026-11-01T00:00:00+00:00')",
        f"INSERT INTO xp (user_id, xp, messages) VALUES ({other}, 10, 1)")

    dry = run(db.path, tenants, merge=True, dry_run=True)
    real = run(db.path, tenants, merge=True)

    assert real.ledger.status == {str(A): "merged"}
    assert_conserved(real, db.path)
    assert dry.ledger.totals() == real.ledger.totals()
    totals = real.ledger.totals()
    for table in ("user_xp", "birthdays", "daily_checkins", "roast_log", "verifications", "appeals"):
        assert (totals[table].written, dict(totals[table].held)) == (1, {ERASED_HERE: 1}), table
    for table in ("mod_logs", "audit_log"):
        assert (totals[table].written, dict(totals[table].partly)) == (2, {ERASED_ACTOR: 1}), table
    assert f"held: user_xp: {ERASED_HERE} (1)" in real.render()
    # Nothing of the erased member came back but the record that they asked, and the case about them.
    for table, column in (*MEMBER_TABLES.items(), ("game_verifications", "reviewer_id"),
                          ("appeals", "reviewer_id"), ("audit_log", "target_id"),
                          ("legacy_roast_log", "target_id"), ("mod_cases", "moderator_id")):
        assert rows(live, f"SELECT * FROM {table} WHERE {column} = ?", (erased,)) == [], (table, column)
    assert rows(live, "SELECT user_id FROM member_erasures") == [(erased,)]
    assert rows(live, "SELECT target_id, moderator_id FROM mod_cases ORDER BY case_number") == [
        (other, None), (erased, other)]
    # The other member's rows are merged.
    assert rows(live, "SELECT user_id, xp FROM xp") == [(other, 5010)]
    for table in ("birthdays", "birthday_celebrations", "checkins", "checkin_days", "game_verifications",
                  "legacy_roast_log", "appeals"):
        assert rows(live, f"SELECT DISTINCT user_id FROM {table}") == [(other,)], table
    assert rows(live, "SELECT actor_id FROM audit_log WHERE category = 'admin' ORDER BY actor_id") == [
        (None,), (other,)]


# --- refusals -----------------------------------------------------------------------------------

def _not_sqlite(path: Path) -> None:
    path.write_bytes(b"this is not a database at all" * 100)


def _damaged(path: Path) -> None:
    standard_legacy(path)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.executemany("INSERT INTO users (user_id, username, discriminator) VALUES (?, 'u', '0')",
                     [(1000 + n,) for n in range(3000)])
    conn.commit()
    conn.close()
    data = bytearray(path.read_bytes())
    page = 4096
    for number in (3, 4, 5):
        data[number * page:number * page + 16] = b"\xff" * 16  # b-tree page headers
    path.write_bytes(bytes(data))


def _tenant_file(path: Path) -> None:
    create_tenant_file(TenantPaths(path.parent), 4242, MigrationSet.load())
    os.replace(TenantPaths(path.parent).live(4242), path)


def _other_database(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.close()


def _birthdays_without_birthday(path: Path) -> None:
    conn = create_legacy(path)
    conn.execute("DROP TABLE birthdays")
    conn.execute("CREATE TABLE birthdays (id INTEGER PRIMARY KEY, user_id INTEGER, day TEXT)")
    conn.close()


def _virtual_table_of_an_unknown_module(path: Path) -> None:
    conn = create_legacy(path)
    conn.execute("PRAGMA writable_schema = ON")  # as a file made by a SQLite with that module would have it
    conn.execute("INSERT INTO sqlite_master (type, name, tbl_name, rootpage, sql) VALUES"
                 " ('table', 'notes', 'notes', 0, 'CREATE VIRTUAL TABLE notes USING nosuchmod(a)')")
    conn.commit()
    conn.close()


@pytest.mark.parametrize(("make", "message"), [
    (_not_sqlite, "not a usable SQLite database"),
    (_damaged, "malformed"),
    (_tenant_file, "MalaBoT tenant file, not the legacy database"),
    (_other_database, "no table users, settings (found: notes)"),
    (_birthdays_without_birthday, "table birthdays has no column birthday"),
    (_virtual_table_of_an_unknown_module, "table notes cannot be read: no such module: nosuchmod"),
])
def test_corrupt_or_non_legacy_input_is_refused(tmp_path: Path, tenants: Path, make: object,
                                                message: str, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "input.db"
    make(source)  # type: ignore[operator]
    before = digest(source)

    with pytest.raises(LegacyInputRefused, match=message.replace("(", r"\(").replace(")", r"\)")):
        run(source, tenants)
    assert main(["legacy", "split", str(source), "--tenants-dir", str(tenants)]) == 1

    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("malabot: ")
    assert digest(source) == before
    assert TenantPaths(tenants).live_guild_ids() == []


def test_rows_with_text_that_is_not_utf8_are_held_back_and_the_rest_written(
        tmp_path: Path, tenants: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = LegacyDb(tmp_path / "bot.db", GLOBAL)
    db.mod_log(A, 11, 9)
    db.conn.execute("INSERT INTO mod_logs (guild_id, user_id, moderator_id, action, reason)"
                    " VALUES (?, 12, 9, 'warn', CAST(x'4361666ee9' AS TEXT))", (A,))  # Latin-1 'Café'
    db.mod_log(A, 13, 9)
    db.close()

    assert main(["legacy", "split", str(db.path), "--tenants-dir", str(tenants)]) == 0

    assert rows(TenantPaths(tenants).live(A), "SELECT target_id FROM mod_cases ORDER BY target_id") == [
        (11,), (13,)]
    assert "reason is text that is not UTF-8: b'Cafn\\xe9' (1)" in capsys.readouterr().out
    report = run(db.path, tmp_path / "again", dry_run=True)
    assert report.accounted
    assert dict(report.ledger.totals()["mod_logs"].held) == {"reason is text that is not UTF-8: b'Cafn\\xe9'": 1}


def test_a_legacy_file_locked_by_another_process_is_refused_as_locked(
        legacy: Path, tenants: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert reader.BUSY_TIMEOUT_SECONDS == 5.0
    monkeypatch.setattr(reader, "BUSY_TIMEOUT_SECONDS", 0.2)  # the same refusal, without waiting 5 s for it
    conn = sqlite3.connect(legacy, isolation_level=None)
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.execute("BEGIN EXCLUSIVE")  # the old bot in the middle of a write
    try:
        assert main(["legacy", "split", str(legacy), "--tenants-dir", str(tenants)]) == 1
    finally:
        conn.execute("ROLLBACK")
        conn.close()

    [line] = capsys.readouterr().err.strip().splitlines()
    assert "is locked by another process" in line, line
    assert "not a usable SQLite database" not in line
    assert TenantPaths(tenants).live_guild_ids() == []


def test_a_missing_file_is_refused_in_one_line(tmp_path: Path, tenants: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["legacy", "split", str(tmp_path / "nope.db"), "--tenants-dir", str(tenants)]) == 1
    assert capsys.readouterr().err.strip() == f"malabot: {tmp_path / 'nope.db'}: no such file"
    assert not tenants.exists()


@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]])
def test_a_folder_given_as_the_legacy_file_is_called_a_folder(tmp_path: Path, tenants: Path, dry_run: list[str],
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    assert main(["legacy", "split", str(folder), "--tenants-dir", str(tenants), *dry_run]) == 1
    assert capsys.readouterr().err.strip() == f"malabot: {folder} is a folder, not a file"
    assert not tenants.exists()


def test_a_bad_members_file_is_refused_with_its_line(legacy: Path, tenants: Path, tmp_path: Path) -> None:
    members = tmp_path / "members.csv"
    members.write_text("guild_id,user_id\n1003,16\n1003,abc\n", encoding="utf-8")

    with pytest.raises(MembersFileRefused, match=r"members.csv:3: expected two Discord ids"):
        run(legacy, tenants, members_csv=members)
    assert TenantPaths(tenants).live_guild_ids() == []


def test_a_members_file_saved_with_a_byte_order_mark_is_read(legacy: Path, tenants: Path,
                                                             tmp_path: Path) -> None:
    members = tmp_path / "members.csv"
    members.write_text("guild_id,user_id\r\n1003,16\r\n", encoding="utf-8-sig")  # as spreadsheets save it

    report = run(legacy, tenants, members_csv=members)

    assert report.accounted
    assert (16, 22000) in rows(TenantPaths(tenants).live(C), "SELECT user_id, xp FROM xp")


def test_a_members_header_after_blank_lines_is_recognised(legacy: Path, tenants: Path, tmp_path: Path) -> None:
    members = tmp_path / "members.csv"
    members.write_text("\n \nguild_id,user_id\n1003,16\n", encoding="utf-8")

    report = run(legacy, tenants, members_csv=members)

    assert report.accounted
    assert (16, 22000) in rows(TenantPaths(tenants).live(C), "SELECT user_id, xp FROM xp")


def test_cli_prints_progress_to_stderr_and_the_report_to_stdout(legacy: Path, tenants: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["legacy", "split", str(legacy), "--tenants-dir", str(tenants), "--assign-unknown", "1001"]
    assert main(argv) == 0

    captured = capsys.readouterr()
    assert "[1/3] guild 1001: new" in captured.err
    assert "Per table" in captured.out and "Per server" in captured.out
    assert "[1/3]" not in captured.out
    [dropped] = [line for line in captured.out.splitlines() if line.startswith("Legacy columns not carried over")]
    assert "birthdays: timezone" in dropped, "a member's own zone: MalaBoT announces in the server's"
    assert "warning_count" in dropped and "currency_balance" in dropped
    assert ", xp," not in dropped and "total_messages" not in dropped, "columns the split reads are not listed"


@pytest.fixture(autouse=True)
def _no_env_tenants_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("MALABOT_TENANTS_DIR", raising=False)
    yield


def test_merge_keeps_the_newest_check_in_streak_and_birthday(legacy: Path, tenants: Path) -> None:
    """--merge: per-member sums and newest values. Legacy (standard_legacy): member 11 checked in on
    2024-05-01 with streak 3 in A; member 12's birthday 02-29 in A, stored when the legacy file was made."""
    live = live_file_with(
        tenants, A,
        "INSERT INTO checkins (user_id, last_day, streak, best_streak, total) VALUES (11, '2024-06-10', 2, 5, 9)",
        "INSERT INTO birthdays (user_id, month, day, year, created_at) "
        "VALUES (12, 7, 7, NULL, '2999-01-01T00:00:00+00:00')")  # set on the new bot after the legacy row

    report = run(legacy, tenants, merge=True)

    assert report.accounted and report.ledger.status[str(A)] == "merged"
    # The newer day keeps its streak; the best streak is the larger; totals are summed.
    assert rows(live, "SELECT user_id, last_day, streak, best_streak, total FROM checkins") == [
        (11, "2024-06-10", 2, 5, 12)]
    assert rows(live, "SELECT user_id, month, day FROM birthdays WHERE user_id = 12") == [(12, 7, 7)]
    assert "the newer birthday wins" in report.render()


def test_a_merged_birthday_with_no_time_it_was_set_never_replaces_the_servers_own(tmp_path: Path,
                                                                                  tenants: Path) -> None:
    """The users table's birthday column records no time: it may be older than the birthday the member
    set on the new bot yesterday, which stays; a member with no birthday there gets the legacy one."""
    db = LegacyDb(tmp_path / "bot.db", GLOBAL)
    db.user(17, birthday="05-05")
    db.user(18, birthday="06-06")
    for member in (17, 18):
        db.appeal(A, member)
    db.close()
    live = live_file_with(tenants, A, "INSERT INTO birthdays (user_id, month, day, year, created_at) "
                                      "VALUES (17, 7, 7, NULL, '2026-12-06T10:00:00+00:00')")

    report = run(db.path, tenants, merge=True)

    assert report.accounted and report.ledger.status[str(A)] == "merged"
    assert rows(live, "SELECT user_id, month, day FROM birthdays ORDER BY user_id") == [(17, 7, 7), (18, 6, 6)]
    assert ("held: users: the server has a birthday of this member, and the legacy one has no time it was "
            "set (1)") in report.render()
    [(created_at,)] = rows(live, "SELECT created_at FROM birthdays WHERE user_id = 18")
    assert isinstance(created_at, str) and created_at.startswith("20"), "stamped with the split's time"


def test_a_role_pair_the_bot_refuses_now_is_kept_from_the_old_bot_and_reported(tmp_path: Path,
                                                                                tenants: Path) -> None:
    """The old bot gave its onboarding role on join; A and C used their verify role for that (everyone
    who joins is verified). The split keeps it working as it did, in a new file (A) and merged into one
    that set neither (C), and says so; merged into B, whose own autorole is that role, it does not make
    B's verified role the same."""
    db = LegacyDb(tmp_path / "bot.db", GLOBAL)
    for guild in (A, B, C):
        db.setting(guild, "verify_role", "555")
    for guild in (A, C):
        db.setting(guild, "onboarding_role", "555")
    db.close()
    live_b = live_file_with(tenants, B, "INSERT INTO settings (key, value, updated_at) "
                                        "VALUES ('autorole_id', '555', '2026-12-01T00:00:00+00:00')")
    live_c = live_file_with(tenants, C)

    report = run(db.path, tenants, merge=True)

    assert report.accounted
    pair = {"autorole_id": 555, "verified_role_id": 555}
    for live in (TenantPaths(tenants).live(A), live_c):
        assert {key: settings_of(live)[key] for key in pair} == pair
    assert ("Role settings naming one role, kept as the old bot had them (the bot no longer lets an admin set "
            "such a pair; servers):\n  autorole_id = verified_role_id: every member who joins would be verified "
            "without verifying (2)") in report.render()
    assert "verified_role_id" not in settings_of(live_b)
    assert "held: settings: the server's own setting is kept (1)" in report.render()


def test_merge_keeps_the_instant_of_a_check_in_only_with_its_day(legacy: Path, tenants: Path) -> None:
    """The legacy check-in of member 11 (2024-05-01) is newer than the live one: its day wins, and the
    live check-in's instant goes with the live day (a legacy check-in has a day only, no instant)."""
    live = live_file_with(
        tenants, A,
        "INSERT INTO checkins (user_id, last_day, streak, best_streak, total, last_at) "
        "VALUES (11, '2024-04-30', 2, 5, 9, '2024-04-30T20:00:00+00:00')")

    report = run(legacy, tenants, merge=True)

    assert report.accounted and report.ledger.status[str(A)] == "merged"
    assert rows(live, "SELECT user_id, last_day, streak, last_at FROM checkins") == [(11, "2024-05-01", 3, None)]


def test_a_row_left_unaccounted_fails_the_cli_run(legacy: Path, tenants: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    real_read = split_module._read

    def read_one_row_too_many(ledger, tables, unknown):  # type: ignore[no-untyped-def]
        real_read(ledger, tables, unknown)
        ledger.add_read("users", [987654321])  # a row some future bug reads and never places

    monkeypatch.setattr(split_module, "_read", read_one_row_too_many)
    code = main(["legacy", "split", str(legacy), "--tenants-dir", str(tenants)])
    assert code == 1
    assert "unaccounted" in capsys.readouterr().err
