"""A guild's file held by someone else (a long read, a command, a backup) while a test acts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

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
