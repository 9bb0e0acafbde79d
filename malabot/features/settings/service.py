"""Per-server settings with an in-memory cache: read on every chat message, written by /config."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import aiosqlite
from pydantic import ValidationError

from malabot.clock import Clock, utc_now
from malabot.errors import UserInputError
from malabot.features.settings import repository
from malabot.guild_settings import BETWEEN_SETTINGS, GuildSettings, check_roles_kept_apart, settings_at_fault
from malabot.tenancy.manager import TenantManager

log = logging.getLogger(__name__)

# A rule on a change of settings: (the connection of the writing transaction, the settings as they
# would be, the names of the settings that change); it raises UserInputError to refuse the change.
ChangeRule = Callable[[aiosqlite.Connection, GuildSettings, Collection[str]], Awaitable[None]]


class SettingsService:
    def __init__(self, tenants: TenantManager, *, clock: Clock = utc_now) -> None:
        self._tenants = tenants
        self._clock = clock
        self._cache: dict[int, GuildSettings] = {}
        self._change_rules: list[ChangeRule] = []
        # The file may be replaced (restore) or moved away (archive): read it afresh afterwards.
        tenants.add_file_changed(self.forget)

    async def get(self, guild_id: int) -> GuildSettings:
        cached = self._cache.get(guild_id)
        if cached is not None:
            return cached
        async with self._tenants.reading(guild_id) as conn:
            values = await repository.load_values(conn)
        settings = settings_from_stored(guild_id, values)
        self._cache[guild_id] = settings
        return settings

    def cached(self, guild_id: int) -> GuildSettings | None:
        """The settings if they are in memory, without reading the file (None otherwise)."""
        return self._cache.get(guild_id)

    def add_change_rule(self, rule: ChangeRule) -> None:
        """Another feature's rule on changes of settings (level roles are the XP's), run by `update`
        inside its transaction; this module need not know that feature's tables."""
        self._change_rules.append(rule)

    async def check(self, guild_id: int, **changes: Any) -> None:
        """Raise the UserInputError `update(**changes)` would raise now, storing nothing: for a command
        that acts on Discord before storing its change (the write checks again)."""
        async with self._tenants.reading(guild_id) as conn:
            await self._changed(conn, guild_id, changes)

    async def update(self, guild_id: int, actor_id: int | None, **changes: Any) -> GuildSettings:
        """Validate and store changes; raises UserInputError saying what was wrong, storing nothing.

        The changes apply to the stored settings read under the tenant's lock, not to the cached copy:
        two admins changing different settings at once must both keep their change, and two choosing
        roles that must differ cannot both pass the rules between them.
        """
        async with self._tenants.transaction(guild_id) as conn:
            updated = await self._changed(conn, guild_id, changes)
            now = self._clock()
            await repository.replace_values(conn, updated.stored_values(), now)
            await repository.record_change(conn, now, actor_id,
                                           updated.model_dump(mode="json", include=set(changes)))
        self._cache[guild_id] = updated
        return updated

    async def _changed(self, conn: aiosqlite.Connection, guild_id: int, changes: dict[str, Any]) -> GuildSettings:
        """The stored settings with `changes`, validated; UserInputError saying what is wrong.

        The rules between role settings apply to the settings that change: a pair an older bot
        stored keeps loading, and an unrelated change keeps it too."""
        current = await stored_settings(conn, guild_id)
        try:
            updated = current.changed(**changes)
        except ValidationError as error:
            raise UserInputError(describe_settings_error(error)) from None
        changed = {name for name in changes if getattr(updated, name) != getattr(current, name)}
        if changed:
            check_roles_kept_apart(updated, changed)
            for rule in self._change_rules:
                await rule(conn, updated, changed)
        return updated

    def forget(self, guild_id: int) -> None:
        """Read the settings from the file again at their next use."""
        self._cache.pop(guild_id, None)


async def stored_settings(conn: aiosqlite.Connection, guild_id: int) -> GuildSettings:
    """The settings as stored, read through a connection the caller holds (inside its transaction)."""
    return settings_from_stored(guild_id, await repository.load_values(conn))


def settings_from_stored(guild_id: int, values: dict[str, Any]) -> GuildSettings:
    """Stored values as settings. A value that no longer validates (an older bot wrote it, or the file
    was edited by hand) falls back to its default and is logged, so one bad key never takes a
    server's other settings down with it."""
    values = dict(values)
    while True:
        try:
            return GuildSettings.model_validate(values)
        except ValidationError as error:
            bad = settings_at_fault(error) & values.keys() or set(values)
            log.warning("guild %s: ignoring invalid stored settings %s: %s", guild_id, sorted(bad),
                        describe_settings_error(error))
            for key in bad:
                values.pop(key)


SHOWN_PROBLEMS = 3  # a list of many bad entries has thousands: naming each would not fit one message


def describe_settings_error(error: ValidationError) -> str:
    """The first few problems, each as `field: what is wrong`, then how many more there are."""
    problems = error.errors()
    parts = []
    for item in problems[:SHOWN_PROBLEMS]:
        field = ".".join(str(part) for part in item.get("loc", ())) or "settings"
        message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(message if item.get("type") == BETWEEN_SETTINGS else f"{field}: {message}")
    if len(problems) > SHOWN_PROBLEMS:
        parts.append(f"… and {len(problems) - SHOWN_PROBLEMS:,} more")
    return "; ".join(parts)
