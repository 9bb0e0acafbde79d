"""Membership Screening: dispatches `on_member_passed_screening(member)` once a member accepts the rules.

Roles wait for a member still reading the server's rules (Discord lets a member given any role skip
them): the auto-role, level roles and the birthday role are given at this event.

The event cannot be read from `on_member_update`'s `before` alone. Every interaction carries the
member's current data and py-cord refreshes its cached member from it, while the gateway's update
often comes seconds later: a member who accepts the rules and at once presses Verify or runs /rank
reaches that update with `before` already "not pending". So the members seen pending through
Discord's events and member lists are remembered here, per server, until their update comes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord

from malabot.features.welcome.rules import passed_screening

if TYPE_CHECKING:
    from malabot.bot import MalaBot


class ScreeningCog(discord.Cog):
    def __init__(self, bot: MalaBot) -> None:
        self.bot = bot
        self._reading_rules: dict[int, set[int]] = {}  # guild id -> ids of members seen pending

    @discord.Cog.listener()
    async def on_member_join(self, member: discord.Member) -> None:
        if member.pending:
            self._reading_rules.setdefault(member.guild.id, set()).add(member.id)

    @discord.Cog.listener()
    async def on_member_update(self, before: discord.Member, after: discord.Member) -> None:
        if after.pending:
            self._reading_rules.setdefault(after.guild.id, set()).add(after.id)
            return
        was_pending = self._forget(after.guild.id, after.id) or before.pending
        if passed_screening(was_pending, after.pending):
            self.bot.dispatch("member_passed_screening", after)

    @discord.Cog.listener()
    async def on_member_list_complete(self, guild: discord.Guild) -> None:
        # The whole list, fresh from Discord: who is pending now. A member who accepted the rules while
        # the bot heard nothing (an outage, offline) gets no event: the auto-role catches up from its
        # own records (welcome.py), level roles at their next level change, the birthday role not.
        self._reading_rules[guild.id] = {member.id for member in guild.members if member.pending}

    @discord.Cog.listener()
    async def on_raw_member_remove(self, payload: discord.RawMemberRemoveEvent) -> None:
        self._forget(payload.guild_id, payload.user.id)

    @discord.Cog.listener()
    async def on_guild_remove(self, guild: discord.Guild) -> None:
        self._reading_rules.pop(guild.id, None)

    def _forget(self, guild_id: int, user_id: int) -> bool:
        """Stop remembering the member as pending; whether they were."""
        reading = self._reading_rules.get(guild_id)
        if reading is None or user_id not in reading:
            return False
        reading.discard(user_id)
        return True
