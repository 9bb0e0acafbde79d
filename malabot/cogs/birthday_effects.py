"""The visible side of a birthday, with py-cord: the BirthdayEffects port of the birthday pass.

Everything is looked up in the bot's cache (the members intent keeps it complete once the guilds are
chunked): a guild, channel, role or member the bot cannot see means "could not be done" (False), and
so does Discord refusing (Forbidden) or no longer knowing the target (NotFound). Any other failure
(a 5xx, a dropped connection) is raised: the pass logs it and, for roles, treats the outcome as unknown.
What an admin can fix (a channel or role gone, a permission missing) is told to the mod log too.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord

from malabot.cogs.granting import why_bot_cannot_give
from malabot.cogs.posting import pinging_only

if TYPE_CHECKING:
    from malabot.bot import MalaBot

log = logging.getLogger(__name__)

ROLE_REASON = "Birthday"
ABOUT = "The birthday pass"


class DiscordBirthdayEffects:
    """BirthdayEffects (malabot.features.birthdays.ports) on a running py-cord client."""

    def __init__(self, bot: MalaBot) -> None:
        self._bot = bot

    async def tell_admins(self, guild_id: int, problems: list[str]) -> None:
        """Problems of the pass an admin can fix, to the server's mod log (each once a day)."""
        guild = self._bot.get_guild(guild_id)
        if guild is not None and problems:
            await self._bot.admin_notices.tell(guild, problems, about=ABOUT)

    def is_member(self, guild_id: int, user_id: int) -> bool:
        return self._cached_member(guild_id, user_id) is not None

    async def announce(self, guild_id: int, channel_id: int, user_id: int, text: str) -> bool:
        guild = self._bot.get_guild(guild_id)
        channel = guild.get_channel(channel_id) if guild is not None else None
        gone = (f"The birthday channel (id {channel_id}) is gone or is not a text channel, so birthdays are not "
                "announced; choose another with `/config set birthday_channel_id`.")
        if not isinstance(channel, discord.abc.Messageable):
            await self.tell_admins(guild_id, [gone])
            return False
        try:
            await channel.send(text, allowed_mentions=pinging_only(user_id))
        except discord.NotFound:
            await self.tell_admins(guild_id, [gone])
            return False
        except discord.Forbidden as error:
            await self.tell_admins(guild_id, [f"I may not post in the birthday channel <#{channel_id}> ({error.text}), "
                                              "so birthdays are not announced; give me Send Messages there."])
            return False
        return True

    def knows_members(self, guild_id: int) -> bool:
        guild = self._bot.get_guild(guild_id)
        return guild is not None and not guild.unavailable and guild.chunked

    def holds_role(self, guild_id: int, user_id: int, role_id: int) -> bool:
        member = self._cached_member(guild_id, user_id)
        return member is not None and member.get_role(role_id) is not None

    def in_screening(self, guild_id: int, user_id: int) -> bool:
        member = self._cached_member(guild_id, user_id)
        return member is not None and member.pending

    def _cached_member(self, guild_id: int, user_id: int) -> discord.Member | None:
        guild = self._bot.get_guild(guild_id)
        return guild.get_member(user_id) if guild is not None else None

    async def add_role(self, guild_id: int, user_id: int, role_id: int) -> bool:
        guild = self._bot.get_guild(guild_id)
        member = guild.get_member(user_id) if guild is not None else None
        role = guild.get_role(role_id) if guild is not None else None
        if guild is not None and role is None:
            await self.tell_admins(guild_id, [f"The birthday role (id {role_id}) no longer exists; choose another "
                                              "with `/config set birthday_role_id`."])
        if member is None or role is None:
            log.warning("guild %s: birthday role %s or member %s not found", guild_id, role_id, user_id)
            return False
        try:
            await member.add_roles(role, reason=ROLE_REASON)
        except discord.NotFound as error:
            log.warning("guild %s: cannot give birthday role %s: %s", guild_id, role_id, error)
            return False
        except discord.Forbidden:
            await self.tell_admins(guild_id, [self._cannot_give(role)])
            return False
        return True

    async def remove_role(self, guild_id: int, user_id: int, role_id: int) -> bool:
        guild = self._bot.get_guild(guild_id)
        if guild is None or not self.knows_members(guild_id):
            # Not in the guild right now, or it is in an outage or its members are not all cached yet
            # (after a start): a member or role not found says nothing. Try again on the next pass.
            return False
        member, role = guild.get_member(user_id), guild.get_role(role_id)
        if member is None or role is None:
            # A member who left, or a deleted role: nobody holds the birthday role any more.
            return True
        try:
            await member.remove_roles(role, reason=ROLE_REASON)
        except discord.NotFound:
            return True  # gone between the cache and the call: nothing left to take back
        except discord.Forbidden:
            await self.tell_admins(guild_id, [self._cannot_give(role)])
            return False
        return True

    @staticmethod
    def _cannot_give(role: discord.Role) -> str:
        reason = why_bot_cannot_give(role, "the birthday role") or f"Discord refused to change {role.mention}."
        return f"Birthday role: {reason}"
