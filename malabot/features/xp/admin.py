"""Admin edits of XP and of the level-role table, each audited in the transaction that makes it.

Every edit runs in a transaction that holds the guild's buffered chat XP too
(XpService.in_transaction_after_flush), so the audit's `before` is the member's true total and "set
100" means 100 whatever they earned a moment ago. The edit and its audit row are one transaction: a
refused edit raises UserInputError and changes nothing.

What a cog calls (the cog asks for confirmation before `reset_all`; this just does it):
    /xp add member amount      -> add(guild_id, actor_id, user_id, amount)    -> LevelChange
    /xp remove member amount   -> remove(guild_id, actor_id, user_id, amount) -> LevelChange
    /xp set member amount      -> set(guild_id, actor_id, user_id, amount)    -> LevelChange
    /xp reset member           -> reset(guild_id, actor_id, user_id)          -> LevelChange
    /xp reset all              -> reset_all(guild_id, actor_id)               -> int (members reset)
    /levelroles add level role -> add_level_role(guild_id, actor_id, level, role_id) -> LevelRole | None
    /levelroles remove level   -> remove_level_role(guild_id, actor_id, level)       -> LevelRole
A LevelChange tells the cog to resync the member's roles (XpService.role_changes) both ways.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import aiosqlite

from malabot.clock import Clock, utc_now
from malabot.errors import UserInputError
from malabot.features.settings.service import SettingsService, stored_settings
from malabot.features.xp import repository
from malabot.features.xp.models import LevelChange, LevelRole
from malabot.features.xp.rules import (
    check_level_role_of_its_own,
    check_not_a_level_role,
    level_change,
    total_after_add,
    total_after_remove,
    validate_amount,
    validate_role_level,
)
from malabot.features.xp.service import XpService
from malabot.guild_settings import GIVEN_ROLE_SETTINGS, GuildSettings
from malabot.snowflakes import is_snowflake


class XpAdmin:
    def __init__(self, xp: XpService, settings: SettingsService, *, clock: Clock = utc_now) -> None:
        self._xp = xp
        self._settings = settings
        self._clock = clock
        settings.add_change_rule(no_level_role_given)

    # -- XP ----------------------------------------------------------------------------------------

    async def add(self, guild_id: int, actor_id: int, user_id: int, amount: int) -> LevelChange:
        validate_amount(amount)
        return await self._edit(guild_id, actor_id, user_id, "add", amount,
                                lambda total: total_after_add(total, amount))

    async def remove(self, guild_id: int, actor_id: int, user_id: int, amount: int) -> LevelChange:
        """Removes up to `amount`: a member never goes below 0 XP."""
        validate_amount(amount)
        return await self._edit(guild_id, actor_id, user_id, "remove", amount,
                                lambda total: total_after_remove(total, amount))

    async def set(self, guild_id: int, actor_id: int, user_id: int, amount: int) -> LevelChange:
        validate_amount(amount, allow_zero=True)
        return await self._edit(guild_id, actor_id, user_id, "set", amount, lambda _total: amount)

    async def reset(self, guild_id: int, actor_id: int, user_id: int) -> LevelChange:
        """The member's XP back to 0 (their message count stays)."""
        return await self._edit(guild_id, actor_id, user_id, "reset", None, lambda _total: 0)

    async def reset_all(self, guild_id: int, actor_id: int) -> int:
        """Every member's XP back to 0; returns how many members had XP."""
        async def reset(conn: aiosqlite.Connection) -> int:
            members, removed = await repository.reset_all(conn)
            await repository.record_audit(conn, self._clock(), "reset_all", actor_id, None, {
                "before": {"members_with_xp": members, "total_xp": removed},
                "after": {"members_with_xp": 0, "total_xp": 0},
            })
            self._xp.forget_totals(guild_id)
            return members

        return await self._xp.in_transaction_after_flush(guild_id, reset)

    async def _edit(self, guild_id: int, actor_id: int, user_id: int, action: str, amount: int | None,
                    new_total: Callable[[int], int]) -> LevelChange:
        curve = (await self._settings.get(guild_id)).level_curve

        async def edit(conn: aiosqlite.Connection) -> LevelChange:
            before = await repository.total_xp(conn, user_id)
            after = new_total(before)  # may refuse with UserInputError: the transaction rolls back
            await repository.set_xp(conn, user_id, after)
            details: dict[str, object] = {"before": before, "after": after}
            if amount is not None:
                details["amount"] = amount
            await repository.record_audit(conn, self._clock(), action, actor_id, user_id, details)
            self._xp.forget_totals(guild_id, user_id)
            return level_change(guild_id, user_id, curve, before, after)

        return await self._xp.in_transaction_after_flush(guild_id, edit)

    # -- level roles -------------------------------------------------------------------------------

    async def add_level_role(self, guild_id: int, actor_id: int, level: int, role_id: int
                             ) -> LevelRole | None:
        """Give `role_id` at `level`; returns the role it replaced at that level, if any."""
        validate_role_level(level)
        if not is_snowflake(role_id):
            raise UserInputError("That is not a Discord role.")
        async def add(conn: aiosqlite.Connection) -> LevelRole | None:
            # Read in this transaction: a /config set choosing the role at once cannot also pass.
            check_level_role_of_its_own(await stored_settings(conn, guild_id), role_id)
            other_level = await repository.level_of_role(conn, role_id)
            if other_level is not None and other_level != level:
                raise UserInputError(f"That role is already given at level {other_level}; "
                                     "remove it there first.")
            previous = await repository.level_role_at(conn, level)
            await repository.put_level_role(conn, level, role_id)
            await repository.record_audit(conn, self._clock(), "level_role_add", actor_id, None, {
                "level": level,
                "before": previous.role_id if previous else None,
                "after": role_id,
            })
            return previous

        previous = await self._xp.in_transaction_after_flush(guild_id, add)
        return previous if previous is not None and previous.role_id != role_id else None

    async def remove_level_role(self, guild_id: int, actor_id: int, level: int) -> LevelRole:
        """Stop giving a role at `level`; returns what was removed. Members who have the role keep
        it: it is simply no longer a level role, so role resyncs leave it alone."""
        validate_role_level(level)
        async def remove(conn: aiosqlite.Connection) -> LevelRole:
            previous = await repository.level_role_at(conn, level)
            if previous is None:
                raise UserInputError(f"No role is given at level {level}.")
            await repository.delete_level_role(conn, level)
            await repository.record_audit(conn, self._clock(), "level_role_remove", actor_id, None, {
                "level": level, "before": previous.role_id, "after": None,
            })
            return previous

        return await self._xp.in_transaction_after_flush(guild_id, remove)


async def no_level_role_given(conn: aiosqlite.Connection, settings: GuildSettings, changed: Collection[str]) -> None:
    """The settings' side of the level-role rule, run in the transaction that writes them: a changed
    setting giving a role (GIVEN_ROLE_SETTINGS) cannot name a level role."""
    given = {name: getattr(settings, name) for name in GIVEN_ROLE_SETTINGS if name in changed}
    if not any(role_id is not None for role_id in given.values()):
        return
    level_roles = await repository.level_roles(conn)
    for name, role_id in given.items():
        if role_id is not None:
            check_not_a_level_role(name, role_id, level_roles)
