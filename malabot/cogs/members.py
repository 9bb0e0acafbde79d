"""Finding a member of a server from an id: the cache first, Discord second."""

from __future__ import annotations

import discord

# Discord's code for a member who is not (or no longer) on the server.
UNKNOWN_MEMBER = 10007


async def member_of(guild: discord.Guild, user_id: int) -> discord.Member | None:
    """The member from the cache, else from Discord; None when they are not on the server.
    Other Discord errors propagate: the caller knows whether they matter."""
    member = guild.get_member(user_id)
    if member is not None:
        return member
    try:
        return await guild.fetch_member(user_id)
    except discord.NotFound:
        return None
