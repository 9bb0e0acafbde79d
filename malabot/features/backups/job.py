"""The nightly snapshot job for malabot.scheduling."""

from __future__ import annotations

from datetime import UTC

from apscheduler.triggers.cron import CronTrigger

from malabot.features.backups.service import BackupService
from malabot.scheduling import ScheduledJob

NIGHTLY_SNAPSHOTS = "nightly snapshots"
# A quiet hour in most of the world; fixed in UTC so every server's snapshot is taken in one pass.
SNAPSHOT_HOUR_UTC, SNAPSHOT_MINUTE_UTC = 3, 30


def nightly_snapshot_job(backups: BackupService, *, hour: int = SNAPSHOT_HOUR_UTC,
                         minute: int = SNAPSHOT_MINUTE_UTC) -> ScheduledJob:
    """A snapshot of every server once a day at hour:minute UTC, then what is past the archive retention
    is deleted (BackupService.remove_expired). No catch-up run when added: a bot
    that restarts often would otherwise take many snapshots a day and push the older ones out."""
    trigger = CronTrigger(hour=hour, minute=minute, second=0, timezone=UTC)
    return ScheduledJob(NIGHTLY_SNAPSHOTS, backups.snapshot_all, trigger)
