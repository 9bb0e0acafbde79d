"""Holding some of the bot's requests back until a test lets them go, as a slow Discord would.

A request that matches a hold waits before it is handled (nothing about it has happened yet), so a
test can make something else happen meanwhile, e.g. an admin command while a level-up is being posted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from malabot.sandbox.errors import SandboxTimeout

# (method, path under /api/v10, JSON body or None) -> whether to hold the request
RequestTest = Callable[[str, str, Any], bool]


class Hold:
    def __init__(self, matches: RequestTest) -> None:
        self.matches = matches
        self._arrived = asyncio.Event()
        self._released = asyncio.Event()

    async def arrived(self, within: float) -> None:
        """Return once a matching request is being held."""
        try:
            await asyncio.wait_for(self._arrived.wait(), within)
        except TimeoutError:
            raise SandboxTimeout(f"timed out after {within:g}s waiting for a held request") from None

    def release(self) -> None:
        """Let every request held here (and any later one) go on."""
        self._released.set()

    async def hold(self) -> None:
        self._arrived.set()
        await self._released.wait()


class Holds:
    def __init__(self) -> None:
        self._holds: list[Hold] = []

    def add(self, matches: RequestTest) -> Hold:
        hold = Hold(matches)
        self._holds.append(hold)
        return hold

    def remove(self, hold: Hold) -> None:
        hold.release()
        self._holds.remove(hold)

    async def pass_through(self, method: str, path: str, body: Any) -> None:
        """Wait while a hold matches the request."""
        for hold in list(self._holds):
            if hold.matches(method, path, body):
                await hold.hold()
