"""Backups through the real bot: `/backup create` sends a copy that restores to an identical server,
too large a file gets a clear answer, and the owner lists and restores the nightly snapshots."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from malabot.cogs import backup as backup_cog
from malabot.commands import ANSWER_LOST
from malabot.features.backups.job import NIGHTLY_SNAPSHOTS
from malabot.guild_settings import WarnThreshold
from malabot.runtime import finish_handlers
from malabot.sandbox import FakeDiscord, Permission, Role, User
from malabot.sandbox.state import Message
from malabot.tenancy import backup as files
from malabot.tenancy.manager import TenantManager
from malabot.tenancy.paths import TenantPaths, utc_stamp
from tests.e2e.data_dump import all_rows, eventually, rows_mentioning
from tests.e2e.discord_failures import drop_role_changes, fail_answers
from tests.e2e.test_mydata import delete_my_data
from tests.e2e.world import World, make_world
from tests.e2e.xp_place import settled

EPHEMERAL = 64
OWNER_ONLY = "Only the server owner can list or restore snapshots."


@pytest.fixture
async def world(discord_server: FakeDiscord, tmp_path: Path) -> AsyncIterator[World]:
    async for running in make_world(discord_server, tmp_path):
        yield running


async def seed(world: World) -> None:
    """Rows in several features of the first server, through the real services."""
    services, guild = world.live, world.guild.id
    await services.xp_admin.add(guild, world.admin.id, world.alice.id, 700)
    await services.checkins.check_in(guild, world.bob.id)
    await services.birthdays.set(guild, world.alice.id, 4, 12, 1990)
    await services.guild_settings.update(guild, world.admin.id, welcome_enabled=True, backup_keep=3)
    await services.xp.flush_all()


async def take_nightly_snapshots(world: World) -> None:
    """What the scheduler runs at 03:30 UTC."""
    job = world.live.scheduler.get_job(NIGHTLY_SNAPSHOTS)
    assert job is not None
    await job.func()


def snapshot_ids(world: World) -> list[str]:
    folder = world.tenants_dir / "backups" / str(world.guild.id)
    return sorted(p.name.removeprefix(f"{world.guild.id}-").removesuffix(".sqlite3") for p in folder.iterdir())


def public_traces(world: World) -> list[Message]:
    """What the bot showed everyone in the channel commands are typed in, deleted messages too: a
    public "thinking…" placeholder is seen until it is deleted."""
    return [message for message in world.server.world.messages.values()
            if message.channel_id == world.general.id and message.author_id == world.server.bot_user.id
            and not message.ephemeral]


# -- /backup create ---------------------------------------------------------------------------------


async def test_the_attachment_restores_to_an_identical_server(world: World, tmp_path: Path) -> None:
    await seed(world)
    expected = all_rows(world.tenant_file(world.guild))

    reply = await world.command(world.admin, "backup create")
    assert reply.flags & EPHEMERAL
    assert public_traces(world) == [], "the channel saw that a backup was being taken"
    [attachment] = reply.files
    assert attachment.filename.startswith(f"malabot-{world.guild.id}-") and attachment.filename.endswith(".sqlite3")
    downloaded = tmp_path / "downloaded.sqlite3"
    downloaded.write_bytes(attachment.data)

    # Into a fresh tenants folder, as after losing the host:
    fresh = TenantManager(tmp_path / "fresh")
    await fresh.start()
    try:
        await fresh.restore(world.guild.id, downloaded)
    finally:
        await fresh.close_all()
    assert all_rows(tmp_path / "fresh" / f"{world.guild.id}.sqlite3") == expected

    # Into the same server after changes, through the running bot's tenant manager:
    await world.live.xp_admin.add(world.guild.id, world.admin.id, world.bob.id, 50)
    await world.live.guild_settings.update(world.guild.id, world.admin.id, backup_keep=9)
    assert all_rows(world.tenant_file(world.guild)) != expected
    await world.live.tenants.restore(world.guild.id, downloaded)
    assert all_rows(world.tenant_file(world.guild)) == expected
    assert (await world.live.guild_settings.get(world.guild.id)).backup_keep == 3


async def test_create_is_for_members_with_manage_server(world: World) -> None:
    refused = await world.command(world.alice, "backup create")
    assert refused.flags & EPHEMERAL
    assert refused.content == "You need the Manage Server permission to use this command."
    assert refused.files == []

    allowed = await world.command(world.bob, "backup create")  # Manage Server, not the owner
    assert len(allowed.files) == 1


async def test_a_file_over_the_upload_limit_gets_a_clear_answer(world: World) -> None:
    # Eleven 1 MiB values: more than the 10 MiB an unboosted server may receive.
    async with world.live.tenants.transaction(world.guild.id) as conn:
        await conn.executemany("INSERT INTO legacy_settings (key, value) VALUES (?, ?)",
                               [(f"filler-{n}", "x" * 1024 * 1024) for n in range(11)])
    reply = await world.command(world.admin, "backup create")
    assert reply.flags & EPHEMERAL
    assert reply.files == []
    assert reply.content.startswith("The backup is 11.")
    assert "more than the 10.0 MiB Discord lets me upload here, so I cannot send it." in reply.content
    assert not downloads(world).exists(), "neither the copy nor its folder is left"


def downloads(world: World) -> Path:
    return world.tenants_dir / ".downloads"


async def test_a_copy_discord_would_not_take_leaves_nothing_behind(world: World) -> None:
    def answer_with_file(method: str, path: str, body: object) -> bool:
        return method in ("POST", "PATCH") and path.startswith("/webhooks/")

    refused = world.server.rate_limit(answer_with_file, times=5, retry_after=0.01)  # py-cord gives up
    reply = await world.command(world.admin, "backup create")
    assert refused.hits == 5
    assert reply.flags & EPHEMERAL and reply.files == []
    assert reply.content == ANSWER_LOST
    assert not downloads(world).exists()


async def test_a_create_cancelled_while_copying_leaves_nothing_behind(world: World,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A shutdown cancels a command still running after its grace; the copy being made cannot be
    stopped, and the full copy of the members' data it writes must not stay on the host."""
    copying, go_on = threading.Event(), threading.Event()
    real_backup = files.backup_tenant

    def slow_backup(*args: Any, **options: Any) -> Path:
        copying.set()
        go_on.wait(30)  # a large server's file
        return real_backup(*args, **options)

    monkeypatch.setattr(files, "backup_tenant", slow_backup)
    command = asyncio.create_task(world.command(world.admin, "backup create"))
    try:
        assert await asyncio.to_thread(copying.wait, 30)
        await finish_handlers(0)  # what `malabot run` does to handlers still running at a stop
    finally:
        go_on.set()
        command.cancel()
        await asyncio.gather(command, return_exceptions=True)
    await eventually(lambda: not downloads(world).exists(), within=30, what="the copy and its folder removed")


# -- snapshots ----------------------------------------------------------------------------------------


async def test_nightly_job_is_scheduled_at_a_fixed_utc_time(world: World) -> None:
    job = world.live.scheduler.get_job(NIGHTLY_SNAPSHOTS)
    assert job is not None
    next_run = job.next_run_time.astimezone(UTC)
    assert (next_run.hour, next_run.minute) == (3, 30)


async def test_owner_lists_snapshots_newest_first_within_the_kept_number(world: World) -> None:
    empty = await world.command(world.admin, "backup list")
    assert empty.content == "No snapshots yet; one is taken every night at 03:30 UTC."

    await world.command(world.admin, "config set", {"setting": "backup_keep", "value": "2"})
    for _ in range(3):
        await take_nightly_snapshots(world)
        world.clock.advance(days=1)
    assert snapshot_ids(world) == ["20261126T120000Z", "20261127T120000Z"], "the oldest was deleted"
    other = world.tenants_dir / "backups" / str(world.other_guild.id)
    assert len(list(other.iterdir())) == 3, "every server gets snapshots, kept by its own backup_keep (7)"

    listed = await world.command(world.admin, "backup list")
    assert listed.flags & EPHEMERAL
    lines = listed.embeds[0]["description"].splitlines()
    assert [line.split(" · ")[:2] for line in lines] == [
        ["`20261127T120000Z`", "2026-11-27 12:00 UTC"], ["`20261126T120000Z`", "2026-11-26 12:00 UTC"]]


SNAPSHOT_LINE = re.compile(r"`\d{8}T\d{6}Z(-before-restore)?` · \d{4}-\d\d-\d\d \d\d:\d\d UTC"
                           r"( \(before a restore\))? · \d+(\.\d)? (B|KiB|MiB)")


async def test_a_list_too_long_for_one_embed_shows_whole_lines_and_counts_the_rest(world: World) -> None:
    # backup_keep goes up to 60, and the "before a restore" snapshots are kept by their own count.
    await world.live.guild_settings.update(world.guild.id, world.admin.id, backup_keep=60)
    for _ in range(60):
        await take_nightly_snapshots(world)
        world.clock.advance(days=1)
    oldest = snapshot_ids(world)[0]
    for _ in range(10):  # each keeps the data it replaced as a "before a restore" snapshot
        await world.live.backups.restore(world.guild.id, oldest)
    assert len(snapshot_ids(world)) == 70

    listed = await world.command(world.admin, "backup list")
    assert listed.embeds, f"no list at all: {listed.content!r}"
    description = listed.embeds[0]["description"]
    *lines, more = description.splitlines()
    assert 4000 < len(description) <= 4096, "as many lines as one embed takes"
    assert [line for line in lines if not SNAPSHOT_LINE.fullmatch(line)] == [], "only whole lines"
    assert more == f"… and {70 - len(lines)} older; type part of an id in /backup restore."
    assert len(lines) < 70


@pytest.mark.parametrize("command", ["backup list", "backup restore"])
async def test_list_and_restore_are_for_the_owner_only(world: World, command: str) -> None:
    await take_nightly_snapshots(world)
    options = {"id": snapshot_ids(world)[0]} if command == "backup restore" else None
    before = all_rows(world.tenant_file(world.guild))

    not_owner = await world.command(world.bob, command, options)  # has Manage Server
    assert not_owner.flags & EPHEMERAL and not_owner.content == OWNER_ONLY
    plain = await world.command(world.alice, command, options)
    assert plain.content == "You need the Manage Server permission to use this command."
    assert all_rows(world.tenant_file(world.guild)) == before
    assert len(snapshot_ids(world)) == 1, "no restore happened (it would keep a before-restore copy)"


async def test_restore_brings_a_snapshot_back_and_keeps_what_it_replaced(world: World) -> None:
    await seed(world)
    await take_nightly_snapshots(world)
    [snapshot] = snapshot_ids(world)
    at_snapshot = all_rows(world.tenant_file(world.guild))
    await world.live.xp_admin.add(world.guild.id, world.admin.id, world.bob.id, 50)
    await world.live.guild_settings.update(world.guild.id, world.admin.id, timezone="Europe/Berlin")
    await world.live.xp.flush_all()
    changed = all_rows(world.tenant_file(world.guild))

    reply = await world.command(world.admin, "backup restore", {"id": snapshot})
    assert reply.flags & EPHEMERAL
    assert public_traces(world) == [], "the channel saw that a restore was running"
    assert reply.content.startswith(f"Restored snapshot `{snapshot}` (taken 2026-11-25 12:00 UTC).")
    assert all_rows(world.tenant_file(world.guild)) == at_snapshot
    assert (await world.live.guild_settings.get(world.guild.id)).timezone == "UTC", "no stale settings cache"

    listed = (await world.command(world.admin, "backup list")).embeds[0]["description"]
    [before_restore] = [line for line in listed.splitlines() if "(before a restore)" in line]
    undo_id = before_restore.split("`")[1]
    undone = await world.command(world.admin, "backup restore", {"id": undo_id})
    assert undone.content.startswith(f"Restored snapshot `{undo_id}`")
    assert all_rows(world.tenant_file(world.guild)) == changed


async def test_restoring_an_old_snapshot_keeps_the_newer_ones_and_itself(world: World) -> None:
    # The day-0 data says backup_keep 1; the server keeps 3 now. The restore must not prune by the
    # restored setting: the owner can still go forward again, or restore the same snapshot once more.
    guild = world.guild.id
    await world.live.guild_settings.update(guild, world.admin.id, backup_keep=1)
    await take_nightly_snapshots(world)                     # day 0
    await world.live.guild_settings.update(guild, world.admin.id, backup_keep=3)
    for _ in range(2):                                      # days 1 and 2
        world.clock.advance(days=1)
        await take_nightly_snapshots(world)
    nightly = snapshot_ids(world)                           # oldest first
    assert len(nightly) == 3

    reply = await world.command(world.admin, "backup restore", {"id": nightly[0]})

    assert reply.content.startswith(f"Restored snapshot `{nightly[0]}`")
    assert reply.content.endswith(" Its settings came back too: `backup_keep` is 1 again (it was 3), so from "
                                  "tonight only the newest 1 snapshot of each kind (nightly, before a restore) "
                                  "will be kept; `/config set backup_keep` changes that.")
    assert (await world.live.guild_settings.get(guild)).backup_keep == 1, "the day-0 data is back"
    after = snapshot_ids(world)
    assert [id_ for id_ in after if not id_.endswith("-before-restore")] == nightly
    assert len([id_ for id_ in after if id_.endswith("-before-restore")]) == 1


@pytest.mark.parametrize("settings_cached", [True, False])  # False: as after a restart
async def test_a_restore_over_damaged_data_says_what_the_operator_must_do(world: World,
                                                                          settings_cached: bool) -> None:
    await seed(world)
    await take_nightly_snapshots(world)
    [snapshot] = snapshot_ids(world)
    await world.live.tenants.close(world.guild.id)
    live = world.tenant_file(world.guild)
    damaged = live.read_bytes()[:8192]               # cut short (a full disk, a bad copy)
    live.write_bytes(damaged)
    if not settings_cached:
        world.live.guild_settings.forget(world.guild.id)

    reply = await world.command(world.admin, "backup restore", {"id": snapshot})

    assert reply.ephemeral
    assert reply.content.startswith("Nothing was restored: this server's current data cannot be read")
    assert f"`malabot tenants archive {world.guild.id}`, with the bot stopped" in reply.content
    assert live.read_bytes() == damaged and snapshot_ids(world) == [snapshot], "nothing changed"


async def test_a_restore_does_not_bring_back_members_who_erased_their_data_or_left(world: World) -> None:
    await seed(world)
    await take_nightly_snapshots(world)
    [snapshot] = snapshot_ids(world)
    file = world.tenant_file(world.guild)
    assert rows_mentioning(file, world.alice.id) and rows_mentioning(file, world.bob.id)
    await delete_my_data(world, world.alice)
    await world.server.remove_member(world.guild, world.bob)
    await eventually(lambda: not rows_mentioning(file, world.bob.id), what="bob's leave to be purged")

    reply = await world.command(world.admin, "backup restore", {"id": snapshot})
    assert reply.content.startswith(f"Restored snapshot `{snapshot}`")
    assert rows_mentioning(file, world.alice.id) == {"member_erasures": 1}, "erased again, and still on record"
    assert not rows_mentioning(file, world.bob.id), "a member who left since the snapshot is purged again"
    assert (await world.live.guild_settings.get(world.guild.id)).backup_keep == 3, "the rest is restored"


async def test_a_restore_does_not_bring_back_the_old_rows_of_a_member_who_left_and_came_back(
        world: World) -> None:
    """Their leave purged those rows: the snapshot's belong to a membership that has ended."""
    await seed(world)
    await take_nightly_snapshots(world)
    [snapshot] = snapshot_ids(world)
    file = world.tenant_file(world.guild)
    world.clock.advance(hours=1)
    await world.server.remove_member(world.guild, world.bob)
    await eventually(lambda: not rows_mentioning(file, world.bob.id), what="bob's leave to be purged")
    await world.server.member_join(world.guild, world.bob)

    reply = await world.command(world.admin, "backup restore", {"id": snapshot})
    assert reply.content.startswith(f"Restored snapshot `{snapshot}`")
    assert not rows_mentioning(file, world.bob.id), "his leave's purge stands"
    assert rows_mentioning(file, world.alice.id), "a member since before the snapshot keeps hers"


async def test_a_restore_keeps_the_cases_recorded_since_the_snapshot(world: World) -> None:
    """They stand on Discord and in the mod log under their numbers: the next case must not reuse one."""
    await world.command(world.admin, "warn", {"member": world.alice, "reason": "one"})       # case 1
    await take_nightly_snapshots(world)
    [snapshot] = snapshot_ids(world)
    await world.command(world.admin, "ban", {"member": world.alice, "reason": "raid"})      # case 2
    reply = await world.command(world.admin, "backup restore", {"id": snapshot})
    assert reply.content.startswith(f"Restored snapshot `{snapshot}`")
    warned = await world.command(world.admin, "warn", {"member": world.bob, "reason": "other"})
    assert warned.content.startswith("Case #3: warned")
    cases = all_rows(world.tenant_file(world.guild))["mod_cases"]
    assert [(case[0], case[1], case[2]) for case in cases] == [
        (1, "warn", world.alice.id), (2, "ban", world.alice.id), (3, "warn", world.bob.id)]


async def bob_left_after_a_snapshot(world: World) -> str:
    """Bob has XP in a snapshot, then leaves (his rows purged): the snapshot's id."""
    await seed(world)
    await world.live.xp_admin.add(world.guild.id, world.admin.id, world.bob.id, 900)
    await take_nightly_snapshots(world)
    [snapshot] = snapshot_ids(world)
    world.clock.advance(hours=1)
    await world.server.remove_member(world.guild, world.bob)
    await eventually(lambda: not rows_mentioning(world.tenant_file(world.guild), world.bob.id), what="his purge")
    return snapshot


@contextlib.asynccontextmanager
async def restarted_as_a_big_server_whose_member_list_waits(world: World) -> AsyncIterator[None]:
    """The bot restarted, the server grown big (its member list comes after READY); the list is held
    inside the block and arrives at its end."""
    await world.stop()
    for number in range(250):
        world.server.add_member(world.guild, world.server.add_user(f"member{number}"))
    async with world.server.holding_member_lists(world.guild) as held:
        await world.start(member_lists=False)
        await held.arrived(within=5)
        yield


async def more_xp_since_a_snapshot(world: World) -> str:
    """Seeded data, its snapshot, then alice earns XP: the snapshot's id."""
    await seed(world)
    await take_nightly_snapshots(world)
    [snapshot] = snapshot_ids(world)
    world.clock.advance(hours=1)
    await world.command(world.admin, "xp add", {"member": world.alice, "amount": 5})
    return snapshot


async def test_a_restore_waits_for_the_member_list_to_tell_who_left_and_came_back(world: World) -> None:
    snapshot = await bob_left_after_a_snapshot(world)
    await world.server.member_join(world.guild, world.bob)
    async with restarted_as_a_big_server_whose_member_list_waits(world):
        restoring = asyncio.ensure_future(world.command(world.admin, "backup restore", {"id": snapshot}))
        await asyncio.sleep(1)  # the list arrives a moment into the restore
    assert (await restoring).content.startswith(f"Restored snapshot `{snapshot}`")
    assert not rows_mentioning(world.tenant_file(world.guild), world.bob.id), "his leave's purge stands"


def slow_staging(monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """A restore's copy and check of the snapshot takes a second, as a big file's does; the event is
    set as it starts."""
    prepare, staging, loop = files.prepare_restore, asyncio.Event(), asyncio.get_running_loop()

    def slow_prepare(*args: Any, **kwargs: Any) -> Path:
        loop.call_soon_threadsafe(staging.set)
        time.sleep(1.0)
        return prepare(*args, **kwargs)

    monkeypatch.setattr(files, "prepare_restore", slow_prepare)
    return staging


async def test_a_restore_whose_member_list_does_not_come_restores_nothing(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    snapshot = await more_xp_since_a_snapshot(world)
    monkeypatch.setattr(backup_cog, "MEMBER_LIST_WAIT_SECONDS", 1.0)  # two minutes live
    async with restarted_as_a_big_server_whose_member_list_waits(world):
        before = all_rows(world.tenant_file(world.guild))
        reply = await world.command(world.admin, "backup restore", {"id": snapshot})
        assert reply.ephemeral and reply.content == backup_cog.LIST_LOADING
        assert all_rows(world.tenant_file(world.guild)) == before


async def test_a_member_back_while_the_snapshot_is_being_staged_does_not_get_his_old_rows_back(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    snapshot = await bob_left_after_a_snapshot(world)
    staging = slow_staging(monkeypatch)
    restoring = asyncio.ensure_future(world.command(world.admin, "backup restore", {"id": snapshot}))
    await asyncio.wait_for(staging.wait(), 5)
    await world.server.member_join(world.guild, world.bob)
    assert (await restoring).content.startswith(f"Restored snapshot `{snapshot}`")
    assert not rows_mentioning(world.tenant_file(world.guild), world.bob.id), "his leave's purge stands"


async def test_an_outage_while_the_snapshot_is_being_staged_restores_nothing(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # The outage empties the member list: read then, it would make everyone look gone.
    snapshot = await more_xp_since_a_snapshot(world)
    before = all_rows(world.tenant_file(world.guild))
    staging = slow_staging(monkeypatch)
    restoring = asyncio.ensure_future(world.command(world.admin, "backup restore", {"id": snapshot}))
    await asyncio.wait_for(staging.wait(), 5)
    await world.server.guild_outage(world.guild)
    reply = await restoring
    assert reply.ephemeral and reply.content.startswith("Nothing was restored: this server's member list is "
                                                        "still loading")
    assert all_rows(world.tenant_file(world.guild)) == before


async def test_a_restore_keeps_the_bots_own_cases_after_it_was_removed_and_added_back(world: World) -> None:
    # Its removal archived the server's data and purged nothing: its join time says nothing of it.
    await world.live.guild_settings.update(world.guild.id, world.admin.id, warn_thresholds=(
        WarnThreshold(count=1, days=1, action="timeout", timeout_minutes=10),))
    await world.command(world.admin, "warn", {"member": world.alice, "reason": "spam"})  # and the bot's timeout
    await take_nightly_snapshots(world)
    [snapshot] = snapshot_ids(world)
    before = all_rows(world.tenant_file(world.guild))["mod_cases"]
    world.clock.advance(hours=1)
    await world.server.remove_bot_from_guild(world.guild)
    await world.server.add_bot_to_guild(world.guild)
    await settled(world)
    reply = await world.command(world.admin, "backup restore", {"id": snapshot})
    assert reply.content.startswith(f"Restored snapshot `{snapshot}`")
    assert all_rows(world.tenant_file(world.guild))["mod_cases"] == before


async def test_a_restore_keeps_what_a_member_who_joined_since_did_after_the_snapshot(world: World) -> None:
    """Only the snapshot's rows of a member who joined since go: a case they recorded as a moderator
    after it is carried into the restored data under their name."""
    await world.command(world.admin, "warn", {"member": world.bob, "reason": "one"})        # case 1
    await take_nightly_snapshots(world)
    [snapshot] = snapshot_ids(world)
    world.clock.advance(hours=1)
    carol = world.server.add_user("carol")
    mods = await world.server.create_role(world.guild, "Mods", permissions=int(Permission.ADMINISTRATOR))
    await world.server.member_join(world.guild, carol, roles=[mods])
    warned = await world.command(carol, "warn", {"member": world.alice, "reason": "spam"})  # case 2
    assert warned.content.startswith("Case #2")
    before = all_rows(world.tenant_file(world.guild))["mod_cases"]
    reply = await world.command(world.admin, "backup restore", {"id": snapshot})
    assert reply.content.startswith(f"Restored snapshot `{snapshot}`")
    assert all_rows(world.tenant_file(world.guild))["mod_cases"] == before, "her case still names her"


async def test_level_roles_follow_the_restored_xp(world: World) -> None:
    roles = {level: await world.server.create_role(world.guild, name)
             for level, name in ((1, "Chatter"), (2, "Regular"), (3, "Veteran"))}
    for level, role in roles.items():
        await world.command(world.admin, "levelrole add", {"level": level, "role": role})
    await world.command(world.admin, "config set", {"setting": "level_role_mode", "value": "replace"})
    await world.command(world.admin, "xp set", {"member": world.alice, "amount": 300})   # level 2
    await take_nightly_snapshots(world)
    [snapshot] = snapshot_ids(world)
    await world.command(world.admin, "xp set", {"member": world.alice, "amount": 500})   # level 3
    await world.command(world.admin, "xp set", {"member": world.bob, "amount": 100})     # level 1
    await settled(world)

    def held(user: User) -> set[int]:
        member = world.server.member(world.guild, user)
        assert member is not None
        return set(member.roles) & {role.id for role in roles.values()}

    assert (held(world.alice), held(world.bob)) == ({roles[3].id}, {roles[1].id})
    reply = await world.command(world.admin, "backup restore", {"id": snapshot})
    follow_up = (await reply.wait_for_messages(2))[1]
    assert follow_up.content == "Level roles now follow the restored XP: 3 role changes."
    assert (held(world.alice), held(world.bob)) == ({roles[2].id}, set()), "as the snapshot's levels call for"


async def level_role_given_since_a_snapshot(world: World) -> tuple[Role, str]:
    """Level 1 gives a role; a snapshot is taken with alice at 0 XP, then she reaches level 1."""
    role = await world.server.create_role(world.guild, "Chatter")
    await world.command(world.admin, "levelrole add", {"level": 1, "role": role})
    await take_nightly_snapshots(world)
    [snapshot] = snapshot_ids(world)
    await world.command(world.admin, "xp set", {"member": world.alice, "amount": 100})
    await settled(world)
    return role, snapshot


async def test_level_roles_that_cannot_follow_a_finished_restore_do_not_make_it_look_failed(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # A connection reset below HTTP while a role changes: "try again" would restore a second time.
    role, snapshot = await level_role_given_since_a_snapshot(world)
    drop_role_changes(monkeypatch)
    reply = await world.command(world.admin, "backup restore", {"id": snapshot})
    assert reply.content.startswith(f"Restored snapshot `{snapshot}`")
    follow_up = (await reply.wait_for_messages(2))[1]
    assert follow_up.content == (f"Level roles now follow the restored XP: 0 role changes.\n⚠️ Changing level "
                                 f"roles of <@{world.alice.id}> failed: I could not reach Discord (the change may "
                                 "have happened).")


async def test_level_roles_failing_after_a_finished_restore_do_not_make_it_look_failed(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    role, snapshot = await level_role_given_since_a_snapshot(world)

    async def failing(*args: Any) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(backup_cog.levelups, "sync_everyones_roles", failing)
    reply = await world.command(world.admin, "backup restore", {"id": snapshot})
    assert reply.content.startswith(f"Restored snapshot `{snapshot}`")
    follow_up = (await reply.wait_for_messages(2))[1]
    assert follow_up.content == ("The restore is done, but bringing level roles in line with it failed (an error, "
                                 "logged); each member's roles follow at their next level change.")


async def test_a_restore_whose_level_roles_follow_up_is_lost_is_not_said_to_have_failed(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    role, snapshot = await level_role_given_since_a_snapshot(world)
    fail_answers(monkeypatch, [None, aiohttp.ServerDisconnectedError()])  # "Restored" goes, the roles' word not
    reply = await world.command(world.admin, "backup restore", {"id": snapshot})
    await settled(world)
    assert [message.content[:18] for message in reply.messages] == ["Restored snapshot "], "no 'try again'"
    assert role.id not in world.server.member(world.guild, world.alice).roles


async def test_level_roles_failing_after_a_restore_whose_follow_up_is_lost_reach_the_mod_log(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    mod_log = await world.server.create_channel(world.guild, "mod-log")
    await world.live.guild_settings.update(world.guild.id, world.admin.id, mod_log_channel_id=mod_log.id)
    role, snapshot = await level_role_given_since_a_snapshot(world)

    async def failing(*args: Any) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(backup_cog.levelups, "sync_everyones_roles", failing)
    fail_answers(monkeypatch, [None, aiohttp.ServerDisconnectedError()])  # "Restored" goes, the roles' word not
    await world.command(world.admin, "backup restore", {"id": snapshot})
    await settled(world)
    [notice] = world.server.messages_in(mod_log, author=world.server.bot_user)
    assert "• The restore is done, but bringing level roles in line with it failed" in notice.content


async def test_a_restore_whose_answer_discord_loses_still_moves_level_roles_and_is_not_said_to_have_failed(
        world: World) -> None:
    # "Try again" would restore a second time (and keep one more snapshot of what it replaced).
    role, snapshot = await level_role_given_since_a_snapshot(world)
    world.lose_next_answer(deferred=True)
    reply = await world.command(world.admin, "backup restore", {"id": snapshot})
    await settled(world)
    assert ANSWER_LOST in [message.content for message in await reply.wait_for_messages(2)]
    assert role.id not in world.server.member(world.guild, world.alice).roles, "level 0 again: no level role"


@pytest.mark.parametrize("typed", ["20200101T000000Z", "../../1", "latest"])
async def test_unknown_snapshot_ids_are_refused(world: World, typed: str) -> None:
    await take_nightly_snapshots(world)
    before = all_rows(world.tenant_file(world.guild))
    reply = await world.command(world.admin, "backup restore", {"id": typed})
    assert reply.flags & EPHEMERAL
    assert reply.content == f"There is no snapshot `{typed}`; `/backup list` shows the ids."
    assert all_rows(world.tenant_file(world.guild)) == before


async def test_a_snapshot_of_another_server_is_not_restored(world: World) -> None:
    # A file planted in this server's folder under a snapshot name, holding the other server's data.
    await take_nightly_snapshots(world)
    other_snapshot = next((world.tenants_dir / "backups" / str(world.other_guild.id)).iterdir())
    planted = world.tenants_dir / "backups" / str(world.guild.id) / f"{world.guild.id}-20261124T000000Z.sqlite3"
    planted.write_bytes(other_snapshot.read_bytes())
    before = all_rows(world.tenant_file(world.guild))

    reply = await world.command(world.admin, "backup restore", {"id": "20261124T000000Z"})
    assert reply.content == ("Snapshot `20261124T000000Z` cannot be restored: it failed the safety checks. "
                             "Nothing was changed; the details are in the bot's log.")
    assert all_rows(world.tenant_file(world.guild)) == before


async def test_restore_offers_the_snapshot_ids_to_the_owner_only(world: World) -> None:
    await take_nightly_snapshots(world)
    world.clock.advance(days=1)
    await take_nightly_snapshots(world)
    server = world.server

    offered = await server.autocomplete(world.guild, world.general, world.admin, "backup restore", "id", "2026")
    assert [choice["value"] for choice in offered] == ["20261126T120000Z", "20261125T120000Z"]
    assert await server.autocomplete(world.guild, world.general, world.bob, "backup restore", "id", "") == []


async def test_restore_offers_only_the_snapshots_whose_id_has_what_the_owner_typed(world: World) -> None:
    await take_nightly_snapshots(world)  # 2026-11-25
    world.clock.advance(days=1)
    await take_nightly_snapshots(world)  # 2026-11-26
    offered = await world.server.autocomplete(world.guild, world.general, world.admin, "backup restore", "id",
                                              "1126")
    assert [choice["value"] for choice in offered] == ["20261126T120000Z"]


# -- retention of the data of servers that removed the bot ------------------------------------------

def aged(path: Path, guild_id: int, days: int) -> Path:
    """Rename an archive or snapshot to the name it would have had `days` ago: the bot reads a file's
    age from the UTC moment in its name (archives are named in real time)."""
    stamp = path.name.removeprefix(f"{guild_id}-")[:16]
    renamed = path.with_name(path.name.replace(stamp, utc_stamp(datetime.now(UTC) - timedelta(days=days))))
    path.rename(renamed)
    return renamed


async def removed_with_snapshots(world: World, snapshots: int) -> int:
    """The other server gets `snapshots` nightly snapshots (a day apart), then removes the bot."""
    paths, gone = TenantPaths(world.tenants_dir), world.other_guild.id
    await world.live.xp_admin.add(gone, world.admin.id, world.bob.id, 500)
    await world.live.birthdays.set(gone, world.bob.id, 4, 12, 1990)
    for _ in range(snapshots):
        await take_nightly_snapshots(world)
        world.clock.advance(days=1)
    await world.server.remove_bot_from_guild(world.other_guild)
    await eventually(lambda: bool(paths.archives_of(gone)), what="the removed server's archive")
    return gone


async def test_data_of_a_server_gone_longer_than_the_retention_is_deleted_at_night(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    paths = TenantPaths(world.tenants_dir)
    gone = await removed_with_snapshots(world, 7)
    aged(paths.archives_of(gone)[0], gone, 40)            # 40 days later: past the 30-day retention
    await world.restart()
    caplog.set_level(logging.INFO, logger="malabot.features.backups.service")

    await take_nightly_snapshots(world)

    assert paths.archives_of(gone) == []
    assert not (paths.backups_dir / str(gone)).exists(), "its snapshots and their folder are gone"
    assert len(list((paths.backups_dir / str(world.guild.id)).iterdir())) == 7, "a live server keeps backup_keep"
    assert world.tenant_file(world.guild).exists()
    lines = [r.getMessage() for r in caplog.records if "retention" in r.getMessage()]
    assert lines == [f"guild {gone}: past the 30-day archive retention: deleted 1 archive(s) and 7 snapshot(s)",
                     "archive retention (30 days): deleted 1 archive(s) and 7 snapshot(s) of 1 server(s); 0 failed"]

    # Added back later: a new, empty file, and nothing of the old data comes back.
    await world.server.add_bot_to_guild(world.other_guild)
    await eventually(lambda: world.tenant_file(world.other_guild).exists(), what="a new file")
    assert rows_mentioning(world.tenant_file(world.other_guild), world.bob.id) == {}


async def test_an_expired_archive_of_a_server_that_added_the_bot_back_is_deleted(world: World) -> None:
    paths = TenantPaths(world.tenants_dir)
    gone = await removed_with_snapshots(world, 2)
    old = aged(paths.archives_of(gone)[0], gone, 31)
    await world.server.add_bot_to_guild(world.other_guild)  # too late: it starts afresh
    await eventually(lambda: world.tenant_file(world.other_guild).exists(), what="a new file")
    assert paths.archives_of(gone) == [old]
    snapshots_before = set((paths.backups_dir / str(gone)).iterdir())

    await take_nightly_snapshots(world)

    assert paths.archives_of(gone) == []
    assert snapshots_before < set((paths.backups_dir / str(gone)).iterdir()), "a live server keeps its snapshots"


async def test_a_server_gone_within_the_retention_keeps_its_archive_and_snapshots(world: World) -> None:
    paths = TenantPaths(world.tenants_dir)
    gone = await removed_with_snapshots(world, 3)
    archive = aged(paths.archives_of(gone)[0], gone, 29)
    snapshots = sorted((paths.backups_dir / str(gone)).iterdir())
    for snapshot in snapshots:
        aged(snapshot, gone, 400)                          # their own age does not matter, the server's does
    snapshots = sorted((paths.backups_dir / str(gone)).iterdir())
    await world.restart()

    await take_nightly_snapshots(world)

    assert paths.archives_of(gone) == [archive]
    assert sorted((paths.backups_dir / str(gone)).iterdir()) == snapshots
    await world.server.add_bot_to_guild(world.other_guild)  # within the retention: the data comes back
    await eventually(lambda: world.tenant_file(world.other_guild).exists(), what="the archive to come back")
    assert rows_mentioning(world.tenant_file(world.other_guild), world.bob.id)


async def test_snapshots_of_a_server_that_removed_the_bot_a_year_ago_are_gone(world: World) -> None:
    paths = TenantPaths(world.tenants_dir)
    gone = await removed_with_snapshots(world, 1)
    aged(next((paths.backups_dir / str(gone)).iterdir()), gone, 400)
    aged(paths.archives_of(gone)[0], gone, 365)
    for _ in range(3):
        await world.restart()
        await take_nightly_snapshots(world)
    assert not (paths.backups_dir / str(gone)).exists() and paths.archives_of(gone) == []
