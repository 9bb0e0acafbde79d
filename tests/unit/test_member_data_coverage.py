"""Meta-test: every column that holds a member's id is covered by some feature's member-data handler.

A new table with a `user_id` (or `*_target_id`, `actor_id`, …) column and no handler would leave a
departed member's data behind; this test is what catches it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from malabot.app import build_services
from malabot.privacy import MEMBER_COLUMN
from malabot.settings import Settings
from malabot.tenancy.migrations import MigrationSet, migrate


def schema_columns(tmp_path: Path) -> set[tuple[str, str]]:
    conn = sqlite3.connect(tmp_path / "schema.sqlite3", isolation_level=None)
    migrate(conn, MigrationSet.load(), "schema probe")
    tables = [row[0] for row in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    columns = {(table, row[1]) for table in tables for row in conn.execute(f"PRAGMA table_info({table})")}
    conn.close()
    return columns


def test_every_member_column_has_a_handler(tmp_path: Path) -> None:
    services = build_services(Settings(tenants_dir=tmp_path / "tenants"))
    member_columns = {column for column in schema_columns(tmp_path) if MEMBER_COLUMN.match(column[1])}
    uncovered = member_columns - services.member_data.covered_columns()
    assert member_columns, "the schema has member columns; the probe found none"
    assert not uncovered, f"no member-data handler for: {sorted(uncovered)}"


def test_handlers_only_name_real_columns(tmp_path: Path) -> None:
    services = build_services(Settings(tenants_dir=tmp_path / "tenants"))
    unknown = services.member_data.covered_columns() - schema_columns(tmp_path)
    assert not unknown, f"handlers cover columns that do not exist: {sorted(unknown)}"


def test_member_column_rule_matches_the_naming_convention() -> None:
    for name in ("user_id", "target_id", "actor_id", "moderator_id", "reviewer_id", "invited_user_id"):
        assert MEMBER_COLUMN.match(name), name
    for name in ("guild_id", "role_id", "channel_id", "case_number", "review_message_id"):
        assert not MEMBER_COLUMN.match(name), name


def leading_columns(conn: sqlite3.Connection, table: str) -> set[str]:
    """Columns a look-up by equality can find through a b-tree: the first of the primary key and
    of every index."""
    info = conn.execute(f"PRAGMA table_info({table})").fetchall()
    leading = {name for _, name, _, _, _, pk_position in info if pk_position == 1}
    for index in conn.execute(f"PRAGMA index_list({table})").fetchall():
        first = conn.execute(f"PRAGMA index_info({index[1]})").fetchone()
        if first is not None:
            leading.add(first[2])
    return leading


def test_every_member_column_leads_an_index(tmp_path: Path) -> None:
    """A leave purges the member's rows from every member column, and for a minute after it each
    commit looks for them again: without an index each of those reads a whole table."""
    conn = sqlite3.connect(tmp_path / "schema.sqlite3", isolation_level=None)
    migrate(conn, MigrationSet.load(), "schema probe")
    tables = [row[0] for row in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    unindexed = sorted((table, column) for table in tables
                       for _, column, *_ in conn.execute(f"PRAGMA table_info({table})")
                       if MEMBER_COLUMN.match(column) and column not in leading_columns(conn, table))
    conn.close()
    assert not unindexed, f"member columns no index starts with: {unindexed}"
