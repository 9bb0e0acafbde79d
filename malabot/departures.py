"""Members who left a server a moment ago, remembered for a while.

A write about a member that was under way as they left (a command or a chat message waiting for the
server's settings, a command Discord delivered just after the leave) would land after the leave's
purge and keep their rows until the next start. The writers ask here to keep such members out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

# Longer than any handling that was under way as they left (or that Discord delivered just after)
# takes to write; short enough that a member whose rejoin the bot missed is not kept out for long.
DEPARTURE_SECONDS = 60.0


@dataclass
class _Departure:
    left_at: float  # clock time of the leave
    # Whether a purge of theirs has run since (marked in its transaction): until then their rows are
    # that purge's to delete and count; after it, rows of theirs were written late, and each commit
    # purges them again.
    purged: bool = False


class RecentDepartures:
    def __init__(self, keep_seconds: float = DEPARTURE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._keep_seconds = keep_seconds
        self._clock = clock
        self._left: dict[int, dict[int, _Departure]] = {}  # guild id -> user id -> their leave

    def left(self, guild_id: int, user_id: int) -> None:
        self._left.setdefault(guild_id, {})[user_id] = _Departure(self._clock())

    def purged(self, guild_id: int, user_ids: Iterable[int]) -> list[int]:
        """A purge of these members is about to commit (those who did not leave are no concern here).
        Returns those it marked now, not already marked by an earlier purge: `purge_failed` takes them."""
        return self._mark(guild_id, user_ids, purged=True)

    def purge_failed(self, guild_id: int, user_ids: Iterable[int]) -> None:
        """The purge that marked these members did not commit after all: their rows are still a purge's
        to come."""
        self._mark(guild_id, user_ids, purged=False)

    def _mark(self, guild_id: int, user_ids: Iterable[int], *, purged: bool) -> list[int]:
        members = self._left.get(guild_id, {})
        changed = []
        for user_id in user_ids:
            departure = members.get(user_id)
            if departure is not None and departure.purged != purged:
                departure.purged = purged
                changed.append(user_id)
        return changed

    def rejoined(self, guild_id: int, user_id: int) -> bool:
        """Forget the leave; True when the member was remembered as gone."""
        members = self._left.get(guild_id)
        if members is None or members.pop(user_id, None) is None:
            return False
        if not members:
            del self._left[guild_id]
        return True

    def has_left(self, guild_id: int, user_id: int) -> bool:
        """Whether the member left this guild within the last `keep_seconds` (a dict look-up: it
        runs for every chat message)."""
        members = self._left.get(guild_id)
        departure = members.get(user_id) if members else None
        return departure is not None and self._clock() - departure.left_at <= self._keep_seconds

    def in_guild(self, guild_id: int) -> list[int]:
        """The members who left this guild within the last `keep_seconds`."""
        members = self._left.get(guild_id)
        if not members:
            return []
        since = self._clock() - self._keep_seconds
        for user_id in [user_id for user_id, departure in members.items() if departure.left_at < since]:
            del members[user_id]
        if not members:
            del self._left[guild_id]
        return list(members)

    def purged_in_guild(self, guild_id: int) -> list[int]:
        """Those of `in_guild` whose purge has run since they left."""
        members = self.in_guild(guild_id)
        return [user_id for user_id in members if self._left[guild_id][user_id].purged]


@dataclass(frozen=True)
class MemberPresence:
    """What the bot knows of some members of a guild right now; a member in neither set is unknown
    (the server in an outage, Discord not answering): their owed purge waits for the next try."""

    gone: frozenset[int] = frozenset()
    present: frozenset[int] = frozenset()


class OwedPurges:
    """Members whose leave's purge failed (the server's file locked by another process past the busy
    timeout, a full disk), per guild: their rows are still owed a purge until one works."""

    def __init__(self) -> None:
        self._owed: dict[int, set[int]] = {}  # guild id -> user ids

    def __bool__(self) -> bool:
        return bool(self._owed)

    def owe(self, guild_id: int, user_ids: Sequence[int]) -> bool:
        """Remember these members' purges; True when the guild owed none before (the failure to report)."""
        if not user_ids:
            return False
        members = self._owed.setdefault(guild_id, set())
        first = not members
        members.update(user_ids)
        return first

    def guilds(self) -> list[int]:
        return list(self._owed)

    def in_guild(self, guild_id: int) -> list[int]:
        return sorted(self._owed.get(guild_id, ()))

    def settled(self, guild_id: int, user_ids: Sequence[int]) -> None:
        """These members' purge is done, or no longer wanted; the others of the guild stay owed."""
        members = self._owed.get(guild_id)
        if members is None:
            return
        members.difference_update(user_ids)
        if not members:
            del self._owed[guild_id]

    def cancel(self, guild_id: int, user_id: int) -> bool:
        """Forget one member's purge (they rejoined); True when one was owed."""
        owed = user_id in self._owed.get(guild_id, ())
        self.settled(guild_id, [user_id])
        return owed

    def drop_guild(self, guild_id: int) -> None:
        """The guild's file is gone (archived): nothing left to purge in it."""
        self._owed.pop(guild_id, None)
