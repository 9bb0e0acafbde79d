"""The per-guild loader of stored totals: one read for every member queued, then the next; failures."""

from __future__ import annotations

import asyncio

from malabot.features.xp.totals_loader import TakeQueued, TotalsLoader


def never_fails(user_ids: list[int], error: Exception) -> None:
    raise AssertionError(f"no read should fail here ({error})")


async def until_idle(loader: TotalsLoader) -> None:
    await asyncio.gather(*(task for task in asyncio.all_tasks() if task.get_name() == "xp-load-totals"))
    assert loader.idle


async def test_members_queued_before_the_read_takes_the_queue_are_read_together() -> None:
    reads: list[list[int]] = []
    ready = asyncio.Event()

    async def read(take: TakeQueued) -> None:
        await ready.wait()              # e.g. opening the file: members asked for meanwhile join
        reads.append(take())

    loader = TotalsLoader(read, never_fails)
    for user_id in (1, 1, 2, 3):        # asked twice: read once
        loader.request(user_id)
    await asyncio.sleep(0)
    loader.request(4)
    ready.set()
    await until_idle(loader)
    assert reads == [[1, 2, 3, 4]]


async def test_members_asked_for_during_a_read_go_in_the_next_one() -> None:
    reads: list[list[int]] = []
    reading, release = asyncio.Event(), asyncio.Event()

    async def read(take: TakeQueued) -> None:
        reads.append(take())
        reading.set()
        await release.wait()

    loader = TotalsLoader(read, never_fails)
    loader.request(1)
    await reading.wait()
    loader.request(2)
    loader.request(1)                   # read under way, asked again: read again after it
    release.set()
    await until_idle(loader)
    assert reads == [[1], [2, 1]]


async def test_a_failed_read_reports_its_members_and_the_loader_goes_on() -> None:
    failures: list[tuple[list[int], str]] = []
    reads: list[list[int]] = []
    opened = asyncio.Event()

    async def read(take: TakeQueued) -> None:
        if not opened.is_set():
            raise OSError("file would not open")      # before taking the queue
        members = take()
        reads.append(members)
        if members == [3]:
            raise OSError("disk says no")             # after taking it

    loader = TotalsLoader(read, lambda user_ids, error: failures.append((list(user_ids), str(error))))
    loader.request(1)
    loader.request(2)
    await until_idle(loader)
    opened.set()
    loader.request(3)
    await until_idle(loader)
    loader.request(4)
    await until_idle(loader)
    assert failures == [([1, 2], "file would not open"), ([3], "disk says no")]
    assert reads == [[3], [4]]
