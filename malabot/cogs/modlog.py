"""The mod-log channel: every moderation case is posted there, and its message id kept with the case.

A case is recorded whether or not the post succeeds: the file is the record, the channel a view of it.
When the post fails the moderator is told why in their answer, so a broken setting does not go unseen.
An action whose case the file could not take is still posted, marked as not recorded. Storing which
message shows a case is best effort: it never fails a command whose action was done and recorded.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

import discord

from malabot.cogs.own_timeout import own_timeout
from malabot.cogs.posting import NO_PINGS, may_embed
from malabot.cogs.unreachable import DISCORD_UNREACHABLE
from malabot.errors import TenantError
from malabot.features.moderation.models import Case, NewCase
from malabot.features.moderation.rules import case_heading, render_case, render_case_text
from malabot.features.moderation.service import ModerationService
from malabot.tenancy.failures import storage_trouble

log = logging.getLogger(__name__)


class ModLog:
    def __init__(self, moderation: ModerationService) -> None:
        self._moderation = moderation

    async def post(self, guild: discord.Guild, case: Case | NewCase) -> str | None:
        """Post the case (or an action not recorded: no number, nothing to link it to); None when posted
        (or no mod-log channel is set), else a note for the moderator."""
        heading = f"Case #{case.case_number}" if isinstance(case, Case) else "The mod-log entry"
        try:
            channel_id = await self._moderation.mod_log_channel(guild.id)
        except (sqlite3.Error, TenantError) as error:  # the action is done: never "try again" for its post
            log.warning("guild %s: the mod-log setting could not be read for %s", guild.id, case_heading(case),
                        exc_info=error)
            return f"{heading} was not posted: the mod-log setting could not be read ({storage_trouble(error)})."
        if channel_id is None:
            return None
        channel = guild.get_channel_or_thread(channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            return f"{heading} was not posted: the mod-log channel <#{channel_id}> no longer exists."
        try:
            message = await channel.send(**_entry(channel, guild, case))
        except discord.Forbidden:
            why = own_timeout(guild) or f"I may not send messages in <#{channel_id}>."
            return f"{heading} was not posted: {why}"
        except discord.HTTPException:
            log.exception("guild %s: posting %s to the mod log failed", guild.id, case_heading(case))
            return f"{heading} was not posted: Discord refused the message."
        except DISCORD_UNREACHABLE:
            # The action is done and recorded: "try again" would carry it out and record it twice.
            log.exception("guild %s: posting %s to the mod log could not reach Discord", guild.id,
                          case_heading(case))
            return f"{heading} was not posted: I could not reach Discord."
        if isinstance(case, Case):
            return await self._link(guild, case, message.id)
        return None

    async def _link(self, guild: discord.Guild, case: Case, message_id: int) -> str | None:
        """Store which message shows the case; best effort. The action was carried out and its case
        recorded before this: failing the command here would tell the moderator to try again, and a
        retry would record the action twice."""
        try:
            await self._moderation.set_log_message(guild.id, case.case_number, message_id)
        except (sqlite3.Error, TenantError) as error:
            log.warning("guild %s: case %s was posted to the mod log but its message id was not stored",
                        guild.id, case.case_number, exc_info=error)
            return (f"Case #{case.case_number} was posted, but its mod-log message could not be noted with it "
                    f"({storage_trouble(error)}): a later change to the case will not show there.")
        return None

    async def refresh(self, guild: discord.Guild, case: Case) -> None:
        """Show a changed case (a withdrawn warning) in its mod-log message; best effort."""
        try:
            channel_id = await self._moderation.mod_log_channel(guild.id)
            if channel_id is None or case.log_message_id is None:
                return
            channel = guild.get_channel_or_thread(channel_id)
            if not isinstance(channel, discord.TextChannel | discord.Thread | discord.VoiceChannel):
                return
            await channel.get_partial_message(case.log_message_id).edit(**_entry(channel, guild, case))
        except (discord.HTTPException, *DISCORD_UNREACHABLE, sqlite3.Error, TenantError) as error:
            # The message may have been deleted or posted elsewhere before a settings change.
            log.info("guild %s: could not update the mod-log message of case %s (%s)", guild.id, case.case_number,
                     error)


def _entry(channel: discord.abc.Messageable, guild: discord.Guild, case: Case | NewCase) -> dict[str, Any]:
    """An embed where the bot may embed links, else the one-line text form; never a ping."""
    if not may_embed(guild, channel):
        return {"content": render_case_text(case), "embed": None, "allowed_mentions": NO_PINGS}
    return {"content": None, "embed": discord.Embed.from_dict(render_case(case)), "allowed_mentions": NO_PINGS}
