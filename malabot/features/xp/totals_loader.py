"""Coalesced reads of members' stored XP totals, one loader per guild.

On a cold start every member's first award needs their stored total. Reading it once per member
lets the waiting awards pile up faster than the reads finish; here members asked for are queued and
one task reads every queued member in one query, then the members queued meanwhile in the next one.
The queue is taken only once the reader holds the file (opening it may take a while), so members
asked for while it was opening join the same query.
A member asked for again while their read is queued or under way shares the same future.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

TakeQueued = Callable[[], list[int]]
ReadTotals = Callable[[TakeQueued], Awaitable[None]]


class TotalsLoader:
    def __init__(self, read: ReadTotals) -> None:
        """`read(take)` gets ready to read (e.g. holds the file), calls `take()` for the members to
        read, reads their totals and stores them where the caller looks."""
        self._read = read
        self._queued: dict[int, asyncio.Future[None]] = {}
        self._reading: dict[int, asyncio.Future[None]] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def idle(self) -> bool:
        return self._task is None

    def load(self, user_id: int) -> asyncio.Future[None]:
        """A future done when the member's total has been read (or failed to be)."""
        future = self._reading.get(user_id) or self._queued.get(user_id)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            # A failure nobody awaits any more (its waiters were cancelled) is not worth a warning.
            future.add_done_callback(lambda done: done.cancelled() or done.exception())
            self._queued[user_id] = future
            if self._task is None:
                self._task = asyncio.create_task(self._read_queued(), name="xp-load-totals")
        return future

    def _take_queued(self) -> list[int]:
        self._reading, self._queued = self._queued, {}
        return list(self._reading)

    async def _read_queued(self) -> None:
        try:
            while self._queued:
                try:
                    await self._read(self._take_queued)
                except Exception as error:
                    if not self._reading:  # failed before taking the queue (the file would not open)
                        self._take_queued()
                    for future in self._reading.values():
                        if not future.done():
                            future.set_exception(error)
                else:
                    for future in self._reading.values():
                        if not future.done():
                            future.set_result(None)
                self._reading = {}
        except BaseException:  # cancelled (the loop is shutting down): release every waiter
            for future in (*self._reading.values(), *self._queued.values()):
                future.cancel()
            self._reading, self._queued = {}, {}
            raise
        finally:
            self._task = None
