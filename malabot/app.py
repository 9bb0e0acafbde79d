"""The composition root: settings → tenant manager → scheduler → services → bot.

Nothing else builds these objects, and nothing reaches them through globals; tests build the same
graph on a temporary folder with `build_services(Settings(tenants_dir=tmp_path))`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import discord
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from malabot.clock import Clock, Monotonic, utc_now
from malabot.commands import DEFER_AFTER
from malabot.departures import RecentDepartures
from malabot.features.audit.member_data import audit_member_data
from malabot.features.backups.service import BackupService
from malabot.features.birthdays.member_data import birthday_member_data
from malabot.features.birthdays.service import BirthdayService
from malabot.features.checkins.member_data import checkin_member_data
from malabot.features.checkins.service import CheckinService
from malabot.features.moderation.member_data import moderation_member_data
from malabot.features.moderation.service import ModerationService
from malabot.features.mydata.member_data import erasure_member_data
from malabot.features.mydata.service import MyDataService
from malabot.features.settings.service import SettingsService
from malabot.features.verification.member_data import verification_member_data
from malabot.features.verification.service import VerificationService
from malabot.features.welcome.member_data import welcome_member_data
from malabot.features.welcome.service import WelcomeService
from malabot.features.xp.admin import XpAdmin
from malabot.features.xp.member_data import xp_member_data
from malabot.features.xp.role_ledger import RoleLedger
from malabot.features.xp.service import XpService
from malabot.member_data import OWED_RETRY_SECONDS, MemberData
from malabot.scheduling import build_scheduler
from malabot.settings import Settings
from malabot.tenancy.lock import TenantsLock
from malabot.tenancy.manager import WIPE_RETRY_SECONDS, TenantManager
from malabot.tenancy.opening import DEFAULT_BUSY_TIMEOUT_MS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Waits:
    """How long the bot waits before it gives up or tries again: the production values unless a test
    about the order of events passes shorter ones (in the same order: see tests/e2e/world.py)."""
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS  # for a file another connection holds
    owed_retry_seconds: float = OWED_RETRY_SECONDS  # before a failed leave purge is tried again
    wipe_retry_seconds: float = WIPE_RETRY_SECONDS  # before a wipe that met a reader is tried again
    defer_after: float = DEFER_AFTER  # before a silent command is deferred (Discord's deadline is 3 s)


@dataclass
class Services:
    settings: Settings
    tenants: TenantManager
    guild_settings: SettingsService
    member_data: MemberData
    scheduler: AsyncIOScheduler
    birthdays: BirthdayService
    xp: XpService
    xp_admin: XpAdmin
    role_ledger: RoleLedger  # level roles just changed on Discord, for the next sync of that member
    checkins: CheckinService
    moderation: ModerationService
    welcome: WelcomeService
    verification: VerificationService
    backups: BackupService
    mydata: MyDataService
    clock: Clock
    waits: Waits = field(default_factory=Waits)


def build_services(settings: Settings, *, clock: Clock = utc_now, monotonic: Monotonic = time.monotonic,
                   waits: Waits = Waits()) -> Services:
    tenants = TenantManager(settings.tenants_dir, max_open=settings.max_open_tenants,
                            idle_seconds=settings.tenant_idle_seconds,
                            archive_retention=timedelta(days=settings.archive_retention_days),
                            busy_timeout_ms=waits.busy_timeout_ms, wipe_retry_seconds=waits.wipe_retry_seconds)
    guild_settings = SettingsService(tenants, clock=clock)
    # Members who have just left: MemberData records them, and no write brings their rows back.
    departures = RecentDepartures()
    # Registers its flush before file operations and on shutdown with the tenant manager.
    xp = XpService(tenants, guild_settings, clock=clock, monotonic=monotonic, departures=departures)
    member_data = MemberData(tenants, [
        audit_member_data(),
        moderation_member_data(),
        verification_member_data(),
        birthday_member_data(),
        xp_member_data(),
        checkin_member_data(),
        welcome_member_data(),
        erasure_member_data(),
    ], forget_hooks=[xp.forget_member], flush_hooks=[xp.flush], departures=departures,
        owed_retry_seconds=waits.owed_retry_seconds)
    # Jobs that need the bot (the birthday pass needs its Discord effects) are added once it is ready.
    scheduler = build_scheduler()
    # Before birthdays: a restore replays erasures first, then keeps the celebrations since the backup
    # (both hooks run in the order registered here).
    mydata = MyDataService(tenants, member_data, clock)
    birthdays = BirthdayService(tenants, guild_settings, clock=clock)
    return Services(settings=settings, tenants=tenants, guild_settings=guild_settings,
                    member_data=member_data, scheduler=scheduler, birthdays=birthdays,
                    xp=xp, xp_admin=XpAdmin(xp, guild_settings, clock=clock), role_ledger=RoleLedger(),
                    checkins=CheckinService(tenants, guild_settings, xp, clock=clock),
                    moderation=ModerationService(tenants, guild_settings, clock),
                    welcome=WelcomeService(tenants, guild_settings),
                    verification=VerificationService(tenants, guild_settings, clock=clock),
                    backups=BackupService(tenants, guild_settings, member_data, clock=clock),
                    mydata=mydata, clock=clock, waits=waits)


async def start_services(services: Services) -> None:
    await services.tenants.start()
    await services.xp.start()
    services.scheduler.start()


def pause_scheduler(services: Services) -> None:
    """No new job runs; those under way go on (a stop gives them the handlers' grace)."""
    if services.scheduler.running:
        services.scheduler.pause()


def stop_scheduler(services: Services) -> None:
    """No new job runs; a running one is cancelled (a stop pauses the scheduler first and lets it
    finish, see runtime.py). Safe to call twice."""
    if services.scheduler.running:
        services.scheduler.shutdown(wait=False)


async def stop_services(services: Services) -> None:
    """Stop the jobs, flush pending writes and close every tenant; safe to call twice."""
    stop_scheduler(services)
    await services.tenants.close_all()


def point_pycord_at(api_base_url: str) -> None:
    """py-cord reads its REST base from a class attribute; the gateway URL then comes from /gateway."""
    discord.http.Route.API_BASE_URL = api_base_url


def build_bot(services: Services, **options: Any) -> discord.Bot:
    from malabot.bot import MalaBot

    point_pycord_at(services.settings.api_base_url)
    return MalaBot(services, **options)


def tenants_lock(settings: Settings, holder: str) -> TenantsLock:
    from malabot.tenancy.paths import TenantPaths

    return TenantsLock(TenantPaths(settings.tenants_dir).lock_file, holder)
