"""Welcome and goodbye: the server's settings turned into plans for the cog, and template changes
validated before they are stored."""

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
    validate_welcome_template,
)
from malabot.guild_settings import GuildSettings


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

    async def set_template(self, guild_id: int, actor_id: int | None, kind: MessageKind,
                           template: str) -> GuildSettings:
        """Store a template after checking its placeholders; UserInputError (nothing stored) if wrong."""
        validate_welcome_template(template)
        return await self._settings.update(guild_id, actor_id, **{TEMPLATE_SETTINGS[kind]: template})

    async def preview(self, guild_id: int, kind: MessageKind, *, member: str, server: str,
                      member_count: int) -> str:
        """The message as it would be sent now; UserInputError if the stored template is not acceptable."""
        settings = await self._settings.get(guild_id)
        template: str = getattr(settings, TEMPLATE_SETTINGS[kind])
        return render_welcome(template, member=member, server=server, member_count=member_count)
