"""Run a py-cord client (a plain `discord.Bot` or the real MalaBot) against a `FakeDiscord`.

    async with running_bot(server, bot) as bot:   # connected, on_ready fired
        reply = await server.invoke_command(...)

The client must be constructed inside the running event loop, with a small
`guild_ready_timeout` (see `sandbox_client_options()`), or on_ready waits 2 s. A test that makes
the bot re-IDENTIFY (`disconnect_bot(resumable=False)`) should override the client's
`before_identify_hook` with a no-op: py-cord sleeps 5 s there before every IDENTIFY but the first.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import discord
from discord.http import Route

from malabot.sandbox.errors import SandboxError, SandboxTimeout
from malabot.sandbox.server import FakeDiscord

ClientT = TypeVar("ClientT", bound=discord.Client)

# The task running py-cord's `start()`: what `malabot run` cancels first when told to stop.
START_TASK = "sandbox-bot-start"


def sandbox_client_options() -> dict[str, Any]:
    """Keyword arguments a py-cord client needs to start fast against the sandbox."""
    # on_ready fires this long after the last GUILD_CREATE; the sandbox sends them all at once.
    return {"guild_ready_timeout": 0.05}


@asynccontextmanager
async def running_bot(server: FakeDiscord, bot: ClientT, *, token: str | None = None,
                      ready_within: float = 10.0) -> AsyncIterator[ClientT]:
    """Start `bot` on `server`, yield it once on_ready fired, then shut it down cleanly.

    Points `discord.http.Route.API_BASE_URL` at the server for the duration and restores it.
    `token` defaults to the server's (pass another one to test a refused login). A crash of
    the bot's connection task during the block is raised at the end.
    """
    previous_base = Route.API_BASE_URL
    Route.API_BASE_URL = server.api_base_url
    start = asyncio.create_task(bot.start(token or server.token), name=START_TASK)
    try:
        await _until_ready(bot, start, ready_within)
        yield bot
    finally:
        crash = _crash_of(start)
        if not start.done():
            # Cancel first: close() shuts the HTTP session before marking the client closed, and
            # a still-running connect loop would then fail with "Session is closed".
            start.cancel()
            try:
                await start
            except asyncio.CancelledError:
                pass
        await bot.close()
        Route.API_BASE_URL = previous_base
        if crash is not None:
            raise SandboxError(f"the bot's connection task crashed: {crash!r}") from crash


async def _until_ready(bot: discord.Client, start: asyncio.Task[None], within: float) -> None:
    ready = asyncio.create_task(bot.wait_until_ready())
    try:
        done, _ = await asyncio.wait({ready, start}, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not ready.done():
            ready.cancel()
    if start in done:
        error = _crash_of(start)
        raise SandboxError(f"bot.start() ended before on_ready: {error!r}") from error
    if ready not in done:
        raise SandboxTimeout(f"on_ready did not fire within {within:g}s (is guild_ready_timeout small?)")


def _crash_of(task: asyncio.Task[None]) -> BaseException | None:
    if not task.done() or task.cancelled():
        return None
    return task.exception()
