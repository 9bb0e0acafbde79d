"""A guild's file held by someone else (a long read, a command, a backup, another program) while a
test acts."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from malabot.tenancy.manager import TenantManager


@contextlib.asynccontextmanager
async def file_in_use(tenants: TenantManager, guild_id: int) -> AsyncIterator[None]:
    """The guild's lock is held for the duration of the block; what waits for it goes on after."""
    holding, done = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with tenants.reading(guild_id):
            holding.set()
            await done.wait()

    holder = asyncio.create_task(hold())
    await holding.wait()
    try:
        yield
    finally:
        done.set()
        await holder


@contextlib.contextmanager
def locked_from_outside(path: Path) -> Iterator[None]:
    """Another program (an operator's `sqlite3` session) holds the file's write lock for the block:
    the bot's writes wait busy_timeout (5 s) and then fail with "database is locked"."""
    outsider = sqlite3.connect(path, isolation_level=None)
    try:
        outsider.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            outsider.execute("ROLLBACK")
    finally:
        outsider.close()
