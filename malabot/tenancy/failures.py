"""What went wrong with a server's file, in words for the person whose command met it."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from malabot.errors import TenantError, os_reason

# The answer to a command that found the server's file locked by someone else for longer than the
# bot waits (busy_timeout): the lock is usually short, so trying again is the useful advice.
BUSY_ANSWER = "The server's data is busy right now; please try again in a moment."


def _sqlite_code(error: BaseException) -> int:
    # Errors the sqlite3 module raises itself (misuse) carry no SQLite code; extended codes keep the
    # primary one in their low byte.
    return getattr(error, "sqlite_errorcode", 0) & 0xFF if isinstance(error, sqlite3.Error) else 0


def is_busy(error: BaseException) -> bool:
    """SQLite gave up waiting for a lock another connection or process holds on the file."""
    return _sqlite_code(error) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def storage_trouble(error: BaseException) -> str:
    """Why the server's file could not take a write, in a few words."""
    if is_busy(error):
        return "the server's data file is locked by another program"
    if _sqlite_code(error) == sqlite3.SQLITE_FULL:
        return "the disk is full"
    if isinstance(error, TenantError):
        return "the server's data file cannot be opened"
    return "the server's data file could not be written"


@contextlib.contextmanager
def failing_as(what: str, named: Path | None = None) -> Iterator[None]:
    """An OSError inside becomes a TenantError saying `what` failed, and why, in one line (see
    `os_reason`): "guild 1: cannot create the archive folder /srv/t/archive (Permission denied)"."""
    try:
        yield
    except OSError as error:
        raise TenantError(f"{what} ({os_reason(error, named)})") from error
