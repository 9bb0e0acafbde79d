"""Commands that wait for the server's file past Discord's 3 s answer deadline.

Another program (an operator's `sqlite3` session) may hold the file's write lock; a command that has
to write first (/rank and /leaderboard store buffered chat XP before they read) then waits the bot's
busy_timeout (5 s). The sandbox enforces Discord's deadline: a first answer after 3 s is refused
(10062) and the user sees "The application did not respond". The bot defers a command still silent
after 2 s, publicly for a command whose answer is public, and says plainly when the file stayed busy.
An answer is as public or private as when the command is fast, whatever the deferral was.

The tests marked quick run with the waits shortened in the same order (world.QUICK); one keeps the real pace.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from malabot.bot import APOLOGY
from malabot.cogs import checkins as checkins_cog
from malabot.commands import DEFER_AFTER
from malabot.sandbox import Channel, FakeDiscord, InteractionReply, User
from malabot.sandbox.interactions import ANSWER_DEADLINE
from malabot.tenancy.failures import BUSY_ANSWER
from malabot.tenancy.opening import DEFAULT_BUSY_TIMEOUT_MS
from tests.e2e.world import QUICK, QUICK_ANSWER_DEADLINE, World, make_world, marked_quick
from tests.e2e.xp_place import settled
from tests.file_holds import file_in_use, locked_from_outside

DEFERRED = 5  # DEFERRED_CHANNEL_MESSAGE: "thinking..."


@pytest.fixture
async def world(request: pytest.FixtureRequest, discord_server: FakeDiscord, tmp_path: Path) -> AsyncIterator[World]:
    discord_server.timeout = 20.0  # the bot waits busy_timeout (5 s) before it gives up on the file
    async for made in make_world(discord_server, tmp_path, quick=marked_quick(request)):
        yield made


async def slowly(world: World, user: User, name: str, options: dict[str, Any] | None = None) -> InteractionReply:
    """The command while the server's file is in use (a long backup, say) a little past the bot's
    DEFER_AFTER, still before Discord's deadline."""
    async with file_in_use(world.live.tenants, world.guild.id):
        asking = asyncio.create_task(world.command(user, name, options))
        await asyncio.sleep(world.waits.defer_after + 0.5)
    return await asking


def bot_posts_in(world: World, channel: Channel) -> list[str]:
    """What everyone in the channel sees the bot post."""
    return [m.content for m in world.server.messages_in(channel, author=world.server.bot_user)]


def test_the_bot_defers_well_before_discords_deadline_and_gives_up_on_a_file_after_it() -> None:
    assert ANSWER_DEADLINE == 3.0 and DEFER_AFTER <= ANSWER_DEADLINE - 0.5
    assert DEFAULT_BUSY_TIMEOUT_MS / 1000 > ANSWER_DEADLINE
    # The same order with the shortened waits.
    assert QUICK.defer_after + 0.5 < QUICK_ANSWER_DEADLINE < QUICK.busy_timeout_ms / 1000


@pytest.mark.parametrize("command", [
    pytest.param("rank", id="rank-at-the-real-pace"),
    pytest.param("leaderboard", marks=pytest.mark.quick),
])
async def test_a_public_command_meeting_a_file_locked_elsewhere_is_told_it_is_busy(world: World,
                                                                                   command: str) -> None:
    await world.server.send_message(world.general, world.alice, "hello")  # XP to store before reading
    await settled(world)
    with locked_from_outside(world.tenant_file(world.guild)):
        reply = await world.command(world.alice, command)  # before the fix: 10062, "did not respond"

    assert reply.callback_type == DEFERRED and reply.late_by is None
    assert reply.content == BUSY_ANSWER
    # Deferred publicly, for its answer; the error is the asker's alone (before the fix: posted publicly).
    assert reply.ephemeral and reply.original is not None and reply.original.deleted
    assert bot_posts_in(world, world.general) == []

    after = await world.command(world.alice, "rank")  # the file is free again: nothing was lost
    assert after.callback_type != DEFERRED and after.content.startswith("**alice** — level 0, rank #1")


@pytest.mark.quick
async def test_a_private_command_held_up_past_the_deadline_still_answers_privately(world: World) -> None:
    async with file_in_use(world.live.tenants, world.guild.id):  # a long backup of the file, say
        asking = asyncio.create_task(world.command(world.admin, "warnings list"))
        await asyncio.sleep(world.server.answer_deadline + 0.5)
    reply = await asking

    assert reply.callback_type == DEFERRED and reply.late_by is None
    assert reply.ephemeral and reply.embeds[0]["description"] == "No cases yet."


@pytest.mark.quick
@pytest.mark.parametrize(("name", "options"), [
    ("leaderboard", {"page": 5}),
    ("checkin", {"leaderboard": "current", "page": 5}),
])
async def test_a_private_answer_of_a_public_command_stays_private_when_slow(world: World, name: str,
                                                                           options: dict[str, Any]) -> None:
    fast = await world.command(world.alice, name, options)
    assert fast.ephemeral and "is empty" in fast.content

    slow = await slowly(world, world.alice, name, options)

    assert slow.callback_type == DEFERRED and slow.late_by is None
    assert slow.content == fast.content
    assert slow.ephemeral, "the empty-page note is the asker's alone"  # before the fix: posted publicly
    assert slow.original is not None and slow.original.deleted  # the public "thinking..." went away
    assert bot_posts_in(world, world.general) == []


@pytest.mark.quick
async def test_a_slow_public_answer_of_a_public_command_replaces_its_thinking(world: World) -> None:
    slow = await slowly(world, world.alice, "rank")

    assert slow.callback_type == DEFERRED and not slow.ephemeral
    assert slow.original is not None and slow.messages == [slow.original] and not slow.original.deleted
    assert bot_posts_in(world, world.general) == [slow.content]


@pytest.mark.quick
async def test_another_members_birthday_stays_public_when_slow(world: World) -> None:
    await world.live.birthdays.set(world.guild.id, world.bob.id, 4, 12, 1990)
    fast = await world.command(world.alice, "birthday show", {"member": world.bob})
    assert not fast.ephemeral and "1990" not in fast.content

    slow = await slowly(world, world.alice, "birthday show", {"member": world.bob})

    assert slow.callback_type == DEFERRED and slow.late_by is None
    assert slow.content == fast.content
    assert not slow.ephemeral, "another member's birthday is answered publicly"  # before the fix: privately
    assert slow.original is not None and slow.original.deleted  # the private "thinking..." went away
    assert bot_posts_in(world, world.general) == [fast.content, slow.content]

    own = await slowly(world, world.bob, "birthday show")  # their own, with the year: private as ever
    assert own.callback_type == DEFERRED and own.ephemeral and "1990" in own.content
    assert own.messages == [own.original]
    assert bot_posts_in(world, world.general) == [fast.content, slow.content]


@pytest.mark.quick
async def test_a_private_error_after_a_slow_public_answer_leaves_that_answer(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The public answer filled the public "thinking...": an error after it (privately, as ever) is a
    message of its own, and must not take the answer away as if it were still the placeholder."""

    async def failing(*args: Any, **kwargs: Any) -> object:
        raise RuntimeError("a step after the answer that nothing expected to fail")

    # The check-in is stored and answered; then the work that follows it fails (a level-up's own
    # failures become problems for the admins: this is a failure nothing foresaw).
    monkeypatch.setattr(checkins_cog.levelups, "apply_after_stored_work", failing)
    slow = await slowly(world, world.alice, "checkin")
    await settled(world)

    assert slow.callback_type == DEFERRED and slow.late_by is None
    public = slow.original
    assert public is not None and public.content.startswith("✅ Checked in") and not public.ephemeral
    assert not public.deleted, "the check-in's public answer was deleted by the error after it"
    assert [(m.content, m.ephemeral) for m in slow.followups] == [(APOLOGY, True)]
    assert bot_posts_in(world, world.general) == [public.content]
