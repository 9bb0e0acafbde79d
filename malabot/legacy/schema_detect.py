"""Which legacy database a file is: the global variant, the per-guild-columns variant, or half-way.

The two variants differ in four tables that gained a `guild_id` column (birthdays, daily_checkins,
verifications, roast_log) and in `users`, which lost `xp`, `level` and `birthday`. A half-way file has
some of those changes, or the column with old rows whose `guild_id` is NULL. Anything else (missing
core tables, a table without the columns the split reads, a MalaBoT tenant file) is refused with what
was found.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum

from malabot.errors import MalabotError


class LegacyInputRefused(MalabotError):
    """The file offered as the legacy database is not one the split can read."""


@contextmanager
def reading(table: str) -> Iterator[None]:
    """A table SQLite cannot read (a virtual table of a module it lacks …) refuses the input, in one line."""
    try:
        yield
    except sqlite3.Error as error:
        raise LegacyInputRefused(f"the legacy table {table} cannot be read: {error}") from error


class Variant(StrEnum):
    GLOBAL = "global"
    PER_GUILD = "per-guild columns"
    HALF_WAY = "half-way"


@dataclass(frozen=True)
class TableSpec:
    """A legacy table as the split reads it: the columns it needs and those it uses when present."""

    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    timestamps: tuple[str, ...] = ()  # read as ISO UTC text, see ISO_UTC

    @property
    def row_layout(self) -> tuple[str, ...]:
        """The columns of a row as the reader returns it."""
        rest = [column for column in self.required + self.optional if column != "guild_id"]
        return ("rowid", "guild_id", *rest)

    def index(self, column: str) -> int:
        return self.row_layout.index(column)


# Every query selects `rowid, guild_id, …` in this order; guild_id is NULL where the column is missing.
TABLES: dict[str, TableSpec] = {spec.name: spec for spec in (
    TableSpec("users", ("user_id",), ("xp", "total_messages", "last_xp_gain", "birthday"),
              timestamps=("last_xp_gain",)),
    TableSpec("user_xp", ("user_id", "guild_id", "xp"), ("last_message_time",),
              timestamps=("last_message_time",)),
    TableSpec("birthdays", ("user_id", "birthday"), ("announced_year", "created_at"),
              timestamps=("created_at",)),
    TableSpec("daily_checkins", ("user_id", "last_checkin"), ("checkin_streak",)),
    TableSpec("verifications", ("discord_id", "activision_id", "platform"),
              ("screenshot_url", "status", "reviewed_by", "reviewed_at", "notes", "created_at"),
              timestamps=("reviewed_at", "created_at")),
    TableSpec("roast_log", ("user_id", "action"),
              ("target_id", "xp_gained", "message_content", "created_at"), timestamps=("created_at",)),
    TableSpec("settings", ("guild_id", "setting_key", "value")),
    TableSpec("level_roles", ("guild_id", "level", "role_id")),
    TableSpec("mod_logs", ("guild_id", "user_id", "moderator_id", "action"),
              ("reason", "duration", "channel_id", "message_count", "timestamp", "created_at"),
              timestamps=("timestamp", "created_at")),
    TableSpec("audit_log", ("category", "action"),
              ("timestamp", "user_id", "target_id", "channel_id", "details", "created_at"),
              timestamps=("timestamp", "created_at")),
    TableSpec("appeals", ("user_id", "guild_id", "appeal_text"),
              ("status", "submitted_at", "reviewed_by", "reviewed_at", "review_notes"),
              timestamps=("submitted_at", "reviewed_at")),
    # Process data of the old bot: counted, never copied.
    TableSpec("roast_xp", ()),
    TableSpec("health_logs", ()),
    TableSpec("system_flags", ()),
)}

CORE_TABLES = ("users", "settings")

# SQLite's CURRENT_TIMESTAMP text ('YYYY-MM-DD HH:MM:SS[.fff]', UTC) as the ISO form the new bot writes
# ('YYYY-MM-DDTHH:MM:SS[.fff]+00:00'), so that old and new instants sort together; anything else verbatim.
# Done in the query because it applies to most of a million rows.
ISO_UTC = ("CASE WHEN typeof({c}) = 'text'"
           " AND {c} GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9]*'"
           " AND (length({c}) = 19 OR (substr({c}, 20, 1) = '.' AND length({c}) > 20"
           " AND substr({c}, 21) NOT GLOB '*[^0-9]*'))"
           " THEN substr({c}, 1, 10) || 'T' || substr({c}, 12) || '+00:00' ELSE {c} END")
# Tables that were global in the first variant and gained a guild_id column later.
GAINED_GUILD_ID = ("birthdays", "daily_checkins", "verifications", "roast_log")


@dataclass(frozen=True)
class LegacySchema:
    variant: Variant
    columns: dict[str, frozenset[str]]   # known tables present → their columns
    unknown_tables: tuple[str, ...]      # tables the split does not know: counted, not copied

    def has(self, table: str) -> bool:
        return table in self.columns

    def has_column(self, table: str, column: str) -> bool:
        return column in self.columns.get(table, frozenset())

    @property
    def xp_in_users(self) -> bool:
        """True while `users.xp` exists: it is the XP the old bot used (global and half-way files)."""
        return self.has_column("users", "xp")

    def unread_columns(self) -> dict[str, list[str]]:
        """Columns of copied tables that the split does not read (profiles, global counters, a
        member's own birthday timezone): for the report, so nothing is dropped without a word."""
        unread = {}
        for table, present in sorted(self.columns.items()):
            layout = set(TABLES[table].row_layout) | {"id"}  # `id INTEGER PRIMARY KEY` is the rowid, read
            if len(layout) > 3 and (left := sorted(present - layout)):  # process-data tables: not copied at all
                unread[table] = left
        return unread

    def select_sql(self, table: str) -> str:
        """`SELECT rowid, guild_id, <required>, <optional or NULL> FROM table`."""
        spec = TABLES[table]
        present = self.columns[table] | {"rowid"}
        picked = [(ISO_UTC.format(c=column) if column in spec.timestamps else column) if column in present
                  else f"NULL AS {column}" for column in spec.row_layout]
        return f"SELECT {', '.join(picked)} FROM {table}"


def detect(conn: sqlite3.Connection) -> LegacySchema:
    """The schema of an open legacy file, or LegacyInputRefused saying what was found instead."""
    with reading("sqlite_master"):
        tables = sorted(row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"))
    if "tenant_meta" in tables:
        raise LegacyInputRefused("this is a MalaBoT tenant file, not the legacy database")
    missing = [name for name in CORE_TABLES if name not in tables]
    if missing:
        found = ", ".join(tables) or "no tables"
        raise LegacyInputRefused(
            f"not a legacy MalaBoT database: no table {', '.join(missing)} (found: {found})")
    columns = {name: _columns(conn, name) for name in tables if name in TABLES}
    for name, present in columns.items():
        lacking = [column for column in TABLES[name].required if column not in present]
        if lacking:
            raise LegacyInputRefused(
                f"unknown legacy schema: table {name} has no column {', '.join(lacking)} "
                f"(found: {', '.join(sorted(present))})")
    unknown = tuple(name for name in tables if name not in TABLES)
    return LegacySchema(_variant(conn, columns), columns, unknown)


def _columns(conn: sqlite3.Connection, table: str) -> frozenset[str]:
    with reading(table):
        return frozenset(row[1] for row in conn.execute(f"PRAGMA table_info({table})"))


def _variant(conn: sqlite3.Connection, columns: dict[str, frozenset[str]]) -> Variant:
    present = [name for name in GAINED_GUILD_ID if name in columns]
    with_guild = [name for name in present if "guild_id" in columns[name]]
    users_have_xp = "xp" in columns["users"]
    if not with_guild and users_have_xp:
        return Variant.GLOBAL
    if len(with_guild) == len(present) and not users_have_xp and not any(
            _has_null_guild(conn, name) for name in with_guild):
        return Variant.PER_GUILD
    return Variant.HALF_WAY


def _has_null_guild(conn: sqlite3.Connection, table: str) -> bool:
    with reading(table):
        return conn.execute(f"SELECT 1 FROM {table} WHERE guild_id IS NULL LIMIT 1").fetchone() is not None
