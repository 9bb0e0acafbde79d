"""The XP service on real tenant files: chat awards, buffer and flush, levels, roles, rank, leaderboard."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from xp_fixtures import XpWorld, read_file, xp_world

from malabot.features.settings.service import SettingsService
from malabot.features.xp import repository
from malabot.features.xp.awards import ChatAward
from malabot.features.xp.models import LevelChange
from malabot.features.xp.service import XpService
from malabot.features.xp.slow_rounds import FlushRound
from malabot.tenancy import manager as manager_module
from malabot.tenancy.manager import TenantManager
from malabot.tenancy.paths import TenantPaths

GUILD = 111_111_111_111_111_111
OTHER_GUILD = 222_222_222_222_222_222
ADMIN = 9
CHANNEL, QUIET_CHANNEL = 500, 501
ROLE, QUIET_ROLE = 600, 601
ALICE, BOB, CAROL = 1001, 1002, 1003


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[XpWorld]:
    async with xp_world(tmp_path / "tenants") as built:
        yield built


async def chat(world: XpWorld, user_id: int, *, guild_id: int = GUILD, channel_id: int = CHANNEL,
               role_ids: tuple[int, ...] = (), is_bot: bool = False, is_webhook: bool = False
               ) -> LevelChange | None:
    return await world.xp.on_message(guild_id, user_id, channel_id, role_ids, is_bot=is_bot,
                                     is_webhook=is_webhook)


async def fixed_xp(world: XpWorld, amount: int, guild_id: int = GUILD) -> None:
    await world.settings.update(guild_id, ADMIN, xp_min=amount, xp_max=amount)


def file_rows(tenants: TenantManager, guild_id: int = GUILD) -> list[tuple[int, int, int]]:
    return [(user, xp, messages) for user, xp, messages in
            read_file(tenants.paths.live(guild_id), "SELECT user_id, xp, messages FROM xp ORDER BY user_id")]


# --- who earns XP, and how often -------------------------------------------------------------------

async def test_first_message_earns_between_fifteen_and_twenty_five(world: XpWorld) -> None:
    change = await chat(world, ALICE)
    assert change is not None
    assert 15 <= change.total_xp <= 25
    assert (change.guild_id, change.user_id, change.old_level, change.new_level) == (GUILD, ALICE, 0, 0)


async def test_cooldown_allows_one_award_per_sixty_seconds_per_member(world: XpWorld) -> None:
    await fixed_xp(world, 20)
    assert await chat(world, ALICE) is not None
    world.clock.advance(seconds=59)
    assert await chat(world, ALICE) is None
    assert await chat(world, BOB) is not None           # another member has their own cooldown
    assert await chat(world, ALICE, guild_id=OTHER_GUILD) is not None  # and so has another server
    world.clock.advance(seconds=1)
    second = await chat(world, ALICE)
    assert second is not None and second.total_xp == 40
    assert (await world.xp.rank(GUILD, ALICE)).messages == 2


async def test_cooldown_is_a_per_server_setting(world: XpWorld) -> None:
    await world.settings.update(GUILD, ADMIN, xp_cooldown_seconds=5)
    assert await chat(world, ALICE) is not None
    world.clock.advance(seconds=5)
    assert await chat(world, ALICE) is not None


async def test_many_simultaneous_messages_of_one_member_earn_once(world: XpWorld) -> None:
    results = await asyncio.gather(*(chat(world, ALICE) for _ in range(20)))
    assert sum(result is not None for result in results) == 1
    assert (await world.xp.rank(GUILD, ALICE)).messages == 1


@pytest.fixture
def total_reads(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """The member ids of every stored-total query the service runs (the real queries still run)."""
    reads: list[list[int]] = []
    real_many, real_one = repository.stored_totals, repository.total_xp

    async def stored_totals(conn: aiosqlite.Connection, user_ids: list[int]) -> dict[int, int]:
        reads.append(list(user_ids))
        return await real_many(conn, user_ids)

    async def total_xp(conn: aiosqlite.Connection, user_id: int) -> int:
        reads.append([user_id])
        return await real_one(conn, user_id)

    monkeypatch.setattr(repository, "stored_totals", stored_totals)
    monkeypatch.setattr(repository, "total_xp", total_xp)
    return reads


async def test_first_messages_of_many_members_share_one_read_of_their_totals(
        world: XpWorld, total_reads: list[list[int]]) -> None:
    await fixed_xp(world, 20)
    members = range(5000, 5300)
    for user_id in members[:100]:                                  # 100 members with XP in the file
        await world.admin.set(GUILD, ADMIN, user_id, 1000)
    total_reads.clear()
    changes = await asyncio.gather(*(chat(world, user_id) for user_id in members))
    assert len(total_reads) <= 2          # the first member's read, then everyone queued behind it
    assert sorted(user for read in total_reads for user in read) == list(members)   # each read once
    totals = {change.user_id: change.total_xp for change in changes if change is not None}
    assert totals == {user_id: 1020 if user_id < 5100 else 20 for user_id in members}
    await world.xp.flush(GUILD)
    assert sum(xp for _, xp, _ in file_rows(world.tenants)) == 100 * 1000 + 300 * 20


async def test_concurrent_first_messages_of_one_member_award_once_per_cooldown_from_one_read(
        world: XpWorld, total_reads: list[list[int]]) -> None:
    await fixed_xp(world, 20)
    await world.admin.set(GUILD, ADMIN, ALICE, 50)
    total_reads.clear()
    results = await asyncio.gather(*(chat(world, user_id) for user_id in [ALICE] * 10 + [BOB] * 10))
    assert [result.total_xp for result in results if result is not None] == [70, 20]
    assert sorted(user for read in total_reads for user in read) == [ALICE, BOB]

    # Cooldown 0: every message earns, and the ones arriving while the read is under way wait on
    # the same read instead of starting their own.
    await world.settings.update(GUILD, ADMIN, xp_cooldown_seconds=0)
    world.xp.forget_totals(GUILD)
    total_reads.clear()
    results = await asyncio.gather(*(chat(world, ALICE) for _ in range(10)))
    assert sorted(result.total_xp for result in results if result is not None) == \
        [90 + 20 * n for n in range(10)]
    assert total_reads == [[ALICE]]
    await world.xp.flush(GUILD)
    assert file_rows(world.tenants) == [(ALICE, 270, 11), (BOB, 20, 1)]


async def test_a_failed_read_of_totals_keeps_the_xp_but_fails_the_level_changes_and_the_next_ones_read_again(
        world: XpWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    await fixed_xp(world, 20)
    real = repository.stored_totals

    async def refuse(conn: aiosqlite.Connection, user_ids: list[int]) -> dict[int, int]:
        raise sqlite3.OperationalError("disk says no")

    monkeypatch.setattr(repository, "stored_totals", refuse)
    results = await asyncio.gather(chat(world, ALICE), chat(world, BOB), return_exceptions=True)
    assert [str(result) for result in results] == ["disk says no", "disk says no"]
    monkeypatch.setattr(repository, "stored_totals", real)
    world.clock.advance(minutes=1)
    change = await chat(world, ALICE)
    assert change is not None and change.total_xp == 40      # the first award's XP was kept
    await world.xp.flush(GUILD)
    assert file_rows(world.tenants) == [(ALICE, 40, 2), (BOB, 20, 1)]


@pytest.fixture
def held_reads(monkeypatch: pytest.MonkeyPatch) -> tuple[asyncio.Event, asyncio.Event]:
    """(reading, release): stored-total reads start, set `reading` and wait for `release`."""
    real = repository.stored_totals
    reading, release = asyncio.Event(), asyncio.Event()

    async def held(conn: aiosqlite.Connection, user_ids: list[int]) -> dict[int, int]:
        reading.set()
        await release.wait()
        return await real(conn, user_ids)

    monkeypatch.setattr(repository, "stored_totals", held)
    return reading, release


async def test_cancelling_a_caller_waiting_for_the_read_keeps_its_award_and_the_others_read(
        world: XpWorld, held_reads: tuple[asyncio.Event, asyncio.Event]) -> None:
    await fixed_xp(world, 20)
    await world.settings.update(GUILD, ADMIN, xp_cooldown_seconds=0)
    reading, release = held_reads
    cancelled = asyncio.create_task(chat(world, ALICE))
    await reading.wait()
    waiting = asyncio.create_task(chat(world, ALICE))   # shares the read under way
    await asyncio.sleep(0)
    cancelled.cancel()
    release.set()
    change = await waiting
    assert change is not None and change.total_xp == 40     # the cancelled caller's award counts first
    assert cancelled.cancelled()
    await world.xp.flush(GUILD)
    assert file_rows(world.tenants) == [(ALICE, 40, 2)]


async def record(world: XpWorld, user_id: int) -> ChatAward:
    award = await world.xp.record_message(GUILD, user_id, CHANNEL, (), is_bot=False)
    assert award is not None
    return award


async def test_an_award_is_buffered_at_once_while_the_members_total_is_still_being_read(
        world: XpWorld, held_reads: tuple[asyncio.Event, asyncio.Event]) -> None:
    await fixed_xp(world, 20)
    await world.admin.set(GUILD, ADMIN, ALICE, 50)
    world.xp.forget_totals(GUILD)
    reading, release = held_reads
    award = await record(world, ALICE)            # returns although the read has not even started
    assert (award.amount, award.settled, world.xp.pending_xp(GUILD, ALICE)) == (20, False, 20)
    await reading.wait()
    assert not award.settled
    release.set()
    change = await award.level_change()
    assert change is not None and change.total_xp == 70


async def test_awards_made_before_the_total_is_known_settle_in_order_with_one_level_up(
        world: XpWorld, held_reads: tuple[asyncio.Event, asyncio.Event]) -> None:
    await fixed_xp(world, 20)
    await world.settings.update(GUILD, ADMIN, xp_cooldown_seconds=0)
    await world.admin.set(GUILD, ADMIN, ALICE, 90)        # level 1 is at 100 XP
    world.xp.forget_totals(GUILD)
    reading, release = held_reads
    awards = [await record(world, ALICE) for _ in range(3)]
    reported: list[LevelChange] = []
    for award in awards:
        award.when_known(reported.append)
    assert reported == []
    release.set()
    changes = [await award.level_change() for award in awards]
    assert [(c.old_level, c.new_level, c.total_xp) for c in changes if c] == [(0, 1, 110), (1, 1, 130),
                                                                             (1, 1, 150)]
    assert reported == changes


async def test_a_member_forgotten_before_their_total_was_read_reports_no_level_change(
        world: XpWorld, held_reads: tuple[asyncio.Event, asyncio.Event]) -> None:
    reading, release = held_reads
    award = await record(world, ALICE)
    reported: list[LevelChange] = []
    award.when_known(reported.append)
    await reading.wait()
    world.xp.forget_member(GUILD, ALICE)                # they left the server
    release.set()
    assert await award.level_change() is None
    assert reported == []
    await world.xp.flush(GUILD)
    assert file_rows(world.tenants) == []


async def test_xp_granted_in_a_transaction_settles_the_chat_awards_waiting_for_the_total_first(
        world: XpWorld) -> None:
    await fixed_xp(world, 20)
    await world.admin.set(GUILD, ADMIN, ALICE, 90)
    world.xp.forget_totals(GUILD)
    async with world.tenants.transaction(GUILD) as conn:   # e.g. a check-in: the read must wait for it
        award = await record(world, ALICE)
        granted = await world.xp.add_in_transaction(conn, GUILD, ALICE, 50)
    chatted = await award.level_change()
    assert chatted is not None
    assert (chatted.old_level, chatted.new_level, chatted.total_xp) == (0, 1, 110)     # the chat came first
    assert (granted.old_level, granted.new_level, granted.total_xp) == (1, 1, 160)
    assert (await world.xp.rank(GUILD, ALICE)).total_xp == 160


async def test_no_xp_channel_and_no_xp_role_earn_nothing(world: XpWorld) -> None:
    await world.settings.update(GUILD, ADMIN, no_xp_channel_ids=(QUIET_CHANNEL,),
                                no_xp_role_ids=(QUIET_ROLE,))
    assert await chat(world, ALICE, channel_id=QUIET_CHANNEL) is None
    assert await chat(world, BOB, role_ids=(ROLE, QUIET_ROLE)) is None
    # A blocked message does not start the cooldown either.
    assert await chat(world, ALICE, role_ids=(ROLE,)) is not None
    await world.xp.flush(GUILD)
    assert [user for user, _, _ in file_rows(world.tenants)] == [ALICE]


async def test_bots_and_webhooks_never_earn_xp(world: XpWorld) -> None:
    assert await chat(world, ALICE, is_bot=True) is None
    assert await chat(world, BOB, is_webhook=True) is None
    await world.tenants.ensure(GUILD)
    await world.xp.flush(GUILD)
    assert file_rows(world.tenants) == []
    assert (await world.xp.rank(GUILD, ALICE)).total_xp == 0


async def test_xp_switched_off(world: XpWorld) -> None:
    await world.settings.update(GUILD, ADMIN, xp_enabled=False)
    assert await chat(world, ALICE) is None


# --- buffer and flush ------------------------------------------------------------------------------

async def test_awards_wait_in_memory_until_flushed_and_reads_include_them(world: XpWorld) -> None:
    await fixed_xp(world, 20)
    await chat(world, ALICE)
    await chat(world, BOB)
    assert file_rows(world.tenants) == []                 # nothing written yet
    rank = await world.xp.rank(GUILD, ALICE)              # a read flushes the guild first
    assert (rank.total_xp, rank.messages) == (20, 1)
    assert file_rows(world.tenants) == [(ALICE, 20, 1), (BOB, 20, 1)]


async def test_leaderboard_includes_pending_xp(world: XpWorld) -> None:
    await fixed_xp(world, 20)
    await chat(world, ALICE)
    board = await world.xp.leaderboard(GUILD)
    assert [(entry.user_id, entry.value) for entry in board.entries] == [(ALICE, 20)]


async def test_flush_adds_to_what_the_file_holds(world: XpWorld) -> None:
    await fixed_xp(world, 20)
    for _ in range(3):
        await chat(world, ALICE)
        await world.xp.flush(GUILD)
        world.clock.advance(minutes=1)
    assert file_rows(world.tenants) == [(ALICE, 60, 3)]
    last = read_file(world.tenants.paths.live(GUILD), "SELECT last_message_at FROM xp")
    assert last == [("2026-06-15T12:02:00+00:00",)]


async def test_flush_all_writes_every_guild(world: XpWorld) -> None:
    await chat(world, ALICE)
    await chat(world, ALICE, guild_id=OTHER_GUILD)
    await world.xp.flush_all()
    assert len(file_rows(world.tenants)) == 1
    assert len(file_rows(world.tenants, OTHER_GUILD)) == 1


async def test_flush_all_writes_guilds_whose_file_is_open_before_opening_the_others(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tenants = TenantManager(tmp_path / "tenants", max_open=2)
    await tenants.start()
    settings = SettingsService(tenants)
    xp = XpService(tenants, settings, flush_concurrency=1)
    closed, first_open, second_open = 3, 1, 2
    for guild_id in (closed, first_open, second_open):   # the buffer meets `closed` first
        await xp.on_message(guild_id, ALICE, CHANNEL, (), is_bot=False)
    assert [tenants.is_open(guild_id) for guild_id in (closed, first_open, second_open)] == [False, True, True]
    opened: list[int] = []
    real_open = manager_module.open_tenant

    def counting_open(paths: TenantPaths, guild_id: int, *args: Any, **kwargs: Any) -> Any:
        opened.append(guild_id)
        return real_open(paths, guild_id, *args, **kwargs)

    monkeypatch.setattr(manager_module, "open_tenant", counting_open)
    await xp.flush_all()
    assert opened == [closed]               # the open ones were written before `closed` evicted one
    await tenants.close_all()
    assert [len(file_rows(tenants, guild_id)) for guild_id in (closed, first_open, second_open)] == [1, 1, 1]


async def test_a_backup_flushes_the_buffer_first(world: XpWorld, tmp_path: Path) -> None:
    await fixed_xp(world, 20)
    await chat(world, ALICE)
    copy = await world.tenants.backup(GUILD, tmp_path / "copy.sqlite3")
    assert read_file(copy, "SELECT user_id, xp FROM xp") == [(ALICE, 20)]


async def backup_then_chat_once_more(world: XpWorld, xp_per_message: int, tmp_path: Path) -> Path:
    """ALICE chats once, the file is backed up, she chats again a minute later and it is written."""
    await fixed_xp(world, xp_per_message)
    await chat(world, ALICE)
    copy = await world.tenants.backup(GUILD, tmp_path / "copy.sqlite3")
    world.clock.advance(minutes=1)
    await chat(world, ALICE)
    await world.xp.flush(GUILD)
    return copy


async def test_after_a_restore_totals_come_from_the_restored_file(world: XpWorld, tmp_path: Path) -> None:
    copy = await backup_then_chat_once_more(world, 60, tmp_path)           # copy: 60, file: 120 (level 1)
    await world.tenants.restore(GUILD, copy)
    world.clock.advance(minutes=1)
    change = await chat(world, ALICE)
    # Computed on the restored 60, not on the 120 known before: 60 → 120 is a level-up again.
    assert change is not None and (change.old_level, change.new_level, change.total_xp) == (0, 1, 120)


async def test_chat_while_a_restore_is_checked_does_not_leave_the_old_files_total_behind(
        world: XpWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = await backup_then_chat_once_more(world, 80, tmp_path)           # copy: 80, file: 160 (level 1)
    checking, go_on = asyncio.Event(), threading.Event()
    real_prepare, loop = manager_module.files.prepare_restore, asyncio.get_running_loop()

    def slow_prepare(*args: Any, **kwargs: Any) -> Path:  # runs in a worker thread
        loop.call_soon_threadsafe(checking.set)
        go_on.wait(timeout=10)
        return real_prepare(*args, **kwargs)

    monkeypatch.setattr(manager_module.files, "prepare_restore", slow_prepare)
    restoring = asyncio.create_task(world.tenants.restore(GUILD, copy))
    await checking.wait()
    world.clock.advance(minutes=1)
    during = await chat(world, ALICE)    # reads 160 from the file about to be replaced
    assert during is not None and during.total_xp == 240
    go_on.set()
    await restoring
    world.clock.advance(minutes=1)
    after = await chat(world, ALICE)
    # The restored file holds 80, plus the 80 earned during the restore and 80 now: 240, level 1
    # (a total still taken from the old file would say 320, a level-up to 2).
    assert after is not None and (after.old_level, after.new_level, after.total_xp) == (1, 1, 240)
    await world.xp.flush(GUILD)
    assert file_rows(world.tenants) == [(ALICE, 240, 3)]


async def test_closing_the_tenants_writes_the_buffer(tmp_path: Path) -> None:
    async with xp_world(tmp_path / "tenants") as world:
        await chat(world, ALICE)
        path = world.tenants.paths.live(GUILD)
    assert len(read_file(path, "SELECT user_id FROM xp")) == 1


async def test_stop_writes_the_buffer_and_can_be_called_twice(world: XpWorld) -> None:
    await world.xp.start()
    await chat(world, ALICE)
    await world.xp.stop()
    await world.xp.stop()
    assert len(file_rows(world.tenants)) == 1


async def test_stop_writes_the_buffer_of_a_server_whose_file_is_closed(world: XpWorld) -> None:
    # A closed file gets no flush as the files close at shutdown: stop() itself must write it.
    await chat(world, ALICE)
    await world.tenants.close(GUILD)
    await world.xp.stop()
    assert len(file_rows(world.tenants)) == 1


async def test_the_background_task_flushes_on_its_own(tmp_path: Path) -> None:
    async with xp_world(tmp_path / "tenants") as world:
        world.xp._flush_interval = 0.01
        await world.xp.start()
        await chat(world, ALICE)
        for _ in range(500):  # bounded wait for the task; not a timing assertion
            if file_rows(world.tenants):
                break
            await asyncio.sleep(0.01)
        assert len(file_rows(world.tenants)) == 1
        await world.xp.stop()


async def test_after_a_flush_slower_than_the_interval_the_next_one_starts_at_once_and_it_is_reported(
        world: XpWorld, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.get_running_loop()
    cycles: list[tuple[float, float]] = []
    two_done = asyncio.Event()

    async def slow_flush_all() -> FlushRound:    # e.g. more busy guilds than open files
        started = loop.time()
        await asyncio.sleep(0.4)
        cycles.append((started, loop.time()))
        if len(cycles) == 2:
            two_done.set()
        return FlushRound(guilds=1000, reopened=744)

    monkeypatch.setattr(world.xp, "flush_all", slow_flush_all)
    world.xp._flush_interval = 0.2
    await world.xp.start()
    await asyncio.wait_for(two_done.wait(), timeout=10)
    await world.xp.stop()
    (_, first_end), (second_start, _) = cycles[:2]
    # Waiting a whole interval after the slow flush would leave a 0.2 s gap.
    assert second_start - first_end < 0.1
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1, "reported once, not every round"
    assert "slower than their 0.2 s interval" in warnings[0] and "1,000 servers (744 of them reopened)" in warnings[0]


async def test_a_failed_flush_keeps_the_xp_for_the_next_one(world: XpWorld) -> None:
    await fixed_xp(world, 20)
    await chat(world, ALICE)
    async with world.tenants.transaction(GUILD) as conn:  # make the real write fail inside SQLite
        await conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON xp BEGIN SELECT RAISE(ABORT, 'disk says no'); END")
    with pytest.raises(Exception, match="disk says no"):
        await world.xp.flush(GUILD)
    world.clock.advance(minutes=1)
    await chat(world, ALICE)
    await world.xp.flush_all()  # logged, not raised
    async with world.tenants.transaction(GUILD) as conn:
        await conn.execute("DROP TRIGGER refuse")
    await world.xp.flush(GUILD)
    assert file_rows(world.tenants) == [(ALICE, 40, 2)]


async def test_a_write_failing_every_round_is_logged_with_a_traceback_once_and_its_recovery_too(
        world: XpWorld, caplog: pytest.LogCaptureFixture) -> None:
    # A full disk, a damaged page, a file made read-only: the write fails the same way every round.
    await chat(world, ALICE)
    async with world.tenants.transaction(GUILD) as conn:
        await conn.execute("CREATE TRIGGER disk_full BEFORE INSERT ON xp "
                           "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
    caplog.set_level(logging.INFO, logger="malabot.features.xp.service")
    world.xp._flush_interval = 0.02
    await world.xp.start()
    await asyncio.sleep(1.0)                              # ~50 rounds; 50 s at the default 1 s interval
    failures = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert [(record.getMessage(), bool(record.exc_info)) for record in failures] == [
        (f"guild {GUILD}: writing buffered XP failed; it stays buffered and is retried every round "
         "(reported again at most once a minute)", True)]
    async with world.tenants.transaction(GUILD) as conn:
        await conn.execute("DROP TRIGGER disk_full")
    await asyncio.sleep(0.1)
    await world.xp.stop()
    recovered = [record.getMessage() for record in caplog.records if "works again" in record.getMessage()]
    assert len(recovered) == 1 and recovered[0].startswith(f"guild {GUILD}: writing buffered XP works again after ")
    assert file_rows(world.tenants)[0][0] == ALICE, "the XP was kept for the write that worked"


async def test_cancelling_readers_mid_flush_neither_loses_nor_doubles_xp(world: XpWorld) -> None:
    await fixed_xp(world, 20)
    awarded = 0
    for step in range(60):
        world.clock.advance(minutes=1)
        for user_id in (ALICE, BOB):
            awarded += 20 if await chat(world, user_id) is not None else 0
        reader = asyncio.create_task(world.xp.rank(GUILD, ALICE))
        for _ in range(step % 15):  # cancel at a different point of the flush each round
            await asyncio.sleep(0)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    await world.xp.flush(GUILD)
    await world.xp.flush(GUILD)
    assert awarded == 60 * 2 * 20
    assert sum(xp for _, xp, _ in file_rows(world.tenants)) == awarded
    assert sum(messages for _, _, messages in file_rows(world.tenants)) == 120


# --- levels ----------------------------------------------------------------------------------------

async def test_level_up_is_detected_on_the_message_that_crosses_the_threshold(world: XpWorld) -> None:
    await fixed_xp(world, 60)          # standard curve: level 1 at 100, level 2 at 255
    first = await chat(world, ALICE)
    world.clock.advance(minutes=1)
    second = await chat(world, ALICE)
    world.clock.advance(minutes=1)
    third = await chat(world, ALICE)
    assert first is not None and not first.leveled_up
    assert second is not None and second.leveled_up and (second.old_level, second.new_level) == (0, 1)
    assert third is not None and not third.leveled_up and third.total_xp == 180


async def test_level_up_detection_counts_xp_already_in_the_file(world: XpWorld) -> None:
    await world.admin.set(GUILD, ADMIN, ALICE, 90)
    await fixed_xp(world, 15)
    change = await chat(world, ALICE)
    assert change is not None and change.leveled_up and change.total_xp == 105


async def test_level_up_announcement(world: XpWorld) -> None:
    up = LevelChange(GUILD, ALICE, 1, 2, 300)
    announcement = await world.xp.levelup_announcement(GUILD, up, member_mention="<@1001>",
                                                       server_name="Mala", message_channel_id=CHANNEL)
    assert announcement is not None
    assert (announcement.channel_id, announcement.text) == (CHANNEL, "GG <@1001>, you reached level 2!")
    await world.settings.update(GUILD, ADMIN, levelup_channel_id=777,
                                levelup_template="{member} → {level} in {server}")
    moved = await world.xp.levelup_announcement(GUILD, up, member_mention="<@1001>", server_name="Mala",
                                                message_channel_id=CHANNEL)
    assert moved is not None and (moved.channel_id, moved.text) == (777, "<@1001> → 2 in Mala")
    same = LevelChange(GUILD, ALICE, 2, 2, 310)
    assert await world.xp.levelup_announcement(GUILD, same, member_mention="m", server_name="s",
                                               message_channel_id=CHANNEL) is None
    await world.settings.update(GUILD, ADMIN, levelup_enabled=False)
    assert await world.xp.levelup_announcement(GUILD, up, member_mention="m", server_name="s",
                                               message_channel_id=CHANNEL) is None


async def test_member_level_includes_buffered_xp(world: XpWorld) -> None:
    await fixed_xp(world, 150)
    await chat(world, ALICE)
    assert await world.xp.member_level(GUILD, ALICE) == 1
    assert file_rows(world.tenants) == []


# --- level roles -----------------------------------------------------------------------------------

async def test_level_roles_follow_the_level_in_stack_and_replace_mode(world: XpWorld) -> None:
    await world.admin.add_level_role(GUILD, ADMIN, 5, 105)
    await world.admin.add_level_role(GUILD, ADMIN, 10, 110)
    assert await world.xp.role_changes(GUILD, [1, 105], 12) == ({110}, set())
    await world.settings.update(GUILD, ADMIN, level_role_mode="replace")
    assert await world.xp.role_changes(GUILD, [1, 105], 12) == ({110}, {105})
    # After an admin takes XP away, the roles go too.
    assert await world.xp.role_changes(GUILD, [1, 110], 3) == (set(), {110})


# --- rank and leaderboard --------------------------------------------------------------------------

async def seed_totals(world: XpWorld, totals: dict[int, int]) -> None:
    for user_id, total in totals.items():
        await world.admin.set(GUILD, ADMIN, user_id, total)


async def test_rank_shows_progress_and_a_shared_position_for_ties(world: XpWorld) -> None:
    await seed_totals(world, {ALICE: 300, BOB: 300, CAROL: 500, 1004: 100})
    alice = await world.xp.rank(GUILD, ALICE)
    assert (alice.total_xp, alice.level, alice.xp_into_level, alice.xp_for_level, alice.xp_to_next) == \
        (300, 2, 45, 220, 175)
    assert alice.position == 2
    assert (await world.xp.rank(GUILD, BOB)).position == 2
    assert (await world.xp.rank(GUILD, 1004)).position == 4
    assert (await world.xp.rank(GUILD, CAROL)).position == 1


async def test_rank_positions_are_exact_on_both_halves_of_the_board(world: XpWorld) -> None:
    # Rank counts from the nearer end of the board (above or below the median): both must agree.
    totals = {2000 + n: (n * 37) % 11 * 10 for n in range(30)}     # many ties, some at 0
    await seed_totals(world, totals)
    for user_id, total in totals.items():
        expected = None if total == 0 else 1 + sum(1 for other in totals.values() if other > total)
        assert (await world.xp.rank(GUILD, user_id)).position == expected, (user_id, total)


async def test_rank_of_a_member_without_xp_has_no_position(world: XpWorld) -> None:
    await seed_totals(world, {ALICE: 300})
    nobody = await world.xp.rank(GUILD, BOB)
    assert (nobody.total_xp, nobody.level, nobody.position, nobody.xp_to_next) == (0, 0, None, 100)


async def test_rank_can_leave_out_members_who_left(world: XpWorld) -> None:
    await seed_totals(world, {ALICE: 100, BOB: 200, CAROL: 300})
    assert (await world.xp.rank(GUILD, ALICE)).position == 3
    assert (await world.xp.rank(GUILD, ALICE, is_member={ALICE, BOB})).position == 2


async def test_leaderboard_pages_of_ten_with_ties_skipping_members_who_left(world: XpWorld) -> None:
    # 25 rows: users 1..25 with XP 1000 - 10·user, except 4 and 5 tie; every third user has left.
    totals = {user: 1000 - 10 * user for user in range(1, 26)}
    totals[5] = totals[4]
    await seed_totals(world, totals)
    members = {user for user in totals if user % 3 != 0}       # 17 members
    pages = [await world.xp.leaderboard(GUILD, page, is_member=members) for page in (1, 2, 3)]
    shown = [entry.user_id for page in pages for entry in page.entries]
    assert shown == sorted(members, key=lambda user: (-totals[user], user))
    assert [len(page.entries) for page in pages] == [10, 7, 0]
    assert [page.has_next for page in pages] == [True, False, False]
    first = pages[0].entries
    assert [(entry.user_id, entry.position) for entry in first[:5]] == \
        [(1, 1), (2, 2), (4, 3), (5, 3), (7, 5)]
    assert first[0].level == 4 and first[0].value == 990   # level 4 starts at 770, level 5 at 1155
    # Positions go on across pages.
    assert pages[1].entries[0].position == 11


async def test_leaderboard_leaves_out_members_without_xp(world: XpWorld) -> None:
    await seed_totals(world, {ALICE: 10, BOB: 0})
    board = await world.xp.leaderboard(GUILD)
    assert [entry.user_id for entry in board.entries] == [ALICE]


async def test_a_page_past_every_member_with_xp_is_answered_without_reading_the_board(
        world: XpWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    await seed_totals(world, {user: 5 * user for user in range(0, 21)})   # 20 with XP, one with 0
    assert len((await world.xp.leaderboard(GUILD, 2)).entries) == 10

    def no_board(conn: object) -> None:
        raise AssertionError("the whole board was read for a page past its end")

    monkeypatch.setattr(repository, "ranked", no_board)
    past = await world.xp.leaderboard(GUILD, 3)
    assert past.entries == () and not past.has_next


async def test_leaderboard_accepts_a_member_callable(world: XpWorld) -> None:
    await seed_totals(world, {ALICE: 10, BOB: 20})
    board = await world.xp.leaderboard(GUILD, is_member=lambda user: user == ALICE)
    assert [(entry.user_id, entry.position) for entry in board.entries] == [(ALICE, 1)]


# --- other services granting XP in their own transaction -------------------------------------------

async def test_add_in_transaction_counts_buffered_xp_and_commits_with_the_caller(world: XpWorld) -> None:
    await fixed_xp(world, 60)
    await chat(world, ALICE)                                  # 60 buffered, not in the file
    async with world.tenants.transaction(GUILD) as conn:
        change = await world.xp.add_in_transaction(conn, GUILD, ALICE, 50)
    assert (change.old_level, change.new_level, change.total_xp, change.leveled_up) == (0, 1, 110, True)
    assert (await world.xp.rank(GUILD, ALICE)).total_xp == 110


async def test_add_in_transaction_rolls_back_with_the_caller(world: XpWorld) -> None:
    await fixed_xp(world, 60)
    await chat(world, ALICE)
    with pytest.raises(RuntimeError):
        async with world.tenants.transaction(GUILD) as conn:
            await world.xp.add_in_transaction(conn, GUILD, ALICE, 1000)
            raise RuntimeError("the caller failed later")
    world.clock.advance(minutes=1)
    change = await chat(world, ALICE)                          # the known total was dropped and re-read
    assert change is not None and (change.old_level, change.new_level, change.total_xp) == (0, 1, 120)


async def test_add_in_transaction_uses_the_servers_curve(world: XpWorld) -> None:
    await world.settings.update(GUILD, ADMIN, level_curve="basic")      # level 1 at 50 XP
    async with world.tenants.transaction(GUILD) as conn:
        basic = await world.xp.add_in_transaction(conn, GUILD, ALICE, 50)
    assert (basic.old_level, basic.new_level) == (0, 1)
    async with world.tenants.transaction(GUILD) as conn:              # a value no code wrote: standard
        await conn.execute("UPDATE settings SET value = '\"nonsense\"' WHERE key = 'level_curve'")
        fallback = await world.xp.add_in_transaction(conn, GUILD, BOB, 50)
    assert (fallback.old_level, fallback.new_level) == (0, 0)


async def test_add_many_in_transaction_grants_each_member_on_their_own_total_in_their_order(
        world: XpWorld) -> None:
    await fixed_xp(world, 20)
    await world.admin.set(GUILD, ADMIN, BOB, 90)
    await chat(world, ALICE)                                          # 20 buffered, not in the file
    async with world.tenants.transaction(GUILD) as conn:
        changes = await world.xp.add_many_in_transaction(conn, GUILD, [BOB, CAROL, ALICE], 100)
        assert await world.xp.add_many_in_transaction(conn, GUILD, [], 100) == []
    with pytest.raises(ValueError, match="once"):
        async with world.tenants.transaction(GUILD) as conn:
            await world.xp.add_many_in_transaction(conn, GUILD, [BOB, BOB], 100)
    assert [(c.user_id, c.old_level, c.new_level, c.total_xp) for c in changes] == [
        (BOB, 0, 1, 190), (CAROL, 0, 1, 100), (ALICE, 0, 1, 120)]
    await world.xp.flush(GUILD)
    assert file_rows(world.tenants) == [(ALICE, 120, 1), (BOB, 190, 0), (CAROL, 100, 0)]


# --- members who leave -----------------------------------------------------------------------------

async def test_purge_removes_the_row_the_buffer_and_the_cooldown(world: XpWorld) -> None:
    await fixed_xp(world, 20)
    await chat(world, ALICE)
    await chat(world, BOB)
    await world.xp.flush(GUILD)
    world.clock.advance(minutes=1)
    await chat(world, ALICE)                                  # 20 more, buffered
    report = await world.member_data.purge(GUILD, ALICE)
    assert report.rows_changed["xp"] == 1
    await world.xp.flush(GUILD)
    assert file_rows(world.tenants) == [(BOB, 20, 1)]         # the buffered XP did not come back
    again = await chat(world, ALICE)                          # a returning member starts afresh
    assert again is not None and again.total_xp == 20


async def test_a_message_handled_as_its_author_leaves_does_not_bring_their_xp_back(world: XpWorld) -> None:
    await world.tenants.ensure(GUILD)  # nothing read yet: the message waits for the server's settings
    # The message came first (a spammer posts and is banned at once): its handling reads the
    # settings while the leave's purge waits for the file, then buffers the XP.
    message = asyncio.create_task(world.xp.record_message(GUILD, ALICE, CHANNEL, (), is_bot=False))
    leave = asyncio.create_task(world.member_data.purge(GUILD, ALICE))
    await asyncio.gather(message, leave)
    await world.xp.flush_all()
    assert file_rows(world.tenants) == []


async def test_chat_while_a_server_is_archived_leaves_no_xp_to_write(
        world: XpWorld, caplog: pytest.LogCaptureFixture) -> None:
    await chat(world, ALICE)  # the server's settings are known: the next message waits for nothing
    await world.xp.flush(GUILD)
    async with world.tenants.reading(GUILD):  # the archive has flushed and waits for this reader
        archiving = asyncio.create_task(world.tenants.archive(GUILD))
        await asyncio.sleep(0.05)
        world.clock.advance(minutes=1)
        assert await world.xp.record_message(GUILD, BOB, CHANNEL, (), is_bot=False) is not None
    await archiving

    await world.xp.flush_all()  # was: an error with a traceback every second, until a restart
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert world.xp.pending_xp(GUILD, BOB) == 0
    await world.tenants.ensure(GUILD)  # the bot is added back after the archive's retention
    await world.xp.flush_all()
    assert file_rows(world.tenants) == [], "the old server's XP does not land in the new file"


async def test_a_cooldown_raised_after_an_award_still_holds_once_the_buffer_is_pruned(world: XpWorld) -> None:
    # Quiet members are forgotten after `memory_seconds` (600 s) or the cooldown, whichever is longer;
    # the cooldown that counts is the server's current one, not the one of the member's last award.
    await fixed_xp(world, 20)
    assert await chat(world, ALICE) is not None
    await world.settings.update(GUILD, ADMIN, xp_cooldown_seconds=3600)
    await world.xp.flush_all()
    world.clock.advance(seconds=700)
    world.xp._prune()  # what the background flush does after each round
    assert await chat(world, ALICE) is None, "within the hour only the first message counts"
    world.clock.advance(seconds=2900)
    assert await chat(world, ALICE) is not None


async def test_leaderboard_levels_follow_the_servers_level_curve(world: XpWorld) -> None:
    """/leaderboard shows the level /rank shows: on the server's curve, not the standard one."""
    await world.settings.update(GUILD, ADMIN, level_curve="basic")  # basic: level 2 at 150 XP
    await world.admin.set(GUILD, ADMIN, ALICE, 150)
    board = await world.xp.leaderboard(GUILD)
    [entry] = board.entries
    assert (entry.user_id, entry.value, entry.level) == (ALICE, 150, 2)  # the standard curve says 1
