"""Moderation cases of a server: record each action as a numbered case, list and withdraw warnings.

The cog does the Discord side (checks with rules.check_action, carries out the action, posts
rules.render_case to the mod-log channel and stores the message id with set_log_message). Each record
is one transaction on the server's file, so its number is unique and gapless however many moderators
act at once. A warning also reports the threshold action it triggered; the cog applies that and
records it as its own case. The record of an action already carried out raises CaseNotRecorded when
the file cannot take it, so the cog can still say that the action stands.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import aiosqlite

from malabot.clock import Clock
from malabot.errors import TenantError, UserInputError
from malabot.features.moderation import repository
from malabot.features.moderation.models import Case, CaseNotRecorded, NewCase
from malabot.features.moderation.rules import (
    Escalation,
    action_label,
    check_delete_message_days,
    check_duration,
    escalation_for,
    normalise_reason,
    threshold_window,
)
from malabot.features.settings.service import SettingsService
from malabot.tenancy.failures import storage_trouble
from malabot.tenancy.manager import TenantManager

log = logging.getLogger(__name__)

MAX_LISTED_CASES = 25


@dataclass(frozen=True)
class WarnOutcome:
    case: Case
    active_warnings: int  # the member's warnings not removed, this one included
    escalation: Escalation | None  # the strictest threshold reached, for the cog to apply


@dataclass(frozen=True)
class WarningRemoved:
    warning: Case  # the withdrawn warning, removed_at set
    case: Case  # the `unwarn` case recording the withdrawal


class ModerationService:
    def __init__(self, tenants: TenantManager, settings: SettingsService, clock: Clock) -> None:
        self._tenants = tenants
        self._settings = settings
        self._clock = clock
        tenants.add_before_install(self._carry_later_cases)

    async def _carry_later_cases(self, guild_id: int, staged: aiosqlite.Connection, replaced: Path) -> None:
        """Before a restored file goes live: add the cases the replaced file recorded after it was taken.
        They stand on Discord (a ban, a kick) and were posted to the mod log under their numbers: without
        them the next case would take one of those numbers again. Runs in the restore's transaction."""
        try:
            rows = await asyncio.to_thread(repository.cases_in_file, replaced)
        except (sqlite3.DatabaseError, TenantError) as error:
            # A damaged file is what a restore is for: it goes on, at worst numbering a case again.
            log.error("guild %s: the moderation cases of the replaced data (%s) cannot be read (%s); cases "
                      "since the restored backup are not kept", guild_id, replaced, error)
            return
        added = await repository.add_later_cases(staged, rows)
        if added:
            log.info("guild %s: %d moderation case(s) since the restored backup kept", guild_id, added)

    # -- recording actions -----------------------------------------------------------------------

    async def record_warn(self, guild_id: int, target_id: int, moderator_id: int | None,
                          reason: str | None) -> WarnOutcome:
        """Record a warning (a reason is required) and evaluate the server's warn thresholds."""
        reason = normalise_reason(reason, required=True)
        thresholds = (await self._settings.get(guild_id)).warn_thresholds
        async with self._tenants.transaction(guild_id) as conn:
            now = self._clock()
            case = await repository.add_case(conn, NewCase(
                action="warn", created_at=now, target_id=target_id, moderator_id=moderator_id, reason=reason))
            active = len(await repository.active_warnings(conn, target_id))
            window = threshold_window(thresholds)
            escalation = None
            if window is not None:
                times = await repository.warning_times_since(conn, target_id, now - window)
                escalation = escalation_for(times, thresholds, now)
        return WarnOutcome(case=case, active_warnings=active, escalation=escalation)

    async def record_timeout(self, guild_id: int, target_id: int, moderator_id: int | None,
                             duration: timedelta, reason: str | None = None) -> Case:
        duration = check_duration(duration)
        reason = normalise_reason(reason)
        return await self._add(guild_id, lambda now: NewCase(
            action="timeout", created_at=now, target_id=target_id, moderator_id=moderator_id,
            reason=reason, duration_seconds=int(duration.total_seconds()), expires_at=now + duration))

    async def record_untimeout(self, guild_id: int, target_id: int, moderator_id: int | None,
                               reason: str | None = None) -> Case:
        return await self._record(guild_id, "untimeout", target_id, moderator_id, reason)

    async def record_kick(self, guild_id: int, target_id: int, moderator_id: int | None,
                          reason: str | None = None) -> Case:
        return await self._record(guild_id, "kick", target_id, moderator_id, reason)

    async def record_ban(self, guild_id: int, target_id: int, moderator_id: int | None,
                         reason: str | None = None, delete_message_days: int = 0) -> Case:
        """`delete_message_days` is checked (0–7) but not stored: Discord deletes the messages."""
        check_delete_message_days(delete_message_days)
        return await self._record(guild_id, "ban", target_id, moderator_id, reason)

    async def record_unban(self, guild_id: int, target_id: int, moderator_id: int | None,
                           reason: str | None = None) -> Case:
        return await self._record(guild_id, "unban", target_id, moderator_id, reason)

    async def record_purge(self, guild_id: int, channel_id: int, moderator_id: int | None, deleted: int,
                           target_id: int | None = None, reason: str | None = None) -> Case:
        """`deleted`: how many messages were actually deleted; `target_id`: whose, when filtered."""
        if deleted < 0:
            raise ValueError("deleted must not be negative")
        reason = normalise_reason(reason)
        return await self._add(guild_id, lambda now: NewCase(
            action="purge", created_at=now, target_id=target_id, moderator_id=moderator_id,
            reason=reason, channel_id=channel_id, message_count=deleted))

    async def _record(self, guild_id: int, action: str, target_id: int, moderator_id: int | None,
                      reason: str | None) -> Case:
        reason = normalise_reason(reason)
        return await self._add(guild_id, lambda now: NewCase(
            action=action, created_at=now, target_id=target_id, moderator_id=moderator_id, reason=reason))

    async def _add(self, guild_id: int, draft_at: Callable[[datetime], NewCase]) -> Case:
        """Record the case of an action already carried out on Discord (`draft_at(now)`, its time read
        under the file's lock so numbers and times agree). CaseNotRecorded, with the draft, when the
        file cannot take it: the action stands all the same, and the moderator must hear so."""
        try:
            async with self._tenants.transaction(guild_id) as conn:
                return await repository.add_case(conn, draft_at(self._clock()))
        except (sqlite3.Error, TenantError) as error:
            raise CaseNotRecorded(draft_at(self._clock()), storage_trouble(error)) from error

    # -- warnings --------------------------------------------------------------------------------

    async def remove_warning(self, guild_id: int, case_number: int, moderator_id: int | None,
                             reason: str | None = None) -> WarningRemoved:
        """Withdraw a warning and record that as an `unwarn` case; the warning itself stays on file."""
        reason = normalise_reason(reason)
        async with self._tenants.transaction(guild_id) as conn:
            warning = await repository.get_case(conn, case_number)
            _check_removable(warning, case_number)
            assert warning is not None
            now = self._clock()
            await repository.mark_warning_removed(conn, case_number, now)
            summary = f"Warning #{case_number} removed" + (f": {reason}" if reason else ".")
            case = await repository.add_case(conn, NewCase(
                action="unwarn", created_at=now, target_id=warning.target_id, moderator_id=moderator_id,
                reason=summary))
            removed = await repository.get_case(conn, case_number)
        assert removed is not None
        return WarningRemoved(warning=removed, case=case)

    async def warnings(self, guild_id: int, target_id: int) -> list[Case]:
        """The member's active warnings, oldest first."""
        async with self._tenants.reading(guild_id) as conn:
            return await repository.active_warnings(conn, target_id)

    async def history(self, guild_id: int, target_id: int) -> list[Case]:
        """Every case about the member, removed warnings included, oldest first."""
        async with self._tenants.reading(guild_id) as conn:
            return await repository.cases_for_member(conn, target_id)

    async def recent(self, guild_id: int, limit: int = MAX_LISTED_CASES) -> list[Case]:
        """The server's latest cases, newest first."""
        async with self._tenants.reading(guild_id) as conn:
            return await repository.recent_cases(conn, max(1, min(limit, MAX_LISTED_CASES)))

    async def get_case(self, guild_id: int, case_number: int) -> Case:
        async with self._tenants.reading(guild_id) as conn:
            case = await repository.get_case(conn, case_number)
        if case is None:
            raise UserInputError(f"There is no case #{case_number} in this server.")
        return case

    # -- mod log ---------------------------------------------------------------------------------

    async def mod_log_channel(self, guild_id: int) -> int | None:
        return (await self._settings.get(guild_id)).mod_log_channel_id

    async def set_log_message(self, guild_id: int, case_number: int, message_id: int) -> None:
        """Remember the mod-log message of a case (so it can be edited or linked later)."""
        async with self._tenants.transaction(guild_id) as conn:
            if not await repository.set_log_message_id(conn, case_number, message_id):
                raise UserInputError(f"There is no case #{case_number} in this server.")


def _check_removable(case: Case | None, case_number: int) -> None:
    if case is None:
        raise UserInputError(f"There is no case #{case_number} in this server.")
    if case.action != "warn":
        raise UserInputError(f"Case #{case_number} is a {action_label(case.action).lower()}, not a warning; "
                             "only warnings can be removed.")
    if case.removed_at is not None:
        raise UserInputError(f"Warning #{case_number} was already removed.")
