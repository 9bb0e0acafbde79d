"""What the birthday feature needs from the outside world, as small protocols.

The Discord side implements BirthdayEffects with py-cord; the XP service implements XpGranter; tests
implement both with recording fakes. Nothing here imports discord or another feature's service.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import aiosqlite

# The one Clock of the project (now, as an aware UTC datetime), re-exported for the birthday modules.
from malabot.clock import Clock, utc_now
from malabot.features.xp.models import LevelChange

__all__ = ["BirthdayEffects", "Clock", "MemberCheck", "XpGranter", "utc_now"]

# "Is this user a member of the server right now?" — from the bot's member cache.
MemberCheck = Callable[[int], bool]


class BirthdayEffects(Protocol):
    """The visible side of a celebration. Each call returns False when it could not be done (channel
    or role gone, missing permission, member left); it should not raise, but the pass survives if it does.
    """

    async def announce(self, guild_id: int, channel_id: int, user_id: int, text: str) -> bool: ...

    async def add_role(self, guild_id: int, user_id: int, role_id: int) -> bool: ...

    async def remove_role(self, guild_id: int, user_id: int, role_id: int) -> bool: ...

    def is_member(self, guild_id: int, user_id: int) -> bool: ...

    def knows_members(self, guild_id: int) -> bool:
        """Whether every member of the server is known now (its member list is in and it is not in an
        outage): until then a member not found says nothing about whether they left."""
        ...

    def holds_role(self, guild_id: int, user_id: int, role_id: int) -> bool:
        """Whether the member holds the role now; False when that is not known."""
        ...

    def in_screening(self, guild_id: int, user_id: int) -> bool:
        """Whether the member has not accepted the server's rules yet (Membership Screening): any role
        given lets them skip the rules, so theirs waits until they accept them."""
        ...

    async def tell_admins(self, guild_id: int, problems: list[str]) -> None:
        """Tell the server's admins (its mod log) what they must fix or do by hand."""
        ...


class XpGranter(Protocol):
    """Adds XP to members inside the caller's open tenant transaction (the XP service's
    add_many_in_transaction)."""

    async def add_many_in_transaction(self, conn: aiosqlite.Connection, guild_id: int,
                                      user_ids: Sequence[int], amount: int) -> list[LevelChange]: ...
