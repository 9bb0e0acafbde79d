"""Versioned, forward-only SQL migrations applied to one tenant file.

Plain `sqlite3` on purpose: migrating happens before a tenant's aiosqlite connection is opened (in a
worker thread), and the CLI and the legacy split use the same code synchronously.

Each migration runs in its own `BEGIN IMMEDIATE … COMMIT` together with its `schema_migrations` row and
`PRAGMA user_version`, so a failure leaves the tenant exactly at its previous version.
`executescript()` is avoided because it commits any open transaction first.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from malabot.errors import MigrationError

# "MALA" in ASCII: marks a SQLite file as MalaBoT's (PRAGMA application_id).
APPLICATION_ID = 0x4D414C41

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_HISTORY_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
  version    INTEGER PRIMARY KEY,
  name       TEXT NOT NULL,
  checksum   TEXT NOT NULL,
  applied_at TEXT NOT NULL
)"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str
    path: Path

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def default_migrations_dir() -> Path:
    """`migrations/` of the source checkout, else the copy a wheel install puts under share/."""
    candidates = [
        Path(__file__).resolve().parents[2] / "migrations",
        Path(sys.prefix) / "share" / "malabot" / "migrations",
    ]
    for candidate in candidates:
        if candidate.is_dir() and any(candidate.glob("*.sql")):
            return candidate
    raise MigrationError("cannot find the migrations folder (looked in: "
                         + ", ".join(str(c) for c in candidates) + ")")


@dataclass(frozen=True)
class MigrationSet:
    """The ordered migrations of the code; numbered 1..N without gaps or duplicates."""

    migrations: tuple[Migration, ...]

    @classmethod
    def load(cls, folder: Path | None = None) -> MigrationSet:
        folder = folder if folder is not None else default_migrations_dir()
        if not folder.is_dir():
            raise MigrationError(f"migrations folder not found: {folder}")
        found: dict[int, Migration] = {}
        for path in sorted(folder.iterdir()):
            if path.suffix != ".sql":
                continue
            match = _FILE_NAME.match(path.name)
            if not match:
                raise MigrationError(f"migration file name must look like 0001_name.sql: {path.name}")
            version = int(match.group(1))
            if version in found:
                raise MigrationError(
                    f"duplicate migration number {version:04d}: {found[version].path.name} and {path.name}")
            found[version] = Migration(version, match.group(2), path.read_text(encoding="utf-8"), path)
        if not found:
            raise MigrationError(f"no migrations in {folder}")
        expected = list(range(1, len(found) + 1))
        if sorted(found) != expected:
            missing = ", ".join(f"{m:04d}" for m in sorted(set(range(1, max(found) + 1)) - set(found)))
            raise MigrationError(f"migrations must be numbered from 0001 without gaps; missing {missing}")
        return cls(tuple(found[v] for v in expected))

    @property
    def latest(self) -> int:
        return self.migrations[-1].version


def split_statements(sql: str) -> Iterable[str]:
    """Complete SQL statements of a script, using SQLite's own notion of completeness."""
    pending = ""
    for line in sql.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statement = pending.strip()
            if statement and not _only_comments(statement):
                yield statement
            pending = ""
    if pending.strip() and not _only_comments(pending):
        raise MigrationError("incomplete SQL statement at the end of a migration: " + pending.strip()[:80])


def _only_comments(text: str) -> bool:
    return all(not line.strip() or line.strip().startswith("--") for line in text.splitlines())


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def applied_history(conn: sqlite3.Connection) -> dict[int, tuple[str, str]]:
    """version -> (name, checksum) of the migrations recorded in the file."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_migrations'").fetchone()
    if not exists:
        return {}
    return {row[0]: (row[1], row[2]) for row in
            conn.execute("SELECT version, name, checksum FROM schema_migrations ORDER BY version")}


def check_history(conn: sqlite3.Connection, migrations: MigrationSet, label: str) -> int:
    """The file's version after checking it fits the code; raises when it does not."""
    version = schema_version(conn)
    if version > migrations.latest:
        raise MigrationError(
            f"{label} is at schema version {version}, newer than this code ({migrations.latest}); "
            "upgrade MalaBoT before opening it")
    history = applied_history(conn)
    for migration in migrations.migrations[:version]:
        recorded = history.get(migration.version)
        if recorded is None:
            raise MigrationError(f"{label} has no record of migration {migration.path.name}")
        if recorded[1] != migration.checksum:
            raise MigrationError(
                f"{label}: migration {migration.path.name} was changed after it was applied "
                "(checksum differs); add a new migration instead of editing an applied one")
    return version


def migrate(conn: sqlite3.Connection, migrations: MigrationSet, label: str,
            on_applied: Callable[[Migration], None] | None = None) -> list[Migration]:
    """Apply every pending migration to an open connection; returns those applied.

    `conn` must be in autocommit mode (isolation_level=None) so that transactions are explicit.
    """
    if conn.isolation_level is not None:
        raise ValueError("migrate() needs a connection opened with isolation_level=None")
    current = check_history(conn, migrations, label)
    applied: list[Migration] = []
    for migration in migrations.migrations[current:]:
        try:
            conn.execute("BEGIN IMMEDIATE")
            # Re-read inside the write lock: another process may have migrated meanwhile.
            if schema_version(conn) >= migration.version:
                conn.execute("ROLLBACK")
                continue
            conn.execute(_HISTORY_TABLE)
            for statement in split_statements(migration.sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)",
                (migration.version, migration.name, migration.checksum, datetime.now(UTC).isoformat()))
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {migration.version}")
            conn.execute("COMMIT")
        except (sqlite3.Error, MigrationError) as error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise MigrationError(f"{label}: migration {migration.path.name} failed: {error}") from error
        applied.append(migration)
        if on_applied is not None:
            on_applied(migration)
    return applied
