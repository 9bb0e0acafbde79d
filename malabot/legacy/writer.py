"""The SQL of the split: new tenant files, merges into live ones, and the holding file.

A new file is built under a hidden temporary name beside the live files (a copy of one migrated
template), stamped with its guild and filled in one transaction, fsynced, and only then given its
live name (a hard link that never overwrites). A crash or Ctrl-C leaves at most a temporary file,
which the next run removes; a live name always means a complete file.

Each file records which legacy file it came from: an audit_log row (category 'legacy', action 'split'
or 'merge', details {"source": <sha256>}). A re-run recognises its own work by it.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from malabot.errors import TenantError
from malabot.guild_settings import GuildSettings, roles_not_kept_apart
from malabot.legacy.build import Content, Origin, SettingsPlan, TargetRow
from malabot.legacy.mapping import shared_role_lines
from malabot.legacy.reader import leaving_no_trace
from malabot.tenancy.backup import backup_tenant
from malabot.tenancy.migrations import MigrationSet, migrate
from malabot.tenancy.opening import (
    check_identity,
    connect,
    connect_to_look,
    fsync_file,
    migrate_tenant,
    publish_new,
    remove_database_files,
    unique_staging,
)
from malabot.tenancy.paths import TenantPaths
from malabot.tenancy.private import create_private_file, make_private_folder

HOLDING_DIR = "legacy-holding"
STAGING_PURPOSE = "legacy"
TEMPLATE_PREFIX = ".legacy-template-"

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
               -- a legacy row has only a day: when it is the newer, the instant is unknown (NULL)
               last_at = CASE WHEN excluded.last_day > checkins.last_day
                              THEN excluded.last_at ELSE checkins.last_at END,
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
_UNDATED_ON_MERGE = "ON CONFLICT DO NOTHING"
_UNDATED_KEPT = "the server has a birthday of this member, and the legacy one has no time it was set"
# A member who erased their data in a server with /mydata delete (a member_erasures row) gets
# none of it back from a merge: the rule the bot applies on erasure (each feature's member_data.py;
# a unit test keeps these equal). A row about them is not written; their id as the one who acted is
# left out of a row that is; a moderation case about them is written, as the bot keeps those.
ERASED_SUBJECT: dict[str, tuple[str, ...]] = {
    "xp": ("user_id",), "checkins": ("user_id",), "checkin_days": ("user_id",),
    "birthdays": ("user_id",), "birthday_celebrations": ("user_id",), "game_verifications": ("user_id",),
    "appeals": ("user_id",), "audit_log": ("target_id",), "legacy_roast_log": ("user_id", "target_id"),
}
ERASED_ACTOR_COLUMNS: dict[str, tuple[str, ...]] = {
    "mod_cases": ("moderator_id",), "game_verifications": ("reviewer_id",), "appeals": ("reviewer_id",),
    "audit_log": ("actor_id",),
}
ERASED = "the member erased their data in this server (/mydata delete)"
ERASED_ACTOR = ("their id as moderator, reviewer or actor is left out: they erased their data in this "
                "server (/mydata delete)")
MERGE_RULES = ("XP and messages are summed; check-ins keep the newest day and streak, the best streak "
               "and the summed total; the newer birthday wins (one with no time it was set fills only a "
               "member who has none); the server's own settings and level roles win; records (cases, "
               "appeals, verifications, audit, roasts) are appended; nothing of a member who erased their "
               "data there (/mydata delete) comes back but a case about them")


def _insert_sql(table: str, *, merge: bool = False, undated: bool = False) -> str:
    columns = TARGET_COLUMNS[table]
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    if not merge:
        return sql
    return f"{sql} {_UNDATED_ON_MERGE if undated else _ON_MERGE.get(table, '')}"


def _undated(table: str, row: TargetRow) -> bool:
    """A birthday with no time it was set (the legacy users table's column): it may be older than the
    one a merged file has, so it fills only a member who has none."""
    return table == "birthdays" and row[-1] is None


def _stamped(table: str, row: TargetRow, now: str) -> TargetRow:
    """The row as written: an undated birthday counts as set at the split."""
    return (*row[:-1], now) if _undated(table, row) else row


@dataclass
class WriteResult:
    """What one file got. `refused` rows were not written (the schema said no), with the reason."""

    written: dict[str, set[int]] = field(default_factory=dict)        # legacy table → rowids
    refused: list[tuple[Origin, str]] = field(default_factory=list)
    settings_written: list[int] = field(default_factory=list)         # legacy settings rowids
    settings_kept: list[tuple[int, str]] = field(default_factory=list)  # (rowid, why not written)
    roles_shared: tuple[str, ...] = ()  # role settings the legacy ones made name one role ("a = b: why")
    published: bool = True
    backup: Path | None = None
    dry_run: bool = False  # nothing was written: what would have been

    @property
    def count(self) -> int:
        return sum(len(rowids) for rowids in self.written.values())


@dataclass(frozen=True)
class Marker:
    """The legacy file a tenant file was split or merged from, and the options that placed its rows."""

    source: str      # sha256 of the legacy file
    name: str        # its file name, for people
    placement: str   # the --members file's sha256 and --assign-unknown: they decide where rows go

    def row(self, action: str, now: str, rows: int) -> tuple[object, ...]:
        details = json.dumps({"source": self.source, "file": self.name, "placement": self.placement,
                              "rows": rows}, sort_keys=True)
        return (now, "legacy", action, details)


def legacy_markers(path: Path) -> list[dict[str, object]]:
    """The marker details of every legacy split or merge into the file at `path`, oldest first."""
    with leaving_no_trace(path):
        try:
            conn = connect(path, read_only=True)
        except TenantError:
            return []
        try:
            found = conn.execute(
                "SELECT details FROM audit_log WHERE category = 'legacy' AND action IN ('split', 'merge') "
                "AND json_valid(details) ORDER BY id").fetchall()
        except sqlite3.Error:
            return []
        finally:
            conn.close()
    return [json.loads(details) for (details,) in found]


# --- new files ----------------------------------------------------------------------------------

@contextmanager
def tenant_template(folder: Path, migrations: MigrationSet) -> Iterator[Path]:
    """An empty file with every migration applied, copied for each new file of the run.

    Migrating 10,000 files one by one would repeat the same work 10,000 times; a copy of a migrated
    file is the same database. Each copy gets its own identity row before it is published.
    """
    make_private_folder(folder)
    path = folder / f"{TEMPLATE_PREFIX}{secrets.token_hex(4)}.tmp"
    try:
        create_private_file(path)
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            migrate(conn, migrations, "the legacy split's template")
        finally:
            conn.close()
        yield path
    finally:
        remove_database_files(path)


def create_tenant(paths: TenantPaths, guild_id: int, content: Content, template: Path, marker: Marker,
                  now: str, *, dry_run_in: Path | None = None) -> WriteResult:
    """Build the guild's file from `content` and publish it; published=False if a live file appeared.

    With `dry_run_in` (a folder outside the tenants folder) the file is built there and thrown away:
    the result says what would be written and what the schema would refuse.
    """
    def stamp_identity(conn: sqlite3.Connection, written: WriteResult) -> None:
        conn.execute("INSERT INTO tenant_meta (singleton, guild_id, created_at) VALUES (1, ?, ?)",
                     (guild_id, now))

    staging = unique_staging(paths, guild_id, STAGING_PURPOSE)
    return _build_file(staging, paths.live(guild_id), f"guild {guild_id}", content, template, marker, now,
                       stamp_identity, dry_run_in)


def holding_path(paths: TenantPaths, marker: Marker) -> Path:
    """One holding file per legacy file and placement options: never a guild's name, never overwritten
    by another input."""
    options = hashlib.sha256(marker.placement.encode()).hexdigest()[:8]
    return paths.root / HOLDING_DIR / f"unassigned-{marker.source[:12]}-{options}.sqlite3"


def create_holding(paths: TenantPaths, content: Content, reasons: dict[Origin, tuple[object, str]],
                   template: Path, marker: Marker, now: str, *, dry_run_in: Path | None = None) -> WriteResult:
    """The holding file: the tenant schema without an identity, plus `legacy_holding` saying why.
    `dry_run_in`: as for create_tenant."""
    live = holding_path(paths, marker)
    staging = live.with_name(f".{live.stem}.{secrets.token_hex(4)}.tmp")

    def list_reasons(conn: sqlite3.Connection, written: WriteResult) -> None:
        conn.execute("""CREATE TABLE legacy_holding (
                          source_table TEXT    NOT NULL,
                          source_rowid INTEGER NOT NULL,
                          user_id      INTEGER,
                          reason       TEXT    NOT NULL,
                          PRIMARY KEY (source_table, source_rowid)) STRICT""")
        conn.executemany(
            "INSERT INTO legacy_holding (source_table, source_rowid, user_id, reason) VALUES (?, ?, ?, ?)",
            [(table, rowid, *reasons[table, rowid])
             for table, rowids in sorted(written.written.items()) for rowid in sorted(rowids)])

    return _build_file(staging, live, "the holding file", content, template, marker, now, list_reasons,
                       dry_run_in)


Finish = Callable[[sqlite3.Connection, WriteResult], None]


def _build_file(staging: Path, live: Path, label: str, content: Content, template: Path, marker: Marker,
                now: str, finish: Finish, dry_run_in: Path | None) -> WriteResult:
    if dry_run_in is not None:
        staging = dry_run_in / staging.name  # the same writing, into a file that is thrown away
    else:
        make_private_folder(live.parent)
    try:
        result = _fill(staging, content, template, marker, now, finish)
        if dry_run_in is not None:
            result.dry_run = True
        else:
            fsync_file(staging)
            result.published = publish_new(staging, live)
        return result
    except (sqlite3.Error, OSError) as error:
        raise TenantError(f"{label}: cannot write {live}: {error}") from error
    finally:
        remove_database_files(staging)


def _fill(staging: Path, content: Content, template: Path, marker: Marker, now: str,
          finish: Finish) -> WriteResult:
    """A copy of the template at `staging`, with the content in one transaction."""
    create_private_file(staging)  # copyfile keeps an existing file's mode
    shutil.copyfile(template, staging)
    conn = sqlite3.connect(staging, isolation_level=None)
    try:
        # Nothing here has to survive a crash: the file gets its live name only once complete.
        conn.execute("PRAGMA journal_mode = MEMORY")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("BEGIN")
        result = _insert_all(conn, content, now)
        if content.settings is not None:
            _write_settings(conn, content.settings, now)
            result.settings_written = content.settings.rowids
            result.roles_shared = content.settings.mapped.roles_shared
        finish(conn, result)
        conn.execute("INSERT INTO audit_log (at, category, action, details) VALUES (?, ?, ?, ?)",
                     marker.row("split", now, result.count))
        conn.execute("COMMIT")
    finally:
        conn.close()
    return result


def _insert_all(conn: sqlite3.Connection, content: Content, now: str) -> WriteResult:
    """Every row at once; should the schema refuse one, row by row to find and hold back the culprits."""
    conn.execute("SAVEPOINT rows")
    try:
        for table, rows in content.rows.items():
            conn.executemany(_insert_sql(table), [_stamped(table, row, now) for row in rows])
        conn.execute("RELEASE rows")
        return WriteResult(written=content.origins_by_table())
    except (sqlite3.Error, OverflowError):  # OverflowError: an int no SQLite integer can hold
        conn.execute("ROLLBACK TO rows")
        conn.execute("RELEASE rows")
    return _insert_one_by_one(conn, content, now, merge=False)


def _insert_one_by_one(conn: sqlite3.Connection, content: Content, now: str, *, merge: bool) -> WriteResult:
    """Each legacy row's new rows in a savepoint of their own: a refused one takes nothing else with it."""
    result = WriteResult()
    case_offset = 0
    erased: set[int] = set()
    if merge:
        case_offset = int(conn.execute("SELECT coalesce(max(case_number), 0) FROM mod_cases").fetchone()[0])
        erased = {row[0] for row in conn.execute("SELECT user_id FROM member_erasures")}
    for origin, rows in content.units():
        anonymised = False
        if erased:
            if any(_names(table, row, ERASED_SUBJECT, erased) for table, row in rows):
                result.refused.append((origin, ERASED))
                continue
            if any(_names(table, row, ERASED_ACTOR_COLUMNS, erased) for table, row in rows):
                rows = [(table, _without(table, row, erased)) for table, row in rows]
                anonymised = True
        before = conn.total_changes
        conn.execute("SAVEPOINT one")
        try:
            for table, row in rows:
                if merge and table in _OWN_ID_TABLES:
                    row = (None, *row[1:])
                elif merge and table == "mod_cases":
                    row = (int(row[0]) + case_offset, *row[1:])  # type: ignore[call-overload]
                sql = _insert_sql(table, merge=merge, undated=_undated(table, row))
                conn.execute(sql, _stamped(table, row, now))
        except (sqlite3.Error, OverflowError) as error:
            conn.execute("ROLLBACK TO one")
            conn.execute("RELEASE one")
            result.refused.append((origin, _why_refused(error)))
            continue
        conn.execute("RELEASE one")
        if conn.total_changes == before:
            first_table, first_row = rows[0]
            kept = _UNDATED_KEPT if _undated(first_table, first_row) else _KEPT_ON_MERGE.get(first_table)
            result.refused.append((origin, kept or "already present"))
        else:
            result.written.setdefault(origin[0], set()).add(origin[1])
            if anonymised:  # written, and this part of it left out
                result.refused.append((origin, ERASED_ACTOR))
    return result


def _names(table: str, row: TargetRow, columns: dict[str, tuple[str, ...]], erased: set[int]) -> bool:
    return any(row[TARGET_COLUMNS[table].index(column)] in erased for column in columns.get(table, ()))


def _without(table: str, row: TargetRow, erased: set[int]) -> TargetRow:
    """The row with the erased members' ids as the one who acted replaced by NULL."""
    actors = {TARGET_COLUMNS[table].index(column) for column in ERASED_ACTOR_COLUMNS.get(table, ())}
    return tuple(None if index in actors and value in erased else value for index, value in enumerate(row))


def _why_refused(error: Exception) -> str:
    if isinstance(error, OverflowError):  # the mapping keeps XP in range: this is a safety net
        return f"a number too large for SQLite: {error}"
    return f"refused by the new schema: {error}"


def _write_settings(conn: sqlite3.Connection, plan: SettingsPlan, now: str) -> None:
    conn.executemany("INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)",
                     plan.mapped.rows(now))
    conn.executemany("INSERT INTO legacy_settings (key, value) VALUES (?, ?)",
                     sorted(plan.mapped.kept.items()))


# --- merge into a live file ---------------------------------------------------------------------

def merge_into_live(paths: TenantPaths, guild_id: int, content: Content, migrations: MigrationSet,
                    marker: Marker, now: str, *, dry_run_in: Path | None = None) -> WriteResult:
    """Back the live file up, then merge `content` into it in one transaction.

    With `dry_run_in` (a folder outside the tenants folder) the merge is done to a copy of the live
    file there, which is thrown away: the live file is only read.
    """
    if dry_run_in is not None:
        return _rehearse_merge(paths, guild_id, content, migrations, marker, now, dry_run_in)
    migrate_tenant(paths, guild_id, migrations)
    backup = backup_tenant(paths, guild_id, migrations)
    conn = connect(paths.live(guild_id))
    try:
        result = _merge(conn, content, marker, now)
    except (sqlite3.Error, ValueError) as error:  # ValueError: the live file's settings do not validate
        raise TenantError(f"guild {guild_id}: merge into {paths.live(guild_id)} failed "
                          f"(the file is unchanged; backup {backup}): {error}") from error
    finally:
        conn.close()
    result.backup = backup
    return result


def _rehearse_merge(paths: TenantPaths, guild_id: int, content: Content, migrations: MigrationSet,
                    marker: Marker, now: str, folder: Path) -> WriteResult:
    live = paths.live(guild_id)
    copy = folder / f"{guild_id}.merge.tmp"
    try:
        source = connect_to_look(live)  # changes nothing on disk; a bot may have the file open
        try:
            source.execute("VACUUM INTO ?", (str(copy),))
        finally:
            source.close()
        conn = connect(copy)
        try:
            check_identity(conn, guild_id, live)
            migrate(conn, migrations, f"guild {guild_id}")
            result = _merge(conn, content, marker, now)
        finally:
            conn.close()
    except (sqlite3.Error, ValueError) as error:
        raise TenantError(f"guild {guild_id}: a merge into {live} would fail: {error}") from error
    finally:
        remove_database_files(copy)
    result.dry_run = True
    return result


def _merge(conn: sqlite3.Connection, content: Content, marker: Marker, now: str) -> WriteResult:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = _insert_one_by_one(conn, content, now, merge=True)
        if content.settings is not None:
            _merge_settings(conn, content.settings, now, result)
        conn.execute("INSERT INTO audit_log (at, category, action, details) VALUES (?, ?, ?, ?)",
                     marker.row("merge", now, result.count))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


def _pairs_with_the_servers_own(settings: GuildSettings, name: str, current: Mapping[str, object]) -> bool:
    """Whether the legacy value of `name` names the role of a setting the server set itself that it
    must differ from (the bot refuses an admin such a pair; the server's own value wins)."""
    return any(name == first and second in current or name == second and first in current
               for first, second, _ in roles_not_kept_apart(settings))


def _merge_settings(conn: sqlite3.Connection, plan: SettingsPlan, now: str, result: WriteResult) -> None:
    """The server's current values win; legacy values fill only what it has not set."""
    current = {key: json.loads(value) for key, value in conn.execute("SELECT key, value FROM settings")}
    merged = GuildSettings.model_validate(current)
    own_pairs = shared_role_lines(merged)
    lost: set[str] = set()  # legacy keys whose value did not make it into the file
    # Defaults included: a legacy value equal to the default still differs from the server's own.
    for name, value in plan.mapped.decided.items():
        if name in current:
            if current[name] != value:
                lost.update(plan.mapped.sources.get(name, ()))
            continue
        try:
            candidate = merged.changed(**{name: value})
        except ValueError:  # does not fit the server's current values
            lost.update(plan.mapped.sources.get(name, ()))
            continue
        if _pairs_with_the_servers_own(candidate, name, current):  # e.g. its autorole as the verified role
            lost.update(plan.mapped.sources.get(name, ()))
            continue
        merged = candidate
    # Pairs the legacy values make among themselves are the old bot's, kept as for a new file.
    result.roles_shared = tuple(line for line in shared_role_lines(merged) if line not in own_pairs)
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
