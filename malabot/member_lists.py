"""Keeping py-cord's member lists true: forgetting a server's members during its outage, and asking
again for a member list Discord refused.

During an outage Discord sends nothing about the server; the GUILD_CREATE that ends it has the
members as they are now (a big server's come in the member list py-cord then asks for). py-cord 2.8.1
adds those to the guild's old list and removes nobody: a member who left meanwhile would stay, the
list would never match the member count again (`guild.chunked` False until a restart), and neither
the purge of departed members nor leaderboards could trust it. `forget_members` empties the list when
the outage starts, so that what ends it rebuilds the list whole.

Discord answers a guild's whole member list (gateway op 8, query "" and limit 0) once per guild per
bot every 30 s; a request meanwhile gets a RATE_LIMITED dispatch instead of chunks (changelog
2025-08-14). py-cord 2.8.1 does not know that event: its request stays pending for good, and every
later wait for that guild's list (py-cord's own after an outage or a join, its next session's, the
start-up purge's) reuses it and times out. That happens when the bot restarts, gets a new session, or
is added back to a big server within 30 s of the last request.

`MemberListRetry` hears RATE_LIMITED through py-cord's table of event parsers (the gateway looks
events up there; py-cord itself is left as it is) and sends the same request again, same nonce,
once Discord's `retry_after` has passed: the pending request then completes for everyone waiting
on it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import discord
from discord.state import ConnectionState

from malabot.departures import MemberPresence

log = logging.getLogger(__name__)

RATE_LIMITED = "RATE_LIMITED"
REQUEST_GUILD_MEMBERS = 8
# Never ask again sooner than this, whatever retry_after says: a refusal loop must not spin.
MIN_RETRY_SECONDS = 0.1


def forget_members(guild: discord.Guild) -> None:
    """Forget a server's cached members but the bot's own (py-cord always keeps that one, for
    `guild.me`), while the server is in an outage. Nothing is forgotten once it is back: the list
    is then the new one (the outage event's listener can run after the GUILD_CREATE that ends it)."""
    if guild.unavailable:
        drop_cached_members(guild)


def drop_cached_members(guild: discord.Guild, user_ids: Iterable[int] | None = None) -> None:
    """Drop these members (by default all) from a server's cache but the bot's own, e.g. for the next
    whole list to replace them: py-cord only ever adds a list's members to those it has."""
    me = guild.me
    members = guild.members if user_ids is None else [guild.get_member(user_id) for user_id in user_ids]
    for member in members:
        if member is not None and member != me:
            guild._remove_member(member)  # py-cord has no public way to drop a member from its cache


UNKNOWN_MEMBER = 10007  # Discord's error code for a user who is not a member of the guild


async def complete_member_list(guild: discord.Guild, within: float) -> bool:
    """Whether `guild`'s cached member list is complete, asking for it now (or joining the request
    already sent) when it is not: after a start the lists load one server after another, and work
    that goes through every member (who holds a role) must not miss those not loaded yet."""
    if guild.chunked:
        return True
    try:
        await asyncio.wait_for(guild.chunk(), timeout=within)
    except (TimeoutError, discord.ClientException, discord.ConnectionClosed, OSError) as error:
        # Not sent, or not answered: py-cord would keep the request pending for every later wait.
        give_up_member_list_request(guild._state, guild.id)
        log.info("guild %s: its member list did not come in time (%s)", guild.id, error or "timed out")
    return guild.chunked


async def member_presence(guild: discord.Guild | None, user_ids: Sequence[int]) -> MemberPresence:
    """Which of these users are members of `guild` now: its cached list when complete (chunked),
    else Discord's answer to a member fetch (404 Unknown Member: gone). Nothing is known of a guild
    the bot is not in or that is in an outage, nor after an answer that is not a member or a 404
    (Discord unreachable, rate limited): the rest is asked again later rather than guessed."""
    if guild is None or guild.unavailable:
        return MemberPresence()
    if guild.chunked:
        present = frozenset(user_id for user_id in user_ids if guild.get_member(user_id) is not None)
        return MemberPresence(gone=frozenset(user_ids) - present, present=present)
    gone: set[int] = set()
    present_now: set[int] = set()
    for user_id in user_ids:
        try:
            await guild.fetch_member(user_id)
        except discord.NotFound as error:
            if error.code != UNKNOWN_MEMBER:  # e.g. Unknown Guild: the bot was removed meanwhile
                break
            gone.add(user_id)
        except (TimeoutError, discord.HTTPException, OSError) as error:
            log.debug("guild %s: asking Discord whether %s is a member failed: %s", guild.id, user_id, error)
            break
        else:
            present_now.add(user_id)
    return MemberPresence(gone=frozenset(gone), present=frozenset(present_now))


def forget_requests_of_a_lost_session(client: discord.Client) -> None:
    """Give up the member-list requests still awaited when a new session starts (READY): Discord
    answers a request only in the session that sent it. py-cord keeps them pending and hands them to
    every later wait for the same server, which would then never end; given up, each wait goes on with
    what it has (an incomplete list purges nobody) and the next one sends a request of its own."""
    requests = client._connection._chunk_requests
    for key in list(requests):
        requests.pop(key).done()


def give_up_member_list_request(state: ConnectionState, guild_id: int) -> None:
    """Give up the pending request for `guild_id`'s whole list (one that could not be sent, or whose
    answer did not come), in py-cord's connection state: its waiters go on with what they have, and
    the next wait sends a new one."""
    request = state._chunk_requests.pop(guild_id, None)
    if request is not None:
        request.done()


@dataclass(frozen=True)
class RefusedMemberList:
    guild_id: int
    nonce: str
    retry_after: float


def refused_member_list(data: Any) -> RefusedMemberList | None:
    """The member-list request a RATE_LIMITED payload refuses; None for another opcode's or for one
    without a nonce (nothing of ours to match it to)."""
    if not isinstance(data, dict) or data.get("opcode") != REQUEST_GUILD_MEMBERS:
        return None
    meta = data.get("meta") or {}
    nonce, guild_id = meta.get("nonce"), meta.get("guild_id")
    if not nonce or guild_id is None:
        return None
    retry_after = max(float(data.get("retry_after") or 0), MIN_RETRY_SECONDS)
    return RefusedMemberList(int(guild_id), str(nonce), retry_after)


class MemberListRetry:
    """Sends a refused member-list request again after `retry_after`; `close()` stops the waits."""

    def __init__(self, bot: discord.Client) -> None:
        self._bot = bot
        self._waits: set[asyncio.Task[None]] = set()
        bot._connection.parsers[RATE_LIMITED] = self._on_rate_limited

    def close(self) -> None:
        for wait in self._waits:
            wait.cancel()

    def _on_rate_limited(self, data: Any) -> None:
        refused = refused_member_list(data)
        if refused is None:
            log.warning("Discord rate limited a gateway request the bot cannot match: %s", data)
            return
        log.info("guild %s: Discord refused its member list for now; asking again in %.1f s",
                 refused.guild_id, refused.retry_after)
        wait = asyncio.create_task(self._ask_again(refused), name=f"member-list-retry-{refused.guild_id}")
        self._waits.add(wait)
        wait.add_done_callback(self._waits.discard)

    async def _ask_again(self, refused: RefusedMemberList) -> None:
        await asyncio.sleep(refused.retry_after)
        state = self._bot._connection
        key = next((key for key, request in state._chunk_requests.items()
                    if request.guild_id == refused.guild_id and request.nonce == refused.nonce), None)
        if key is None:
            return  # no longer waited for (completed or given up meanwhile)
        if self._bot.get_guild(refused.guild_id) is not None:
            try:
                await state.chunker(refused.guild_id, nonce=refused.nonce)
                return
            except (discord.ConnectionClosed, OSError):
                log.info("guild %s: could not ask again for its member list (disconnected)", refused.guild_id)
        # Not asked again (the bot left the guild, or is disconnected): drop the request so that its
        # waiters go on with what they have (an incomplete list purges nobody) and the next wait for
        # this guild's list sends a request of its own instead of reusing this one.
        state._chunk_requests.pop(key).done()
