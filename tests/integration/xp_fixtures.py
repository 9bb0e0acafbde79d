"""Helpers shared by the XP and check-in tests (the fixtures themselves stay in the test modules)."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from malabot.clock import MovableClock
from malabot.features.checkins.member_data import checkin_member_data
from malabot.features.checkins.service import CheckinService
from malabot.features.settings.service import SettingsService
from malabot.features.xp.admin import XpAdmin
from malabot.features.xp.member_data import xp_member_data
from malabot.features.xp.service import XpService
from malabot.member_data import MemberData
from malabot.tenancy.manager import TenantManager
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


@dataclass
class XpWorld:
    """The graph the composition root builds, on a temporary tenants folder."""

    tenants: TenantManager
    settings: SettingsService
    xp: XpService
    admin: XpAdmin
    checkins: CheckinService
    member_data: MemberData
    clock: MovableClock


@asynccontextmanager
async def xp_world(folder: Path, *, start: datetime | None = None, seed: int = 1234
                   ) -> AsyncIterator[XpWorld]:
    """Tenant manager, settings, XP, admin and check-in services on real files under `folder`.
    The XP background flush is not started: tests flush explicitly (or start it themselves)."""
    clock = MovableClock(start or datetime(2026, 6, 15, 12, 0, tzinfo=UTC))
    tenants = TenantManager(folder)
    await tenants.start()
    settings = SettingsService(tenants)
    xp = XpService(tenants, settings, clock=clock, monotonic=clock.monotonic, rng=random.Random(seed))
    world = XpWorld(
        tenants=tenants, settings=settings, xp=xp, admin=XpAdmin(xp, settings, clock=clock),
        checkins=CheckinService(tenants, settings, xp, clock=clock),
        member_data=MemberData(tenants, [xp_member_data(), checkin_member_data()],
                               forget_hooks=[xp.forget_member]),
        clock=clock)
    try:
        yield world
    finally:
        await tenants.close_all()


def read_file(path: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows straight from a tenant file with plain sqlite3 (what survives a crash)."""
    plain = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [tuple(row) for row in plain.execute(sql, params)]
    finally:
        plain.close()
