"""Helpers shared by the XP and check-in tests (fixtures stay in the test modules that use them)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

from malabot.tenancy.migrations import MigrationSet, migrate


@asynccontextmanager
async def migrated_file(folder: Path) -> AsyncIterator[aiosqlite.Connection]:
    """A tenant file migrated by the project's migrations, opened in autocommit mode."""
    path = folder / "1001.sqlite3"
    plain = sqlite3.connect(path, isolation_level=None)
    migrate(plain, MigrationSet.load(), "test tenant")
    plain.close()
    async with aiosqlite.connect(path, isolation_level=None) as connection:
        yield connection
