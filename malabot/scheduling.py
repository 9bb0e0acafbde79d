"""Background jobs of the bot on APScheduler 3 (AsyncIOScheduler, in the bot's event loop).

The composition root builds the scheduler and adds jobs; there is no module-level scheduler. A job is
a plain description (ScheduledJob), so adding one (the nightly snapshots, which also apply the archive
retention) is one function returning a ScheduledJob and one `add_job` call.

Every job runs at most one instance at a time, and missed runs collapse into one (coalesce): after
downtime or a blocked loop a job runs once, late, rather than several times in a row. A job that
serialises its own runs may allow a second instance, so that a run coming due while another is under
way waits for it instead of being dropped (see birthday_pass_job).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

from malabot.features.birthdays.announcer import BirthdayPass

log = logging.getLogger(__name__)

BIRTHDAY_PASS = "birthday pass"
# The name of the task a job runs in: a stop lets runs under way finish, as it lets event handlers.
JOB_TASK_PREFIX = "scheduled job: "


@dataclass(frozen=True)
class ScheduledJob:
    id: str                                  # also its name in logs; adding the same id again replaces it
    run: Callable[[], Awaitable[object]]     # a coroutine function, awaited in the bot's loop
    trigger: BaseTrigger
    run_at_start: bool = False               # also run once as soon as it is added (catch-up)
    # How late a run may start and still run (start-up, a busy loop); None = however late.
    misfire_grace_seconds: int | None = 3600
    # Instances at once; APScheduler drops (does not postpone) a run that comes due beyond this.
    max_instances: int = 1


def build_scheduler(jobs: Iterable[ScheduledJob] = ()) -> AsyncIOScheduler:
    """A scheduler in UTC with the given jobs; start it inside the running event loop."""
    scheduler = AsyncIOScheduler(timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1},
                                 executors={"default": _QuietOnShutdownExecutor()})
    for job in jobs:
        add_job(scheduler, job)
    return scheduler


def add_job(scheduler: AsyncIOScheduler, job: ScheduledJob, *, now: datetime | None = None) -> None:
    """Add (or replace) a job; works before and after the scheduler is started."""
    options: dict[str, object] = {}
    if job.run_at_start:
        options["next_run_time"] = now or datetime.now(UTC)
    scheduler.add_job(_quiet_on_shutdown(job), job.trigger, id=job.id, name=job.id, replace_existing=True,
                      coalesce=True, max_instances=job.max_instances, misfire_grace_time=job.misfire_grace_seconds,
                      **options)


def _quiet_on_shutdown(job: ScheduledJob) -> Callable[[], Awaitable[object]]:
    """A stop lets a job under way finish within its grace (runtime.py: the task is named for it), then
    cancels it: that is logged as a line, not as a failure with a traceback. The next run picks up where
    it stopped, except what the birthday pass claimed and did not show (at most once, never twice)."""

    async def run() -> object:
        task = asyncio.current_task()
        if task is not None:
            task.set_name(JOB_TASK_PREFIX + job.id)
        try:
            return await job.run()
        except asyncio.CancelledError:
            _log_interrupted(job.id)
            return None

    return run


def _log_interrupted(job_id: str) -> None:
    log.info("%s: interrupted by shutdown", job_id)


class _QuietOnShutdownExecutor(AsyncIOExecutor):
    """APScheduler shuts down in a later loop pass, so a run can be started just before and its task
    cancelled before its first step, where `_quiet_on_shutdown` cannot catch it; APScheduler would
    log that as an error with a traceback."""

    def _run_job_error(self, job_id: str, exc: BaseException, traceback: object = None) -> None:
        if isinstance(exc, asyncio.CancelledError):
            _log_interrupted(job_id)
            self._run_job_success(job_id, [])  # ends the run's bookkeeping, no event
            return
        super()._run_job_error(job_id, exc, traceback)


def every_quarter_hour() -> CronTrigger:
    """At minutes 0, 15, 30 and 45 of every hour, UTC: every IANA zone's offset is a whole number of
    quarter hours (+05:30 Kolkata, +05:45 Kathmandu, -03:30 St. John's), so each server's local hour
    begins on one of them (the jobs handle servers' own hours themselves)."""
    return CronTrigger(minute="0,15,30,45", second=0, timezone=UTC)


def birthday_pass_job(birthday_pass: BirthdayPass) -> ScheduledJob:
    """The birthday pass every quarter hour, so that it announces at the start of each server's
    `birthday_hour` whatever its offset, plus one run when added, to catch up on a pass missed while
    down. A server already settled for its day is skipped without opening its file (BirthdayPass), so
    most of these runs cost a look at a cache per server.

    Add it once the bot's member cache is ready (e.g. from on_ready): the pass leaves members it
    cannot see unclaimed, and a start-up run before the cache is filled would celebrate nobody.
    Adding it again on a reconnect is harmless: it replaces the job and the pass is idempotent.

    Two instances: the start-up (or reconnect) run can still be under way when the next quarter hour
    comes, and APScheduler would drop that run; the pass takes one lock per run, so the second waits
    for the first and then looks at the new time (a server announcing at 23:00 would lose the day).
    """
    return ScheduledJob(BIRTHDAY_PASS, birthday_pass.run, every_quarter_hour(), run_at_start=True,
                        max_instances=2)
