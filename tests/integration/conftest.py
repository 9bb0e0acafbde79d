"""Fixtures for tests on real tenant files in a temporary folder."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import aiosqlite
import pytest

from malabot.tenancy.manager import TenantManager
from malabot.tenancy.migrations import MigrationSet, default_migrations_dir, migrate

MigrationsFactory = Callable[..., MigrationSet]


@pytest.fixture
async def tenants(tmp_path: Path) -> AsyncIterator[TenantManager]:
    """A started TenantManager on an empty tenants folder, closed afterwards."""
    manager = TenantManager(tmp_path / "tenants")
    await manager.start()
    yield manager
    await manager.close_all()


@pytest.fixture
async def retaining(tmp_path: Path) -> AsyncIterator[TenantManager]:
    """A started TenantManager as the bot runs it: a guild that adds the bot back within 30 days gets
    its archive back on its first use (ensure() from the join event, or any read or write)."""
    manager = TenantManager(tmp_path / "tenants", archive_retention=timedelta(days=30))
    await manager.start()
    yield manager
    await manager.close_all()


@pytest.fixture
async def conn(tmp_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    """One tenant file migrated by the project's migrations, opened in autocommit mode: for
    repository tests that need the schema but not the manager."""
    path = tmp_path / "1001.sqlite3"
    plain = sqlite3.connect(path, isolation_level=None)
    migrate(plain, MigrationSet.load(), "test tenant")
    plain.close()
    async with aiosqlite.connect(path, isolation_level=None) as connection:
        yield connection


@pytest.fixture
def make_migrations(tmp_path: Path) -> MigrationsFactory:
    """`make_migrations(name, extra={"0003_x.sql": sql})`: the project's migrations plus `extra`.

    Each call gets its own folder under tmp_path, so a test can hold several versions of the code.
    """

    def build(name: str, extra: dict[str, str] | None = None) -> MigrationSet:
        folder = tmp_path / "migrations" / name
        shutil.copytree(default_migrations_dir(), folder)
        for file_name, sql in (extra or {}).items():
            (folder / file_name).write_text(sql, encoding="utf-8")
        return MigrationSet.load(folder)

    return build
