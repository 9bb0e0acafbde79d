"""Purging members who left while the bot was offline: one server's failure does not stop the others,
and a server whose member list is incomplete is never touched."""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from malabot.cogs.lifecycle import purge_departed
from malabot.member_data import PurgedMembers


class RecordingMemberData:
    def __init__(self, failing: int) -> None:
        self.failing = failing
        self.purged: list[int] = []

    async def purge_absent(self, guild_id: int, is_member: Callable[[int], bool]) -> PurgedMembers:
        if guild_id == self.failing:
            raise OSError("disk I/O error")
        self.purged.append(guild_id)
        return PurgedMembers(guild_id, (), 0)


def guild(guild_id: int, *, chunked: bool = True) -> Any:
    return SimpleNamespace(id=guild_id, chunked=chunked, get_member=lambda user_id: None)


async def test_a_failing_server_is_logged_and_the_others_are_still_purged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="malabot.cogs.lifecycle")
    member_data = RecordingMemberData(failing=1)
    tally = await purge_departed(member_data, [guild(1), guild(2), guild(3, chunked=False), guild(4)])  # type: ignore[arg-type]
    assert member_data.purged == [2, 4]
    assert "guild 1: purging members who are no longer here failed" in caplog.text
    assert "(1 skipped: member list not complete; 1 failed)" in tally.summary()
