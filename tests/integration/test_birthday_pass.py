"""The birthday pass on real tenant files, with a recording fake of the Discord side.

The fake implements the BirthdayEffects port (announce / add_role / remove_role / is_member / holds_role); the
tenant files, settings, XP service and pass are the real ones. "Restart" means a new tenant manager
and new services on the same folder; "two processes" means two of them at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.triggers.base import BaseTrigger
from birthday_rows import stored_celebration

from malabot.clock import MovableClock
from malabot.features.backups.service import BackupService
from malabot.features.birthdays.announcer import (
    ROLE_RETRY_DAYS,
    BirthdayPass,
    PassReport,
    announcement_text,
    build_birthday_pass,
)
from malabot.features.birthdays.member_data import birthday_member_data
from malabot.features.birthdays.service import BirthdayService
from malabot.features.settings.service import SettingsService
from malabot.features.xp.service import XpService
from malabot.guild_settings import GuildSettings
from malabot.member_data import MemberData
from malabot.scheduling import birthday_pass_job, build_scheduler
from malabot.tenancy.manager import TenantManager

GUILD = 111_111_111_111_111_111
CHANNEL, ROLE = 500, 600
ALICE, BOB = 1001, 1002

# Europe/Berlin is UTC+2 in June: 09:00 local is 07:00 UTC.
JUNE_15_0859_BERLIN = datetime(2026, 6, 15, 6, 59, tzinfo=UTC)
JUNE_15_0900_BERLIN = datetime(2026, 6, 15, 7, 0, tzinfo=UTC)
JUNE_15_2359_BERLIN = datetime(2026, 6, 15, 21, 59, tzinfo=UTC)
JUNE_16_0000_BERLIN = datetime(2026, 6, 15, 22, 0, tzinfo=UTC)
JUNE_16_1000_BERLIN = datetime(2026, 6, 16, 8, 0, tzinfo=UTC)


@dataclass
class RecordingDiscord:
    """The Discord side of the pass, recorded. Set fields to make calls fail or raise."""

    absent: set[int] = field(default_factory=set)
    screening: set[int] = field(default_factory=set)          # members who have not accepted the rules
    refused_channels: set[int] = field(default_factory=set)
    refused_roles: set[int] = field(default_factory=set)
    raising: set[str] = field(default_factory=set)           # names of effects that raise
    announcements: list[tuple[int, int, int, str]] = field(default_factory=list)
    roles: dict[tuple[int, int], set[int]] = field(default_factory=dict)
    role_calls: list[tuple[str, int, int, int]] = field(default_factory=list)
    told: list[tuple[int, list[str]]] = field(default_factory=list)  # problems told to the admins
    observe: Callable[[], None] | None = None                 # called inside every effect

    def _call(self, name: str) -> None:
        if self.observe is not None:
            self.observe()
        if name in self.raising:
            raise RuntimeError(f"{name} exploded")

    async def announce(self, guild_id: int, channel_id: int, user_id: int, text: str) -> bool:
        await asyncio.sleep(0)
        self._call("announce")
        if channel_id in self.refused_channels:
            return False
        self.announcements.append((guild_id, channel_id, user_id, text))
        return True

    async def add_role(self, guild_id: int, user_id: int, role_id: int) -> bool:
        self._call("add_role")
        self.role_calls.append(("add", guild_id, user_id, role_id))
        if role_id in self.refused_roles:
            return False
        self.roles.setdefault((guild_id, user_id), set()).add(role_id)
        return True

    async def remove_role(self, guild_id: int, user_id: int, role_id: int) -> bool:
        self._call("remove_role")
        self.role_calls.append(("remove", guild_id, user_id, role_id))
        if role_id in self.refused_roles:
            return False
        self.roles.get((guild_id, user_id), set()).discard(role_id)
        return True

    def is_member(self, guild_id: int, user_id: int) -> bool:
        return user_id not in self.absent

    def knows_members(self, guild_id: int) -> bool:
        return True

    def holds_role(self, guild_id: int, user_id: int, role_id: int) -> bool:
        return role_id in self.roles_of(user_id, guild_id)

    def in_screening(self, guild_id: int, user_id: int) -> bool:
        return user_id in self.screening

    async def tell_admins(self, guild_id: int, problems: list[str]) -> None:
        self.told.append((guild_id, problems))

    def roles_of(self, user_id: int, guild_id: int = GUILD) -> set[int]:
        return self.roles.get((guild_id, user_id), set())


@dataclass
class Bot:
    """The services of one running bot process on a tenants folder."""

    tenants: TenantManager
    settings: SettingsService
    xp: XpService
    birthdays: BirthdayService
    birthday_pass: BirthdayPass

    async def xp_of(self, user_id: int, guild_id: int = GUILD) -> int:
        async with self.tenants.reading(guild_id) as conn, \
                conn.execute("SELECT xp FROM xp WHERE user_id = ?", (user_id,)) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def celebration(self, user_id: int, year: int, guild_id: int = GUILD) -> dict[str, object] | None:
        async with self.tenants.reading(guild_id) as conn:
            return await stored_celebration(conn, user_id, year)


BotFactory = Callable[..., AbstractAsyncContextManager[Bot]]


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock(JUNE_15_0900_BERLIN)


@pytest.fixture
def discord() -> RecordingDiscord:
    return RecordingDiscord()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "tenants"
    path.mkdir()
    return path


@pytest.fixture
def running_bot(folder: Path, clock: MovableClock, discord: RecordingDiscord) -> BotFactory:
    @asynccontextmanager
    async def running(effects: RecordingDiscord | None = None, *, max_open: int = 256,
                      concurrency: int = 4) -> AsyncIterator[Bot]:
        tenants = TenantManager(folder, max_open=max_open)
        await tenants.start()
        settings = SettingsService(tenants)
        xp = XpService(tenants, settings, clock=clock, monotonic=clock.monotonic)
        birthdays = BirthdayService(tenants, settings, clock=clock)
        bot = Bot(tenants, settings, xp, birthdays,
                  build_birthday_pass(tenants, settings, birthdays, effects or discord, xp, clock=clock,
                                      concurrency=concurrency))
        try:
            yield bot
        finally:
            await tenants.close_all()

    return running


@pytest.fixture
async def bot(running_bot: BotFactory) -> AsyncIterator[Bot]:
    async with running_bot() as running:
        await configure(running)
        yield running


async def configure(bot: Bot, guild_id: int = GUILD, **overrides: object) -> None:
    values: dict[str, object] = {"timezone": "Europe/Berlin", "birthday_channel_id": CHANNEL,
                                 "birthday_role_id": ROLE, "birthday_hour": 9}
    await bot.settings.update(guild_id, None, **{**values, **overrides})


def announced_users(discord: RecordingDiscord) -> list[int]:
    return [user_id for _, _, user_id, _ in discord.announcements]


# --- once, and only once -----------------------------------------------------------------------------

async def test_nothing_before_the_hour_then_one_announcement_role_and_xp(
        bot: Bot, clock: MovableClock, discord: RecordingDiscord) -> None:
    await bot.birthdays.set(GUILD, ALICE, 6, 15)
    await bot.birthdays.set(GUILD, BOB, 6, 16)
    clock.now = JUNE_15_0859_BERLIN
    await bot.birthday_pass.run()
    assert discord.announcements == []
    assert await bot.celebration(ALICE, 2026) is None

    clock.now = JUNE_15_0900_BERLIN
    report = await bot.birthday_pass.run()
    assert discord.announcements == [(GUILD, CHANNEL, ALICE, f"Happy birthday <@{ALICE}>! 🎂")]
    assert discord.roles_of(ALICE) == {ROLE}
    assert await bot.xp_of(ALICE) == 100
    assert (report.celebrated, report.announced, report.roles_added, report.xp_awarded) == (1, 1, 1, 100)
    row = await bot.celebration(ALICE, 2026)
    assert row is not None and row["announced_at"] is not None and row["role_id"] == ROLE
    assert row["local_day"] == "2026-06-15"


async def test_a_second_pass_and_a_restart_do_nothing_again(
        bot: Bot, running_bot: BotFactory, clock: MovableClock, discord: RecordingDiscord) -> None:
    await bot.birthdays.set(GUILD, ALICE, 6, 15)
    await bot.birthday_pass.run()
    clock.now = JUNE_15_2359_BERLIN
    second = await bot.birthday_pass.run()
    await bot.tenants.close_all()

    async with running_bot() as restarted:
        after_restart = await restarted.birthday_pass.run()
        assert await restarted.xp_of(ALICE) == 100

    assert announced_users(discord) == [ALICE]
    assert [call[0] for call in discord.role_calls] == ["add"]
    assert second.celebrated == after_restart.celebrated == 0


async def test_two_processes_passing_at_once_celebrate_once(
        bot: Bot, running_bot: BotFactory, discord: RecordingDiscord) -> None:
    for user_id in range(2000, 2020):
        await bot.birthdays.set(GUILD, user_id, 6, 15)
    other_discord = RecordingDiscord()
    async with running_bot(other_discord) as other:
        await asyncio.gather(bot.birthday_pass.run(), other.birthday_pass.run())
    everyone = announced_users(discord) + announced_users(other_discord)
    assert sorted(everyone) == list(range(2000, 2020))
    assert [await bot.xp_of(user_id) for user_id in range(2000, 2020)] == [100] * 20


# --- servers with nothing new are not reopened ------------------------------------------------------------

async def test_a_settled_server_is_skipped_for_the_rest_of_its_day(
        bot: Bot, clock: MovableClock, discord: RecordingDiscord) -> None:
    await bot.birthdays.set(GUILD, ALICE, 6, 15)
    assert (await bot.birthday_pass.run()).visited == 1
    clock.now = JUNE_15_2359_BERLIN
    assert (await bot.birthday_pass.run()).visited == 0
    clock.now = JUNE_16_0000_BERLIN
    assert (await bot.birthday_pass.run()).visited == 1  # a new day: yesterday's role to take back
    assert announced_users(discord) == [ALICE]


async def test_a_birthday_set_later_on_its_own_day_is_still_celebrated_that_day(
        bot: Bot, clock: MovableClock, discord: RecordingDiscord) -> None:
    await bot.birthdays.set(GUILD, ALICE, 6, 15)
    await bot.birthday_pass.run()
    await bot.birthdays.set(GUILD, BOB, 6, 15)
    clock.now = JUNE_15_2359_BERLIN
    await bot.birthday_pass.run()
    assert announced_users(discord) == [ALICE, BOB]


async def test_a_backup_or_restore_makes_the_pass_look_at_the_file_again(bot: Bot) -> None:
    await bot.birthday_pass.run()
    assert (await bot.birthday_pass.run()).visited == 0
    await bot.tenants.backup(GUILD)
    assert (await bot.birthday_pass.run()).visited == 1


# --- the schedule ---------------------------------------------------------------------------------------

async def run_on_schedule(bot: Bot, clock: MovableClock, start: datetime, end: datetime
                          ) -> list[tuple[datetime, PassReport]]:
    """The pass at every time the scheduled job fires from `start` until `end`, with its reports."""
    trigger = birthday_pass_job(bot.birthday_pass).trigger
    reports = []
    fire = trigger.get_next_fire_time(None, start)
    while fire is not None and fire < end:
        clock.now = fire
        reports.append((fire, await bot.birthday_pass.run()))
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return reports


@pytest.mark.parametrize("zone", ["Asia/Kolkata", "Asia/Kathmandu", "America/St_Johns", "Europe/Berlin"])
async def test_the_birthday_is_announced_and_its_role_taken_back_as_the_hours_begin(
        bot: Bot, clock: MovableClock, discord: RecordingDiscord, zone: str) -> None:
    # Offsets of +05:30, +05:45 and -03:30: the servers' hours do not begin on a whole UTC hour.
    await configure(bot, timezone=zone, birthday_hour=9)
    await bot.birthdays.set(GUILD, ALICE, 6, 15)
    reports = await run_on_schedule(bot, clock, datetime(2026, 6, 14, 12, 0, tzinfo=UTC),
                                    datetime(2026, 6, 16, 12, 0, tzinfo=UTC))
    announced = [clock_at for clock_at, report in reports if report.announced]
    removed = [clock_at for clock_at, report in reports if report.roles_removed]
    local = ZoneInfo(zone)
    assert [f"{at.astimezone(local):%m-%d %H:%M}" for at in announced] == ["06-15 09:00"]
    assert [f"{at.astimezone(local):%m-%d %H:%M}" for at in removed] == ["06-16 00:00"]


async def test_a_settled_server_is_not_read_again_in_the_passes_of_the_rest_of_its_day(
        bot: Bot, clock: MovableClock, discord: RecordingDiscord) -> None:
    await bot.birthdays.set(GUILD, ALICE, 6, 15)
    await bot.birthdays.set(GUILD, BOB, 6, 16)
    # June 15 and 16 in Berlin, every quarter hour: each day's file is read at midnight (yesterday's
    # role) and at 09:00 (the announcement), never in the ~90 passes between.
    reports = await run_on_schedule(bot, clock, JUNE_16_0000_BERLIN - timedelta(days=1),
                                    JUNE_16_0000_BERLIN + timedelta(days=1))
    assert len(reports) == 2 * 24 * 4
    visits = [f"{clock_at.astimezone(ZoneInfo('Europe/Berlin')):%d %H:%M}"
              for clock_at, report in reports if report.visited]
    assert visits == ["15 00:00", "15 09:00", "16 00:00", "16 09:00"]
    assert announced_users(discord) == [ALICE, BOB]


# --- a restore -----------------------------------------------------------------------------------------
# The nightly snapshot (03:30 UTC) comes before the day's celebrations: what they did on Discord stays.

async def test_the_birthday_role_is_taken_back_after_restoring_a_snapshot_from_before_it(
        bot: Bot, clock: MovableClock, discord: RecordingDiscord) -> None:
    backups = BackupService(bot.tenants, bot.settings, MemberData(bot.tenants, [birthday_member_data()]), clock=clock)
    await bot.birthdays.set(GUILD, ALICE, 6, 15)
    clock.now = datetime(2026, 6, 15, 3, 30, tzinfo=UTC)        # the nightly snapshot, 05:30 in Berlin
    snapshot = await backups.take_snapshot(GUILD)
    clock.now = JUNE_15_0900_BERLIN                             # announced, role given
    await bot.birthday_pass.run()
    assert discord.roles_of(ALICE) == {ROLE}

    clock.now = JUNE_16_1000_BERLIN                             # the next day the owner restores it
    await backups.restore(GUILD, snapshot.id)
    report = await bot.birthday_pass.run()
    assert report.roles_removed == 1 and discord.roles_of(ALICE) == set()
    row = await bot.celebration(ALICE, 2026)
    assert row is not None and row["role_removed_at"] is not None and row["announced_at"] is not None


async def test_a_same_day_restore_of_a_snapshot_from_before_the_birthday_does_not_celebrate_again(
        bot: Bot, clock: MovableClock, discord: RecordingDiscord) -> None:
    backups = BackupService(bot.tenants, bot.settings, MemberData(bot.tenants, [birthday_member_data()]), clock=clock)
    await bot.birthdays.set(GUILD, ALICE, 6, 15)
    clock.now = datetime(2026, 6, 15, 3, 30, tzinfo=UTC)        # the nightly snapshot
    snapshot = await backups.take_snapshot(GUILD)
    clock.now = JUNE_15_0900_BERLIN                             # announced
    await bot.birthday_pass.run()
    clock.now = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)        # 14:00 Berlin: the owner restores
    await backups.restore(GUILD, snapshot.id)
    clock.now = datetime(2026, 6, 15, 13, 0, tzinfo=UTC)        # the next pass
    report = await bot.birthday_pass.run()
    assert report.celebrated == 0 and announced_users(discord) == [ALICE]
    assert [call[0] for call in discord.role_calls] == ["add"]


async def test_a_restore_over_data_whose_celebrations_cannot_be_read_goes_on_and_says_so(
        bot: Bot, clock: MovableClock, caplog: pytest.LogCaptureFixture) -> None:
    # Damaged data is what a restore is for: at worst a role given since the backup stays.
    await bot.birthdays.set(GUILD, ALICE, 6, 15)
    backup = await bot.tenants.backup(GUILD)
    await bot.tenants.close(GUILD)
    live = bot.tenants.paths.live(GUILD)
    live.write_bytes(live.read_bytes()[:4096])
    await bot.tenants.restore(GUILD, backup)
    assert "birthday celebrations of the replaced data" in caplog.text and "cannot be read" in caplog.text
    assert await bot.birthdays.show(GUILD, ALICE) is not None


# --- downtime -------------------------------------------------------------------------------------------

async def test_a_pass_later_the_same_local_day_catches_up(
        bot: Bot, clock: MovableClock, discord: RecordingDiscord) -> None:
    await bot.birthdays.set(GUILD, ALICE, 6, 15)
    clock.now = JUNE_15_2359_BERLIN  # down from before 09:00 until a minute before midnight
    await bot.birthday_pass.run()
    assert announced_users(discord) == [ALICE]


async def test_a_pass_only_the_next_local_day_does_not_announce_yesterday(
        bot: Bot, clock: MovableClock, discord: RecordingDiscord) -> None:
    await bot.birthdays.set(GUILD, ALICE, 6, 15)
    clock.now = JUNE_16_0000_BERLIN  # still June 15 in UTC, already June 16 in Berlin
    await bot.birthday_pass.run()
    clock.now = JUNE_16_1000_BERLIN
    await bot.birthday_pass.run()
    assert discord.announcements == []
    assert await bot.xp_of(ALICE) == 0


async def test_the_role_is_taken_back_on_the_first_pass_of_the_next_day(
        bot: Bot, clock: MovableClock, discord: RecordingDiscord) -> None:
    await bot.birthdays.set(GUILD, ALICE, 6, 15)
    await bot.birthday_pass.run()
    clock.now = JUNE_15_2359_BERLIN
    await bot.birthday_pass.run()
    assert discord.roles_of(ALICE) == {ROLE}
    clock.now = JUNE_16_0000_BERLIN  # before the announcement hour, but a new day
    report = await bot.birthday_pass.run()
    assert report.roles_removed == 1
    assert discord.roles_of(ALICE) == set()
    row = await bot.celebration(ALICE, 2026)
    assert row is not None and row["role_removed_at"] is not None


async def test_the_role_is_taken_back_after_downtime_and_a_restart(
        bot: Bot, running_bot: BotFactory, clock: MovableClock, discord: RecordingDiscord) -> None:
    await bot.birthdays.set(GUILD, ALICE, 6, 15)
    await bot.birthday_pass.run()
    await bot.tenants.close_all()
    clock.now = datetime(2026, 6, 19, 3, 0, tzinfo=UTC)  # down for days; 05:00 in Berlin
    async with running_bot() as restarted:
        await restarted.birthday_pass.run()
        await restarted.birthday_pass.run()
    assert discord.roles_of(ALICE) == set()
    assert [call[0] for call in discord.role_calls] == ["add", "remove"]


async def test_a_role_setting_removed_since_still_gets_its_role_taken_back_at_the_hour(
        bot: Bot, clock: MovableClock, discord: RecordingDiscord) -> None:
    await bot.birthdays.set(GUILD, ALICE, 6, 15)
    await bot.birthday_pass.run()
    await configure(bot, birthday_role_id=None)
    clock.now = JUNE_16_1000_BERLIN
    await bot.birthday_pass.run()
    assert discord.roles_of(ALICE) == set()


# --- XP, dates and zones ------------------------------------------------------------------------------

async def test_xp_is_awarded_once_per_year_and_again_the_next_year(
        bot: Bot, clock: MovableClock, discord: RecordingDiscord) -> None:
    await configure(bot, birthday_xp=250)
    await bot.birthdays.set(GUILD, ALICE, 6, 15)
    for hour in (7, 8, 12, 21):
        clock.now = datetime(2026, 6, 15, hour, tzinfo=UTC)
        await bot.birthday_pass.run()
    assert await bot.xp_of(ALICE) == 250
    clock.now = datetime(2027, 6, 15, 7, tzinfo=UTC)
    await bot.birthday_pass.run()
    await bot.birthday_pass.run()
    assert await bot.xp_of(ALICE) == 500
    assert announced_users(discord) == [ALICE, ALICE]


async def test_no_xp_setting_still_celebrates(bot: Bot, discord: RecordingDiscord) -> None:
    await configure(bot, birthday_xp=0)
    await bot.birthdays.set(GUILD, ALICE, 6, 15)
    report = await bot.birthday_pass.run()
    assert announced_users(discord) == [ALICE]
    assert await bot.xp_of(ALICE) == 0
    assert report.level_changes == []


async def test_feb_29_is_celebrated_on_feb_28_of_a_common_year(
        bot: Bot, clock: MovableClock, discord: RecordingDiscord) -> None:
    await configure(bot, timezone="UTC")
    await bot.birthdays.set(GUILD, ALICE, 2, 29, 2000)
    await bot.birthdays.set(GUILD, BOB, 2, 28)
    clock.now = datetime(2027, 2, 28, 9, tzinfo=UTC)
    await bot.birthday_pass.run()
    assert sorted(announced_users(discord)) == [ALICE, BOB]
    clock.now = datetime(2027, 3, 1, 9, tzinfo=UTC)
    await bot.birthday_pass.run()
    assert len(discord.announcements) == 2
    row = await bot.celebration(ALICE, 2027)
    assert row is not None and row["local_day"] == "2027-02-28"


async def test_the_day_and_hour_are_the_servers_own(
        bot: Bot, clock: MovableClock, discord: RecordingDiscord) -> None:
    await configure(bot, timezone="Pacific/Auckland", birthday_hour=0)  # UTC+12 in June
    await bot.birthdays.set(GUILD, ALICE, 6, 16)
    clock.now = datetime(2026, 6, 15, 11, 59, tzinfo=UTC)  # 23:59 on June 15 in Auckland
    await bot.birthday_pass.run()
    assert discord.announcements == []
    clock.now = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)  # midnight, June 16 in Auckland
    await bot.birthday_pass.run()
    assert announced_users(discord) == [ALICE]


async def test_an_hour_skipped_by_dst_is_announced_at_the_next_pass(
        bot: Bot, clock: MovableClock, discord: RecordingDiscord) -> None:
    await configure(bot, birthday_hour=2)  # 02:00 does not exist in Berlin on 2026-03-29
    await bot.birthdays.set(GUILD, ALICE, 3, 29)
    clock.now = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)  # 01:00 CET
    await bot.birthday_pass.run()
    assert discord.announcements == []
    clock.now = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00 CEST
    await bot.birthday_pass.run()
    assert announced_users(discord) == [ALICE]


async def test_the_template_gets_the_age_only_when_the_year_is_known(
        bot: Bot, discord: RecordingDiscord) -> None:
    await configure(bot, birthday_template="{member} turns {age} today!")
    await bot.birthdays.set(GUILD, ALICE, 6, 15, 1990)
    await bot.birthdays.set(GUILD, BOB, 6, 15)
    await bot.birthday_pass.run()
    assert sorted(text for *_, text in discord.announcements) == [
        f"<@{ALICE}> turns 36 today!", f"<@{BOB}> turns today!"]


def test_an_unusable_template_falls_back_to_the_default() -> None:
    # Settings validate templates, so only a file written by older code could hold one like this.
    stored = GuildSettings.model_construct(birthday_template="Hooray {member.name}!")
    assert announcement_text(GUILD, stored, ALICE, None) == f"Happy birthday <@{ALICE}>! 🎂"


def test_a_template_empty_without_an_age_falls_back_to_the_default_for_a_member_with_no_year() -> None:
    # `/config` refuses it, but an older bot's file may hold it; Discord refuses an empty message.
    stored = GuildSettings(birthday_template="{age}th")
    assert announcement_text(GUILD, stored, ALICE, None) == f"Happy birthday <@{ALICE}>! 🎂"
    assert announcement_text(GUILD, stored, ALICE, 30) == "30th"


# --- failures ---------------------------------------------------------------------------------------------

async def test_a_refused_announcement_is_logged_with_the_guild_and_never_repeated(
        bot: Bot, clock: MovableClock, discord: RecordingDiscord, caplog: pytest.LogCaptureFixture) -> None:
    discord.refused_channels.add(CHANNEL)
    await bot.birthdays.set(GUILD, ALICE, 6, 15)
    await bot.birthdays.set(GUILD, BOB, 6, 15)
    with caplog.at_level(logging.WARNING):
        report = await bot.birthday_pass.run()
    assert report.celebrated == 2 and report.announced == 0
    assert str(GUILD) in caplog.text
    assert discord.roles_of(ALICE) == discord.roles_of(BOB) == {ROLE}  # the rest still happened
    row = await bot.celebration(ALICE, 2026)
    assert row is not None and row["announced_at"] is None
    discord.refused_channels.clear()
    clock.now = JUNE_15_2359_BERLIN
    await bot.birthday_pass.run()
    assert discord.announcements == []  # at most once: the claim is spent


async def test_effects_that_raise_do_not_stop_the_pass(
        bot: Bot, clock: MovableClock, discord: RecordingDiscord, caplog: pytest.LogCaptureFixture) -> None:
    discord.raising.update({"announce", "add_role"})
    await bot.birthdays.set(GUILD, ALICE, 6, 15)
    await bot.birthdays.set(GUILD, BOB, 6, 15)
    with caplog.at_level(logging.WARNING):
        report = await bot.birthday_pass.run()
    assert report.celebrated == 2
    assert await bot.xp_of(ALICE) == await bot.xp_of(BOB) == 100
    assert f"guild {GUILD}" in caplog.text
    # Whether the role was given is unknown, so it is still taken back after the day.
    discord.raising.clear()
    clock.now = JUNE_16_0000_BERLIN
    report = await bot.birthday_pass.run()
    assert report.roles_removed == 2


async def test_a_role_that_could_not_be_given_is_not_taken_back(
        bot: Bot, clock: MovableClock, discord: RecordingDiscord) -> None:
    discord.refused_roles.add(ROLE)
    await bot.birthdays.set(GUILD, ALICE, 6, 15)
    await bot.birthday_pass.run()
    clock.now = JUNE_16_1000_BERLIN
    await bot.birthday_pass.run()
    assert [call[0] for call in discord.role_calls] == ["add"]


async def test_a_role_the_member_already_holds_is_never_recorded_to_take_back(
        bot: Bot, clock: MovableClock, discord: RecordingDiscord, folder: Path) -> None:
    """Not even while the announcement goes out: an erase (/mydata delete) or a crash meanwhile would
    otherwise take back a role the birthday did not give."""
    discord.roles[(GUILD, ALICE)] = {ROLE}
    await bot.birthdays.set(GUILD, ALICE, 6, 15)
    recorded: list[tuple[object, ...]] = []

    def look_at_the_file() -> None:
        with closing(sqlite3.connect(folder / f"{GUILD}.sqlite3")) as conn:
            recorded.extend(conn.execute("SELECT role_id FROM birthday_celebrations WHERE user_id = ?", (ALICE,)))

    discord.observe = look_at_the_file
    report = await bot.birthday_pass.run()
    assert recorded == [(None,)], "what the announcement's moment would find to take back"
    assert (report.celebrated, report.announced, report.roles_added, report.failures) == (1, 1, 0, 0)

    clock.now = JUNE_16_1000_BERLIN
    later = await bot.birthday_pass.run()
    assert (later.roles_removed, later.failures) == (0, 0)
    assert discord.role_calls == [] and discord.roles_of(ALICE) == {ROLE}


async def test_a_member_in_screening_gets_the_role_when_they_accept_the_rules_that_day(
        bot: Bot, clock: MovableClock, discord: RecordingDiscord) -> None:
    discord.screening.add(ALICE)
    await bot.birthdays.set(GUILD, ALICE, 6, 15)
    report = await bot.birthday_pass.run()
    assert (report.announced, report.roles_added, report.failures) == (1, 0, 0)
    assert discord.role_calls == []
    assert (await bot.celebration(ALICE, 2026) or {})["role_id"] is None

    discord.screening.discard(ALICE)
    clock.now = JUNE_15_0900_BERLIN.replace(hour=21, minute=59)    # 23:59 in Berlin: still the 15th
    assert await bot.birthday_pass.role_after_screening(GUILD, ALICE)
    assert discord.roles_of(ALICE) == {ROLE}
    assert (await bot.celebration(ALICE, 2026) or {})["role_id"] == ROLE
    assert not await bot.birthday_pass.role_after_screening(GUILD, ALICE), "given once"
    assert not await bot.birthday_pass.role_after_screening(GUILD, BOB), "no celebration: nothing owed"

    clock.now = JUNE_16_1000_BERLIN
    later = await bot.birthday_pass.run()
    assert later.roles_removed == 1 and discord.roles_of(ALICE) == set()


async def test_a_role_given_after_screening_to_a_member_who_erased_meanwhile_is_taken_back(
        bot: Bot, clock: MovableClock, discord: RecordingDiscord, folder: Path) -> None:
    discord.screening.add(ALICE)
    await bot.birthdays.set(GUILD, ALICE, 6, 15)
    await bot.birthday_pass.run()
    discord.screening.clear()

    def erase_while_discord_is_asked() -> None:   # /mydata delete, as the role request is on its way
        with closing(sqlite3.connect(folder / f"{GUILD}.sqlite3")) as conn, conn:
            conn.execute("DELETE FROM birthday_celebrations WHERE user_id = ?", (ALICE,))

    discord.observe = erase_while_discord_is_asked
    await bot.birthday_pass.role_after_screening(GUILD, ALICE)
    assert [call[0] for call in discord.role_calls] == ["add", "remove"]
    assert discord.roles_of(ALICE) == set()


async def test_a_role_refused_after_screening_is_not_recorded_and_none_is_owed_the_next_day(
        bot: Bot, clock: MovableClock, discord: RecordingDiscord) -> None:
    discord.screening.add(ALICE)
    await bot.birthdays.set(GUILD, ALICE, 6, 15)
    await bot.birthdays.set(GUILD, BOB, 6, 15)
    discord.screening.add(BOB)
    await bot.birthday_pass.run()
    discord.screening.clear()
    discord.refused_roles.add(ROLE)
    assert not await bot.birthday_pass.role_after_screening(GUILD, ALICE)
    assert (await bot.celebration(ALICE, 2026) or {})["role_id"] is None, "nothing to take back"
    clock.now = JUNE_16_1000_BERLIN
    discord.refused_roles.clear()
    assert not await bot.birthday_pass.role_after_screening(GUILD, BOB), "their day is over"
    assert discord.roles_of(BOB) == set()


async def test_a_role_that_cannot_be_removed_is_retried_then_given_up(
        bot: Bot, clock: MovableClock, discord: RecordingDiscord) -> None:
    await bot.birthdays.set(GUILD, ALICE, 6, 15)
    await bot.birthday_pass.run()
    discord.refused_roles.add(ROLE)
    for day in range(16, 16 + ROLE_RETRY_DAYS + 3):
        clock.now = datetime(2026, 6, day, 8, tzinfo=UTC)
        await bot.birthday_pass.run()
    removals = [call for call in discord.role_calls if call[0] == "remove"]
    assert len(removals) == ROLE_RETRY_DAYS + 1  # June 16, 17, 18 retried; given up on June 19
    row = await bot.celebration(ALICE, 2026)
    assert row is not None and row["role_removed_at"] is not None
    assert discord.told == [(GUILD, [f"I gave up taking the birthday role <@&{ROLE}> back from <@{ALICE}> after "
                                     f"{ROLE_RETRY_DAYS} days of trying; please take it off by hand."])]


async def test_after_a_long_downtime_a_failed_removal_is_retried_from_its_first_failure(
        bot: Bot, running_bot: BotFactory, clock: MovableClock, discord: RecordingDiscord) -> None:
    await bot.birthdays.set(GUILD, ALICE, 6, 15)
    await bot.birthday_pass.run()
    await bot.tenants.close_all()
    clock.now = datetime(2026, 6, 20, 3, tzinfo=UTC)  # back after five days, past the retry days
    async with running_bot() as restarted:
        discord.raising.add("remove_role")           # the first attempt meets a Discord hiccup
        await restarted.birthday_pass.run()
        row = await restarted.celebration(ALICE, 2026)
        assert row is not None and row["role_removed_at"] is None and row["role_failed_on"] == "2026-06-20"
        discord.raising.clear()
        clock.now = datetime(2026, 6, 20, 4, tzinfo=UTC)
        report = await restarted.birthday_pass.run()
    assert report.roles_removed == 1
    assert discord.roles_of(ALICE) == set()


async def test_the_retry_days_count_from_the_first_failed_removal(
        bot: Bot, running_bot: BotFactory, clock: MovableClock, discord: RecordingDiscord) -> None:
    await bot.birthdays.set(GUILD, ALICE, 6, 15)
    await bot.birthday_pass.run()
    await bot.tenants.close_all()
    discord.refused_roles.add(ROLE)
    async with running_bot() as restarted:
        for day in range(20, 20 + ROLE_RETRY_DAYS + 3):  # down until June 20, then refused every day
            clock.now = datetime(2026, 6, day, 8, tzinfo=UTC)
            await restarted.birthday_pass.run()
        row = await restarted.celebration(ALICE, 2026)
    removals = [call for call in discord.role_calls if call[0] == "remove"]
    assert len(removals) == ROLE_RETRY_DAYS + 1  # June 20, 21, 22 retried; given up on June 23
    assert row is not None and row["role_removed_at"] is not None and row["role_failed_on"] == "2026-06-20"


async def test_a_birthday_removed_while_the_pass_waits_for_discord_is_not_celebrated(
        bot: Bot, clock: MovableClock, discord: RecordingDiscord, monkeypatch: pytest.MonkeyPatch) -> None:
    await bot.birthdays.set(GUILD, BOB, 6, 14)
    clock.now = datetime(2026, 6, 14, 8, tzinfo=UTC)       # June 14, 10:00 in Berlin: Bob gets the role
    await bot.birthday_pass.run()
    await bot.birthdays.set(GUILD, ALICE, 6, 15)
    clock.now = JUNE_15_0900_BERLIN
    removing, go_on = asyncio.Event(), asyncio.Event()
    take_back = discord.remove_role

    async def slow_take_back(guild_id: int, user_id: int, role_id: int) -> bool:
        removing.set()
        await go_on.wait()                                 # a slow Discord
        return await take_back(guild_id, user_id, role_id)

    monkeypatch.setattr(discord, "remove_role", slow_take_back)
    passing = asyncio.create_task(bot.birthday_pass.run())
    await removing.wait()          # the pass has read today's birthdays and takes back Bob's role first
    await bot.birthdays.remove(GUILD, ALICE)               # or /mydata delete: the same row goes
    go_on.set()
    await passing
    assert announced_users(discord) == [BOB]
    assert await bot.celebration(ALICE, 2026) is None
    assert await bot.xp_of(ALICE) == 0 and discord.roles_of(ALICE) == set()


async def test_someone_not_seen_as_a_member_is_left_for_a_later_pass(
        bot: Bot, clock: MovableClock, discord: RecordingDiscord) -> None:
    discord.absent.add(ALICE)  # e.g. the member cache is not filled yet after a start
    await bot.birthdays.set(GUILD, ALICE, 6, 15)
    await bot.birthday_pass.run()
    assert await bot.celebration(ALICE, 2026) is None
    discord.absent.clear()
    clock.now = datetime(2026, 6, 15, 8, tzinfo=UTC)
    await bot.birthday_pass.run()
    assert announced_users(discord) == [ALICE]


async def test_a_member_who_left_has_no_birthday_left_to_celebrate(
        bot: Bot, discord: RecordingDiscord) -> None:
    await bot.birthdays.set(GUILD, ALICE, 6, 15)
    await bot.birthdays.set(GUILD, BOB, 6, 15)
    report = await MemberData(bot.tenants, [birthday_member_data()]).purge(GUILD, ALICE)
    assert report.rows_changed == {"birthdays": 1}
    await bot.birthday_pass.run()
    assert announced_users(discord) == [BOB]


async def test_a_broken_tenant_does_not_stop_the_others(
        bot: Bot, folder: Path, discord: RecordingDiscord, caplog: pytest.LogCaptureFixture) -> None:
    broken = 333_333_333_333_333_333
    (folder / f"{broken}.sqlite3").write_bytes(b"not a database at all" * 100)
    await bot.birthdays.set(GUILD, ALICE, 6, 15)
    with caplog.at_level(logging.ERROR):
        report = await bot.birthday_pass.run()
    assert announced_users(discord) == [ALICE]
    assert report.failures == 1
    assert str(broken) in caplog.text


async def test_a_server_that_removes_the_bot_during_the_pass_is_skipped_quietly(
        running_bot: BotFactory, discord: RecordingDiscord, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """The pass lists the files, then a server removes the bot (its file archived) before its visit:
    nothing is owed there any more. It used to log an ERROR with a traceback and count a failure."""
    removing = GUILD + 1  # listed after GUILD, visited after it
    async with running_bot(concurrency=1) as bot:
        for guild_id in (GUILD, removing):
            await configure(bot, guild_id)
        await bot.birthdays.set(GUILD, ALICE, 6, 15)
        await bot.birthdays.set(removing, BOB, 6, 15)
        announce = discord.announce

        async def removed_meanwhile(guild_id: int, channel_id: int, user_id: int, text: str) -> bool:
            if guild_id == GUILD:  # on_guild_remove of the other server, while the pass is here
                await bot.tenants.archive(removing)
            return await announce(guild_id, channel_id, user_id, text)

        monkeypatch.setattr(discord, "announce", removed_meanwhile)
        with caplog.at_level(logging.DEBUG, logger="malabot.features.birthdays"):
            report = await bot.birthday_pass.run()
    assert announced_users(discord) == [ALICE]
    assert (report.tenants, report.visited, report.failures) == (2, 1, 0)
    assert [record for record in caplog.records if record.levelno >= logging.WARNING] == []


# --- many tenants -------------------------------------------------------------------------------------------

async def test_a_pass_over_many_tenants_stays_within_the_connection_cap(
        running_bot: BotFactory, discord: RecordingDiscord) -> None:
    guilds = [900_000_000_000_000_000 + n for n in range(24)]
    async with running_bot(max_open=256) as setup:
        for guild_id in guilds:
            await configure(setup, guild_id)
            await setup.birthdays.set(guild_id, ALICE, 6, 15)
    peak = 0
    async with running_bot(max_open=3, concurrency=8) as bot:
        def measure() -> None:
            nonlocal peak
            peak = max(peak, bot.tenants.open_count)

        discord.observe = measure
        report: PassReport = await bot.birthday_pass.run()
        peak = max(peak, bot.tenants.open_count)
    assert report.tenants == report.visited == 24
    assert sorted(guild for guild, *_ in discord.announcements) == guilds
    assert 1 <= peak <= 3


async def test_the_pass_lets_other_tasks_run_while_it_works(running_bot: BotFactory) -> None:
    guilds = [900_000_000_000_000_000 + n for n in range(20)]
    async with running_bot(concurrency=2) as bot:
        for guild_id in guilds:
            # Not due and no role: with settings cached a tenant is skipped without any I/O.
            await configure(bot, guild_id, birthday_hour=23, birthday_role_id=None)
        await bot.birthday_pass.run()  # fills the settings cache
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        before = ticks
        report = await bot.birthday_pass.run()
        task.cancel()
    assert report.visited == 0
    assert ticks - before >= len(guilds) // 2 - 2  # interleaved with each tenant, not one blocking sweep


# --- the scheduler ------------------------------------------------------------------------------------------

@dataclass
class StallingDiscord(RecordingDiscord):
    """Taking a role back waits until `go` is set: a pass kept under way for as long as a test needs.
    `announced` is set by every announcement."""

    go: asyncio.Event = field(default_factory=asyncio.Event)
    announced: asyncio.Event = field(default_factory=asyncio.Event)

    async def announce(self, guild_id: int, channel_id: int, user_id: int, text: str) -> bool:
        done = await super().announce(guild_id, channel_id, user_id, text)
        self.announced.set()
        return done

    async def remove_role(self, guild_id: int, user_id: int, role_id: int) -> bool:
        await self.go.wait()
        return await super().remove_role(guild_id, user_id, role_id)


class Once(BaseTrigger):
    """Fires at `moment` only (a DateTrigger would not fire after the job's run when it was added)."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        return self.moment if previous_fire_time is None or previous_fire_time < self.moment else None


async def test_the_hour_that_comes_while_the_start_up_pass_runs_still_gets_its_pass(
        running_bot: BotFactory, clock: MovableClock) -> None:
    # A restart (or a reconnect) at 22:59 in a server announcing at 23:00: its catch-up pass is still
    # taking back yesterday's role when the top of the hour comes. The 23:00 pass must run after it;
    # dropped, the next pass would be on June 16, and June 15's birthdays would never be announced.
    stalling = StallingDiscord()
    async with running_bot(stalling) as bot:
        await configure(bot)
        await bot.birthdays.set(GUILD, BOB, 6, 14)
        clock.now = datetime(2026, 6, 14, 7, 0, tzinfo=UTC)    # June 14, 09:00 in Berlin: BOB's role
        await bot.birthday_pass.run()
        await configure(bot, birthday_hour=23)
        await bot.birthdays.set(GUILD, ALICE, 6, 15)
        clock.now = datetime(2026, 6, 15, 20, 59, tzinfo=UTC)  # June 15, 22:59 in Berlin

        # The scheduler runs in real time: a trigger whose next fire time (23:00) is a second away.
        top_of_the_hour = datetime.now(UTC) + timedelta(seconds=1)
        job = dataclasses.replace(birthday_pass_job(bot.birthday_pass), trigger=Once(top_of_the_hour))

        def on_submission(event: JobSubmissionEvent) -> None:
            if max(event.scheduled_run_times) >= top_of_the_hour:  # the scheduler's turn for 23:00
                clock.now = datetime(2026, 6, 15, 21, 0, tzinfo=UTC)
                stalling.go.set()

        scheduler = build_scheduler([job])
        scheduler.add_listener(on_submission, EVENT_JOB_SUBMITTED | EVENT_JOB_MAX_INSTANCES)
        stalling.announced.clear()  # BOB's, on June 14
        scheduler.start()
        try:
            await asyncio.wait_for(stalling.announced.wait(), timeout=10)  # a bound, not a timing assertion
        finally:
            scheduler.shutdown(wait=False)
    assert announced_users(stalling) == [BOB, ALICE]
    assert stalling.roles_of(BOB) == set() and stalling.roles_of(ALICE) == {ROLE}
