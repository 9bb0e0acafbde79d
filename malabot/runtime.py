"""Running the bot until it is told to stop, then shutting down in order.

Order on the way out: start no scheduled job and stop taking events (cancel the gateway task), let the
handlers and jobs already running finish for a few seconds (cancelling the rest: their transactions
roll back), close the client, then
flush the services' pending writes and close every tenant. py-cord's `close()` closes the HTTP session
before it marks the client closed, so the `start()` task is cancelled first (see notes on offline
testing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator

import aiohttp
import discord
from pydantic import ValidationError

from malabot.app import (
    Services,
    build_bot,
    build_services,
    pause_scheduler,
    start_services,
    stop_services,
    tenants_lock,
)
from malabot.cogs.birthdays import BIRTHDAY_PASS_NOW
from malabot.cogs.xp import LEVEL_UP_TASK
from malabot.errors import MalabotError
from malabot.scheduling import JOB_TASK_PREFIX
from malabot.settings import Settings, describe_undecodable_env, describe_validation_error
from malabot.tenancy.backup import remove_all_backup_leftovers, remove_download_leftovers
from malabot.tenancy.descriptors import ensure_descriptors
from malabot.tenancy.opening import remove_staging_leftovers
from malabot.tenancy.paths import TenantPaths

log = logging.getLogger(__name__)

# How long handlers already running (a command, a level-up post) may take to finish once the bot is
# told to stop; short enough for the whole shutdown to fit in a container's 10 s.
SHUTDOWN_GRACE_SECONDS = 5.0
# py-cord runs every event listener (commands too) and every button callback in a task named so; the
# birthday cog runs one server's pass (for a birthday set to today, say) in a task of its own, and the
# XP cog each level-up (its post and its roles). A scheduled job under way (the quarter-hour birthday
# pass: a celebration it claimed and did not show would stay unshown) finishes the same way.
_HANDLER_TASK_PREFIXES = ("pycord: ", "discord-ui-view-", BIRTHDAY_PASS_NOW, LEVEL_UP_TASK, JOB_TASK_PREFIX)
# on_ready's start-up sweep (open every server's file, archive the removed, purge the departed) is
# done again at the next start, so a stop does not wait for it.
_START_UP_SWEEP = "pycord: on_ready"


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment and `.env`; invalid values become one readable MalabotError."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise MalabotError(describe_validation_error(error)) from None
    except UnicodeDecodeError as error:  # the environment is already text: only `.env` is decoded here
        raise MalabotError(describe_undecodable_env(error)) from None


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set `stop`, for as long as the block runs: the shutdown included, so that a
    second Ctrl-C (or a second SIGTERM) does not cut short the flush of pending writes."""
    loop = asyncio.get_running_loop()

    def stop_once() -> None:
        if stop.is_set():
            log.warning("already shutting down: flushing writes and closing files first")
        stop.set()

    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop_once)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def running_handlers() -> set[asyncio.Task[object]]:
    """The tasks running a listener, command, button callback or scheduled job now."""
    current = asyncio.current_task()
    return {task for task in asyncio.all_tasks()
            if task is not current and task.get_name().startswith(_HANDLER_TASK_PREFIXES)}


async def finish_handlers(within: float) -> None:
    """Wait up to `within` seconds for py-cord's running handlers, then cancel those left: closing the
    files under them would fail each of their next steps. The start-up sweep is cancelled at once."""
    sweeps = {task for task in running_handlers() if task.get_name() == _START_UP_SWEEP}
    for task in sweeps:
        task.cancel()
    await asyncio.gather(*sweeps, return_exceptions=True)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while running := running_handlers():
        remaining = deadline - loop.time()
        if remaining <= 0:
            log.warning("shutting down: cancelling %d event handler(s) still running after %g s",
                        len(running), within)
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            return
        await asyncio.wait(running, timeout=remaining)


async def shut_down(bot: discord.Client, start_task: asyncio.Task[None] | None, services: Services) -> None:
    pause_scheduler(services)  # first: no job starts while the client goes away; those under way finish below
    if start_task is not None and not start_task.done():
        start_task.cancel()  # no new events from here on
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await start_task
    await finish_handlers(SHUTDOWN_GRACE_SECONDS)  # they still have the HTTP session and the open files
    with contextlib.suppress(Exception):
        await bot.close()
    await stop_services(services)


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """`malabot run`: connect with the token and serve until SIGINT/SIGTERM."""
    stop = stop or asyncio.Event()
    token = settings.token.get_secret_value().strip() if settings.token else ""
    ensure_descriptors(settings.max_open_tenants)
    with tenants_lock(settings, "malabot run"):
        paths = TenantPaths(settings.tenants_dir)
        if removed := remove_staging_leftovers(paths):
            log.info("removed %d temporary tenant file(s) left by an earlier crash", removed)
        if removed := remove_all_backup_leftovers(paths):
            log.info("removed %d temporary backup file(s) left by an interrupted backup", removed)
        if removed := remove_download_leftovers(paths):
            log.info("removed %d download copy folder(s) left by an interrupted /backup create", removed)
        services = build_services(settings)
        await start_services(services)
        bot = build_bot(services)
        with stop_on_signals(stop):
            start_task = asyncio.create_task(bot.start(token))
            try:
                await until_stopped(bot, start_task, stop, settings.api_base_url)
            finally:
                log.info("shutting down: flushing writes and closing tenants")
                await shut_down(bot, start_task, services)
        # After every flush of the stop (the last ones run as each file closes): what is left is lost.
        if lost := services.xp.unwritten():  # the files refuse the write (a full disk, a lock held elsewhere)
            log.error("XP that could not be written is lost at this stop: %s",
                      ", ".join(f"guild {guild_id}: {xp:,} XP" for guild_id, xp in sorted(lost.items())))
            raise MalabotError(f"chat XP of {len(lost)} server(s) could not be written before the stop and "
                               "is lost; the log names them and why")


async def until_stopped(bot: discord.Client, start_task: asyncio.Task[None], stop: asyncio.Event,
                        api_base_url: str) -> None:
    """Wait until `stop` is set or the client ends; a client that could not connect is one readable line."""
    try:
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({start_task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if start_task.done():
            start_task.result()
    except discord.LoginFailure:
        raise MalabotError("Discord refused the token (MALABOT_TOKEN); check it in the developer portal") from None
    except discord.PrivilegedIntentsRequired:  # gateway close 4014: the only privileged intent asked for
        raise MalabotError("Discord refused the Server Members intent; enable it for the bot in the Discord "
                           "developer portal (Bot page, Privileged Gateway Intents)") from None
    # aiohttp.ClientError: a server that hangs up or does not speak HTTP (not an OSError).
    except (discord.GatewayNotFound, discord.ConnectionClosed, OSError, aiohttp.ClientError) as error:
        raise MalabotError(f"cannot reach Discord at {api_base_url}: {error}") from None
    except discord.HTTPException as error:  # a server that is not the API (a wrong path, a proxy's error)
        raise MalabotError(f"Discord at {api_base_url} answered {error.status} {error.response.reason}; "
                           f"{CHECK_BASE_URL}") from None
    except (TypeError, KeyError, ValueError) as error:
        if bot.is_ready():
            raise
        # A site that answers 200 with a page or other JSON (a dashboard's address): py-cord fails to
        # read it as the bot's user.
        raise MalabotError(f"the server at {api_base_url} did not answer like Discord's API ({error!r}); "
                           f"{CHECK_BASE_URL}") from None


CHECK_BASE_URL = "check MALABOT_API_BASE_URL (the REST base with its version, e.g. https://discord.com/api/v10)"
