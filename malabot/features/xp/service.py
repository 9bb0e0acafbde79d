"""XP from chat, without Discord: ids and plain values in, plain results out.

The chat path is hot (every guild message), so it never waits for a disk write: the cooldown lives
in memory and awarded XP is buffered per guild, then written per guild in one transaction at least
every `flush_interval` seconds, before any backup/restore/archive of that guild, and on stop. A crash
loses at most the last interval (or the last round, when rounds take longer: that is logged). Reads
that rank members (rank, leaderboard) flush the guild first, so they include everything awarded
before the call.

What a cog calls:
    record_message(guild_id, user_id, channel_id, role_ids, is_bot=, is_webhook=) -> ChatAward | None
                            (the listener; ChatAward.when_known(callback) reports the level change)
    on_message(...same...) -> LevelChange | None                        (the same, waiting for the change)
    levelup_announcement(guild_id, change, member_mention=, server_name=, message_channel_id=)
                                                                        -> LevelUpAnnouncement | None
    role_changes(guild_id, current_role_ids, level) -> RoleChanges      (after a level change)
    member_level(guild_id, user_id) -> int                              (to resync roles any time)
    /rank [member]          -> rank(guild_id, user_id, is_member=...) -> Rank
    /leaderboard [page]     -> leaderboard(guild_id, page, is_member=...) -> LeaderboardPage
    /levelroles list        -> level_roles(guild_id) -> list[LevelRole]
Admin edits (xp add|remove|set|reset, level roles add|remove) are in malabot.features.xp.admin.
Other services grant XP inside their own transaction with add_in_transaction() or
add_many_in_transaction().
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Sequence
from typing import TypeVar

import aiosqlite

from malabot.clock import Clock, Monotonic, utc_now
from malabot.departures import RecentDepartures
from malabot.errors import UserInputError
from malabot.features.settings import repository as settings_repository
from malabot.features.settings.service import SettingsService
from malabot.features.xp import repository
from malabot.features.xp.awards import ChatAward, settle_in_order
from malabot.features.xp.buffer import GuildBuffer, MemberBuffer, TakenXp, awards_from
from malabot.features.xp.curves import THRESHOLDS, level_for_xp, threshold
from malabot.features.xp.models import (
    LeaderboardEntry,
    LeaderboardPage,
    LevelChange,
    LevelRole,
    LevelUpAnnouncement,
    Rank,
)
from malabot.features.xp.ranking import PAGE_SIZE, MemberFilter, board_page, check_page, member_test
from malabot.features.xp.rules import (
    RoleChanges,
    cooldown_over,
    level_change,
    level_progress,
    level_role_changes,
    may_earn_xp,
    render_levelup,
    roll_message_xp,
)
from malabot.features.xp.slow_rounds import FailingWrites, FlushRound, SlowRounds
from malabot.features.xp.totals_loader import TakeQueued, TotalsLoader
from malabot.guild_settings import GuildSettings
from malabot.tenancy.manager import TenantManager

log = logging.getLogger(__name__)

DEFAULT_LEVELUP_TEMPLATE: str = GuildSettings.model_fields["levelup_template"].default
DEFAULT_CURVE: str = GuildSettings.model_fields["level_curve"].default

T = TypeVar("T")
# Writes the guild's buffered XP through a connection held under the tenant lock.
PendingWriter = Callable[[aiosqlite.Connection], Awaitable[None]]


class XpService:
    def __init__(self, tenants: TenantManager, settings: SettingsService, *, clock: Clock = utc_now,
                 monotonic: Monotonic = time.monotonic, rng: random.Random | None = None,
                 flush_interval: float = 1.0, memory_seconds: float = 600.0, flush_concurrency: int = 4,
                 departures: RecentDepartures | None = None) -> None:
        """`clock`: the wall clock, for the last message's time in the file. `monotonic`: for the
        cooldown, so a wall clock set back (NTP, a restored VM) does not stop chat XP for as long.
        `memory_seconds`: how long a quiet member's cooldown and known total stay in memory
        (at least the guild's cooldown, which they must outlive). `flush_concurrency`: guilds
        written at once; on 2 cores 4 was fastest (0.5 s for 1,000 guilds, vs 0.8 s at 16).
        `departures`: members who have just left earn nothing (shared with MemberData)."""
        self._tenants = tenants
        self._settings = settings
        self._clock = clock
        self._monotonic = monotonic
        self._rng = rng if rng is not None else random.Random()
        self._flush_interval = flush_interval
        self._memory_seconds = memory_seconds
        self._flush_slots = asyncio.Semaphore(flush_concurrency)
        self._departures = departures or RecentDepartures()
        self._slow_rounds = SlowRounds()
        self._failing_writes = FailingWrites()  # a guild failing every round is logged once a minute
        self._guilds: dict[int, GuildBuffer] = {}
        self._task: asyncio.Task[None] | None = None
        self._writing: dict[int, asyncio.Future[None]] = {}   # guild -> its buffer write under way
        self._loaders: dict[int, TotalsLoader] = {}           # guild -> reads of unknown stored totals
        self._stopping = asyncio.Event()
        tenants.add_before_file_operation(self._before_file_operation)
        tenants.add_file_changed(self._forget_file)
        tenants.add_shutdown_hook(self.stop)

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Flush buffered XP in the background every `flush_interval` seconds."""
        if self._task is None or self._task.done():
            self._stopping = asyncio.Event()
            self._task = asyncio.create_task(self._flush_forever(self._stopping), name="xp-flush")

    async def stop(self) -> None:
        """Stop the background flush and write everything still buffered. Safe to call twice."""
        task, self._task = self._task, None
        if task is not None:
            self._stopping.set()  # the loop ends after the flush it may be in; never cut one short
            await task
        await self.flush_all()

    def unwritten(self) -> dict[int, int]:
        """Chat XP still waiting in memory for its write, per guild (none once a flush has worked)."""
        lost = {guild_id: sum(member.pending_xp for member in guild.members.values())
                for guild_id, guild in self._guilds.items() if guild.dirty}
        return {guild_id: xp for guild_id, xp in lost.items() if xp}

    async def _flush_forever(self, stopping: asyncio.Event) -> None:
        """A flush starts `flush_interval` after the previous one started, or at once when that one
        took longer: waiting a whole interval after a slow flush would let XP wait for its write for
        the interval plus the flush."""
        loop = asyncio.get_running_loop()
        due = loop.time() + self._flush_interval
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), max(due - loop.time(), 0.0))
            started = loop.time()
            due = started + self._flush_interval
            flushed = await self.flush_all()
            finished = loop.time()
            took = finished - started
            if (warning := self._slow_rounds.note(flushed, took, self._flush_interval, finished)) is not None:
                log.warning(warning)
            try:
                self._prune()
            except Exception:  # a bug here must not stop the flushing
                log.exception("pruning the XP buffer failed")

    # -- the chat path ---------------------------------------------------------------------------

    async def on_message(self, guild_id: int, user_id: int, channel_id: int, role_ids: Iterable[int], *,
                         is_bot: bool, is_webhook: bool = False) -> LevelChange | None:
        """Award chat XP for one guild message and wait for its level change; None when nothing was
        awarded (see `record_message`) or the member was forgotten before the change was known."""
        award = await self.record_message(guild_id, user_id, channel_id, role_ids, is_bot=is_bot,
                                          is_webhook=is_webhook)
        return None if award is None else await award.level_change()

    async def record_message(self, guild_id: int, user_id: int, channel_id: int, role_ids: Iterable[int], *,
                             is_bot: bool, is_webhook: bool = False) -> ChatAward | None:
        """Award chat XP for one guild message; None when nothing was awarded (bot, webhook, no-XP
        channel or role, XP switched off, or the member's cooldown still running).

        Waits for nothing but the server's settings (cached after the first message). The XP is
        buffered at once; the award's level change is known at once when the member's stored total
        is in memory, else once one read shared by every member of the guild waiting for theirs
        has run (the listener need not wait for it: `ChatAward.when_known`).
        """
        if is_bot or is_webhook:
            return None
        settings = await self._settings.get(guild_id)
        if not may_earn_xp(settings, channel_id, role_ids, is_bot=is_bot, is_webhook=is_webhook):
            return None
        now = self._monotonic()
        if self._departures.has_left(guild_id, user_id):  # handled late, after the leave's purge
            return None
        guild = self._guilds.get(guild_id)
        if guild is None:
            guild = self._guilds[guild_id] = GuildBuffer()
        known = guild.members.get(user_id)
        if known is not None and not cooldown_over(known.last_award_at, now, settings.xp_cooldown_seconds):
            return None
        # Nothing awaits from here on, so concurrent messages of one member cannot both earn XP.
        member = guild.touch(user_id)
        member.last_award_at = now
        member.last_message_at = self._clock().timestamp()
        guild.cooldown_seconds = settings.xp_cooldown_seconds
        award = ChatAward(guild_id, user_id, roll_message_xp(settings, self._rng), settings.level_curve)
        member.pending_xp += award.amount
        member.pending_messages += 1
        guild.dirty.add(user_id)
        if member.stored_xp is not None:
            award.settle(member.stored_xp + member.pending_xp - award.amount)
        else:
            member.unsettled.append(award)
            self._loader(guild_id).request(user_id)
        return award

    @staticmethod
    def _learn_stored(member: MemberBuffer, stored: int) -> None:
        """The file holds `stored` XP for the member (read under the tenant lock, where no flush
        runs, so stored and pending XP never overlap): settle the awards waiting for it."""
        member.stored_xp = stored
        if member.unsettled:
            awards, member.unsettled = member.unsettled, []
            settle_in_order(awards, stored + member.pending_xp)

    def _read_failed(self, guild_id: int, user_ids: list[int], error: Exception) -> None:
        """Reading these members' totals failed: their XP stays buffered (the next flush writes it),
        but the level changes of their awards waiting for the read are lost."""
        guild = self._guilds.get(guild_id)
        failed = 0
        for user_id in user_ids:
            member = guild.members.get(user_id) if guild else None
            if member is not None and member.stored_xp is None and member.unsettled:
                awards, member.unsettled = member.unsettled, []
                failed += len(awards)
                for award in awards:
                    award.fail(error)
        if failed:
            log.warning("guild %s: reading stored XP totals failed (%s); level changes of %d award(s) "
                        "not reported", guild_id, error, failed)

    def _loader(self, guild_id: int) -> TotalsLoader:
        loader = self._loaders.get(guild_id)
        if loader is None:
            loader = self._loaders[guild_id] = TotalsLoader(
                lambda take_queued: self._read_stored_totals(guild_id, take_queued),
                lambda user_ids, error: self._read_failed(guild_id, user_ids, error))
        return loader

    async def _read_stored_totals(self, guild_id: int, take_queued: TakeQueued) -> None:
        """Learn the stored totals of members waiting for them, in one query."""
        async with self._tenants.reading(guild_id) as conn:
            totals = await repository.stored_totals(conn, take_queued())
            guild = self._guilds.get(guild_id)
            for user_id, total in totals.items():
                member = guild.members.get(user_id) if guild else None
                if member is not None and member.stored_xp is None:  # a flush may have learnt it
                    self._learn_stored(member, total)

    async def levelup_announcement(self, guild_id: int, change: LevelChange, *, member_mention: str,
                                   server_name: str, message_channel_id: int) -> LevelUpAnnouncement | None:
        """Where and what to post for a level-up; None when there is none or announcements are off.

        A stored template that no longer validates falls back to the default one rather than
        swallowing the level-up (templates are validated when /config sets them).
        """
        if not change.leveled_up:
            return None
        settings = await self._settings.get(guild_id)
        if not settings.levelup_enabled:
            return None
        channel_id = settings.levelup_channel_id or message_channel_id
        try:
            text = render_levelup(settings.levelup_template, member=member_mention, level=change.new_level,
                                  server=server_name)
        except UserInputError:  # an unusable stored template must not lose the level-up
            log.warning("guild %s: level-up template is not valid; using the default", guild_id)
            text = render_levelup(DEFAULT_LEVELUP_TEMPLATE, member=member_mention, level=change.new_level,
                                  server=server_name)
        return LevelUpAnnouncement(channel_id=channel_id, text=text)

    # -- other services ----------------------------------------------------------------------------

    async def add_in_transaction(self, conn: aiosqlite.Connection, guild_id: int, user_id: int,
                                 amount: int) -> LevelChange:
        """Add `amount` XP through the caller's open transaction on this guild (the caller holds
        `tenants.transaction(guild_id)`; taking the tenant lock here would deadlock).

        Levels are computed on stored + buffered XP. The member's known total is dropped, so the next
        read reloads it after the caller's transaction committed or rolled back.
        """
        return (await self.add_many_in_transaction(conn, guild_id, [user_id], amount))[0]

    async def add_many_in_transaction(self, conn: aiosqlite.Connection, guild_id: int,
                                      user_ids: Sequence[int], amount: int) -> list[LevelChange]:
        """`add_in_transaction` for several distinct members at once (in their order), in three
        statements whatever their number: every statement is a round trip to the connection's thread."""
        if amount < 0:
            raise ValueError("add_in_transaction adds XP; amount must not be negative")
        if len(set(user_ids)) != len(user_ids):
            raise ValueError("add_many_in_transaction takes each member once")
        if not user_ids:
            return []
        curve = await _stored_curve(conn)
        stored = await repository.stored_totals(conn, list(user_ids))
        guild = self._guilds.get(guild_id)
        changes = []
        for user_id in user_ids:
            if guild is not None and (member := guild.members.get(user_id)) is not None:
                # Chat awards still waiting for this total came first: settle them before adding.
                self._learn_stored(member, stored[user_id])
            before = stored[user_id] + self.pending_xp(guild_id, user_id)
            changes.append(level_change(guild_id, user_id, curve, before, before + amount))
            self.forget_totals(guild_id, user_id)
        if amount:
            await repository.add_xp(conn, user_ids, amount)
        return changes

    def pending_xp(self, guild_id: int, user_id: int) -> int:
        """XP awarded to the member that is not yet in the file."""
        guild = self._guilds.get(guild_id)
        member = guild.members.get(user_id) if guild else None
        return member.pending_xp if member else 0

    def forget_member(self, guild_id: int, user_id: int) -> None:
        """Drop the member's buffered XP and cooldown in this guild (they left, or asked for it)."""
        guild = self._guilds.get(guild_id)
        if guild is not None:
            member = guild.members.pop(user_id, None)
            guild.dirty.discard(user_id)
            for award in member.unsettled if member else ():
                award.drop()

    def forget_totals(self, guild_id: int, user_id: int | None = None) -> None:
        """Forget known stored totals (one member's, or the whole guild's) so they are read again."""
        guild = self._guilds.get(guild_id)
        if guild is None:
            return
        if user_id is None:
            guild.forget_stored()
        elif (member := guild.members.get(user_id)) is not None:
            member.stored_xp = None

    # -- flushing ----------------------------------------------------------------------------------

    async def flush(self, guild_id: int) -> None:
        """Write the guild's buffered XP in one transaction (nothing happens when none is buffered).

        When it returns, everything buffered before the call is in the file, even if another
        caller's write was already under way. The write runs as its own task, shielded: a caller
        cancelled meanwhile (a command timing out, shutdown) must not cut it between COMMIT and the
        bookkeeping, which would lose or double the XP.
        """
        while (running := self._writing.get(guild_id)) is not None:
            await asyncio.wait({running})  # another caller's write: let it finish, whatever its fate
        guild = self._guilds.get(guild_id)
        if guild is None or not guild.dirty:
            return
        write = asyncio.ensure_future(self._write_buffer(guild_id))
        self._writing[guild_id] = write
        write.add_done_callback(lambda _: self._writing.pop(guild_id, None))
        await asyncio.shield(write)

    async def flush_all(self) -> FlushRound:
        """Flush every guild with buffered XP, a few at a time; a failing guild is logged and keeps
        its buffer for the next try, the others go on.

        Guilds whose file is open go first (the slots are taken in order): opening the others evicts
        the least recently used open files, which would otherwise include some still to be written.
        """
        opened: list[int] = []
        closed: list[int] = []
        for guild_id, guild in self._guilds.items():
            if guild.dirty:
                (opened if self._tenants.is_open(guild_id) else closed).append(guild_id)
        if opened or closed:
            await asyncio.gather(*(self._flush_logged(guild_id) for guild_id in opened + closed))
        return FlushRound(guilds=len(opened) + len(closed), reopened=len(closed))

    async def _flush_logged(self, guild_id: int) -> None:
        async with self._flush_slots:
            try:
                await self.flush(guild_id)
            except Exception as error:
                failure = self._failing_writes.failed(guild_id, error, asyncio.get_running_loop().time())
                if failure is not None and failure.first:
                    log.exception(failure.message)
                elif failure is not None:
                    log.error(failure.message)

    async def in_transaction_after_flush(self, guild_id: int,
                                         work: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        """Run `work(conn)` in one transaction of the guild's file that holds every chat award made
        before it runs, so it reads true totals (admin edits use it): the buffer is flushed first, and
        what chat earned while this waited for the file is written in the same transaction (else a
        total set there would miss it, and the next flush would add it on top).

        Its own task, shielded like a flush: a cancelled caller must not cut it between COMMIT and
        the buffer's bookkeeping, which would write that XP twice.
        """
        return await asyncio.shield(asyncio.ensure_future(self._in_transaction_after_flush(guild_id, work)))

    async def _in_transaction_after_flush(self, guild_id: int,
                                          work: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        await self.flush(guild_id)
        async with self._pending_write(guild_id) as write_pending, \
                self._tenants.transaction(guild_id) as conn:
            await write_pending(conn)
            return await work(conn)

    async def _write_buffer(self, guild_id: int) -> None:
        async with self._pending_write(guild_id) as write_pending, \
                self._tenants.single_statement(guild_id) as conn:
            await write_pending(conn)

    @contextlib.asynccontextmanager
    async def _pending_write(self, guild_id: int) -> AsyncIterator[PendingWriter]:
        """A writer of the guild's buffered XP through a connection the caller holds under the tenant
        lock (so a concurrent flush of this guild has finished); when the block fails, its transaction
        included, the XP taken goes back into the buffer."""
        guild: GuildBuffer | None = None
        taken: list[TakenXp] = []

        async def write(conn: aiosqlite.Connection) -> None:
            nonlocal guild, taken
            guild = self._guilds.get(guild_id)
            if guild is None or not guild.dirty:
                return
            taken = guild.take_pending()
            totals = await repository.add_awards(conn, awards_from(taken))
            # Learn the true totals: heals a stale known total (e.g. read just before a restore).
            for user_id, total in totals.items():
                if (member := guild.members.get(user_id)) is not None:
                    self._learn_stored(member, total)

        try:
            yield write
        except BaseException:
            if taken and guild is not None:
                guild.give_back(taken)
            raise
        GuildBuffer.written(taken)
        if taken and (recovered := self._failing_writes.worked(guild_id)) is not None:
            log.info(recovered)

    async def _before_file_operation(self, guild_id: int) -> None:
        """Before a backup, restore or archive: write the buffer, so the file holds it."""
        await self.flush(guild_id)

    def _forget_file(self, guild_id: int) -> None:
        """Another file is in place (a restore): known totals are read again from it. No file (an
        archive, the bot left): XP buffered since the flush before it has nowhere to go; kept, it
        would fail every flush until a restart, or land in a new file if the bot is added back."""
        if self._tenants.exists(guild_id):
            self.forget_totals(guild_id)
            return
        guild = self._guilds.pop(guild_id, None)
        self._failing_writes.forget(guild_id)
        for member in guild.members.values() if guild else ():
            for award in member.unsettled:
                award.drop()

    def _prune(self) -> None:
        now = self._monotonic()
        for guild_id in list(self._guilds):
            guild = self._guilds[guild_id]
            # Cooldowns must outlive the server's current cooldown too: an admin may have raised it
            # since the last award.
            settings = self._settings.cached(guild_id)
            cooldown = max(guild.cooldown_seconds, settings.xp_cooldown_seconds if settings else 0)
            guild.prune(now, max(self._memory_seconds, cooldown))
            if guild.empty:
                del self._guilds[guild_id]
                self._failing_writes.forget(guild_id)
        for guild_id in [guild_id for guild_id, loader in self._loaders.items() if loader.idle]:
            del self._loaders[guild_id]

    # -- reads -------------------------------------------------------------------------------------

    async def rank(self, guild_id: int, user_id: int, *, is_member: MemberFilter | None = None) -> Rank:
        """Level, progress and server position of a member, including XP buffered until now.

        Ties share a position. Without `is_member` every row counts (members who left are purged
        when they leave); with it, members who left but still have a row are not counted above,
        which costs a scan of the rows above the member.
        """
        await self.flush(guild_id)
        settings = await self._settings.get(guild_id)
        async with self._tenants.reading(guild_id) as conn:
            row, above = await repository.member_standing(conn, user_id)
            total = row.xp if row else 0
            if total <= 0:
                position = None
            elif is_member is None:
                position = 1 + above
            else:
                counts = member_test(is_member)
                position = 1 + sum(1 for other in await repository.ids_above(conn, total) if counts(other))
        progress = level_progress(settings.level_curve, total)
        return Rank(user_id=user_id, total_xp=total, level=progress.level,
                    xp_into_level=progress.xp_into_level, xp_for_level=progress.xp_for_level,
                    xp_to_next=progress.xp_to_next, next_level=progress.next_level,
                    messages=row.messages if row else 0, position=position)

    async def leaderboard(self, guild_id: int, page: int = 1, *, is_member: MemberFilter | None = None,
                          per_page: int = PAGE_SIZE) -> LeaderboardPage:
        """One page of the server's members by XP (best first, ties share a position)."""
        check_page(page)
        await self.flush(guild_id)
        curve = (await self._settings.get(guild_id)).level_curve
        async with self._tenants.reading(guild_id) as conn:
            shown, has_next = await board_page(lambda: repository.ranked(conn),
                                               lambda: repository.members_with_xp(conn), is_member, page, per_page)
        entries = tuple(LeaderboardEntry(position=row.position, user_id=row.user_id, value=row.value,
                                         level=level_for_xp(curve, row.value)) for row in shown)
        return LeaderboardPage(page=page, entries=entries, has_next=has_next)

    async def member_level(self, guild_id: int, user_id: int) -> int:
        """The member's level on stored + buffered XP."""
        curve = (await self._settings.get(guild_id)).level_curve
        async with self._tenants.reading(guild_id) as conn:
            # Under the tenant lock no flush runs, so file and buffer do not overlap.
            total = await repository.total_xp(conn, user_id) + self.pending_xp(guild_id, user_id)
        return level_for_xp(curve, total)

    async def members_at_level(self, guild_id: int, level: int) -> list[int]:
        """Members whose XP in the file reaches `level` (after a restore: whose level roles to check)."""
        curve = (await self._settings.get(guild_id)).level_curve
        async with self._tenants.reading(guild_id) as conn:
            return await repository.members_with_xp_at_least(conn, threshold(curve, level))

    async def level_roles(self, guild_id: int) -> list[LevelRole]:
        async with self._tenants.reading(guild_id) as conn:
            return await repository.level_roles(conn)

    async def role_changes(self, guild_id: int, current_role_ids: Iterable[int], level: int,
                           unusable: Collection[int] = frozenset()) -> RoleChanges:
        """Level roles the member should gain and lose at `level`, in the server's stack/replace mode
        (`unusable`: level roles the bot cannot give; see `level_role_changes`)."""
        settings = await self._settings.get(guild_id)
        table = {role.level: role.role_id for role in await self.level_roles(guild_id)}
        return level_role_changes(current_role_ids, table, level, settings.level_role_mode, unusable)


async def _stored_curve(conn: aiosqlite.Connection) -> str:
    """The server's level curve read through the caller's connection (the settings service would take
    the tenant lock). Only this key is read: validating all settings costs milliseconds (timezones)."""
    curve = (await settings_repository.load_values(conn)).get("level_curve", DEFAULT_CURVE)
    return curve if curve in THRESHOLDS else DEFAULT_CURVE
