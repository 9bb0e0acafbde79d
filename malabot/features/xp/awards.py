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

from malabot.features.xp.models import LevelChange
from malabot.features.xp.rules import level_change

log = logging.getLogger(__name__)


class ChatAward:
    """XP awarded for one message: `amount` is buffered already; the level change follows.

    Kept small (no future per award): on a cold start there is one per member waiting for a read.
    """

    __slots__ = ("guild_id", "user_id", "amount", "curve", "_settled", "_change", "_error", "_followers")

    def __init__(self, guild_id: int, user_id: int, amount: int, curve: str) -> None:
        self.guild_id = guild_id
        self.user_id = user_id
        self.amount = amount
        self.curve = curve
        self._settled = False
        self._change: LevelChange | None = None
        self._error: BaseException | None = None
        # Callbacks and futures of waiters, told when the award settles.
        self._followers: list[Callable[[LevelChange], None] | asyncio.Future[None]] | None = None

    @property
    def settled(self) -> bool:
        return self._settled

    async def level_change(self) -> LevelChange | None:
        """The change this award made; None when the member was forgotten before it was known.
        Raises what the read of the stored total raised, if it failed."""
        if not self._settled:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._follow(waiter)
            await waiter
        if self._error is not None:
            raise self._error
        return self._change

    def when_known(self, callback: Callable[[LevelChange], None]) -> None:
        """Call `callback(change)` once the change is known (at once if it is). Not called when the
        member was forgotten first or the read failed (that is logged)."""
        if not self._settled:
            self._follow(callback)
        elif self._change is not None:
            callback(self._change)

    def settle(self, total_before: int) -> None:
        """The member had `total_before` XP just before this award."""
        self._finish(level_change(self.guild_id, self.user_id, self.curve, total_before,
                                  total_before + self.amount), None)

    def drop(self) -> None:
        """The member was forgotten (they left, or asked): no level change to report."""
        self._finish(None, None)

    def fail(self, error: BaseException) -> None:
        self._finish(None, error)

    def _follow(self, follower: Callable[[LevelChange], None] | asyncio.Future[None]) -> None:
        if self._followers is None:
            self._followers = []
        self._followers.append(follower)

    def _finish(self, change: LevelChange | None, error: BaseException | None) -> None:
        if self._settled:
            return
        self._settled, self._change, self._error = True, change, error
        followers, self._followers = self._followers or [], None
        for follower in followers:
            if isinstance(follower, asyncio.Future):
                if not follower.done():
                    follower.set_result(None)
            elif change is not None:
                try:
                    follower(change)
                except Exception:  # one listener's bug must not stop the others or the caller
                    log.exception("a level-change callback of guild %s failed", self.guild_id)


def settle_in_order(awards: list[ChatAward], total_now: int) -> None:
    """Settle a member's unsettled awards, oldest first, given their total including all of them."""
    before = total_now - sum(award.amount for award in awards)
    for award in awards:
        award.settle(before)
        before += award.amount
