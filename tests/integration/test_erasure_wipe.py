"""Purges of many members at once (a mass ban, Discord's member prune, the start-up purge) wipe the
erased rows from the server's file and -wal once for the batch, not once per member: each wipe is a
checkpoint that holds the server's file."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
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
