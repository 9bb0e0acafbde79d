"""Reading Discord's RATE_LIMITED payload: which member-list request it refuses, and when to ask again."""

from __future__ import annotations

from typing import Any

import pytest

from malabot.member_lists import MIN_RETRY_SECONDS, RefusedMemberList, refused_member_list


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
