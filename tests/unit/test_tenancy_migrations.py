"""Loading the migrations folder and applying it to one file (plain sqlite3, files in tmp_path)."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from malabot.errors import MigrationError
from malabot.tenancy.migrations import (
    APPLICATION_ID,
    MigrationSet,
    default_migrations_dir,
    migrate,
    schema_version,
    split_statements,
)

FIRST = "CREATE TABLE a (id INTEGER PRIMARY KEY);\n"
SECOND = "CREATE TABLE b (id INTEGER PRIMARY KEY, a_id INTEGER REFERENCES a (id));\n"
# Needs b from 0002: only works when applied after it.
THIRD = "INSERT INTO a (id) VALUES (1);\nINSERT INTO b (a_id) VALUES (1);\n"


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, sql in files.items():
        (folder / name).write_text(sql, encoding="utf-8")
    return folder


@pytest.fixture
def database(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(tmp_path / "tenant.sqlite3", isolation_level=None)
    yield conn
    conn.close()


@pytest.fixture
def three(tmp_path: Path) -> MigrationSet:
    return MigrationSet.load(write(tmp_path / "m", {
        "0003_fill.sql": THIRD, "0001_a.sql": FIRST, "0002_b.sql": SECOND, "README.md": "not sql"}))


def history(conn: sqlite3.Connection) -> list[tuple[int, str, str]]:
    return conn.execute("SELECT version, name, checksum FROM schema_migrations ORDER BY version").fetchall()


def test_the_project_migrations_load_in_order() -> None:
    migrations = MigrationSet.load(default_migrations_dir())
    assert [m.version for m in migrations.migrations] == list(range(1, migrations.latest + 1))
    assert migrations.migrations[0].name == "initial"


# Every migration that has landed on main, with its checksum. A file records the checksum of each
# migration applied to it and is refused if the text changes afterwards (a comment counts): so a
# landed migration is frozen, and a new change is a new migration added here.
LANDED_MIGRATIONS = {
    1: "d2920138deda866debd94391a4dc0d63f0cd974f9672dbc7d5e2fd0d5c2953d9",
    2: "f3b9f7a58a8fd17b75e606566260b391728c86ababa7457f06882e67687007f0",
    3: "61e9017b2221fb2b5867afc07367b4cc2b6c823afe218d65ec2ed51a6db405da",
    4: "b494fa0f83de5aa0485fdaefde7e19ffcedac037a8136e208f65853a2e1641af",
    5: "40520fa53ab49ca18fc1e70a41ee6fec9c8848cbf0f3fd053606c699fc82ebd1",
    6: "45e8811af9cfec5d41a6b15b08d006201d2a62ee584d5b0ad98daebb1e6d7c76",
    7: "ccc405dac5e4b104db079c57c9c96923132e992c6de1fcbc901fae2569b10216",
}


def test_landed_migrations_are_never_edited() -> None:
    current = {migration.version: migration.checksum for migration in MigrationSet.load().migrations}
    edited = [version for version, checksum in LANDED_MIGRATIONS.items() if current.get(version) != checksum]
    assert edited == [], (f"migration(s) {edited} changed or removed after landing: every file they were "
                          "applied to would be refused; put the change in a new migration")


def test_migrations_are_ordered_by_number_not_by_listing(three: MigrationSet) -> None:
    assert [(m.version, m.name) for m in three.migrations] == [(1, "a"), (2, "b"), (3, "fill")]


@pytest.mark.parametrize(("files", "message"), [
    ({"0001_a.sql": FIRST, "0003_c.sql": SECOND}, "missing 0002"),
    ({"0002_b.sql": SECOND}, "missing 0001"),
    ({"0001_a.sql": FIRST, "0002_b.sql": SECOND, "0002_c.sql": THIRD}, "duplicate migration number 0002"),
    ({"0001_a.sql": FIRST, "1_b.sql": SECOND}, "must look like 0001_name.sql"),
    ({"0001_A b.sql": FIRST}, "must look like 0001_name.sql"),
    ({"notes.txt": "x"}, "no migrations"),
])
def test_bad_migration_folders_are_refused(tmp_path: Path, files: dict[str, str], message: str) -> None:
    with pytest.raises(MigrationError, match=message):
        MigrationSet.load(write(tmp_path / "m", files))


def test_a_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="not found"):
        MigrationSet.load(tmp_path / "nowhere")


def test_migrate_applies_every_migration_in_order_with_its_record(
        database: sqlite3.Connection, three: MigrationSet) -> None:
    applied = migrate(database, three, "guild 1")
    assert [m.version for m in applied] == [1, 2, 3]
    assert schema_version(database) == 3
    assert database.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert history(database) == [
        (m.version, m.name, hashlib.sha256(m.path.read_bytes()).hexdigest()) for m in three.migrations]
    assert database.execute("SELECT a_id FROM b").fetchall() == [(1,)]


def test_migrate_twice_changes_nothing(database: sqlite3.Connection, three: MigrationSet) -> None:
    migrate(database, three, "guild 1")
    before = history(database)
    assert migrate(database, three, "guild 1") == []
    assert history(database) == before
    assert database.execute("SELECT count(*) FROM b").fetchone()[0] == 1


def test_migrate_continues_from_the_files_version(tmp_path: Path, database: sqlite3.Connection,
                                                  three: MigrationSet) -> None:
    two = MigrationSet.load(write(tmp_path / "two", {"0001_a.sql": FIRST, "0002_b.sql": SECOND}))
    migrate(database, two, "guild 1")
    assert [m.version for m in migrate(database, three, "guild 1")] == [3]


def test_a_changed_applied_migration_is_refused(tmp_path: Path, database: sqlite3.Connection,
                                                three: MigrationSet) -> None:
    migrate(database, three, "guild 1")
    edited = MigrationSet.load(write(tmp_path / "edited", {
        "0001_a.sql": FIRST, "0002_b.sql": SECOND + "-- a harmless edit\n", "0003_fill.sql": THIRD}))
    with pytest.raises(MigrationError, match=r"guild 1: migration 0002_b.sql was changed"):
        migrate(database, edited, "guild 1")


def test_a_file_newer_than_the_code_is_refused(tmp_path: Path, database: sqlite3.Connection,
                                               three: MigrationSet) -> None:
    migrate(database, three, "guild 1")
    older_code = MigrationSet.load(write(tmp_path / "old", {"0001_a.sql": FIRST}))
    with pytest.raises(MigrationError, match="guild 1 is at schema version 3, newer than this code"):
        migrate(database, older_code, "guild 1")


def test_a_failing_migration_leaves_the_previous_version(tmp_path: Path,
                                                         database: sqlite3.Connection) -> None:
    broken = MigrationSet.load(write(tmp_path / "m", {
        "0001_a.sql": FIRST,
        "0002_broken.sql": "CREATE TABLE half (id INTEGER);\nINSERT INTO no_such_table VALUES (1);\n",
        "0003_c.sql": "CREATE TABLE c (id INTEGER);\n",
    }))
    with pytest.raises(MigrationError, match=r"guild 7: migration 0002_broken.sql failed: no such table"):
        migrate(database, broken, "guild 7")
    assert schema_version(database) == 1
    assert [row[0] for row in history(database)] == [1]
    tables = {row[0] for row in database.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "half" not in tables and "c" not in tables
    assert not database.in_transaction


def test_migrate_needs_explicit_transactions(tmp_path: Path, three: MigrationSet) -> None:
    conn = sqlite3.connect(tmp_path / "x.sqlite3")  # default isolation level: implicit transactions
    try:
        with pytest.raises(ValueError, match="isolation_level=None"):
            migrate(conn, three, "guild 1")
    finally:
        conn.close()


@pytest.mark.parametrize(("script", "count"), [
    ("CREATE TABLE a (x TEXT DEFAULT 'a;b');\n-- only a comment;\nINSERT INTO a VALUES ('c;d');\n", 2),
    ("CREATE TABLE t (x);\nCREATE TRIGGER tr AFTER INSERT ON t BEGIN\n  UPDATE t SET x = 1;\n"
     "  UPDATE t SET x = 2;\nEND;\n", 2),
    ("-- nothing but comments\n\n", 0),
])
def test_statements_are_split_where_sqlite_says_they_end(script: str, count: int) -> None:
    assert len(list(split_statements(script))) == count


def test_an_unfinished_statement_is_refused() -> None:
    split: Callable[[str], list[str]] = lambda sql: list(split_statements(sql))  # noqa: E731
    with pytest.raises(MigrationError, match="incomplete SQL statement"):
        split("CREATE TABLE a (id INTEGER);\nCREATE TABLE b (\n")
