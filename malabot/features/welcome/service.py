"""Welcome and goodbye: the server's settings turned into plans and previews for the cog, and the
members the auto-role waits for while they are in Membership Screening."""

from __future__ import annotations

from collections.abc import Collection

from malabot.features.settings.service import SettingsService
from malabot.features.welcome import repository
from malabot.features.welcome.rules import (
    TEMPLATE_SETTINGS,
    JoinPlan,
    LeavePlan,
    MessageKind,
    plan_join,
    plan_leave,
    render_welcome,
)
from malabot.tenancy.manager import TenantManager


class WelcomeService:
    def __init__(self, tenants: TenantManager, settings: SettingsService) -> None:
        self._tenants = tenants
        self._settings = settings

    async def on_join(self, guild_id: int, *, member: str, server: str, member_count: int) -> JoinPlan:
        """The welcome message, DM and auto-role for a member who just joined."""
        settings = await self._settings.get(guild_id)
        return plan_join(settings, member=member, server=server, member_count=member_count)

    async def on_leave(self, guild_id: int, *, member: str, server: str, member_count: int) -> LeavePlan:
        settings = await self._settings.get(guild_id)
        return plan_leave(settings, member=member, server=server, member_count=member_count)

    async def preview(self, guild_id: int, kind: MessageKind, *, member: str, server: str,
                      member_count: int) -> str:
        """The message as it would be sent now; UserInputError if the stored template is not acceptable."""
        settings = await self._settings.get(guild_id)
        template: str = getattr(settings, TEMPLATE_SETTINGS[kind])
        return render_welcome(template, kind=kind, member=member, server=server, member_count=member_count)

    async def autorole_waits(self, guild_id: int, user_ids: Collection[int]) -> None:
        """Remember that these members are in Membership Screening and owed the auto-role."""
        # A transaction: its before-commit purge drops a row again should its member have left meanwhile.
        async with self._tenants.transaction(guild_id) as conn:
            await repository.remember_waiting(conn, user_ids)

    async def autorole_done(self, guild_id: int, user_id: int) -> None:
        """The member passed the screening and was given the auto-role, or had nothing to be given."""
        async with self._tenants.single_statement(guild_id) as conn:
            await repository.forget_waiting(conn, user_id)

    async def autorole_waiting(self, guild_id: int) -> list[int]:
        """The members remembered by autorole_waits and not yet done."""
        async with self._tenants.reading(guild_id) as conn:
            return await repository.waiting_members(conn)
