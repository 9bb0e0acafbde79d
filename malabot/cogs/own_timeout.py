"""The bot's own timeout: Discord takes every permission but reading from a timed-out member that is
not an administrator, and py-cord's server-wide permissions do not show it. A refusal then names the
timeout, not the roles or permissions it would otherwise blame."""

from __future__ import annotations

from datetime import datetime

import discord


def timed_out_clause(until: datetime | None) -> str:
    """Why a timed-out bot cannot act, and who can change that."""
    when = f" until <t:{int(until.timestamp())}:f>" if until is not None else ""
    return f"I am timed out{when}, and a timed-out member may do nothing but read. A moderator can end my timeout."


def own_timeout(guild: discord.Guild) -> str | None:
    """The clause when the bot is timed out in `guild` (and not an administrator), else None."""
    me = guild.me
    if me is None or not me.timed_out or me.guild_permissions.administrator:
        return None
    return timed_out_clause(me.communication_disabled_until)
