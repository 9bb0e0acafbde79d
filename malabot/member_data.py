"""The registry of member-data handlers: purge and export one member of one guild, in one transaction.

Isolation by construction: the registry only ever opens the file of the guild it is given.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from malabot.privacy import MemberDataHandler, Rows
from malabot.tenancy.manager import TenantManager

# Called before a purge, e.g. so the XP service drops the member's buffered XP and cooldown.
ForgetHook = Callable[[int, int], Awaitable[None] | None]


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
                 forget_hooks: Sequence[ForgetHook] = ()) -> None:
        self._tenants = tenants
        self.handlers = tuple(handlers)
        self._forget_hooks = tuple(forget_hooks)

    def covered_columns(self) -> frozenset[tuple[str, str]]:
        return frozenset().union(*(handler.covers for handler in self.handlers))

    async def purge(self, guild_id: int, user_id: int) -> PurgeReport:
        """Delete every row of the member in this guild's file; nothing happens if it has no file."""
        for hook in self._forget_hooks:
            result = hook(guild_id, user_id)
            if result is not None:
                await result
        changed: dict[str, int] = {}
        if not self._tenants.exists(guild_id):
            return PurgeReport(guild_id, user_id, changed)
        async with self._tenants.transaction(guild_id, create=False) as conn:
            for handler in self.handlers:
                changed[handler.name] = await handler.purge(conn, user_id)
        return PurgeReport(guild_id, user_id, changed)

    async def export(self, guild_id: int, user_id: int) -> dict[str, Rows]:
        exported: dict[str, Rows] = {}
        async with self._tenants.reading(guild_id) as conn:
            for handler in self.handlers:
                for table, rows in (await handler.export(conn, user_id)).items():
                    known = exported.setdefault(table, [])
                    known.extend(row for row in rows if row not in known)
        return exported
