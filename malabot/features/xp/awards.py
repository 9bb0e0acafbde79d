"""One chat message's XP award, whose level change may only be known a little later.

A level change needs the member's total before the award. For a member in memory that is known at
once; for a member's first message in a while their stored total must be read from the file first.
The award itself never waits for that read (it is buffered at once): a listener that waited would keep
every message event alive until the reads caught up, which on a cold start with many members is
tens of thousands of events in memory. Instead the award is *unsettled* until the total is known, and
then settled with the level change it made.

Settling in order: a member's unsettled awards are always their most recent ones (while the total is
unknown every award is unsettled), and the total, once known, includes every one of them. So walking
back from the total gives each award its own before and after.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from malabot.features.xp.curves import level_for_xp
from malabot.features.xp.models import LevelChange

log = logging.getLogger(__name__)


class ChatAward:
    """XP awarded for one message: `amount` is buffered already; the level change follows."""

    __slots__ = ("guild_id", "user_id", "amount", "curve", "_outcome")

    def __init__(self, guild_id: int, user_id: int, amount: int, curve: str) -> None:
        self.guild_id = guild_id
        self.user_id = user_id
        self.amount = amount
        self.curve = curve
        self._outcome: asyncio.Future[LevelChange | None] = asyncio.get_running_loop().create_future()
        # A failure nobody asks about any more is logged by whoever failed it, not warned about again.
        self._outcome.add_done_callback(lambda done: done.cancelled() or done.exception())

    @property
    def settled(self) -> bool:
        return self._outcome.done()

    async def level_change(self) -> LevelChange | None:
        """The change this award made; None when the member was forgotten before it was known.
        Raises what the read of the stored total raised, if it failed."""
        return await asyncio.shield(self._outcome)

    def when_known(self, callback: Callable[[LevelChange], None]) -> None:
        """Call `callback(change)` once the change is known (at once if it is). Not called when the
        member was forgotten first or the read failed (that is logged)."""
        def deliver(outcome: asyncio.Future[LevelChange | None]) -> None:
            if not outcome.cancelled() and outcome.exception() is None and (change := outcome.result()):
                callback(change)

        if self._outcome.done():
            deliver(self._outcome)
        else:
            self._outcome.add_done_callback(deliver)

    def settle(self, total_before: int) -> None:
        """The member had `total_before` XP just before this award."""
        if not self._outcome.done():
            after = total_before + self.amount
            self._outcome.set_result(LevelChange(
                guild_id=self.guild_id, user_id=self.user_id, old_level=level_for_xp(self.curve, total_before),
                new_level=level_for_xp(self.curve, after), total_xp=after))

    def drop(self) -> None:
        """The member was forgotten (they left, or asked): no level change to report."""
        if not self._outcome.done():
            self._outcome.set_result(None)

    def fail(self, error: BaseException) -> None:
        if not self._outcome.done():
            self._outcome.set_exception(error)


def settle_in_order(awards: list[ChatAward], total_now: int) -> None:
    """Settle a member's unsettled awards, oldest first, given their total including all of them."""
    before = total_now - sum(award.amount for award in awards)
    for award in awards:
        award.settle(before)
        before += award.amount
