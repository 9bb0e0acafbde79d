"""Problems found where no admin is waiting for an answer, told to the server's mod-log channel.

A chat message, a check-in or a birthday can level a member up; when a level role is gone or sits above
the bot's role, or the level-up channel refuses the post, nobody who could fix it is in the
conversation. The same goes for the birthday pass (a birthday channel deleted, the birthday role moved
above the bot's) and for welcomes, goodbyes and the auto-role. The problem goes to the log and, when
the server has a mod-log channel, there too: each problem at most once a day per server, so a broken
setting is seen without flooding the channel.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

import discord

from malabot.clock import Clock
from malabot.cogs.posting import NO_PINGS
from malabot.cogs.unreachable import DISCORD_UNREACHABLE
from malabot.commands import fit_lines
from malabot.features.settings.service import SettingsService

log = logging.getLogger(__name__)

TELL_AGAIN_AFTER = timedelta(days=1)


class AdminNotices:
    def __init__(self, settings: SettingsService, clock: Clock) -> None:
        self._settings = settings
        self._clock = clock
        self._told: dict[tuple[int, str], datetime] = {}  # (guild, problem) → when it was last posted

    async def tell(self, guild: discord.Guild, problems: Sequence[str], *, about: str = "A level-up") -> None:
        """Post `problems` of `about` ("A level-up", "The birthday pass", "A welcome") to the mod log."""
        for problem in problems:
            log.warning("guild %s: %s: %s", guild.id, about.lower(), problem)
        if not problems:
            return
        channel_id = (await self._settings.get(guild.id)).mod_log_channel_id
        channel = guild.get_channel(channel_id) if channel_id is not None else None
        if not isinstance(channel, discord.TextChannel):
            return
        now = self._clock()
        self._told = {key: at for key, at in self._told.items() if now - at < TELL_AGAIN_AFTER}
        fresh = [problem for problem in problems if (guild.id, problem) not in self._told]
        if not fresh:
            return
        for problem in fresh:  # before posting: a channel that refuses is not retried at every level-up
            self._told[(guild.id, problem)] = now
        text = fit_lines([f"⚠️ {about} could not do everything; an admin can fix this:",
                          *(f"• {problem}" for problem in fresh)], "… and {count} more.")
        try:
            await channel.send(text, allowed_mentions=NO_PINGS)
        except (discord.HTTPException, *DISCORD_UNREACHABLE) as error:
            log.info("guild %s: could not tell the mod log about problems of %s: %s", guild.id, about.lower(), error)


async def tell_admin_else_mod_log(notices: AdminNotices, guild: discord.Guild, send: Callable[[], Awaitable[object]],
                                  problems: Sequence[str], *, about: str = "A level-up") -> None:
    """Problems that follow finished work, in the admin's own follow-up (`send`); when Discord does not
    take it, in the mod log: the work is done, so the failure is no reason to tell anyone to try again."""
    try:
        await send()
    except (discord.HTTPException, *DISCORD_UNREACHABLE):
        log.warning("guild %s: the admin's follow-up did not go through; problems go to the mod log", guild.id,
                    exc_info=True)
        await notices.tell(guild, problems, about=about)
