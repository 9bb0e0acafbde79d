"""Running the bot until it is told to stop, then shutting down in order.

Order on the way out: stop taking events (cancel the gateway task, close the client), then flush the
services' pending writes and close every tenant. py-cord's `close()` closes the HTTP session before it
marks the client closed, so the `start()` task is cancelled first (see notes on offline testing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator

import discord
from pydantic import ValidationError

from malabot.app import (
    Services,
    build_bot,
    build_services,
    start_services,
    stop_scheduler,
    stop_services,
    tenants_lock,
)
from malabot.errors import MalabotError
from malabot.settings import Settings, describe_validation_error
from malabot.tenancy.opening import remove_staging_leftovers
from malabot.tenancy.paths import TenantPaths

log = logging.getLogger(__name__)


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment and `.env`; invalid values become one readable MalabotError."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise MalabotError(describe_validation_error(error)) from None


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def shut_down(bot: discord.Client, start_task: asyncio.Task[None] | None, services: Services) -> None:
    stop_scheduler(services)  # first: a job must not act on Discord while the client goes away
    if start_task is not None and not start_task.done():
        start_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await start_task
    with contextlib.suppress(Exception):
        await bot.close()
    await stop_services(services)


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """`malabot run`: connect with the token and serve until SIGINT/SIGTERM."""
    stop = stop or asyncio.Event()
    token = settings.token.get_secret_value().strip() if settings.token else ""
    with tenants_lock(settings, "malabot run"):
        if removed := remove_staging_leftovers(TenantPaths(settings.tenants_dir)):
            log.info("removed %d temporary tenant file(s) left by an earlier crash", removed)
        services = build_services(settings)
        await start_services(services)
        bot = build_bot(services)
        start_task: asyncio.Task[None] | None = None
        try:
            with stop_on_signals(stop):
                start_task = asyncio.create_task(bot.start(token))
                stopper = asyncio.create_task(stop.wait())
                await asyncio.wait({start_task, stopper}, return_when=asyncio.FIRST_COMPLETED)
                stopper.cancel()
                if start_task.done():
                    start_task.result()
        except discord.LoginFailure:
            raise MalabotError("Discord refused the token (MALABOT_TOKEN); check it in the developer portal") from None
        except (discord.GatewayNotFound, discord.ConnectionClosed, OSError) as error:
            raise MalabotError(f"cannot reach Discord at {settings.api_base_url}: {error}") from None
        finally:
            log.info("shutting down: flushing writes and closing tenants")
            await shut_down(bot, start_task, services)
