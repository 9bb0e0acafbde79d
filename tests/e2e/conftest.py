"""End-to-end harness: the real py-cord client against the local Discord-compatible server.

- Every e2e test runs behind a network guard: only loopback connections are allowed.
- `discord_server`: a started `FakeDiscord`; after the test it fails if the bot called a route
  the sandbox does not implement (so a missing route shows up as a clear error, not a mystery).
- `start_bot`: `bot = await start_bot(bot)` runs any py-cord client (a plain `discord.Bot` here,
  the real MalaBot class later) until the test ends. Build the client inside the test or an
  async fixture (it needs the running loop) with `**sandbox_client_options()`.
  Equivalent by hand: `async with running_bot(discord_server, bot) as bot: ...`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import discord
import pytest

from malabot.sandbox import FakeDiscord, loopback_only, running_bot

E2E_DIR = Path(__file__).parent

# Seconds between two answered requests for a server's whole member list in e2e tests (Discord: 30).
TEST_MEMBER_LIST_WINDOW = 0.3

StartBot = Callable[[discord.Client], Awaitable[discord.Client]]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if E2E_DIR in item.path.parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(autouse=True)
def network_guard() -> Iterator[None]:
    """Refuse any connection or name lookup that would leave 127.0.0.1 / ::1 / localhost."""
    with loopback_only():
        yield


@pytest.fixture
async def discord_server() -> AsyncIterator[FakeDiscord]:
    server = FakeDiscord()
    # Discord answers a server's whole member list once per 30 s; a test restarting the bot would
    # wait that long for its lists. The same refusal, shorter (tests of the window set their own).
    server.member_list_window = TEST_MEMBER_LIST_WINDOW
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
    unhandled = [f"{r.method} {r.path}" for r in server.log.unhandled()]
    assert not unhandled, f"the bot called routes malabot/sandbox does not implement: {unhandled}"


@pytest.fixture
async def start_bot(discord_server: FakeDiscord) -> AsyncIterator[StartBot]:
    """Start clients on `discord_server`; each is shut down (cancel start task, close) at teardown."""
    async with AsyncExitStack() as stack:

        async def start(bot: discord.Client) -> discord.Client:
            return await stack.enter_async_context(running_bot(discord_server, bot))

        yield start
