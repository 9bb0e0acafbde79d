"""Reading Discord's RATE_LIMITED payload: which member-list request it refuses, and when to ask again;
and what Discord's answers to member fetches say about who is still a member."""

from __future__ import annotations

from typing import Any

import discord
import pytest

from malabot.departures import MemberPresence
from malabot.member_lists import MIN_RETRY_SECONDS, RefusedMemberList, member_presence, refused_member_list


def test_a_refused_member_list_names_its_guild_nonce_and_wait() -> None:
    data = {"opcode": 8, "retry_after": 27.5, "meta": {"guild_id": "123", "nonce": "abc"}}
    assert refused_member_list(data) == RefusedMemberList(123, "abc", 27.5)


def test_a_zero_or_missing_retry_after_still_waits_a_little() -> None:
    for wait in (0, None, -1):
        data = {"opcode": 8, "retry_after": wait, "meta": {"guild_id": "1", "nonce": "n"}}
        refused = refused_member_list(data)
        assert refused is not None and refused.retry_after == MIN_RETRY_SECONDS


@pytest.mark.parametrize("data", [
    {"opcode": 3, "retry_after": 1.0, "meta": {"guild_id": "1", "nonce": "n"}},  # another opcode's
    {"opcode": 8, "retry_after": 1.0, "meta": {"guild_id": "1"}},               # no nonce to match
    {"opcode": 8, "retry_after": 1.0, "meta": {"nonce": "n"}},                  # no guild
    {"opcode": 8, "retry_after": 1.0},
    None,
])
def test_what_cannot_be_matched_to_a_member_list_request_is_none(data: Any) -> None:
    assert refused_member_list(data) is None


class _NotFound:
    status = 404
    reason = "Not Found"


class _ServerError:
    status = 503
    reason = "Service Unavailable"


class _Member:
    pass


class _Guild:
    """A server as member_presence sees it. With its member list complete (chunked), presence comes from
    the cache; else it is asked of Discord, one fetch each: members answer, the failing get a 503,
    the others a 404 of the given code. fetched lists who was asked."""

    id = 1
    unavailable = False

    def __init__(self, code: int = 10007, *, chunked: bool = False, members: frozenset[int] = frozenset(),
                 failing: frozenset[int] = frozenset()) -> None:
        self.code = code
        self.chunked = chunked
        self.members = members
        self.failing = failing
        self.fetched: list[int] = []

    def get_member(self, user_id: int) -> _Member | None:
        return _Member() if user_id in self.members else None

    async def fetch_member(self, user_id: int) -> _Member:
        self.fetched.append(user_id)
        if user_id in self.failing:
            raise discord.DiscordServerError(_ServerError(), {"code": 0, "message": "upstream"})  # type: ignore[arg-type]
        if user_id in self.members:
            return _Member()
        raise discord.NotFound(_NotFound(), {"code": self.code, "message": "Unknown"})  # type: ignore[arg-type]


async def test_unknown_member_answers_mean_gone() -> None:
    guild = _Guild(10007)  # Unknown Member
    presence = await member_presence(guild, [5, 6])  # type: ignore[arg-type]
    assert presence == MemberPresence(gone=frozenset({5, 6}))


async def test_an_unknown_guild_answer_says_nothing_about_the_members() -> None:
    # 10004: the bot was removed from the server meanwhile; nobody may be taken for gone on that.
    guild = _Guild(10004)
    presence = await member_presence(guild, [5, 6])  # type: ignore[arg-type]
    assert presence == MemberPresence() and guild.fetched == [5], "stops asking at the first such answer"


async def test_a_fetch_that_fails_otherwise_takes_nobody_for_gone_and_stops_asking() -> None:
    # A 503 (or a timeout, a rate limit) says nothing about that member: taking them for gone would
    # purge the rows of someone still in the server.
    guild = _Guild(members=frozenset({5, 6}), failing=frozenset({5}))
    presence = await member_presence(guild, [4, 5, 6])  # type: ignore[arg-type]
    assert presence == MemberPresence(gone=frozenset({4})), presence
    assert guild.fetched == [4, 5], "the rest is asked again later"


async def test_a_complete_member_list_is_answered_without_asking_discord() -> None:
    guild = _Guild(chunked=True, members=frozenset({5}))
    presence = await member_presence(guild, [4, 5])  # type: ignore[arg-type]
    assert presence == MemberPresence(gone=frozenset({4}), present=frozenset({5}))
    assert guild.fetched == [], "one request per member although the member list is complete"
