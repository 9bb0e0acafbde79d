"""The birthday pass (every quarter hour): over every tenant, celebrate today's birthdays once and take
back old roles.

Per server the order is fixed, so that nothing visible can ever happen twice:
  1. claim each due member's (member, year) celebration row and award the XP, in one tenant
     transaction; a second pass, a restarted bot or another process finds the rows and does nothing;
  2. only then announce and give the roles, outside the transaction (Discord calls are slow);
  3. record what happened (announced_at; roles that could not be given), in one more transaction.
A crash between 1 and 2 means those celebrations are not shown at all: at most once, never twice.
Each server is visited by one worker; a failure there is logged with its guild id and the pass goes on.
A server archived since the pass listed it (it removed the bot) is skipped: nothing is owed there.

The pass knows nothing of Discord: it asks a BirthdayEffects port to do the visible things.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import date, datetime

from malabot.errors import TenantArchived, UserInputError
from malabot.features.birthdays import repository
from malabot.features.birthdays.ports import BirthdayEffects, Clock, XpGranter, utc_now
from malabot.features.birthdays.rules import (
    Birthday,
    announcement_due,
    dates_celebrated_on,
    local_moment,
    render_announcement,
    role_removal_given_up,
)
from malabot.features.birthdays.service import BirthdayService
from malabot.features.settings.service import SettingsService
from malabot.features.xp.models import LevelChange
from malabot.guild_settings import GuildSettings
from malabot.tenancy.manager import TenantManager

log = logging.getLogger(__name__)

# Tenants worked on at the same time. Each holds one open connection (and its thread) while visited,
# so this stays far below the tenant manager's cap, leaving room for commands meanwhile; opening a
# file is mostly waiting on threads and the disk, so a few in parallel pay off even on 2 cores.
DEFAULT_CONCURRENCY = 8
# A role that could not be removed is retried on every pass for this many days from the first failed
# removal, then given up.
ROLE_RETRY_DAYS = 3


@dataclass
class PassReport:
    """What one pass did, for logs, tests and benchmarks."""

    tenants: int = 0        # tenants known to the manager
    visited: int = 0        # tenants whose file was queried
    celebrated: int = 0     # celebrations claimed (XP awarded with them)
    announced: int = 0
    roles_added: int = 0
    roles_removed: int = 0
    xp_awarded: int = 0
    failures: int = 0       # effects that failed and tenants whose visit raised
    level_changes: list[LevelChange] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.tenants} tenants, {self.visited} visited, {self.celebrated} celebrated, "
                f"{self.announced} announced, {self.roles_added} roles given, "
                f"{self.roles_removed} roles taken back, {self.failures} failures")


def announcement_text(guild_id: int, settings: GuildSettings, user_id: int, age: int | None) -> str:
    """The server's template filled in; the default one when the server's cannot be rendered or comes
    out empty (an older bot's `{age}` alone, for a member with no birth year)."""
    try:
        text = render_announcement(settings.birthday_template, user_id, age)
        if text.strip():
            return text
        problem = "empty without an age"
    except UserInputError as error:
        problem = error.message
    log.warning("birthday template of guild %s is unusable (%s); using the default", guild_id, problem)
    default = GuildSettings.model_fields["birthday_template"].default
    return render_announcement(default, user_id, age)


@dataclass(frozen=True)
class _Settled:
    """A server found with nothing more owed on `day`: before its hour only, or for the whole day."""

    day: date
    whole_day: bool


class BirthdayPass:
    """Most passes find nothing new: a server settled earlier the same local day is skipped without
    opening its file (a look at its cached settings and its settled day), until `forget(guild_id)`
    says its birthdays changed (BirthdayService tells it, see build_birthday_pass) or its file is
    restored or archived. A restart forgets all.
    """

    def __init__(self, tenants: TenantManager, settings: SettingsService, effects: BirthdayEffects,
                 xp: XpGranter, *, clock: Clock = utc_now, concurrency: int = DEFAULT_CONCURRENCY) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._tenants = tenants
        self._settings = settings
        self._effects = effects
        self._xp = xp
        self._clock = clock
        self._concurrency = concurrency
        # One pass at a time in this process (the start-up run may meet a scheduled one).
        self._running = asyncio.Lock()
        self._settled: dict[int, _Settled] = {}
        # Bumped by every forget(): a visit that overlapped a change must not mark its server settled.
        self._changes = 0
        tenants.add_before_file_operation(self._forget_file)
        tenants.add_file_changed(self.forget)

    def forget(self, guild_id: int) -> None:
        """The server's birthdays changed: look at its file again on the next pass."""
        self._changes += 1
        self._settled.pop(guild_id, None)

    async def _forget_file(self, guild_id: int) -> None:
        self.forget(guild_id)

    async def run(self) -> PassReport:
        """One pass over every tenant, at the clock's current instant."""
        async with self._running:
            now = self._clock()
            # Listing 10,000 files takes tens of milliseconds: not in the event loop.
            guild_ids = await asyncio.to_thread(self._tenants.guild_ids)
            report = PassReport(tenants=len(guild_ids))
            queue: asyncio.Queue[int] = asyncio.Queue()
            for guild_id in guild_ids:
                queue.put_nowait(guild_id)
            workers = [asyncio.create_task(self._work(queue, now, report))
                       for _ in range(min(self._concurrency, len(guild_ids)))]
            await asyncio.gather(*workers)
            log.info("birthday pass: %s", report.summary())
            return report

    async def run_for(self, guild_id: int) -> PassReport:
        """The pass for one server now: for a birthday set to today, which the next scheduled pass
        would miss when it comes after the server's local day has ended."""
        async with self._running:
            report = PassReport(tenants=1)
            await self.visit(guild_id, self._clock(), report)
            return report

    async def _work(self, queue: asyncio.Queue[int], now: datetime, report: PassReport) -> None:
        while not queue.empty():
            guild_id = queue.get_nowait()
            try:
                await self.visit(guild_id, now, report)
            except TenantArchived:  # the bot was removed from the server since the pass listed it
                log.debug("birthday pass: guild %s was archived meanwhile; nothing owed there", guild_id)
            except Exception:
                report.failures += 1
                log.exception("birthday pass failed for guild %s", guild_id)
            # Cached settings make a skipped tenant cost no await at all: let other tasks run.
            await asyncio.sleep(0)

    async def visit(self, guild_id: int, now: datetime, report: PassReport) -> None:
        """Take back old roles and celebrate today's birthdays in one server."""
        changes_before = self._changes
        settings = await self._settings.get(guild_id)
        moment = local_moment(now, settings.zone)
        today = moment.day
        due = announcement_due(moment, settings.birthday_hour)
        # Before the hour nothing is owed, except taking back yesterday's role where roles are given.
        if not due and settings.birthday_role_id is None:
            return
        settled = self._settled.get(guild_id)
        if settled is not None and settled.day == today and (settled.whole_day or not due):
            return
        async with self._tenants.reading(guild_id, create=False) as conn:
            old_roles = await repository.pending_roles(conn, before=today)
            candidates = (await repository.unclaimed_on(conn, dates_celebrated_on(today), today.year)
                          if due else [])
        report.visited += 1
        if old_roles and not self._effects.knows_members(guild_id):
            # Whether they still hold the role cannot be judged yet (after a start, the server's member
            # list loads later): neither done nor failed. The server's pass runs again once it is in.
            roles_left = True
        else:
            roles_left = await self._take_back(guild_id, old_roles, today, report) if old_roles else False
        # Members the bot cannot see (yet) are left unclaimed for a later pass.
        present = [(user_id, birthday) for user_id, birthday in candidates
                   if self._effects.is_member(guild_id, user_id)]
        if present:
            claimed, roles_recorded = await self._claim(guild_id, present, settings, today, report)
            await self._show(guild_id, claimed, roles_recorded, settings, today, report)
        if not roles_left and len(present) == len(candidates) and self._changes == changes_before:
            self._settled[guild_id] = _Settled(today, whole_day=due)

    async def _claim(self, guild_id: int, members: list[tuple[int, Birthday]], settings: GuildSettings,
                     today: date, report: PassReport) -> tuple[list[tuple[int, Birthday]], set[int]]:
        """Claim this year's celebrations and award their XP in one transaction; returns those claimed
        here (the others were claimed first by another pass or process) and whose role is recorded."""
        async with self._tenants.transaction(guild_id, create=False) as conn:
            # Read again under the lock: a birthday removed or erased (/mydata delete) since the visit
            # read it, while it waited for Discord, is not celebrated (nor written back).
            due = dict(await repository.unclaimed_on(conn, dates_celebrated_on(today), today.year))
            members = [(user_id, due[user_id]) for user_id, _ in members if user_id in due]
            # A role the member already holds (the verified role, a level role, one handed out by
            # hand) is not the birthday's to take back: nothing is recorded for them. Nor for a member
            # in Membership Screening: the role waits for them to accept the rules (role_after_screening),
            # and a role recorded now would keep that from recording it until the pass is over.
            role_id, user_ids = settings.birthday_role_id, [user_id for user_id, _ in members]
            not_now = {user_id for user_id in user_ids if role_id is not None
                       and (self._effects.holds_role(guild_id, user_id, role_id)
                            or self._waits_for_screening(guild_id, user_id))}
            to_give = [user_id for user_id in user_ids if user_id not in not_now]
            given_now = await repository.claim_celebrations(conn, to_give, today.year, today,
                                                            settings.birthday_xp, role_id)
            fresh = given_now | await repository.claim_celebrations(
                conn, [user_id for user_id in user_ids if user_id in not_now], today.year, today,
                settings.birthday_xp, None)
            claimed = [(user_id, birthday) for user_id, birthday in members if user_id in fresh]
            if settings.birthday_xp > 0:
                report.level_changes += await self._xp.add_many_in_transaction(
                    conn, guild_id, [user_id for user_id, _ in claimed], settings.birthday_xp)
        report.celebrated += len(claimed)
        report.xp_awarded += settings.birthday_xp * len(claimed)
        return claimed, given_now if role_id is not None else set()

    def _waits_for_screening(self, guild_id: int, user_id: int) -> bool:
        if not self._effects.in_screening(guild_id, user_id):
            return False
        log.info("guild %s: birthday role of member %s waits for membership screening", guild_id, user_id)
        return True

    async def _show(self, guild_id: int, claimed: list[tuple[int, Birthday]], roles_recorded: set[int],
                    settings: GuildSettings, today: date, report: PassReport) -> None:
        """The visible part of claimed celebrations, then one transaction recording what happened."""
        channel_id, role_id = settings.birthday_channel_id, settings.birthday_role_id
        announced: list[int] = []
        not_given: list[int] = []
        given: list[int] = []
        for user_id, birthday in claimed:
            if channel_id is not None:
                text = announcement_text(guild_id, settings, user_id, birthday.age_on(today))
                if await self._attempt(guild_id, "announce",
                                       self._effects.announce(guild_id, channel_id, user_id, text)):
                    announced.append(user_id)
                else:
                    report.failures += 1
                    log.warning("birthday of user %s in guild %s not announced in channel %s",
                                user_id, guild_id, channel_id)
            if role_id is not None and user_id in roles_recorded:
                if self._effects.holds_role(guild_id, user_id, role_id):
                    # Held already (perhaps given since the claim): not given, so nothing to take back.
                    not_given.append(user_id)
                    continue
                outcome = await self._attempt(guild_id, "add role",
                                              self._effects.add_role(guild_id, user_id, role_id))
                if outcome is True:
                    report.roles_added += 1
                    given.append(user_id)
                    continue
                report.failures += 1
                log.warning("birthday role %s not given to user %s in guild %s", role_id, user_id, guild_id)
                if outcome is False:
                    # Definitely not given: nothing to take back. After an exception we cannot know,
                    # so the role stays recorded and is taken back after the day anyway.
                    not_given.append(user_id)
        report.announced += len(announced)
        if announced or not_given:
            at = self._clock()
            async with self._tenants.transaction(guild_id, create=False) as conn:
                if announced:
                    await repository.mark_announced(conn, announced, today.year, at)
                if not_given:
                    await repository.forget_roles(conn, not_given, today.year)
        if given and role_id is not None:
            await self._take_back_if_erased(guild_id, given, today.year, role_id)

    async def role_after_screening(self, guild_id: int, user_id: int) -> bool:
        """The member accepted the server's rules: the birthday role their celebration today did not
        give them while they were in Membership Screening is given now. True when given."""
        settings = await self._settings.get(guild_id)
        role_id = settings.birthday_role_id
        if role_id is None or self._effects.holds_role(guild_id, user_id, role_id):
            return False
        today = local_moment(self._clock(), settings.zone).day
        async with self._tenants.transaction(guild_id, create=False) as conn:
            year = await repository.record_role_of_the_day(conn, user_id, today, role_id)
        if year is None:  # no celebration today, or its role is recorded (given, or taken back)
            return False
        given = await self._attempt(guild_id, "add role", self._effects.add_role(guild_id, user_id, role_id))
        if given is False:
            log.warning("birthday role %s not given to user %s in guild %s after membership screening",
                        role_id, user_id, guild_id)
            async with self._tenants.transaction(guild_id, create=False) as conn:
                await repository.forget_roles(conn, [user_id], year)
        if given is True:
            await self._take_back_if_erased(guild_id, [user_id], year, role_id)
        return given is True

    async def _take_back_if_erased(self, guild_id: int, user_ids: list[int], year: int, role_id: int) -> None:
        """Roles just given whose record is gone: the member erased their data (/mydata delete) while
        Discord was asked, and the erase took back what was recorded before the role was there. Taken
        back now, or nothing would ever take them back."""
        async with self._tenants.reading(guild_id, create=False) as conn:
            recorded = await repository.with_role_recorded(conn, user_ids, year)
        for user_id in user_ids:
            if user_id not in recorded:
                log.info("guild %s: member %s erased their data as their birthday role was given; taken back",
                         guild_id, user_id)
                await self._attempt(guild_id, "remove role", self._effects.remove_role(guild_id, user_id, role_id))

    async def _take_back(self, guild_id: int, roles: list[repository.PendingRole], today: date,
                         report: PassReport) -> bool:
        """Remove roles of past days; a removal that keeps failing is given up after a few days.
        True when some are left to retry on the next pass."""
        settled, first_failures, given_up = [], [], []
        for role in roles:
            removed = await self._attempt(guild_id, "remove role",
                                          self._effects.remove_role(guild_id, role.user_id, role.role_id))
            if removed is True:
                report.roles_removed += 1
                settled.append(role)
                continue
            report.failures += 1
            if role.failed_on is None:
                first_failures.append(role)
            if not role_removal_given_up(role.failed_on or today, today, ROLE_RETRY_DAYS):
                log.warning("birthday role %s of user %s in guild %s not removed; will retry",
                            role.role_id, role.user_id, guild_id)
            else:
                log.warning("birthday role %s of user %s in guild %s not removed for %s days; giving up",
                            role.role_id, role.user_id, guild_id, ROLE_RETRY_DAYS)
                settled.append(role)
                given_up.append(role)
        if settled or first_failures:
            at = self._clock()
            async with self._tenants.transaction(guild_id, create=False) as conn:
                await repository.mark_roles_removed(conn, settled, at)
                await repository.mark_role_failures(conn, first_failures, today)
        if given_up:  # nothing takes these back any more: the admins must, by hand
            await self._tell_admins(guild_id, [
                f"I gave up taking the birthday role <@&{role.role_id}> back from <@{role.user_id}> after "
                f"{ROLE_RETRY_DAYS} days of trying; please take it off by hand." for role in given_up])
        return len(settled) < len(roles)

    async def _tell_admins(self, guild_id: int, problems: list[str]) -> None:
        try:
            await self._effects.tell_admins(guild_id, problems)
        except Exception:
            log.exception("guild %s: telling the admins about birthday problems failed", guild_id)

    async def _attempt(self, guild_id: int, what: str, effect: Awaitable[bool]) -> bool | None:
        """The effect's answer, or None when it raised (logged with the guild id, never re-raised)."""
        try:
            return bool(await effect)
        except Exception:
            log.exception("birthday %s raised in guild %s", what, guild_id)
            return None


def build_birthday_pass(tenants: TenantManager, settings: SettingsService, birthdays: BirthdayService,
                        effects: BirthdayEffects, xp: XpGranter, *, clock: Clock = utc_now,
                        concurrency: int = DEFAULT_CONCURRENCY) -> BirthdayPass:
    """The pass, told by the service whenever a birthday is set or removed (so that a birthday set
    during its own day is still celebrated that day)."""
    birthday_pass = BirthdayPass(tenants, settings, effects, xp, clock=clock, concurrency=concurrency)
    birthdays.add_change_listener(birthday_pass.forget)
    return birthday_pass
