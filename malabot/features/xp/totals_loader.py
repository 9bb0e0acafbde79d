"""Coalesced reads of members' stored XP totals, one loader per guild.

On a cold start every member's first award needs their stored total. Reading it once per member
would pile reads up faster than they finish; here members asked for are queued and one task reads
every queued member in one query, then the members queued meanwhile in the next one. The queue is
taken only once the reader holds the file (opening it may take a while), so members asked for while
it was opening join the same query. Nobody waits on the loader: the reader stores what it learns
where the caller looks (the XP buffer), and a failed read is handed to `on_failed`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

TakeQueued = Callable[[], list[int]]
ReadTotals = Callable[[TakeQueued], Awaitable[None]]
ReadFailed = Callable[[list[int], Exception], None]


class TotalsLoader:
    def __init__(self, read: ReadTotals, on_failed: ReadFailed) -> None:
        """`read(take)` gets ready to read (e.g. holds the file), calls `take()` for the members to
        read, reads their totals and stores them. `on_failed(user_ids, error)`: a read that raised."""
        self._read = read
        self._on_failed = on_failed
        self._queued: dict[int, None] = {}   # insertion-ordered set
        self._reading: list[int] = []
        self._task: asyncio.Task[None] | None = None

    @property
    def idle(self) -> bool:
        return self._task is None

    def request(self, user_id: int) -> None:
        """Read the member's total soon (nothing happens if it is queued already)."""
        self._queued[user_id] = None
        if self._task is None:
            self._task = asyncio.create_task(self._read_queued(), name="xp-load-totals")

    def _take_queued(self) -> list[int]:
        self._reading, self._queued = list(self._queued), {}
        return self._reading

    async def _read_queued(self) -> None:
        try:
            while self._queued:
                try:
                    await self._read(self._take_queued)
                except Exception as error:
                    if not self._reading:  # failed before taking the queue (the file would not open)
                        self._take_queued()
                    self._on_failed(self._reading, error)
                self._reading = []
        finally:  # done, or cancelled with the loop: members still queued are asked for again later
            self._task = None
