"""The SQLite library under Python's `sqlite3` module must know what the tenant files rely on.

An older one would fail later and less clearly: a migration that cannot parse, or every XP write
refused, server by server.
"""

from __future__ import annotations

import sqlite3

from malabot.errors import MalabotError

# STRICT tables (3.37) and the `->>` JSON operator of the XP flush (3.38); RETURNING is older (3.35).
OLDEST_SQLITE = (3, 38, 0)


def check_sqlite_version(version: tuple[int, int, int] | None = None) -> None:
    """MalabotError when `version` (by default the library this Python uses) is too old."""
    version = version or sqlite3.sqlite_version_info
    if version < OLDEST_SQLITE:
        raise MalabotError(
            f"MalaBoT needs SQLite {_dotted(OLDEST_SQLITE)} or newer, but this Python's sqlite3 module uses "
            f"{_dotted(version)}; use a Python built with a newer SQLite (e.g. from python.org or pyenv)")


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)
