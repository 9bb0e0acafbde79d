"""In-memory state of the chat hot path: cooldowns, XP not yet written, and last known stored totals.

A chat message must not wait for a disk write, so awarded XP is kept here and written per guild in
one transaction by the service's flush. Entries live only while they matter: a member's entry is
dropped once nothing is pending and their last award is older than the retention time.

Invariant the service keeps: a member's XP is `stored_xp + pending_xp`, where `stored_xp` is what the
tenant file holds (None: not known, read it from the file under the tenant lock) and `pending_xp`
is what the file does not hold yet. Awards made while `stored_xp` is None are in `pending_xp` and
wait in `unsettled` for their level changes (malabot.features.xp.awards).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

from malabot.features.xp.awards import ChatAward
from malabot.features.xp.repository import BufferedAward


@dataclass(slots=True)
class MemberBuffer:
    last_award_at: float | None = None   # monotonic clock time of the last chat award (its cooldown)
    last_message_at: float = 0.0         # wall-clock time (POSIX) of that award, for the file
    stored_xp: int | None = None         # XP in the file as last known; None: unknown
    pending_xp: int = 0                  # XP earned but not yet in the file
    pending_messages: int = 0
    # Awards made while stored_xp was unknown, oldest first: their level changes wait for the total.
    unsettled: list[ChatAward] = field(default_factory=list)
    writes: int = 0                      # writes under way with XP taken from here (kept till they end)


class TakenXp(NamedTuple):
    """XP a flush took from a member's entry to write it."""

    user_id: int
    xp: int
    messages: int
    last_message_at: float
    entry: MemberBuffer  # given back only to this entry: a new one (they left and came back) is not theirs


@dataclass
class GuildBuffer:
    # Ordered by last award, oldest first (an award moves the member to the end), so expired
    # entries are found at the front without scanning the whole guild.
    members: dict[int, MemberBuffer] = field(default_factory=dict)
    dirty: set[int] = field(default_factory=set)   # members with pending XP
    cooldown_seconds: float = 0.0   # the guild's cooldown at its last award: entries must outlive it

    def touch(self, user_id: int) -> MemberBuffer:
        """The member's entry, moved to the newest end (created if new)."""
        member = self.members.pop(user_id, None)
        if member is None:
            member = MemberBuffer()
        self.members[user_id] = member
        return member

    def take_pending(self) -> list[TakenXp]:
        """Move every pending amount into the stored total, returning what moved. `give_back` undoes
        it if the write fails."""
        taken = []
        for user_id in self.dirty:
            member = self.members.get(user_id)
            if member is None or member.pending_xp == 0 and member.pending_messages == 0:
                continue
            taken.append(TakenXp(user_id, member.pending_xp, member.pending_messages, member.last_message_at,
                                 member))
            member.writes += 1
            if member.stored_xp is not None:
                member.stored_xp += member.pending_xp
            member.pending_xp = 0
            member.pending_messages = 0
        self.dirty.clear()
        return taken

    @staticmethod
    def written(taken: list[TakenXp]) -> None:
        """The write of what `take_pending` took is done: its entries may be pruned again."""
        for item in taken:
            item.entry.writes -= 1

    def give_back(self, taken: list[TakenXp]) -> None:
        """Undo `take_pending` after the transaction that should have written it failed."""
        self.written(taken)
        for user_id, xp, messages, _, entry in taken:
            member = self.members.get(user_id)
            if member is not entry:
                # Forgotten meanwhile (the member left, or asked for it): their XP goes with them, and
                # an entry made since (they came back) holds only what they earned from then on.
                continue
            if member.stored_xp is not None:
                member.stored_xp -= xp
            member.pending_xp += xp
            member.pending_messages += messages
            self.dirty.add(user_id)

    def forget_stored(self) -> None:
        """Drop every known stored total (the file changed behind our back, e.g. a restore)."""
        for member in self.members.values():
            member.stored_xp = None

    def prune(self, now: float, keep_seconds: float) -> None:
        """Drop entries with nothing pending whose last award is older than `keep_seconds`."""
        while self.members:
            user_id, member = next(iter(self.members.items()))
            if (member.pending_xp or member.pending_messages or member.unsettled or member.writes
                    or user_id in self.dirty):
                break
            if member.last_award_at is not None and now - member.last_award_at < keep_seconds:
                break
            del self.members[user_id]

    @property
    def empty(self) -> bool:
        return not self.members and not self.dirty


def awards_from(taken: list[TakenXp]) -> list[BufferedAward]:
    return [BufferedAward(user_id, xp, messages, datetime.fromtimestamp(at, UTC).isoformat())
            for user_id, xp, messages, at, _ in taken]
