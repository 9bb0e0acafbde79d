"""The few words a person is told when the server's file could not be used."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from malabot.errors import TenantError
from malabot.tenancy.failures import is_busy, storage_trouble


def _error(code: int, message: str) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = code  # type: ignore[attr-defined]  # as SQLite sets it
    return error


def test_a_lock_held_elsewhere_is_busy(tmp_path: Path) -> None:
    path = tmp_path / "file.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    waiter = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        waiter.execute("BEGIN IMMEDIATE")
        raise AssertionError("the lock was not held")
    except sqlite3.OperationalError as error:
        assert is_busy(error)
        assert storage_trouble(error) == "the server's data file is locked by another program"
    finally:
        waiter.close()
        holder.close()


def test_other_troubles() -> None:
    assert storage_trouble(_error(sqlite3.SQLITE_FULL, "database or disk is full")) == "the disk is full"
    assert not is_busy(_error(sqlite3.SQLITE_FULL, "database or disk is full"))
    assert storage_trouble(TenantError("cannot open x")) == "the server's data file cannot be opened"
    assert storage_trouble(_error(sqlite3.SQLITE_IOERR | (3 << 8), "disk I/O error")) == \
        "the server's data file could not be written"
    assert not is_busy(ValueError("database is locked"))
