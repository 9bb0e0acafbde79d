"""Purges of many members at once (a mass ban, Discord's member prune, the start-up purge) wipe the
erased rows from the server's file and -wal once for the batch, not once per member: each wipe is a
checkpoint that holds the server's file."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from malabot.app import Services, build_services, stop_services
from malabot.settings import Settings

GUILD = 111_111_111_111_111_111
LEAVING = [500_000_000_000_000_000 + n for n in range(200)]
STAYING = 600_000_000_000_000_000
NOTE = "note-of-a-member-{}"


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    running = build_services(Settings(tenants_dir=tmp_path / "tenants", _env_file=None))  # type: ignore[call-arg]
    await running.tenants.start()
    async with running.tenants.transaction(GUILD) as conn:  # written while open: the rows are in the -wal
        await conn.executemany("INSERT INTO game_verifications (user_id, activision_id, platform) VALUES (?, ?, 'pc')",
                               [(user_id, NOTE.format(user_id)) for user_id in [*LEAVING, STAYING]])
    yield running
    await stop_services(running)


@pytest.fixture
def checkpoints(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The checkpoints the bot's connections run."""
    seen: list[str] = []
    execute = aiosqlite.Connection.execute

    def counted(conn: aiosqlite.Connection, sql: str, *args: Any) -> Any:
        if "wal_checkpoint" in sql:
            seen.append(sql)
        return execute(conn, sql, *args)

    monkeypatch.setattr(aiosqlite.Connection, "execute", counted)
    return seen


def on_disk(services: Services) -> bytes:
    live = services.tenants.paths.live(GUILD)
    wal = live.with_name(live.name + "-wal")
    return live.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def notes_left(services: Services) -> list[int]:
    data = on_disk(services)
    return [user_id for user_id in [*LEAVING, STAYING] if NOTE.format(user_id).encode() in data]


async def test_members_leaving_at_once_are_wiped_from_disk_in_one_checkpoint(
        services: Services, checkpoints: list[str]) -> None:
    await asyncio.gather(*(services.member_data.member_left(GUILD, user_id) for user_id in LEAVING))
    assert notes_left(services) == [STAYING]
    assert 1 <= len(checkpoints) <= 2, f"{len(checkpoints)} checkpoints for {len(LEAVING)} leaves"
    assert services.tenants.is_open(GUILD), "the wipe works on the open file, it does not close it"


async def test_a_start_up_purge_is_wiped_from_disk_in_one_checkpoint(
        services: Services, checkpoints: list[str]) -> None:
    report = await services.member_data.purge_absent(GUILD, lambda user_id: user_id not in LEAVING)
    assert sorted(report.user_ids) == LEAVING
    assert notes_left(services) == [STAYING]
    assert len(checkpoints) == 1


async def test_a_leave_of_a_member_with_no_rows_runs_no_checkpoint(
        services: Services, checkpoints: list[str]) -> None:
    await services.member_data.member_left(GUILD, 700_000_000_000_000_000)
    assert checkpoints == []


@contextmanager
def read_by_another_connection(services: Services) -> Iterator[None]:
    """Another connection inside a read transaction: what a snapshot's VACUUM INTO, `malabot tenants
    backup` or an operator's sqlite3 session holds while it reads the file."""
    reader = sqlite3.connect(services.tenants.paths.live(GUILD), isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM game_verifications").fetchall()
    try:
        yield
    finally:
        reader.execute("ROLLBACK")
        reader.close()


async def test_a_leave_while_another_connection_reads_the_file_does_not_wait_for_the_reader(
        services: Services) -> None:
    with read_by_another_connection(services):
        started = time.monotonic()
        report = await services.member_data.member_left(GUILD, LEAVING[0])
        took = time.monotonic() - started
    assert report is not None and report.total == 1
    assert took < 1.0, f"the leave's wipe held the server's file {took:.1f} s waiting for a reader"


async def test_the_servers_other_work_does_not_queue_behind_a_wipe_that_meets_a_reader(
        services: Services) -> None:
    with read_by_another_connection(services):
        leave = asyncio.create_task(services.member_data.member_left(GUILD, LEAVING[0]))
        await asyncio.sleep(0.3)  # the purge has committed; its wipe holds the guild's lock if it waits
        started = time.monotonic()
        async with services.tenants.reading(GUILD) as conn:  # e.g. another member's /rank
            await (await conn.execute("SELECT 1")).fetchall()
        waited = time.monotonic() - started
        await leave
    assert waited < 1.0, f"a read of the server waited {waited:.1f} s behind the leave's wipe"


async def test_the_busy_timeout_is_back_after_a_wipe(services: Services) -> None:
    await services.member_data.member_left(GUILD, LEAVING[0])
    async with services.tenants.reading(GUILD) as conn, conn.execute("PRAGMA busy_timeout") as cursor:
        assert await cursor.fetchone() == (5000,), "other writes still wait out a brief lock"
