"""Welcome and goodbye: the server's settings turned into plans and previews for the cog."""

from __future__ import annotations

from malabot.features.settings.service import SettingsService
from malabot.features.welcome.rules import (
    TEMPLATE_SETTINGS,
    JoinPlan,
    LeavePlan,
    MessageKind,
    plan_join,
    plan_leave,
    render_welcome,
)


class WelcomeService:
    def __init__(self, settings: SettingsService) -> None:
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
