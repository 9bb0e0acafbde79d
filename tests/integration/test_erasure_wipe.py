"""Purges of many members at once (a mass ban, Discord's member prune, the start-up purge) wipe the
erased rows from the server's file and -wal once for the batch, not once per member: each wipe is a
checkpoint that holds the server's file."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from malabot.app import Services, build_services, stop_services
from malabot.features.verification.member_data import verification_member_data
from malabot.member_data import MemberData
from malabot.settings import Settings
from malabot.tenancy.manager import TenantManager
from tests.e2e.data_dump import eventually

GUILD = 111_111_111_111_111_111
LEAVING = [500_000_000_000_000_000 + n for n in range(200)]
STAYING = 600_000_000_000_000_000
NOTE = "note-of-a-member-{}"
RETRY_SECONDS = 0.05


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


def on_disk(tenants: TenantManager) -> bytes:
    live = tenants.paths.live(GUILD)
    wal = live.with_name(live.name + "-wal")
    return live.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def notes_left(services: Services) -> list[int]:
    data = on_disk(services.tenants)
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
def read_by_another_connection(tenants: TenantManager) -> Iterator[None]:
    """Another connection inside a read transaction: what a snapshot's VACUUM INTO, `malabot tenants
    backup` or an operator's sqlite3 session holds while it reads the file."""
    reader = sqlite3.connect(tenants.paths.live(GUILD), isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM game_verifications").fetchall()
    try:
        yield
    finally:
        reader.execute("ROLLBACK")
        reader.close()


async def test_a_leave_while_another_connection_reads_the_file_does_not_wait_for_the_reader(
        services: Services) -> None:
    with read_by_another_connection(services.tenants):
        started = time.monotonic()
        report = await services.member_data.member_left(GUILD, LEAVING[0])
        took = time.monotonic() - started
    assert report is not None and report.total == 1
    assert took < 1.0, f"the leave's wipe held the server's file {took:.1f} s waiting for a reader"


async def test_the_servers_other_work_does_not_queue_behind_a_wipe_that_meets_a_reader(
        services: Services) -> None:
    with read_by_another_connection(services.tenants):
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


@pytest.fixture
async def quick_retries(tmp_path: Path) -> AsyncIterator[tuple[TenantManager, MemberData]]:
    """The bot's purge and wipe, with a wipe that met a reader retried after 50 ms rather than 5 s."""
    tenants = TenantManager(tmp_path / "quick", wipe_retry_seconds=RETRY_SECONDS)
    await tenants.start()
    async with tenants.transaction(GUILD) as conn:
        await conn.executemany("INSERT INTO game_verifications (user_id, activision_id, platform) VALUES (?, ?, 'pc')",
                               [(user_id, NOTE.format(user_id)) for user_id in (LEAVING[0], STAYING)])
    yield tenants, MemberData(tenants, [verification_member_data()])
    await tenants.close_all()


def wipe_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "malabot.tenancy.manager"]


async def test_a_wipe_that_met_a_reader_is_retried_until_the_erased_rows_are_gone(
        quick_retries: tuple[TenantManager, MemberData], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="malabot.tenancy.manager")
    tenants, member_data = quick_retries
    secret = NOTE.format(LEAVING[0]).encode()
    with read_by_another_connection(tenants):
        await member_data.member_left(GUILD, LEAVING[0])
        await asyncio.sleep(RETRY_SECONDS * 8)  # several retries meet the reader too
        assert secret in on_disk(tenants), "the reader's snapshot keeps the old frames meanwhile"
    # Ordinary activity afterwards (another member's write) does not truncate the -wal by itself.
    async with tenants.transaction(GUILD) as conn:
        await conn.execute("UPDATE game_verifications SET platform = 'xbox' WHERE user_id = ?", (STAYING,))
    await eventually(lambda: secret not in on_disk(tenants), what="the erased rows wiped by a retry")
    assert NOTE.format(STAYING).encode() in on_disk(tenants)
    await eventually(lambda: len(wipe_lines(caplog)) == 2, what="the wipe reported done")
    assert wipe_lines(caplog) == [
        f"guild {GUILD}: erased rows stay in its -wal while another connection reads the file; "
        "the wipe is retried until it works",
        f"guild {GUILD}: erased rows wiped from its -wal now that nothing reads the file"]


async def test_a_retried_wipe_reopens_a_file_closed_while_the_reader_kept_its_wal(
        quick_retries: tuple[TenantManager, MemberData]) -> None:
    tenants, member_data = quick_retries
    secret = NOTE.format(LEAVING[0]).encode()
    # An operator's sqlite3 session left open: the reader's close is not the last either.
    idle = sqlite3.connect(tenants.paths.live(GUILD), isolation_level=None)
    try:
        idle.execute("SELECT count(*) FROM sqlite_master").fetchall()
        with read_by_another_connection(tenants):
            await member_data.member_left(GUILD, LEAVING[0])
            await tenants.close(GUILD)  # idle close: not the last connection, so no checkpoint
        assert secret in on_disk(tenants)
        await eventually(lambda: secret not in on_disk(tenants), what="the erased rows wiped by a retry")
    finally:
        idle.close()
