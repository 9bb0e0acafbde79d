"""The scheduler and its jobs: triggers, the start-up run, replacing a job."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from malabot.features.birthdays.announcer import BirthdayPass
from malabot.features.settings.service import SettingsService
from malabot.features.xp.models import LevelChange
from malabot.scheduling import (
    BIRTHDAY_PASS,
    ScheduledJob,
    add_job,
    birthday_pass_job,
    build_scheduler,
    every_quarter_hour,
)
from malabot.tenancy.manager import TenantManager


class NoDiscord:
    async def announce(self, guild_id: int, channel_id: int, user_id: int, text: str) -> bool:
        return False

    async def add_role(self, guild_id: int, user_id: int, role_id: int) -> bool:
        return False

    async def remove_role(self, guild_id: int, user_id: int, role_id: int) -> bool:
        return False

    def is_member(self, guild_id: int, user_id: int) -> bool:
        return False

    def knows_members(self, guild_id: int) -> bool:
        return False

    def holds_role(self, guild_id: int, user_id: int, role_id: int) -> bool:
        return False

    def in_screening(self, guild_id: int, user_id: int) -> bool:
        return False

    async def tell_admins(self, guild_id: int, problems: list[str]) -> None:
        return None


class NoXp:
    async def add_many_in_transaction(self, conn: object, guild_id: int, user_ids: Sequence[int],
                                      amount: int) -> list[LevelChange]:
        raise AssertionError("no XP in these tests")


def a_birthday_pass(tmp_path: Path) -> BirthdayPass:
    tenants = TenantManager(tmp_path)
    return BirthdayPass(tenants, SettingsService(tenants), NoDiscord(), NoXp())


def test_every_quarter_hour_fires_at_minutes_0_15_30_and_45_in_utc() -> None:
    trigger = every_quarter_hour()
    after = datetime(2026, 6, 15, 7, 0, 1, tzinfo=UTC)
    assert trigger.get_next_fire_time(None, after) == datetime(2026, 6, 15, 7, 15, tzinfo=UTC)
    assert trigger.get_next_fire_time(None, datetime(2026, 6, 15, 7, 50, tzinfo=UTC)) == \
        datetime(2026, 6, 15, 8, 0, tzinfo=UTC)
    exactly = datetime(2026, 6, 15, 23, 45, tzinfo=UTC)
    assert trigger.get_next_fire_time(None, exactly) == exactly


def test_the_birthday_pass_runs_every_quarter_hour_and_once_when_added(tmp_path: Path) -> None:
    birthday_pass = a_birthday_pass(tmp_path)
    job = birthday_pass_job(birthday_pass)
    assert job.id == BIRTHDAY_PASS
    assert job.run == birthday_pass.run
    assert job.run_at_start
    scheduler = build_scheduler()
    added_at = datetime(2026, 6, 15, 7, 20, tzinfo=UTC)
    add_job(scheduler, job, now=added_at)
    [scheduled] = scheduler.get_jobs()
    assert scheduled.id == BIRTHDAY_PASS
    assert scheduled.next_run_time == added_at
    assert scheduled.max_instances == 2 and scheduled.coalesce  # a run due meanwhile waits, not dropped
    assert scheduled.trigger.get_next_fire_time(None, added_at) == datetime(2026, 6, 15, 7, 30, tzinfo=UTC)


async def test_adding_a_job_again_replaces_it(tmp_path: Path) -> None:
    scheduler = build_scheduler([birthday_pass_job(a_birthday_pass(tmp_path))])
    add_job(scheduler, birthday_pass_job(a_birthday_pass(tmp_path)))  # before start
    scheduler.start(paused=True)
    try:
        add_job(scheduler, birthday_pass_job(a_birthday_pass(tmp_path)))  # while running (a reconnect)
        assert [job.id for job in scheduler.get_jobs()] == [BIRTHDAY_PASS]
    finally:
        scheduler.shutdown(wait=False)


async def test_a_run_at_start_job_runs_as_soon_as_the_scheduler_starts() -> None:
    ran = asyncio.Event()

    async def mark() -> None:
        ran.set()

    async def scheduled_work() -> None:
        pass

    scheduler = build_scheduler([
        ScheduledJob("catch-up", mark, every_quarter_hour(), run_at_start=True),
        ScheduledJob("scheduled only", scheduled_work, every_quarter_hour()),
    ])
    started = datetime.now(UTC)
    scheduler.start()
    try:
        await asyncio.wait_for(ran.wait(), timeout=10)  # a bound, not a timing assertion
        catch_up, scheduled = scheduler.get_job("catch-up"), scheduler.get_job("scheduled only")
        # After its start-up run the catch-up job is back on its trigger, like the other.
        for job in (catch_up, scheduled):
            assert job.next_run_time > started
            assert (job.next_run_time.minute % 15, job.next_run_time.second) == (0, 0)
    finally:
        scheduler.shutdown(wait=False)



async def test_a_run_cancelled_by_shutdown_before_its_first_step_is_no_error(caplog: pytest.LogCaptureFixture) -> None:
    """APScheduler shuts down in a later loop pass. A SIGTERM just after on_ready added the birthday
    pass queues that shutdown behind the wakeup that starts the run, so the run's task is created and
    cancelled before its first step: the job is interrupted, not failed (it logged an error with a
    traceback)."""
    caplog.set_level(logging.INFO)
    began = asyncio.Event()

    async def work() -> None:
        began.set()

    scheduler = build_scheduler()
    scheduler.start()
    await asyncio.sleep(0.01)  # its first wakeup is done
    add_job(scheduler, ScheduledJob("catch-up", work, every_quarter_hour(), run_at_start=True))  # as on_ready does
    scheduler.shutdown(wait=False)  # the signal, in the same loop pass
    for _ in range(10):  # the wakeup, the shutdown, the cancelled task and its done-callback
        await asyncio.sleep(0)
    assert not scheduler.running and not began.is_set()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert "catch-up: interrupted by shutdown" in caplog.messages
