"""The SQL of the split: new tenant files, merges into live ones, and the holding file.

A new file is built under a hidden temporary name beside the live files, migrated, stamped with its
guild, filled in one transaction, fsynced, and only then given its live name (a hard link that never
overwrites). A crash or Ctrl-C leaves at most a temporary file, which the next run removes; a live
name always means a complete file.

Each file records which legacy file it came from: an audit_log row (category 'legacy', action 'split'
or 'merge', details {"source": <sha256>}). A re-run recognises its own work by it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from malabot.errors import TenantError
from malabot.guild_settings import GuildSettings
from malabot.legacy.build import Content, SettingsPlan, Unit
from malabot.legacy.reader import leaving_no_trace
from malabot.tenancy.backup import backup_tenant
from malabot.tenancy.migrations import Migration, MigrationSet, migrate
from malabot.tenancy.opening import (
    connect,
    fsync_file,
    migrate_tenant,
    publish_new,
    remove_database_files,
    unique_staging,
)
from malabot.tenancy.paths import TenantPaths

HOLDING_DIR = "legacy-holding"
STAGING_PURPOSE = "legacy"

TARGET_COLUMNS: dict[str, tuple[str, ...]] = {
    "legacy_settings": ("key", "value"),
    "xp": ("user_id", "xp", "messages", "last_message_at"),
    "level_roles": ("level", "role_id"),
    "checkins": ("user_id", "last_day", "streak", "best_streak", "total"),
    "checkin_days": ("user_id", "day", "xp_awarded"),
    "birthdays": ("user_id", "month", "day", "year", "created_at"),
    "birthday_celebrations": ("user_id", "year", "local_day", "announced_at"),
    "mod_cases": ("case_number", "action", "target_id", "moderator_id", "reason", "duration_seconds",
                  "channel_id", "message_count", "created_at"),
    "game_verifications": ("id", "user_id", "activision_id", "platform", "screenshot_url", "status",
                           "reviewer_id", "reviewed_at", "notes", "created_at"),
    "appeals": ("id", "user_id", "appeal_text", "status", "submitted_at", "reviewer_id", "reviewed_at",
                "review_notes"),
    "audit_log": ("id", "at", "category", "action", "actor_id", "target_id", "channel_id", "details"),
    "legacy_roast_log": ("id", "user_id", "target_id", "action", "xp_gained", "message_content",
                         "created_at"),
}
# Tables whose legacy id is kept in a new file but renumbered when merged into a live one.
_OWN_ID_TABLES = {"game_verifications", "appeals", "audit_log", "legacy_roast_log"}

# How a merge combines a legacy row with the member's existing row: sums, and the newest values.
_ON_MERGE: dict[str, str] = {
    "xp": """ON CONFLICT (user_id) DO UPDATE SET
               xp = xp.xp + excluded.xp, messages = xp.messages + excluded.messages,
               last_message_at = CASE WHEN xp.last_message_at IS NULL
                                        OR excluded.last_message_at > xp.last_message_at
                                      THEN excluded.last_message_at ELSE xp.last_message_at END""",
    "level_roles": "ON CONFLICT DO NOTHING",
    "checkins": """ON CONFLICT (user_id) DO UPDATE SET
               streak = CASE WHEN excluded.last_day > checkins.last_day
                             THEN excluded.streak ELSE checkins.streak END,
               last_day = max(checkins.last_day, excluded.last_day),
               best_streak = max(checkins.best_streak, excluded.best_streak),
               total = checkins.total + excluded.total""",
    "checkin_days": "ON CONFLICT DO NOTHING",
    "birthdays": """ON CONFLICT (user_id) DO UPDATE SET
               month = excluded.month, day = excluded.day, year = excluded.year,
               created_at = excluded.created_at
             WHERE excluded.created_at > birthdays.created_at""",
    "birthday_celebrations": "ON CONFLICT DO NOTHING",
}
# Why a merged legacy row changed nothing.
_KEPT_ON_MERGE = {
    "level_roles": "the server already has a role at this level, or this role at another level",
    "birthdays": "the server has a newer birthday of this member",
}
MERGE_RULES = ("XP and messages are summed; check-ins keep the newest day and streak, the best streak "
               "and the summed total; the newer birthday wins; the server's own settings and level roles "
               "win; records (cases, appeals, verifications, audit, roasts) are appended")


def _insert_sql(table: str, *, merge: bool = False) -> str:
    columns = TARGET_COLUMNS[table]
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    return f"{sql} {_ON_MERGE.get(table, '')}" if merge else sql


@dataclass
class WriteResult:
    """What one file got. `refused` units were not written (the schema said no), with the reason."""

    written: list[Unit] = field(default_factory=list)
    refused: list[tuple[Unit, str]] = field(default_factory=list)
    settings_written: list[int] = field(default_factory=list)       # legacy settings rowids
    settings_kept: list[tuple[int, str]] = field(default_factory=list)  # (rowid, why not written)
    published: bool = True
    backup: Path | None = None


@dataclass(frozen=True)
class Marker:
    """The legacy file a tenant file was split or merged from."""

    source: str   # sha256 of the legacy file
    name: str     # its file name, for people

    def row(self, action: str, now: str, units: int) -> tuple[object, ...]:
        details = json.dumps({"source": self.source, "file": self.name, "rows": units}, sort_keys=True)
        return (now, "legacy", action, details)


def has_marker(path: Path, source: str) -> bool:
    """True when the file at `path` was split or merged from the legacy file `source`."""
    with leaving_no_trace(path):
        try:
            conn = connect(path, read_only=True)
        except TenantError:
            return False
        try:
            return conn.execute(
                "SELECT 1 FROM audit_log WHERE category = 'legacy' AND action IN ('split', 'merge') "
                "AND json_valid(details) AND json_extract(details, '$.source') = ? LIMIT 1",
                (source,)).fetchone() is not None
        except sqlite3.Error:
            return False
        finally:
            conn.close()


# --- new files ----------------------------------------------------------------------------------

def create_tenant(paths: TenantPaths, guild_id: int, content: Content, migrations: MigrationSet,
                  marker: Marker, now: str) -> WriteResult:
    """Build the guild's file from `content` and publish it; published=False if a live file appeared."""
    def stamp_identity(conn: sqlite3.Connection, applied: Migration) -> None:
        if applied.version == 1:
            conn.execute("INSERT INTO tenant_meta (singleton, guild_id, created_at) VALUES (1, ?, ?)",
                         (guild_id, now))

    staging = unique_staging(paths, guild_id, STAGING_PURPOSE)
    return _build_file(staging, paths.live(guild_id), f"guild {guild_id}", content, migrations, marker, now,
                       stamp_identity, extra=None)


def holding_path(paths: TenantPaths, source: str) -> Path:
    """One holding file per legacy file: never a guild's name, never overwritten by another input."""
    return paths.root / HOLDING_DIR / f"unassigned-{source[:12]}.sqlite3"


def create_holding(paths: TenantPaths, content: Content, reasons: dict[tuple[str, int], tuple[object, str]],
                   migrations: MigrationSet, marker: Marker, now: str) -> WriteResult:
    """The holding file: the tenant schema without an identity, plus `legacy_holding` saying why."""
    live = holding_path(paths, marker.source)
    staging = live.with_name(f".{live.stem}.{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}.tmp")

    def list_reasons(conn: sqlite3.Connection, written: list[Unit]) -> None:
        conn.execute("""CREATE TABLE legacy_holding (
                          source_table TEXT    NOT NULL,
                          source_rowid INTEGER NOT NULL,
                          user_id      INTEGER,
                          reason       TEXT    NOT NULL,
                          PRIMARY KEY (source_table, source_rowid)) STRICT""")
        conn.executemany(
            "INSERT INTO legacy_holding (source_table, source_rowid, user_id, reason) VALUES (?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            [(unit.table, unit.rowid, *reasons[unit.table, unit.rowid]) for unit in written])

    return _build_file(staging, live, "the holding file", content, migrations, marker, now,
                       lambda conn, applied: None, extra=list_reasons)


def _build_file(staging: Path, live: Path, label: str, content: Content, migrations: MigrationSet,
                marker: Marker, now: str, on_applied: Callable[[sqlite3.Connection, Migration], None],
                extra: Callable[[sqlite3.Connection, list[Unit]], None] | None) -> WriteResult:
    live.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = connect(staging, create=True)
        try:
            # Nothing here has to survive a crash: the file gets its live name only once complete.
            conn.execute("PRAGMA journal_mode = MEMORY")
            conn.execute("PRAGMA synchronous = OFF")
            migrate(conn, migrations, label, on_applied=lambda applied: on_applied(conn, applied))
            conn.execute("BEGIN")
            result = _insert_units(conn, content.units, merge=False)
            if content.settings is not None:
                _write_settings(conn, content.settings, now)
                result.settings_written = content.settings.rowids
            if extra is not None:
                extra(conn, result.written)
            conn.execute("INSERT INTO audit_log (at, category, action, details) VALUES (?, ?, ?, ?)",
                         marker.row("split", now, len(result.written)))
            conn.execute("COMMIT")
            conn.execute("PRAGMA journal_mode = WAL")  # what the bot's own files use
        finally:
            conn.close()
        fsync_file(staging)
        result.published = publish_new(staging, live)
        return result
    except sqlite3.Error as error:
        raise TenantError(f"{label}: cannot write {live}: {error}") from error
    finally:
        remove_database_files(staging)


def _insert_units(conn: sqlite3.Connection, units: list[Unit], *, merge: bool) -> WriteResult:
    """All units at once; should the schema refuse a row, unit by unit to find and hold back the culprits."""
    if not merge:
        conn.execute("SAVEPOINT units")
        try:
            for table, rows in _by_target(units).items():
                conn.executemany(_insert_sql(table), rows)
            conn.execute("RELEASE units")
            return WriteResult(written=list(units))
        except sqlite3.Error:
            conn.execute("ROLLBACK TO units")
            conn.execute("RELEASE units")
    return _insert_one_by_one(conn, units, merge=merge)


def _by_target(units: Iterable[Unit]) -> dict[str, list[tuple[object, ...]]]:
    grouped: dict[str, list[tuple[object, ...]]] = {}
    for unit in units:
        for table, row in unit.rows:
            grouped.setdefault(table, []).append(row)
    return grouped


def _insert_one_by_one(conn: sqlite3.Connection, units: list[Unit], *, merge: bool) -> WriteResult:
    result = WriteResult()
    case_offset = 0
    if merge:
        case_offset = int(conn.execute("SELECT coalesce(max(case_number), 0) FROM mod_cases").fetchone()[0])
    for unit in units:
        before = conn.total_changes
        conn.execute("SAVEPOINT unit")
        try:
            for table, row in unit.rows:
                if merge and table in _OWN_ID_TABLES:
                    row = (None, *row[1:])
                elif merge and table == "mod_cases":
                    row = (int(row[0]) + case_offset, *row[1:])  # type: ignore[call-overload]
                conn.execute(_insert_sql(table, merge=merge), row)
        except sqlite3.Error as error:
            conn.execute("ROLLBACK TO unit")
            conn.execute("RELEASE unit")
            result.refused.append((unit, f"refused by the new schema: {error}"))
            continue
        conn.execute("RELEASE unit")
        if conn.total_changes == before:
            result.refused.append((unit, _KEPT_ON_MERGE.get(unit.rows[0][0], "already present")))
        else:
            result.written.append(unit)
    return result


def _write_settings(conn: sqlite3.Connection, plan: SettingsPlan, now: str) -> None:
    conn.executemany("INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)",
                     plan.mapped.rows(now))
    conn.executemany("INSERT INTO legacy_settings (key, value) VALUES (?, ?)",
                     sorted(plan.mapped.kept.items()))


# --- merge into a live file ---------------------------------------------------------------------

def merge_into_live(paths: TenantPaths, guild_id: int, content: Content, migrations: MigrationSet,
                    marker: Marker, now: str) -> WriteResult:
    """Back the live file up, then merge `content` into it in one transaction."""
    migrate_tenant(paths, guild_id, migrations)
    backup = backup_tenant(paths, guild_id, migrations)
    conn = connect(paths.live(guild_id))
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = _insert_units(conn, content.units, merge=True)
            if content.settings is not None:
                _merge_settings(conn, content.settings, now, result)
            conn.execute("INSERT INTO audit_log (at, category, action, details) VALUES (?, ?, ?, ?)",
                         marker.row("merge", now, len(result.written)))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    except sqlite3.Error as error:
        raise TenantError(f"guild {guild_id}: merge into {paths.live(guild_id)} failed "
                          f"(the file is unchanged; backup {backup}): {error}") from error
    finally:
        conn.close()
    result.backup = backup
    return result


def _merge_settings(conn: sqlite3.Connection, plan: SettingsPlan, now: str, result: WriteResult) -> None:
    """The server's current values win; legacy values fill only what it has not set."""
    current = {key: json.loads(value) for key, value in conn.execute("SELECT key, value FROM settings")}
    merged = GuildSettings.model_validate(current)
    lost: set[str] = set()  # legacy keys whose value did not make it into the file
    for name, value in plan.mapped.values.items():
        if name in current:
            if current[name] != value:
                lost.update(plan.mapped.sources.get(name, ()))
            continue
        try:
            merged = merged.changed(**{name: value})
        except ValueError:  # does not fit the server's current values
            lost.update(plan.mapped.sources.get(name, ()))
    added = {key: value for key, value in merged.stored_values().items() if key not in current}
    conn.executemany("INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)",
                     [(key, json.dumps(value), now) for key, value in sorted(added.items())])
    for key, value in sorted(plan.mapped.kept.items()):
        changes = conn.total_changes
        conn.execute("INSERT INTO legacy_settings (key, value) VALUES (?, ?) ON CONFLICT DO NOTHING",
                     (key, value))
        if conn.total_changes == changes:
            lost.add(key)
    for key, rowid in sorted(plan.rowid_of_key.items()):
        if key in lost:
            result.settings_kept.append((rowid, "the server's own setting is kept"))
        else:
            result.settings_written.append(rowid)
