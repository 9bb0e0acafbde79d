"""Admin XP edits and level-role edits on real tenant files: results, audit rows, atomicity."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import pytest
from xp_fixtures import XpWorld, read_file, xp_world

from malabot.errors import UserInputError
from malabot.features.xp.models import LevelChange, LevelRole
from malabot.features.xp.rules import MAX_TOTAL_XP
from tests.file_holds import file_in_use

GUILD = 111_111_111_111_111_111
ADMIN = 9
CHANNEL = 500
ALICE, BOB = 1001, 1002


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[XpWorld]:
    async with xp_world(tmp_path / "tenants") as built:
        yield built


def audit(world: XpWorld) -> list[tuple[str, int | None, int | None, dict[str, Any]]]:
    sql = "SELECT action, actor_id, target_id, details FROM audit_log WHERE category = 'xp' ORDER BY id"
    rows = read_file(world.tenants.paths.live(GUILD), sql)
    return [(action, actor, target, json.loads(details)) for action, actor, target, details in rows]


def stored(world: XpWorld, user_id: int) -> int | None:
    rows = read_file(world.tenants.paths.live(GUILD), "SELECT xp FROM xp WHERE user_id = ?", (user_id,))
    return rows[0][0] if rows else None


async def test_add_remove_set_and_reset_change_xp_and_are_audited(world: XpWorld) -> None:
    added = await world.admin.add(GUILD, ADMIN, ALICE, 300)
    assert (added.old_level, added.new_level, added.total_xp, added.leveled_up) == (0, 2, 300, True)
    removed = await world.admin.remove(GUILD, ADMIN, ALICE, 250)
    assert (removed.old_level, removed.new_level, removed.total_xp) == (2, 0, 50)
    assert (await world.admin.remove(GUILD, ADMIN, ALICE, 999)).total_xp == 0     # never below 0
    assert (await world.admin.set(GUILD, ADMIN, ALICE, 120)).new_level == 1
    reset = await world.admin.reset(GUILD, ADMIN, ALICE)
    assert (reset.old_level, reset.new_level, reset.total_xp) == (1, 0, 0)
    assert audit(world) == [
        ("add", ADMIN, ALICE, {"before": 0, "after": 300, "amount": 300}),
        ("remove", ADMIN, ALICE, {"before": 300, "after": 50, "amount": 250}),
        ("remove", ADMIN, ALICE, {"before": 50, "after": 0, "amount": 999}),
        ("set", ADMIN, ALICE, {"before": 0, "after": 120, "amount": 120}),
        ("reset", ADMIN, ALICE, {"before": 120, "after": 0}),
    ]


async def test_an_edit_includes_xp_still_buffered_from_chat(world: XpWorld) -> None:
    await world.settings.update(GUILD, ADMIN, xp_min=20, xp_max=20)
    await world.xp.on_message(GUILD, ALICE, CHANNEL, (), is_bot=False)
    change = await world.admin.add(GUILD, ADMIN, ALICE, 5)
    assert change.total_xp == 25
    assert audit(world)[-1][3] == {"before": 20, "after": 25, "amount": 5}
    # The buffered XP was written once, not twice.
    assert (await world.xp.rank(GUILD, ALICE)).total_xp == 25


async def test_set_replaces_buffered_xp_and_later_chat_adds_to_the_new_total(world: XpWorld) -> None:
    await world.settings.update(GUILD, ADMIN, xp_min=20, xp_max=20)
    await world.xp.on_message(GUILD, ALICE, CHANNEL, (), is_bot=False)
    await world.admin.set(GUILD, ADMIN, ALICE, 95)
    world.clock.advance(minutes=1)
    change = await world.xp.on_message(GUILD, ALICE, CHANNEL, (), is_bot=False)
    assert change is not None and (change.total_xp, change.leveled_up) == (115, True)


async def edit_while_alice_chats(world: XpWorld, edit: Awaitable[LevelChange]) -> LevelChange:
    """Start `edit` while the file is in use, and let Alice earn 20 XP while it waits for the file."""
    async with file_in_use(world.tenants, GUILD):
        waiting = asyncio.ensure_future(edit)
        await asyncio.sleep(0.05)
        world.clock.advance(minutes=1)
        # Recorded as the listener does: its level change may need the file, which is in use.
        assert await world.xp.record_message(GUILD, ALICE, CHANNEL, (), is_bot=False) is not None
    return await waiting


async def test_chat_xp_earned_while_an_edit_waits_for_the_file_is_part_of_its_total(world: XpWorld) -> None:
    await world.settings.update(GUILD, ADMIN, xp_min=20, xp_max=20)
    await world.xp.on_message(GUILD, ALICE, CHANNEL, (), is_bot=False)
    await world.xp.flush(GUILD)                                      # 20 XP, known in memory

    change = await edit_while_alice_chats(world, world.admin.add(GUILD, ADMIN, ALICE, 435))
    assert (change.old_level, change.new_level, change.total_xp) == (0, 3, 475)
    assert audit(world)[-1][3] == {"before": 40, "after": 475, "amount": 435}
    await world.xp.flush(GUILD)
    assert stored(world, ALICE) == 475                               # the chat XP counted once


async def test_a_set_while_chat_xp_waits_for_the_file_sets_the_whole_total(world: XpWorld) -> None:
    await world.settings.update(GUILD, ADMIN, xp_min=20, xp_max=20)
    await world.xp.on_message(GUILD, ALICE, CHANNEL, (), is_bot=False)
    await world.xp.flush(GUILD)

    change = await edit_while_alice_chats(world, world.admin.set(GUILD, ADMIN, ALICE, 100))
    assert change.total_xp == 100
    assert audit(world)[-1][3] == {"before": 40, "after": 100, "amount": 100}
    await world.xp.flush(GUILD)
    assert stored(world, ALICE) == 100
    assert read_file(world.tenants.paths.live(GUILD), "SELECT messages FROM xp WHERE user_id = ?",
                     (ALICE,)) == [(2,)]                             # both messages still counted


async def test_a_refused_edit_gives_chat_xp_earned_while_it_waited_back_to_the_buffer(world: XpWorld) -> None:
    await world.admin.set(GUILD, ADMIN, ALICE, MAX_TOTAL_XP - 10)
    await world.settings.update(GUILD, ADMIN, xp_min=5, xp_max=5)
    with pytest.raises(UserInputError, match="past the limit"):
        await edit_while_alice_chats(world, world.admin.add(GUILD, ADMIN, ALICE, 6))
    assert stored(world, ALICE) == MAX_TOTAL_XP - 10                 # rolled back, the chat XP too
    await world.xp.flush(GUILD)
    assert stored(world, ALICE) == MAX_TOTAL_XP - 5                  # ... and written by the next flush


@pytest.mark.parametrize("amount", [0, -5, MAX_TOTAL_XP + 1])
async def test_bad_amounts_are_refused_before_anything_is_written(world: XpWorld, amount: int) -> None:
    with pytest.raises(UserInputError, match="between"):
        await world.admin.add(GUILD, ADMIN, ALICE, amount)
    await world.tenants.ensure(GUILD)
    assert audit(world) == []


async def test_a_refused_edit_changes_nothing_and_keeps_buffered_chat_xp(world: XpWorld) -> None:
    await world.admin.set(GUILD, ADMIN, ALICE, MAX_TOTAL_XP - 10)
    await world.settings.update(GUILD, ADMIN, xp_min=20, xp_max=20)
    await world.xp.on_message(GUILD, BOB, CHANNEL, (), is_bot=False)      # buffered for BOB
    with pytest.raises(UserInputError, match="past the limit"):
        await world.admin.add(GUILD, ADMIN, ALICE, 11)
    assert stored(world, ALICE) == MAX_TOTAL_XP - 10
    assert [action for action, *_ in audit(world)] == ["set"]
    # BOB's buffered XP was flushed before the edit and is counted once.
    assert stored(world, BOB) == 20
    assert (await world.xp.rank(GUILD, BOB)).total_xp == 20


async def test_reset_all_zeroes_everyone_and_audits_one_summary(world: XpWorld) -> None:
    await world.admin.set(GUILD, ADMIN, ALICE, 300)
    await world.admin.set(GUILD, ADMIN, BOB, 200)
    await world.settings.update(GUILD, ADMIN, xp_min=20, xp_max=20)
    await world.xp.on_message(GUILD, ALICE, CHANNEL, (), is_bot=False)
    assert await world.admin.reset_all(GUILD, ADMIN) == 2
    assert (stored(world, ALICE), stored(world, BOB)) == (0, 0)
    assert (await world.xp.leaderboard(GUILD)).entries == ()
    action, actor, target, details = audit(world)[-1]
    assert (action, actor, target) == ("reset_all", ADMIN, None)
    assert details == {"before": {"members_with_xp": 2, "total_xp": 520},
                       "after": {"members_with_xp": 0, "total_xp": 0}}
    world.clock.advance(minutes=1)
    change = await world.xp.on_message(GUILD, ALICE, CHANNEL, (), is_bot=False)
    assert change is not None and change.total_xp == 20   # known totals were dropped with the reset


async def test_level_roles_add_replace_list_and_remove(world: XpWorld) -> None:
    assert await world.admin.add_level_role(GUILD, ADMIN, 10, 110) is None
    assert await world.admin.add_level_role(GUILD, ADMIN, 5, 105) is None
    assert await world.admin.add_level_role(GUILD, ADMIN, 10, 111) == LevelRole(10, 110)
    assert await world.xp.level_roles(GUILD) == [LevelRole(5, 105), LevelRole(10, 111)]
    assert await world.admin.remove_level_role(GUILD, ADMIN, 5) == LevelRole(5, 105)
    assert await world.xp.level_roles(GUILD) == [LevelRole(10, 111)]
    assert [(action, details) for action, _, _, details in audit(world)] == [
        ("level_role_add", {"level": 10, "before": None, "after": 110}),
        ("level_role_add", {"level": 5, "before": None, "after": 105}),
        ("level_role_add", {"level": 10, "before": 110, "after": 111}),
        ("level_role_remove", {"level": 5, "before": 105, "after": None}),
    ]


async def test_level_role_mistakes_are_explained(world: XpWorld) -> None:
    await world.admin.add_level_role(GUILD, ADMIN, 5, 105)
    with pytest.raises(UserInputError, match="already given at level 5"):
        await world.admin.add_level_role(GUILD, ADMIN, 6, 105)
    with pytest.raises(UserInputError, match="No role is given at level 7"):
        await world.admin.remove_level_role(GUILD, ADMIN, 7)
    with pytest.raises(UserInputError, match="between 1 and"):
        await world.admin.add_level_role(GUILD, ADMIN, 0, 106)
    assert await world.xp.level_roles(GUILD) == [LevelRole(5, 105)]
    assert len(audit(world)) == 1


async def test_adding_the_same_level_role_again_replaces_nothing(world: XpWorld) -> None:
    role = 777_777_777_777_777_777
    assert await world.admin.add_level_role(GUILD, ADMIN, 5, role) is None
    assert await world.admin.add_level_role(GUILD, ADMIN, 5, role) is None, "it does not replace itself"
