"""The registry of member-data handlers: purge and export one member of one guild, each in one
transaction (a purge writes in one, an export reads one snapshot of the file).

Isolation by construction: the registry only ever opens the file of the guild it is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiosqlite

from malabot.departures import MemberPresence, OwedPurges, RecentDepartures
from malabot.errors import TenantArchived
from malabot.privacy import MemberDataHandler, Rows, ids_named_in, without_repeats
from malabot.tenancy.manager import TenantManager

log = logging.getLogger(__name__)

# A leave's purge that failed is tried again after this, then after twice as long each time it fails
# again, up to the longest wait: a file locked by another process is usually free within seconds.
OWED_RETRY_SECONDS = 5.0
OWED_RETRY_LONGEST_SECONDS = 60.0

# Called before a purge, e.g. so the XP service drops the member's buffered XP and cooldown.
ForgetHook = Callable[[int, int], Awaitable[None] | None]
# Called before an export, so data still buffered in memory (chat XP) is in the file read.
FlushHook = Callable[[int], Awaitable[None]]
# More writes that belong in a purge's transaction (e.g. recording that the member asked for it).
AlsoInTransaction = Callable[[aiosqlite.Connection], Awaitable[None]]
# Whether these members of the guild are in it right now, asked before an owed purge runs: a member
# may have rejoined without the bot hearing it (during an outage, in a session lost meanwhile).
MembershipCheck = Callable[[int, Sequence[int]], Awaitable[MemberPresence]]


@dataclass(frozen=True)
class PurgedMembers:
    """Members purged together (left while the bot was offline, or erased again after a restore)."""

    guild_id: int
    user_ids: tuple[int, ...]  # those named in rows that changed
    rows_changed: int  # per statement: a row two of them are named in may count twice


@dataclass(frozen=True)
class PurgeReport:
    guild_id: int
    user_id: int
    rows_changed: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.rows_changed.values())


class MemberData:
    def __init__(self, tenants: TenantManager, handlers: Sequence[MemberDataHandler],
                 forget_hooks: Sequence[ForgetHook] = (), flush_hooks: Sequence[FlushHook] = (),
                 departures: RecentDepartures | None = None,
                 owed_retry_seconds: float = OWED_RETRY_SECONDS) -> None:
        self._tenants = tenants
        self.handlers = tuple(handlers)
        self._changed_columns = frozenset().union(*(handler.changes for handler in self.handlers))
        self._forget_hooks = tuple(forget_hooks)
        self._flush_hooks = tuple(flush_hooks)
        self._departures = departures or RecentDepartures()
        self._owed = OwedPurges()
        self._owed_retry_seconds = owed_retry_seconds
        self._retrying: asyncio.Task[None] | None = None
        self._membership: MembershipCheck | None = None  # none: every owed member counts as gone
        # Members with a purge under way, and those of them who rejoined meanwhile: what they earn from
        # then on is theirs, and the forget after the purge must not drop it (see _forget_after).
        self._being_purged: Counter[tuple[int, int]] = Counter()
        self._back_during_purge: set[tuple[int, int]] = set()
        tenants.add_before_commit(self._purge_departed_again)
        tenants.add_file_changed(self._forget_owed_if_archived)
        tenants.add_shutdown_hook(self._stop_retrying)

    def check_membership_with(self, check: MembershipCheck) -> None:
        """Ask `check` (the bot's view of the guild) before each retry of an owed purge."""
        self._membership = check

    def covered_columns(self) -> frozenset[tuple[str, str]]:
        """The (table, column) pairs naming a member that the handlers cover. Not used by the bot: the
        coverage test checks every member column of the schema against it, and bench/privacy.py
        replays the earlier startup purge with it."""
        return frozenset().union(*(handler.covers for handler in self.handlers))

    async def purge(self, guild_id: int, user_id: int, *, also: AlsoInTransaction | None = None,
                    member_is_back: bool = False) -> PurgeReport:
        """Delete every row of the member in this guild's file; nothing happens if it has no file.
        `member_is_back`: the rows are from before they left and rejoined; what they earn from now on,
        while the purge waits for the file, is theirs."""
        await self.forget(guild_id, user_id)
        changed: dict[str, int] = {}
        if not self._tenants.exists(guild_id):
            self._departures.purged(guild_id, [user_id])  # nothing to purge: the purge is done
            return PurgeReport(guild_id, user_id, changed)
        async with self._forget_after(guild_id, [user_id], back=[user_id] if member_is_back else []), \
                self._purging(guild_id, [user_id], also) as conn:
            for handler in self.handlers:
                changed[handler.name] = await handler.purge(conn, user_id)
        if any(changed.values()):
            await self._tenants.wipe_erased(guild_id)  # shared by a burst of leaves: once, not per member
        return PurgeReport(guild_id, user_id, changed)

    async def member_left(self, guild_id: int, user_id: int) -> PurgeReport | None:
        """The member left: purge them now, and again in every transaction of that guild's file for a
        while, just before it commits. A write for them under way as they left (a /checkin reading
        the server's settings first, a command Discord delivered just after the leave) would
        otherwise commit after the purge and keep their rows until the next start.

        None when the purge failed (the file locked by another process, a full disk): it is owed,
        and tried again on a timer until it works, the member rejoins or the guild is archived."""
        self._departures.left(guild_id, user_id)
        try:
            return await self.purge(guild_id, user_id)
        except TenantArchived:  # the bot was removed meanwhile: the archive keeps the file as it was
            raise
        except Exception:
            if self._owe(guild_id, [user_id]):  # once per run of failures in the guild, not per member
                log.warning("guild %s: purging a member who left failed; it is retried until it works",
                            guild_id, exc_info=True)
            return None

    def _owe(self, guild_id: int, user_ids: Sequence[int]) -> bool:
        """Keep these members' purge owed and make sure it is retried; True when the guild owed none."""
        first = self._owed.owe(guild_id, user_ids)
        if user_ids and (self._retrying is None or self._retrying.done()):
            self._retrying = asyncio.create_task(self._retry_owed(), name="member-purge-retry")
        return first

    async def member_joined(self, guild_id: int, user_id: int) -> None:
        """The member is (back) in the server: their writes are kept again, and nothing stale from
        before they left (a known XP total) is used. A purge still owed since they left is tried once
        now, before they write anything new; a later retry would delete what they do from now on."""
        if (guild_id, user_id) in self._being_purged:
            self._back_during_purge.add((guild_id, user_id))
        if self._departures.rejoined(guild_id, user_id):
            await self.forget(guild_id, user_id)
        if not self._owed.cancel(guild_id, user_id):
            return
        try:
            await self.purge(guild_id, user_id, member_is_back=True)
        except TenantArchived:
            return
        except Exception as error:
            log.warning("guild %s: member %s rejoined before the purge owed since they left worked (%s); "
                        "their rows from before are kept", guild_id, user_id, error)

    async def _retry_owed(self) -> None:
        """Try the owed purges again, a guild at a time, waiting longer after each round that failed."""
        wait = self._owed_retry_seconds
        while self._owed:
            await asyncio.sleep(wait)
            results = [await self._retry_owed_in(guild_id) for guild_id in self._owed.guilds()]
            wait = self._owed_retry_seconds if all(results) else min(wait * 2, OWED_RETRY_LONGEST_SECONDS)

    async def _retry_owed_in(self, guild_id: int) -> bool:
        """One try of the guild's owed purges, in one transaction, of the members still gone; False
        when it failed again or some members' presence is unknown."""
        owed = self._owed.in_guild(guild_id)
        if not owed:  # they rejoined meanwhile, or the guild was archived
            return True
        try:
            await self._writable(guild_id)
        except TenantArchived:
            self._owed.drop_guild(guild_id)
            return True
        except Exception as error:  # still locked or full: reported when it first failed
            log.debug("guild %s: the file still cannot take the owed purge: %s", guild_id, error)
            return False
        presence = await self._presence(guild_id, owed)
        still_owed = set(self._owed.in_guild(guild_id))  # a rejoin heard while asking settles its own
        back = [user_id for user_id in owed if user_id in presence.present and user_id in still_owed]
        if back:  # a rejoin the bot did not hear: purging now would delete what they did since
            self._owed.settled(guild_id, back)
            for user_id in back:  # and their writes are kept again, as at a rejoin it hears
                if self._departures.rejoined(guild_id, user_id):
                    await self.forget(guild_id, user_id)
            log.info("guild %s: %d member(s) whose purge was owed are in the server again; it is dropped "
                     "and their rows are kept", guild_id, len(back))
        user_ids = [user_id for user_id in owed if user_id in presence.gone and user_id in still_owed]
        unknown = [user_id for user_id in owed if user_id in still_owed
                   and user_id not in presence.present and user_id not in presence.gone]
        if not user_ids:
            return not unknown
        try:
            purged = await self.purge_many(guild_id, user_ids)  # which settles their owed purge
        except TenantArchived:
            self._owed.drop_guild(guild_id)
            return True
        except Exception as error:  # reported when it first failed; it is retried on
            log.debug("guild %s: an owed purge failed again: %s", guild_id, error)
            return False
        # Those who had data: another purge of theirs that committed while this one waited for the
        # file has reported them already.
        log.info("guild %s: owed purge of %d member(s) who left done: %d had data, %d rows purged", guild_id,
                 len(user_ids), len(purged.user_ids), purged.rows_changed)
        return not unknown

    async def _writable(self, guild_id: int) -> None:
        """Raises unless the guild's file takes a write now. Checked before asking Discord who is
        still gone: while the file stays locked, every round would ask about every owed member again
        (one request each in a big server whose member list is not complete), all for nothing."""
        async with self._tenants.transaction(guild_id, create=False, before_commit=False):
            pass

    async def _presence(self, guild_id: int, user_ids: list[int]) -> MemberPresence:
        if self._membership is None:
            return MemberPresence(gone=frozenset(user_ids))
        try:
            return await self._membership(guild_id, user_ids)
        except Exception as error:  # unknown: asked again at the next try
            log.debug("guild %s: checking whether members owed a purge are back failed: %s", guild_id, error)
            return MemberPresence()

    def _forget_owed_if_archived(self, guild_id: int) -> None:
        """Another file, or none, is in place: an archive keeps the file as it was (and purges the
        absent if it comes back); a restored file still owes the purges."""
        if not self._tenants.exists(guild_id):
            self._owed.drop_guild(guild_id)

    async def _stop_retrying(self) -> None:
        """At shutdown: the next start purges every member who is not in the server any more."""
        task, self._retrying = self._retrying, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _purge_departed_again(self, guild_id: int, conn: aiosqlite.Connection) -> None:
        """Before each commit of the guild: purge again members who just left, once their own purge
        has committed. Until then (it waits for the file, or failed and is owed) their rows are left
        to it, so that it counts them: purged here first (say by the commit of /ban's case), the
        leave reported no rows. Not in a purge's own transaction (unless it has `also` writes): it
        writes nobody's rows, and when hundreds leave at once (a mass ban, Discord's member prune)
        each leave's purge would look up every one of them, the server's file held throughout."""
        departed = self._departures.purged_in_guild(guild_id)
        if not departed:
            return
        # One look-up when none of them is named again, as in nearly every transaction: this runs in
        # all of the guild's for a while. (Chat XP, written outside transactions, keeps departed
        # members out of its buffer instead.)
        await self.purge_rows(conn, guild_id, departed)

    async def purge_absent(self, guild_id: int, is_member: Callable[[int], bool]) -> PurgedMembers:
        """Purge everyone named in this guild's file who is not a member any more: they left while the
        bot was offline, so no leave event came. `is_member` must know the guild's whole member list.
        If the purge fails (the file locked, a full disk), it is owed as a leave's is, and re-raised.

        Only the columns a purge changes are read: ids named only where rows are kept on purpose (the
        cases about a banned ex-member, an erasure's record) would come back at every start, each for
        a purge that changes nothing, with the server's file held meanwhile.
        """
        if not self._tenants.exists(guild_id):
            return PurgedMembers(guild_id, (), 0)
        async with self._tenants.reading(guild_id, create=False) as conn:
            named = await ids_named_in(conn, self._changed_columns)
        absent = sorted(user_id for user_id in named if not is_member(user_id))
        try:
            return await self.purge_many(guild_id, absent)
        except TenantArchived:
            raise
        except Exception:  # owed like a leave's purge: retried, for those still gone, until it works
            self._owe(guild_id, absent)
            raise

    async def purge_many(self, guild_id: int, user_ids: Sequence[int], *,
                         also: AlsoInTransaction | None = None) -> PurgedMembers:
        """Purge several members in one transaction (with `also` in it); reports those whose rows changed."""
        if not user_ids and also is None:
            return PurgedMembers(guild_id, (), 0)
        await self._forget_all(guild_id, user_ids)
        async with self._forget_after(guild_id, user_ids), self._purging(guild_id, user_ids, also) as conn:
            purged = await self.purge_rows(conn, guild_id, user_ids)
        if purged.rows_changed:
            await self._tenants.wipe_erased(guild_id)  # once for the whole batch
        return purged

    @contextlib.asynccontextmanager
    async def _forget_after(self, guild_id: int, user_ids: Sequence[int],
                            back: Sequence[int] = ()) -> AsyncIterator[None]:
        """Once the purge in the block has committed, forget what is still in memory of these members
        (an XP total read from the file before it, as a member who chats during their /mydata delete
        has), but not of those `back` or who rejoined while it waited for the file or ran: their
        buffer holds only what they earned since (a rejoin forgets the rest), totals read after it."""
        keys = [(guild_id, user_id) for user_id in user_ids]
        self._being_purged.update(keys)
        self._back_during_purge.update((guild_id, user_id) for user_id in back)
        try:
            yield
            await self._forget_all(guild_id, [user_id for user_id in user_ids
                                              if (guild_id, user_id) not in self._back_during_purge])
        finally:
            self._being_purged.subtract(keys)
            for key in keys:
                if self._being_purged[key] <= 0:
                    del self._being_purged[key]
                    self._back_during_purge.discard(key)

    @contextlib.asynccontextmanager
    async def _purging(self, guild_id: int, user_ids: Sequence[int],
                       also: AlsoInTransaction | None) -> AsyncIterator[aiosqlite.Connection]:
        """The transaction of a purge of these members: the caller's deletes, then `also`."""
        marked: list[int] = []
        try:
            async with self._tenants.transaction(guild_id, create=False, before_commit=also is not None) as conn:
                yield conn
                if also is not None:
                    await also(conn)
                # Marked while the file is still held: commits before this one left the rows of those
                # who just left to this purge, which counts them; those after it purge them again.
                marked = self._departures.purged(guild_id, user_ids)
        except BaseException:
            # Only its own marks: a member an earlier purge got stays purged, so later commits keep
            # deleting what is written about them.
            self._departures.purge_failed(guild_id, marked)
            raise
        # Whatever purge it was (at a return from an outage, a leave heard again): the owed one has
        # nothing left to do, and would report them purged a second time.
        self._owed.settled(guild_id, user_ids)

    async def named_in(self, conn: aiosqlite.Connection) -> set[int]:
        """Everyone named where a purge would change rows, on a connection the caller holds."""
        return set(await ids_named_in(conn, self._changed_columns))

    async def purge_rows(self, conn: aiosqlite.Connection, guild_id: int, user_ids: Sequence[int]) -> PurgedMembers:
        """Purge several members' rows on a connection the caller holds in a transaction (e.g. a
        restore's staged file); their in-memory state is the caller's to forget. Reports those named
        in rows it changed.

        A look-up of which of them have rows to change, then one statement per member column for all
        of those together (not one per member: a start after an outage may purge thousands, with the
        server's file held meanwhile). The rows left are the same as purging them one by one."""
        named = sorted(await ids_named_in(conn, self._changed_columns, among=user_ids)) if user_ids else []
        if not named:
            return PurgedMembers(guild_id, (), 0)
        changed = sum([await handler.purge_many(conn, named) for handler in self.handlers])
        return PurgedMembers(guild_id, tuple(named), changed)

    async def _forget_all(self, guild_id: int, user_ids: Sequence[int]) -> None:
        """Before a purge, and again after its transaction: a message of a member handled just before
        they left may have been buffered while the purge waited for the file (its handling was
        reading the server's settings); written by the next flush, it would bring their row back."""
        for user_id in user_ids:
            await self.forget(guild_id, user_id)

    async def forget(self, guild_id: int, user_id: int) -> None:
        """Drop what the services hold in memory about the member (buffered XP, cooldown)."""
        for hook in self._forget_hooks:
            result = hook(guild_id, user_id)
            if result is not None:
                await result

    async def export(self, guild_id: int, user_id: int) -> dict[str, Rows]:
        for flush in self._flush_hooks:
            await flush(guild_id)
        exported: dict[str, Rows] = {}
        async with self._tenants.snapshot(guild_id) as conn:  # every handler reads the same state
            for handler in self.handlers:
                for table, rows in (await handler.export(conn, user_id)).items():
                    exported.setdefault(table, []).extend(rows)
        # Once, over every handler's rows, and in a thread: a busy moderator's tens of thousands of
        # cases stood the whole bot still for half a second on the event loop.
        return await asyncio.to_thread(_without_repeats_by_table, exported)


def _without_repeats_by_table(exported: dict[str, Rows]) -> dict[str, Rows]:
    return {table: without_repeats(rows) for table, rows in exported.items()}
