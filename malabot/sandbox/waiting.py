"""Wait for a condition on sandbox state that changes when the bot calls in (no polling loops)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from malabot.sandbox.errors import SandboxTimeout


class Waiters:
    """Futures waiting for predicates; `notify()` after every change wakes the satisfied ones."""

    def __init__(self) -> None:
        self._waiting: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    def notify(self) -> None:
        for predicate, future in list(self._waiting):
            if future.done():
                continue
            try:
                satisfied = predicate()
            except Exception as exc:  # a broken predicate should fail the waiting test, not the server
                future.set_exception(exc)
            else:
                if satisfied:
                    future.set_result(None)

    async def wait_until(self, predicate: Callable[[], bool], *, within: float, waiting_for: str) -> None:
        """Return once `predicate()` holds; after `within` seconds raise SandboxTimeout naming
        `waiting_for`, so a test failure says what the bot did not do."""
        if predicate():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._waiting.append(entry)
        try:
            await asyncio.wait_for(future, within)
        except TimeoutError:
            raise SandboxTimeout(f"timed out after {within:g}s waiting for {waiting_for}") from None
        finally:
            self._waiting.remove(entry)
