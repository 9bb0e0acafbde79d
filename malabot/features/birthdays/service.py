"""The birthday commands, without Discord: ids and plain values in, views out.

A cog calls one method per slash command and shows the result; anything the member got wrong comes
back as UserInputError whose text is the sentence to show (ephemerally). Views are built for the
viewer, so the birth year only ever reaches the member it belongs to.

    /birthday set month day [year] -> set(guild_id, user_id, month, day, year)          -> BirthdayView
    /birthday remove               -> remove(guild_id, user_id)                         -> None
    /birthday show [member]        -> show(guild_id, viewer_id, member_id)              -> BirthdayView
    /birthday list [page]          -> list_page(guild_id, viewer_id, page, is_member=…) -> BirthdayPage
    /birthday upcoming [days]      -> upcoming(guild_id, viewer_id, days, is_member=…)  -> (BirthdayView, …)

`is_member(user_id) -> bool` comes from the bot's member cache: list and upcoming show current
members only (everyone with a birthday while the server's member list is still loading).

A restore keeps the celebrations the data it replaces records (see _carry_celebrations).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Collection
from datetime import date
from pathlib import Path

import aiosqlite

from malabot.errors import TenantError, UserInputError
from malabot.features.birthdays import repository
from malabot.features.birthdays.ports import Clock, MemberCheck, utc_now
from malabot.features.birthdays.rules import (
    check_never_empty,
    local_moment,
    mention,
    upcoming,
    validate_birthday,
    validate_upcoming_days,
)
from malabot.features.birthdays.views import BirthdayPage, BirthdayView, view_for
from malabot.features.settings.service import SettingsService
from malabot.guild_settings import GuildSettings
from malabot.tenancy.manager import TenantManager
from malabot.texts import only_pages

log = logging.getLogger(__name__)

DEFAULT_UPCOMING_DAYS = 7
DEFAULT_PAGE_SIZE = 10

# Told the guild id after a birthday there was set or removed (the birthday pass listens).
ChangeListener = Callable[[int], None]


class BirthdayService:
    def __init__(self, tenants: TenantManager, settings: SettingsService, *, clock: Clock = utc_now,
                 page_size: int = DEFAULT_PAGE_SIZE) -> None:
        self._tenants = tenants
        self._settings = settings
        self._clock = clock
        self._page_size = page_size
        self._listeners: list[ChangeListener] = []
        tenants.add_before_install(self._carry_celebrations)
        settings.add_change_rule(birthday_message_never_empty)

    def add_change_listener(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    def _changed(self, guild_id: int) -> None:
        for listener in self._listeners:
            listener(guild_id)

    async def _carry_celebrations(self, guild_id: int, staged: aiosqlite.Connection, replaced: Path) -> None:
        """Before a restored file goes live: add to it the celebrations of the replaced file that it
        lacks (it was taken before them). They record what already happened on Discord, which no
        restore undoes: without them the pass would announce again, give the role and the XP again,
        or never take back a role given that day. The replaced file holds no rows of members who left
        or erased their data (purged there); it runs after the erasures are replayed (app.py builds
        MyDataService first), so that those of a member who came back after erasing are kept. Runs in
        the restore's transaction on the new file."""
        try:
            rows = await asyncio.to_thread(repository.celebrations_in_file, replaced)
        except (sqlite3.DatabaseError, TenantError) as error:
            # A damaged file is what a restore is for: it goes on, at worst leaving a role in place.
            log.error("guild %s: the birthday celebrations of the replaced data (%s) cannot be read (%s); "
                      "birthday roles given since the restored backup are not taken back", guild_id, replaced,
                      error)
            return
        added = await repository.add_missing_celebrations(staged, rows)
        if added:
            log.info("guild %s: %d birthday celebration(s) since the restored backup kept", guild_id, added)

    async def today(self, guild_id: int) -> date:
        """The calendar day it is now in the server's timezone."""
        settings = await self._settings.get(guild_id)
        return local_moment(self._clock(), settings.zone).day

    async def set(self, guild_id: int, user_id: int, month: int, day: int, year: int | None = None
                  ) -> BirthdayView:
        """Store (or replace) the member's birthday; returns the member's own view of it."""
        today = await self.today(guild_id)
        birthday = validate_birthday(month, day, year, today)
        async with self._tenants.transaction(guild_id) as conn:
            await repository.save_birthday(conn, user_id, birthday, self._clock())
            celebrated_on = await repository.celebration_day(conn, user_id, today.year)
        self._changed(guild_id)
        return view_for(user_id, user_id, birthday, today, celebrated_on)

    async def remove(self, guild_id: int, user_id: int) -> None:
        async with self._tenants.transaction(guild_id) as conn:
            removed = await repository.delete_birthday(conn, user_id)
        self._changed(guild_id)
        if not removed:
            raise UserInputError("You have no birthday set, so there was nothing to remove.")

    async def roles_held_by(self, guild_id: int, user_id: int) -> list[int]:
        """Birthday roles the member still has from the bot: erasing their data (which holds what to
        take back) must take these back at once."""
        async with self._tenants.reading(guild_id) as conn:
            return await repository.roles_held_by(conn, user_id)

    async def show(self, guild_id: int, viewer_id: int, member_id: int | None = None) -> BirthdayView:
        """The member's birthday as the viewer may see it (the viewer's own when member_id is None)."""
        member_id = viewer_id if member_id is None else member_id
        today = await self.today(guild_id)
        async with self._tenants.reading(guild_id) as conn:
            birthday = await repository.get_birthday(conn, member_id)
            celebrated_on = await repository.celebration_day(conn, member_id, today.year)
        if birthday is None:
            if member_id == viewer_id:
                raise UserInputError("You have not set your birthday yet: use /birthday set.")
            raise UserInputError(f"{mention(member_id)} has not shared a birthday.")
        return view_for(viewer_id, member_id, birthday, today, celebrated_on)

    async def list_page(self, guild_id: int, viewer_id: int, page: int = 1, *, is_member: MemberCheck
                        ) -> BirthdayPage:
        """One page of the birthdays of the server's current members, in calendar order."""
        today = await self.today(guild_id)
        async with self._tenants.reading(guild_id) as conn:
            stored = await repository.all_birthdays(conn)
            celebrated = await repository.celebration_days(conn, today.year)
        members = [(user_id, birthday) for user_id, birthday in stored if is_member(user_id)]
        pages = max(1, -(-len(members) // self._page_size))
        if not 1 <= page <= pages:
            raise UserInputError(f"{only_pages(pages)}: choose 1 to {pages}.")
        start = (page - 1) * self._page_size
        entries = tuple(view_for(viewer_id, user_id, birthday, today, celebrated.get(user_id))
                        for user_id, birthday in members[start:start + self._page_size])
        return BirthdayPage(entries=entries, page=page, pages=pages, total=len(members))

    async def upcoming(self, guild_id: int, viewer_id: int, days: int = DEFAULT_UPCOMING_DAYS, *,
                       is_member: MemberCheck) -> tuple[BirthdayView, ...]:
        """Current members' birthdays from today through `days` days ahead, soonest first."""
        validate_upcoming_days(days)
        today = await self.today(guild_id)
        async with self._tenants.reading(guild_id) as conn:
            stored = await repository.all_birthdays(conn)
            celebrated = await repository.celebration_days(conn, today.year)
        members = [(user_id, birthday) for user_id, birthday in stored if is_member(user_id)]
        return tuple(view_for(viewer_id, user_id, birthday, today, celebrated.get(user_id))
                     for _, user_id, birthday in upcoming(members, today, days, celebrated))


async def birthday_message_never_empty(conn: aiosqlite.Connection, settings: GuildSettings,
                                       changed: Collection[str]) -> None:
    """The settings' rule on a changed birthday_template (see check_never_empty)."""
    if "birthday_template" in changed:
        check_never_empty(settings.birthday_template)
