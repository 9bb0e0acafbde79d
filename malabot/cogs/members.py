"""Finding a member of a server from an id: the cache first, Discord second."""

from __future__ import annotations

import logging

import discord

from malabot.cogs.unreachable import DISCORD_UNREACHABLE

log = logging.getLogger(__name__)

# Discord's code for a member who is not (or no longer) on the server.
UNKNOWN_MEMBER = 10007


async def member_of(guild: discord.Guild, user_id: int) -> discord.Member | None:
    """The member from the cache, else from Discord; None when they are not on the server.
    Other Discord errors propagate: the caller knows whether they matter."""
    member = guild.get_member(user_id)
    return member if member is not None else await fresh_member(guild, user_id)


async def fresh_member(guild: discord.Guild, user_id: int) -> discord.Member | None:
    """The member as Discord has them now; None when they are not on the server. For deciding from
    their roles just after they changed: the gateway brings the change to the cache seconds later."""
    try:
        return await guild.fetch_member(user_id)
    except discord.NotFound:
        return None


async def member_if_found(guild: discord.Guild, user_id: int, *, for_what: str) -> discord.Member | None:
    """member_of, with Discord unable to say just now (an error past py-cord's retries, no connection)
    taken as "not found" and logged: for what can do without the member (`for_what` names it)."""
    try:
        return await member_of(guild, user_id)
    except (discord.HTTPException, *DISCORD_UNREACHABLE):
        log.warning("guild %s: could not look up member %s for %s", guild.id, user_id, for_what)
        return None
