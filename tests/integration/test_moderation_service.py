"""Moderation, member-data export/delete and welcome services on real tenant files via TenantManager."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from malabot.clock import MovableClock
from malabot.errors import UserInputError
from malabot.features.audit.member_data import audit_member_data
from malabot.features.moderation.member_data import moderation_member_data
from malabot.features.moderation.models import Case
from malabot.features.moderation.service import ModerationService
from malabot.features.mydata.service import MyDataService
from malabot.features.settings.service import SettingsService
from malabot.features.welcome.rules import ChannelMessage
from malabot.features.welcome.service import WelcomeService
from malabot.member_data import MemberData
from malabot.tenancy.manager import TenantManager

GUILD_A, GUILD_B = 111_111_111_111_111_111, 222_222_222_222_222_222
MOD, ALICE, BOB = 10, 20, 21
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class World:
    tenants: TenantManager
    settings: SettingsService
    moderation: ModerationService
    member_data: MemberData
    mydata: MyDataService
    welcome: WelcomeService
    clock: MovableClock


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    tenants = TenantManager(tmp_path / "tenants", max_open=4)
    await tenants.start()
    clock = MovableClock(START)
    settings = SettingsService(tenants)
    member_data = MemberData(tenants, [moderation_member_data(), audit_member_data()])
    try:
        moderation = ModerationService(tenants, settings, clock)
        yield World(tenants=tenants, settings=settings, moderation=moderation, member_data=member_data,
                    mydata=MyDataService(tenants, member_data, clock), welcome=WelcomeService(tenants, settings),
                    clock=clock)
    finally:
        await tenants.close_all()


def rows_on_disk(world: World, guild_id: int, sql: str) -> list[tuple[object, ...]]:
    """Read the guild's file with a separate plain connection: what is really committed."""
    conn = sqlite3.connect(world.tenants.paths.live(guild_id))
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------------
# numbering


async def test_each_server_numbers_its_own_cases_in_its_own_file(world: World) -> None:
    moderation = world.moderation
    a1 = await moderation.record_warn(GUILD_A, ALICE, MOD, "spam")
    b1 = await moderation.record_kick(GUILD_B, ALICE, MOD, "raid")
    a2 = await moderation.record_ban(GUILD_A, BOB, MOD, "scam", delete_message_days=1)
    b2 = await moderation.record_unban(GUILD_B, ALICE, MOD)
    a3 = await moderation.record_timeout(GUILD_A, ALICE, MOD, timedelta(hours=2), "cool down")
    assert [a1.case.case_number, a2.case_number, a3.case_number] == [1, 2, 3]
    assert [b1.case_number, b2.case_number] == [1, 2]
    listing = "SELECT case_number, action, target_id FROM mod_cases ORDER BY case_number"
    assert rows_on_disk(world, GUILD_A, listing) == [
        (1, "warn", ALICE), (2, "ban", BOB), (3, "timeout", ALICE)]
    assert rows_on_disk(world, GUILD_B, listing) == [(1, "kick", ALICE), (2, "unban", ALICE)]


async def test_concurrent_actions_get_distinct_consecutive_numbers(world: World) -> None:
    moderation = world.moderation
    jobs: list[Awaitable[Case]] = []
    for index in range(30):
        target = 1000 + index
        if index % 3 == 0:
            jobs.append(moderation.record_kick(GUILD_A, target, MOD, f"kick {index}"))
        elif index % 3 == 1:
            jobs.append(moderation.record_timeout(GUILD_A, target, MOD, timedelta(minutes=5)))
        else:
            jobs.append(moderation.record_purge(GUILD_A, 500, MOD, deleted=index))
    warns = [moderation.record_warn(GUILD_B, 7, MOD, "w") for _ in range(10)]
    cases, warned = await asyncio.gather(asyncio.gather(*jobs), asyncio.gather(*warns))
    numbers_a = sorted(case.case_number for case in cases)
    assert sorted(outcome.case.case_number for outcome in warned) == list(range(1, 11))
    assert numbers_a == list(range(1, 31))
    assert rows_on_disk(world, GUILD_A, "SELECT COUNT(*), MAX(case_number) FROM mod_cases") == [(30, 30)]
    assert rows_on_disk(world, GUILD_B, "SELECT COUNT(*), MAX(case_number) FROM mod_cases") == [(10, 10)]


async def test_recorded_cases_carry_their_details(world: World) -> None:
    moderation = world.moderation
    timeout = await moderation.record_timeout(GUILD_A, ALICE, MOD, timedelta(days=28), "  long  ")
    assert timeout.reason == "long"
    assert timeout.duration_seconds == 28 * 86400
    assert timeout.expires_at == START + timedelta(days=28)
    purge = await moderation.record_purge(GUILD_A, 500, MOD, deleted=42, target_id=BOB)
    assert (purge.channel_id, purge.message_count, purge.target_id) == (500, 42, BOB)
    assert await moderation.get_case(GUILD_A, 2) == purge
    await moderation.set_log_message(GUILD_A, 2, 9999)
    assert (await moderation.get_case(GUILD_A, 2)).log_message_id == 9999
    assert [case.case_number for case in await moderation.recent(GUILD_A, 1)] == [2]


async def test_bad_values_are_refused_and_nothing_is_written(world: World) -> None:
    moderation = world.moderation
    with pytest.raises(UserInputError, match="between 0 and 7"):
        await moderation.record_ban(GUILD_A, ALICE, MOD, "x", delete_message_days=8)
    with pytest.raises(UserInputError, match="too long"):
        await moderation.record_timeout(GUILD_A, ALICE, MOD, timedelta(days=28, seconds=1))
    with pytest.raises(UserInputError, match="Give a reason"):
        await moderation.record_warn(GUILD_A, ALICE, MOD, "   ")
    with pytest.raises(UserInputError, match="the most is 512"):
        await moderation.record_kick(GUILD_A, ALICE, MOD, "x" * 513)
    with pytest.raises(UserInputError, match="no case #5"):
        await moderation.get_case(GUILD_A, 5)
    with pytest.raises(UserInputError, match="no case #5"):
        await moderation.set_log_message(GUILD_A, 5, 1)
    assert rows_on_disk(world, GUILD_A, "SELECT COUNT(*) FROM mod_cases") == [(0,)]


# ---------------------------------------------------------------------------------------------------
# warnings


async def test_removing_a_warning_keeps_it_on_file_and_records_the_removal(world: World) -> None:
    moderation = world.moderation
    first = (await moderation.record_warn(GUILD_A, ALICE, MOD, "one")).case
    await moderation.record_warn(GUILD_A, ALICE, MOD, "two")
    world.clock.advance(hours=1)
    removed = await moderation.remove_warning(GUILD_A, first.case_number, MOD, "mistake")
    assert removed.warning.case_number == 1 and removed.warning.removed_at == START + timedelta(hours=1)
    assert (removed.case.case_number, removed.case.action, removed.case.target_id) == (3, "unwarn", ALICE)
    assert removed.case.reason == "Warning #1 removed: mistake"
    assert [case.reason for case in await moderation.warnings(GUILD_A, ALICE)] == ["two"]
    assert [case.action for case in await moderation.history(GUILD_A, ALICE)] == ["warn", "warn", "unwarn"]


async def test_removing_refuses_unknown_non_warning_and_already_removed_cases(world: World) -> None:
    moderation = world.moderation
    await moderation.record_warn(GUILD_A, ALICE, MOD, "one")
    await moderation.record_ban(GUILD_A, BOB, MOD)
    await moderation.remove_warning(GUILD_A, 1, MOD)
    before = rows_on_disk(world, GUILD_A, "SELECT * FROM mod_cases ORDER BY case_number")
    with pytest.raises(UserInputError, match="^There is no case #9 in this server.$"):
        await moderation.remove_warning(GUILD_A, 9, MOD)
    not_a_warning = "^Case #2 is a ban, not a warning; only warnings can be removed.$"
    with pytest.raises(UserInputError, match=not_a_warning):
        await moderation.remove_warning(GUILD_A, 2, MOD)
    with pytest.raises(UserInputError, match="^Warning #1 was already removed.$"):
        await moderation.remove_warning(GUILD_A, 1, MOD)
    assert rows_on_disk(world, GUILD_A, "SELECT * FROM mod_cases ORDER BY case_number") == before


async def test_thresholds_count_active_warnings_within_the_window(world: World) -> None:
    await world.settings.update(GUILD_A, MOD, warn_thresholds=[
        {"count": 2, "days": 7, "action": "timeout", "timeout_minutes": 60},
        {"count": 3, "days": 7, "action": "kick"},
    ])
    moderation = world.moderation

    first = await moderation.record_warn(GUILD_A, ALICE, MOD, "1")
    assert first.escalation is None and first.active_warnings == 1
    world.clock.advance(days=8)
    second = await moderation.record_warn(GUILD_A, ALICE, MOD, "2")  # the first is out of the window
    assert second.escalation is None and second.active_warnings == 2
    world.clock.advance(days=1)
    third = await moderation.record_warn(GUILD_A, ALICE, MOD, "3")
    assert third.escalation is not None
    assert (third.escalation.action, third.escalation.duration, third.escalation.warnings) == (
        "timeout", timedelta(hours=1), 2)
    world.clock.advance(days=1)
    fourth = await moderation.record_warn(GUILD_A, ALICE, MOD, "4")
    assert fourth.escalation is not None and fourth.escalation.action == "kick"
    # Another member and another server are counted apart.
    assert (await moderation.record_warn(GUILD_A, BOB, MOD, "b")).escalation is None
    assert (await moderation.record_warn(GUILD_B, ALICE, MOD, "b")).escalation is None


async def test_removed_warnings_do_not_count_towards_thresholds(world: World) -> None:
    await world.settings.update(GUILD_A, MOD, warn_thresholds=[{"count": 2, "days": 1, "action": "ban"}])
    moderation = world.moderation
    first = await moderation.record_warn(GUILD_A, ALICE, MOD, "1")
    await moderation.remove_warning(GUILD_A, first.case.case_number, MOD)
    second = await moderation.record_warn(GUILD_A, ALICE, MOD, "2")
    assert second.escalation is None and second.active_warnings == 1
    third = await moderation.record_warn(GUILD_A, ALICE, MOD, "3")
    assert third.escalation is not None and third.escalation.action == "ban"


async def test_a_server_without_thresholds_never_escalates(world: World) -> None:
    for _ in range(5):
        outcome = await world.moderation.record_warn(GUILD_A, ALICE, MOD, "w")
    assert outcome.escalation is None and outcome.active_warnings == 5


# ---------------------------------------------------------------------------------------------------
# member data


async def add_appeal(world: World, guild_id: int, user_id: int, text: str) -> None:
    async with world.tenants.transaction(guild_id) as conn:
        await conn.execute("INSERT INTO appeals (user_id, appeal_text, submitted_at) VALUES (?, ?, ?)",
                           (user_id, text, START.isoformat()))


async def test_cases_survive_the_purge_of_their_target(world: World) -> None:
    moderation = world.moderation
    await moderation.record_warn(GUILD_A, ALICE, MOD, "spam")
    await moderation.record_ban(GUILD_A, ALICE, MOD, "raid")
    await moderation.record_kick(GUILD_A, BOB, ALICE, "Alice moderated Bob")
    await add_appeal(world, GUILD_A, ALICE, "please unban me")

    report = await world.mydata.delete(GUILD_A, ALICE)

    assert report.total == 2  # her appeal deleted, her id removed from the case she handled
    assert [(case.action, case.moderator_id) for case in await moderation.history(GUILD_A, ALICE)] == [
        ("warn", MOD), ("ban", MOD)]
    assert [case.moderator_id for case in await moderation.history(GUILD_A, BOB)] == [None]
    assert rows_on_disk(world, GUILD_A, "SELECT COUNT(*) FROM appeals") == [(0,)]
    # Numbering goes on after the kept cases.
    assert (await moderation.record_unban(GUILD_A, ALICE, MOD)).case_number == 4


async def test_purge_of_one_server_leaves_the_other_untouched(world: World) -> None:
    await world.moderation.record_kick(GUILD_A, BOB, ALICE, "in A")
    await world.moderation.record_kick(GUILD_B, BOB, ALICE, "in B")
    await world.member_data.purge(GUILD_A, ALICE)
    assert rows_on_disk(world, GUILD_B, "SELECT moderator_id FROM mod_cases") == [(ALICE,)]
    assert rows_on_disk(world, GUILD_A, "SELECT moderator_id FROM mod_cases") == [(None,)]


async def test_export_holds_exactly_that_members_rows_of_that_server(world: World) -> None:
    moderation = world.moderation
    await moderation.record_warn(GUILD_A, ALICE, MOD, "A: about alice")  # 1
    await moderation.record_warn(GUILD_A, BOB, MOD, "A: about bob")  # 2
    await moderation.record_kick(GUILD_A, BOB, ALICE, "A: by alice")  # 3
    await moderation.record_warn(GUILD_B, ALICE, MOD, "B: about alice")
    await add_appeal(world, GUILD_A, ALICE, "A: alice appeals")
    await add_appeal(world, GUILD_A, BOB, "A: bob appeals")
    await add_appeal(world, GUILD_B, ALICE, "B: alice appeals")
    world.clock.advance(minutes=5)

    exported = await world.mydata.export(GUILD_A, ALICE)

    document = json.loads(exported.content)
    assert (document["guild_id"], document["user_id"]) == (str(GUILD_A), ALICE)  # snowflakes as text
    assert document["generated_at"] == (START + timedelta(minutes=5)).isoformat()
    tables = document["tables"]
    assert [(row["case_number"], row["reason"]) for row in tables["mod_cases"]] == [
        (1, "A: about alice"), (3, "A: by alice")]
    assert [row["appeal_text"] for row in tables["appeals"]] == ["A: alice appeals"]
    assert not any(rows for name, rows in tables.items() if name not in {"mod_cases", "appeals"})
    assert exported.row_count == 3
    assert exported.filename.startswith(f"malabot-data-{GUILD_A}-{ALICE}-")
    assert "B:" not in exported.content.decode()


async def test_export_is_stable_for_unchanged_data(world: World) -> None:
    await world.moderation.record_warn(GUILD_A, ALICE, MOD, "x")
    await add_appeal(world, GUILD_A, ALICE, "y")
    assert (await world.mydata.export(GUILD_A, ALICE)).content == (
        await world.mydata.export(GUILD_A, ALICE)).content


# ---------------------------------------------------------------------------------------------------
# welcome


async def test_welcome_templates_are_checked_before_they_are_stored(world: World) -> None:
    with pytest.raises(UserInputError, match=r"Unknown placeholder \{user\}"):
        await world.settings.update(GUILD_A, MOD, welcome_template="Hi {user}")
    assert (await world.settings.get(GUILD_A)).welcome_template.startswith("Welcome to {server}")
    await world.settings.update(GUILD_A, MOD, goodbye_template="Bye {member}, {member_count} left")
    await world.settings.update(GUILD_A, MOD, goodbye_enabled=True, goodbye_channel_id=300,
                                welcome_enabled=True, welcome_channel_id=100, autorole_id=7)
    leave = await world.welcome.on_leave(GUILD_A, member="Alice", server="Mala", member_count=9)
    assert leave.channel_message == ChannelMessage(300, "Bye Alice, 9 left")
    join = await world.welcome.on_join(GUILD_A, member="<@20>", server="Mala", member_count=10)
    assert join.channel_message == ChannelMessage(100, "Welcome to Mala, <@20>! You are member #10.")
    assert join.autorole_id == 7 and join.dm_text is None
    assert await world.welcome.preview(GUILD_A, "goodbye", member="A", server="S", member_count=1) == (
        "Bye A, 1 left")
