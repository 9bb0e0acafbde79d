"""The per-guild loader of stored totals: one read for every member queued, shared futures, failures."""

from __future__ import annotations

import asyncio

import pytest

from malabot.features.xp.totals_loader import TakeQueued, TotalsLoader


async def test_members_queued_before_the_read_takes_the_queue_are_read_together() -> None:
    reads: list[list[int]] = []
    ready = asyncio.Event()

    async def read(take: TakeQueued) -> None:
        await ready.wait()              # e.g. opening the file: members asked for meanwhile join
        reads.append(take())

    loader = TotalsLoader(read)
    first = loader.load(1)
    assert loader.load(1) is first      # asked again: the same future
    others = [loader.load(user_id) for user_id in (2, 3)]
    await asyncio.sleep(0)
    later = loader.load(4)
    ready.set()
    await asyncio.gather(first, *others, later)
    assert reads == [[1, 2, 3, 4]]
    assert loader.idle


async def test_members_asked_for_during_a_read_share_it_or_go_in_the_next_one() -> None:
    reads: list[list[int]] = []
    reading, release = asyncio.Event(), asyncio.Event()

    async def read(take: TakeQueued) -> None:
        reads.append(take())
        reading.set()
        await release.wait()

    loader = TotalsLoader(read)
    first = loader.load(1)
    await reading.wait()
    assert loader.load(1) is first      # under way: shares it
    second = loader.load(2)             # not in it: queued for the next read
    release.set()
    await asyncio.gather(first, second)
    assert reads == [[1], [2]]


async def test_a_read_failing_before_it_takes_the_queue_fails_the_waiters_and_stops() -> None:
    async def read(take: TakeQueued) -> None:
        raise OSError("file would not open")

    loader = TotalsLoader(read)
    futures = [loader.load(1), loader.load(2)]
    for future in futures:
        with pytest.raises(OSError, match="would not open"):
            await future
    assert loader.idle
