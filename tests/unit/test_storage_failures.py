"""The few words a person is told when the server's file could not be used."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pytest

from malabot.errors import TenantError, os_reason
from malabot.tenancy.failures import failing_as, is_busy, storage_trouble


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


def test_a_system_error_reads_as_its_reason_and_the_path_it_met() -> None:
    denied = PermissionError(errno.EACCES, "Permission denied", "/srv/out/.1.tmp")
    assert os_reason(denied) == "Permission denied: /srv/out/.1.tmp"  # no "[Errno 13]", no quotes
    assert os_reason(denied, Path("/srv/out/.1.tmp")) == "Permission denied", "the sentence names it already"
    assert os_reason(OSError(errno.EXDEV, "Invalid cross-device link", "/a", None, "/b")) == \
        "Invalid cross-device link: /a -> /b"
    assert os_reason(OSError("no details")) == "no details"


def test_a_failing_file_step_becomes_one_sentence_saying_what_failed(tmp_path: Path) -> None:
    with pytest.raises(TenantError) as raised, failing_as(f"cannot create the archive folder {tmp_path}", tmp_path):
        raise FileExistsError(errno.EEXIST, "File exists", str(tmp_path))
    assert str(raised.value) == f"cannot create the archive folder {tmp_path} (File exists)"
