"""Reading the legacy file without changing it.

The file is opened with `mode=ro`: SQLite never writes the main file then, and still reads committed
data from a `-wal` file beside it. A read-only open of a WAL database may create an empty `-wal` and a
`-shm` (the -wal's index); those this run created are removed again when it is done. In a folder the
operator may not write (a read-only mount, the old bot's own data/) SQLite cannot make them: a WAL file
with nothing beside it is then opened `immutable`, which needs neither. The fingerprint (SHA-256 of the
file and its `-wal`) is taken before and after, so a run can prove the input did not change.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from malabot.legacy.schema_detect import TABLES, LegacyInputRefused, LegacySchema, reading
from malabot.tenancy.paths import sidecars

Row = tuple[Any, ...]  # one legacy row: (rowid, guild_id, columns of its TableSpec…)

# How long a read waits for the old bot's write lock before the file is refused as locked (sqlite3's
# own default); a test of the refusal shortens it.
BUSY_TIMEOUT_SECONDS = 5.0


@contextmanager
def leaving_no_trace(path: Path) -> Iterator[None]:
    """Remove the -wal/-shm companions a read-only open of a WAL file made, if it made them."""
    wal, shm = sidecars(path)
    wal_before, shm_existed = _size_and_time(wal), shm.exists()
    try:
        yield
    finally:
        wal_now = _size_and_time(wal)
        made_empty_wal = wal_before is None and wal_now is not None and wal_now[0] == 0
        # A -wal someone wrote meanwhile means someone else uses the companions now: left as they are.
        # So is a -wal with content that was there before: it holds data. A -shm is only its index.
        if wal_now == wal_before or made_empty_wal:
            if made_empty_wal:
                wal.unlink()
            if not shm_existed:
                shm.unlink(missing_ok=True)


def _size_and_time(file: Path) -> tuple[int, int] | None:
    try:
        status = file.stat()
    except FileNotFoundError:
        return None
    return status.st_size, status.st_mtime_ns


@contextmanager
def read_only(path: Path) -> Iterator[sqlite3.Connection]:
    """An open, integrity-checked, read-only connection to the legacy file."""
    require_file(path)
    with leaving_no_trace(path):
        conn = _open_checked(path)
        try:
            yield conn
        finally:
            conn.close()


def require_file(path: Path) -> None:
    """The legacy file is refused unless it is a file, saying what stands there instead."""
    if path.is_dir():
        raise LegacyInputRefused(f"{path} is a folder, not a file")
    if not path.is_file():
        raise LegacyInputRefused(f"{path}: no such file")


def _open_checked(path: Path) -> sqlite3.Connection:
    """`mode=ro`, which takes SQLite's locks (an old bot mid-write is seen); `immutable` only where SQLite
    may not make a WAL file's -wal/-shm beside it, and nothing with data is beside it."""
    try:
        return _open(path, "mode=ro")
    except _CannotWriteBeside as error:
        wal = sidecars(path)[0]
        if wal.exists():  # its committed rows are read through the -shm index, which cannot be made here
            raise LegacyInputRefused(
                f"{path} has a {wal.name} beside it in a folder SQLite may not write ({error.reason}); "
                f"copy {path.name} and {wal.name} to a writable folder and split the copy") from error
        if path.with_name(path.name + "-journal").exists():
            raise
        try:
            return _open(path, "mode=ro&immutable=1")
        except _CannotWriteBeside as again:  # `immutable` writes nothing: the file itself cannot be read
            raise LegacyInputRefused(f"{path} cannot be read ({again.reason})") from again


def _open(path: Path, query: str) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path.resolve().as_uri() + "?" + query, uri=True, timeout=BUSY_TIMEOUT_SECONDS)
    except sqlite3.Error as error:
        raise LegacyInputRefused(f"{path}: cannot open: {error}") from error
    try:
        conn.execute("PRAGMA query_only = ON")
        _check_integrity(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


# What SQLite says when reading a WAL file needs a -wal/-shm beside it that it may not create or open.
_COMPANIONS_REFUSED = {"SQLITE_READONLY_DIRECTORY", "SQLITE_READONLY_CANTINIT", "SQLITE_READONLY_CANTLOCK",
                       "SQLITE_READONLY_RECOVERY", "SQLITE_CANTOPEN"}


class _CannotWriteBeside(LegacyInputRefused):
    def __init__(self, path: Path, error: sqlite3.Error) -> None:
        super().__init__(f"{path} cannot be read: SQLite may not write beside it ({error})")
        self.reason = str(error)


def _check_integrity(conn: sqlite3.Connection, path: Path) -> None:
    try:
        findings = [str(row[0]) for row in conn.execute("PRAGMA quick_check(5)")]
    except sqlite3.DatabaseError as error:
        if error.sqlite_errorname == "SQLITE_BUSY":  # a writer held its lock past the busy timeout
            raise LegacyInputRefused(f"{path} is locked by another process (the old bot?); stop it and "
                                     "run again") from error
        if error.sqlite_errorname in _COMPANIONS_REFUSED:
            raise _CannotWriteBeside(path, error) from error
        raise LegacyInputRefused(f"{path} is not a usable SQLite database ({error})") from error
    if findings != ["ok"]:
        raise LegacyInputRefused(f"{path} is damaged (integrity check: {'; '.join(findings)})")


def fingerprint(path: Path) -> str:
    """SHA-256 of the legacy file and its -wal (which holds committed data not yet in the file)."""
    digest = hashlib.sha256()
    for part in (path, sidecars(path)[0]):
        if part.exists():
            with part.open("rb") as stream:
                digest.update(hashlib.file_digest(stream, "sha256").digest())
    return digest.hexdigest()


class TableRows(NamedTuple):
    rows: list[Row]                    # the rows the split can use
    unusable: list[tuple[int, str]]    # (rowid, why) of those it cannot: text that is not UTF-8


def read_rows(conn: sqlite3.Connection, schema: LegacySchema, table: str) -> TableRows:
    """Every row of a known table as (rowid, guild_id, <columns of its TableSpec>…)."""
    if not schema.has(table):
        return TableRows([], [])
    sql = schema.select_sql(table)
    try:
        return TableRows(conn.execute(sql).fetchall(), [])
    except sqlite3.Error:
        # Most likely text that is not UTF-8 (the old bot stored what it was given). Any other
        # failure happens again below, and refuses the input.
        pass
    with reading(table):
        return _rows_apart_from_bad_text(conn, sql, table)


def _rows_apart_from_bad_text(conn: sqlite3.Connection, sql: str, table: str) -> TableRows:
    """The table read again with every text value checked: slower, so only for a table that needs it.
    Text that is not UTF-8 is held back with its row rather than guessed at (a decoding with
    replacement characters would change it without a word)."""
    conn.text_factory = _text_or_bytes
    try:
        found = conn.execute(sql).fetchall()
    finally:
        conn.text_factory = str
    layout = TABLES[table].row_layout
    usable: list[Row] = []
    unusable: list[tuple[int, str]] = []
    for row in found:
        bad = [f"{name} is text that is not UTF-8: {bytes(value)!r}"
               for name, value in zip(layout, row, strict=True) if isinstance(value, _NotUtf8)]
        if bad:
            unusable.append((row[0], "; ".join(bad)))
        else:
            usable.append(row)
    return TableRows(usable, unusable)


class _NotUtf8(bytes):
    """A TEXT value whose bytes are not UTF-8 (a real BLOB comes as plain bytes)."""


def _text_or_bytes(data: bytes) -> str | _NotUtf8:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return _NotUtf8(data)


def count_rows(conn: sqlite3.Connection, table: str) -> int:
    quoted = '"' + table.replace('"', '""') + '"'
    with reading(table):
        return int(conn.execute(f"SELECT count(*) FROM {quoted}").fetchone()[0])
