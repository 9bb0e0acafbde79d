"""/mydata through the real bot: the export holds exactly the member's rows of that server, and a
confirmed delete erases them (moderation cases about the member stay), only for the member who asked.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import random
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from malabot.cogs.mydata import BUSY, CANCEL_LABEL, CANCELLED, CONFIRM_LABEL, NOT_YOURS, TIMED_OUT, MyDataCog
from malabot.cogs.questions import EXPIRED
from malabot.features.mydata.service import DELETE_CONFIRMATION
from malabot.privacy import MEMBER_COLUMN
from malabot.sandbox import FakeDiscord, InteractionReply, Message, User
from tests.e2e.data_dump import all_rows, eventually, rows_mentioning
from tests.e2e.discord_failures import busy_file_error, drop_role_changes
from tests.e2e.world import World, make_world, marked_quick
from tests.e2e.xp_place import settled
from tests.file_holds import file_in_use, locked_from_outside

JS_SAFE = 2**53 - 1
UPLOAD_LIMIT = 10 * 2**20  # what the sandbox's interactions report, as Discord does for an unboosted server


@pytest.fixture
async def world(request: pytest.FixtureRequest, discord_server: FakeDiscord, tmp_path: Path) -> AsyncIterator[World]:
    async for running in make_world(discord_server, tmp_path, quick=marked_quick(request)):
        await seed(running)
        yield running


async def seed(world: World) -> None:
    """alice and bob have data in several features of the first server (bob in both); alice has a
    warning on file, which she does not own and which stays after a delete."""
    services = world.live
    home, away = world.guild.id, world.other_guild.id
    for guild_id, user_id, xp in [(home, world.alice.id, 500), (home, world.bob.id, 120), (away, world.bob.id, 70)]:
        await services.xp_admin.add(guild_id, world.admin.id, user_id, xp)
        await services.checkins.check_in(guild_id, user_id)
        await services.birthdays.set(guild_id, user_id, 4, 12, 1990)
    await services.xp.flush_all()
    await services.moderation.record_warn(home, world.alice.id, world.admin.id, "spam")


def rows_about(path: Path, user_id: int) -> dict[str, list[dict[str, Any]]]:
    """Every row of the file that names the member in a member column, as the export writes them."""
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        found: dict[str, list[dict[str, Any]]] = {}
        tables = [row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        for table in tables:
            columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})") if MEMBER_COLUMN.match(row[1])]
            if not columns:
                continue
            where = " OR ".join(f"{column} = ?" for column in columns)
            rows = conn.execute(f"SELECT * FROM {table} WHERE {where}", [user_id] * len(columns)).fetchall()
            if rows:
                # sqlite3.Row iterates over values, so its column names come from keys().
                found[table] = [{key: _as_json(row[key]) for key in row.keys()} for row in rows]  # noqa: SIM118
        return found
    finally:
        conn.close()


def _as_json(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) and abs(value) > JS_SAFE else value


def _sorted(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(row, sort_keys=True) for row in rows)


async def export(world: World, user: User) -> tuple[InteractionReply, dict[str, Any]]:
    reply = await world.command(user, "mydata export")
    assert reply.ephemeral
    [file] = reply.files
    assert file.filename.startswith(f"malabot-data-{world.guild.id}-{user.id}-") and file.filename.endswith(".json")
    return reply, json.loads(file.data)


def non_empty(document: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {table: rows for table, rows in document["tables"].items() if rows}


async def test_export_holds_exactly_the_members_rows_of_this_server(world: World) -> None:
    reply, document = await export(world, world.alice)
    expected = rows_about(world.tenant_file(world.guild), world.alice.id)
    assert set(expected) >= {"xp", "checkins", "birthdays", "mod_cases"}
    exported = non_empty(document)
    assert set(exported) == set(expected)
    for table, rows in expected.items():
        assert _sorted(exported[table]) == _sorted(rows), table
    count = sum(len(rows) for rows in expected.values())
    assert reply.content == f"Everything this bot stores about you in this server: {count} rows."
    assert (document["guild_id"], document["user_id"]) == (str(world.guild.id), str(world.alice.id))


async def test_export_of_a_member_of_two_servers_holds_only_this_servers_rows(world: World) -> None:
    bob = world.bob
    _, here = await export(world, bob)
    reply = await world.command(bob, "mydata export", guild=world.other_guild)
    [file] = reply.files
    there = json.loads(file.data)
    for document, guild in ((here, world.guild), (there, world.other_guild)):
        expected = rows_about(world.tenant_file(guild), bob.id)
        assert {table: _sorted(rows) for table, rows in non_empty(document).items()} == \
            {table: _sorted(rows) for table, rows in expected.items()}
    assert non_empty(here)["xp"] != non_empty(there)["xp"], "the seeds differ, so a mix-up would show"


async def file_cases_handled_by(world: World, moderator: User, reasons: list[str]) -> None:
    """Warnings `moderator` gave, written straight into the server's file (a long-serving moderator)."""
    async with world.live.tenants.transaction(world.guild.id) as conn:
        await conn.executemany(
            "INSERT INTO mod_cases (action, target_id, moderator_id, reason, created_at) VALUES (?, ?, ?, ?, ?)",
            [("warn", world.alice.id, moderator.id, reason, "2026-01-01T00:00:00+00:00") for reason in reasons])


async def test_an_export_over_the_upload_limit_is_sent_compressed(world: World) -> None:
    await file_cases_handled_by(world, world.bob, ["r" * 10_000] * 1_200)  # 12 MB of JSON, very compressible
    reply = await world.command(world.bob, "mydata export")
    assert reply.ephemeral
    [file] = reply.files
    assert file.filename.startswith(f"malabot-data-{world.guild.id}-{world.bob.id}-")
    assert file.filename.endswith(".json.gz")
    assert len(file.data) <= UPLOAD_LIMIT < len(gzip.decompress(file.data))
    assert [r.status for r in world.server.requests if r.files] == [200], "one upload, accepted"
    document = json.loads(gzip.decompress(file.data))
    expected = rows_about(world.tenant_file(world.guild), world.bob.id)
    assert {table: _sorted(rows) for table, rows in non_empty(document).items()} == \
        {table: _sorted(rows) for table, rows in expected.items()}
    count = sum(len(rows) for rows in expected.values())
    assert reply.content == (f"Everything this bot stores about you in this server: {count:,} rows. It is "
                             "compressed (gzip): as plain JSON it is more than the 10.0 MiB Discord lets me "
                             "upload here.")


async def test_an_export_over_the_upload_limit_even_compressed_gets_a_clear_answer(world: World) -> None:
    noise = random.Random(6)
    reasons = [base64.b64encode(noise.randbytes(6_000)).decode() for _ in range(2_000)]  # 16 MB, little to gain
    await file_cases_handled_by(world, world.bob, reasons)
    reply = await world.command(world.bob, "mydata export")
    assert reply.ephemeral
    assert reply.files == []
    assert reply.content.startswith("Your data in this server is 16.")
    assert reply.content.endswith(" compressed), more than the 10.0 MiB Discord lets me upload here, so I cannot "
                                  "send it. Please ask this server's admins for a copy.")
    # The bot's own refusal (the sandbox refuses an upload over the limit with 413): nothing was sent.
    assert [r for r in world.server.requests if r.files or r.status == 413] == []


async def delete_my_data(world: World, user: User) -> Message:
    """/mydata delete, confirmed; returns the question once it shows the outcome. The press is
    acknowledged at once (the erase may wait for the server's file), the answer replaces the question."""
    question = await world.command(user, "mydata delete")
    pressed = await world.server.press_button(question.message, user, label=CONFIRM_LABEL)
    assert pressed.deferred and pressed.original is question.message
    await settled(world)
    return question.message


async def test_confirmed_delete_erases_the_members_data_but_keeps_cases(world: World) -> None:
    alice, file = world.alice, world.tenant_file(world.guild)
    bob_before = rows_about(file, world.bob.id)
    other_before = all_rows(world.tenant_file(world.other_guild))
    # Every row of hers but the case about her: XP, a check-in and its day, a birthday, the audit row.
    erased = sum(count for table, count in rows_mentioning(file, alice.id).items() if table != "mod_cases")
    assert erased == 5

    question = await world.command(alice, "mydata delete")
    assert question.ephemeral and question.content == DELETE_CONFIRMATION
    assert {button["label"] for button in question.message.buttons()} == {CONFIRM_LABEL, CANCEL_LABEL}

    done = await delete_my_data(world, alice)
    assert done.content == (f"Done: your data in this server is erased ({erased} rows changed). "
                            "Moderation cases about you are kept.")
    assert done.buttons() == [], "the buttons are gone once answered"
    # Kept: the cases about her, and the record that she asked (a restore erases her again).
    assert set(rows_mentioning(file, alice.id)) == {"mod_cases", "member_erasures"}

    _, after = await export(world, alice)
    assert set(non_empty(after)) == {"mod_cases", "member_erasures"}
    assert rows_about(file, world.bob.id) == bob_before, "another member's rows are untouched"
    assert all_rows(world.tenant_file(world.other_guild)) == other_before, "another server is untouched"


async def test_a_delete_takes_the_level_roles_its_erased_xp_gave(world: World) -> None:
    first, third = [await world.server.create_role(world.guild, name) for name in ("Chatter", "Veteran")]
    for level, role in ((1, first), (3, third)):
        await world.command(world.admin, "levelrole add", {"level": level, "role": role})
    await world.command(world.admin, "xp set", {"member": world.alice, "amount": 500})   # level 3
    await settled(world)
    member = world.server.member(world.guild, world.alice)
    assert member is not None and {first.id, third.id} <= set(member.roles)

    await delete_my_data(world, world.alice)
    assert not {first.id, third.id} & set(member.roles), "level 0 after the erase: no level role"


async def test_a_connection_lost_as_level_roles_follow_an_erasure_does_not_unsay_it(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    chatter = await world.server.create_role(world.guild, "Chatter")
    await world.command(world.admin, "levelrole add", {"level": 1, "role": chatter})
    await world.command(world.admin, "xp set", {"member": world.alice, "amount": 150})
    await settled(world)
    drop_role_changes(monkeypatch)

    answered = await delete_my_data(world, world.alice)
    assert answered.content.startswith("Done: your data in this server is erased"), "not: nothing may be deleted"
    assert "xp" not in rows_mentioning(world.tenant_file(world.guild), world.alice.id)


@pytest.mark.parametrize("failure", [sqlite3.OperationalError("disk I/O error"), busy_file_error()])
async def test_level_roles_failing_after_an_erasure_do_not_unsay_it(
        world: World, monkeypatch: pytest.MonkeyPatch, failure: sqlite3.OperationalError) -> None:
    # The data is gone: "nothing was deleted, try again" would be false.
    chatter = await world.server.create_role(world.guild, "Chatter")
    await world.command(world.admin, "levelrole add", {"level": 1, "role": chatter})
    await world.command(world.admin, "xp set", {"member": world.alice, "amount": 150})
    await settled(world)
    question = await world.command(world.alice, "mydata delete")

    async def failing(*args: Any, **kwargs: Any) -> None:
        raise failure

    monkeypatch.setattr(world.live.xp, "level_roles", failing)
    await world.server.press_button(question.message, world.alice, label=CONFIRM_LABEL)
    await settled(world)
    assert question.message.content.startswith("Done: your data in this server is erased")
    assert "xp" not in rows_mentioning(world.tenant_file(world.guild), world.alice.id)


async def test_delete_then_export_holds_only_the_record_of_the_erasure(world: World) -> None:
    bob = world.bob  # no moderation case names bob
    await delete_my_data(world, bob)
    _, after = await export(world, bob)
    assert after["tables"] and set(non_empty(after)) == {"member_erasures"}
    [erasure] = after["tables"]["member_erasures"]
    assert erasure["user_id"] == str(bob.id)  # ids as strings: JSON numbers lose digits past 2**53
    assert rows_mentioning(world.tenant_file(world.other_guild), bob.id), "bob's data elsewhere stays"


@pytest.mark.quick
async def test_a_confirm_held_up_past_discords_deadline_still_gets_its_answer(world: World) -> None:
    # Before the fix the erase came first: done when the file was free, but Discord had dropped the
    # press (10062), so the member saw "This interaction failed" under a question still asking.
    world.server.timeout = 20.0
    alice = world.alice
    question = await world.command(alice, "mydata delete")
    async with file_in_use(world.live.tenants, world.guild.id):  # a long backup of the file, say
        pressing = asyncio.create_task(world.server.press_button(question.message, alice, label=CONFIRM_LABEL))
        await asyncio.sleep(world.server.answer_deadline + 0.5)
    pressed = await pressing
    await settled(world)

    assert pressed.deferred and pressed.late_by is None
    assert question.message.content.startswith("Done: your data in this server is erased (")
    assert question.message.buttons() == []
    assert set(rows_mentioning(world.tenant_file(world.guild), alice.id)) == {"mod_cases", "member_erasures"}


@pytest.mark.quick
async def test_a_confirm_meeting_a_file_locked_elsewhere_says_nothing_was_deleted(world: World) -> None:
    world.server.timeout = 20.0  # the bot waits busy_timeout (5 s) before it gives up on the file
    alice, file = world.alice, world.tenant_file(world.guild)
    before = rows_mentioning(file, alice.id)
    question = await world.command(alice, "mydata delete")
    with locked_from_outside(file):
        pressed = await world.server.press_button(question.message, alice, label=CONFIRM_LABEL)
        await eventually(lambda: question.message.content != DELETE_CONFIRMATION, within=10,
                         what="the question to show the outcome")

    assert pressed.late_by is None
    # The question is closed (its view has stopped); the member asks again once the file is free.
    assert question.message.content == BUSY and question.message.buttons() == []
    assert rows_mentioning(file, alice.id) == before
    assert (await delete_my_data(world, alice)).content.startswith("Done: your data in this server is erased (")


async def test_only_the_asking_member_can_confirm(world: World) -> None:
    question = await world.command(world.alice, "mydata delete")
    before = rows_mentioning(world.tenant_file(world.guild), world.alice.id)
    intruder = await world.server.press_button(question.message, world.bob, label=CONFIRM_LABEL)
    assert intruder.ephemeral and intruder.content == NOT_YOURS
    assert rows_mentioning(world.tenant_file(world.guild), world.alice.id) == before
    assert question.message.content == DELETE_CONFIRMATION and question.message.buttons()


async def test_cancel_deletes_nothing(world: World) -> None:
    before = rows_mentioning(world.tenant_file(world.guild), world.alice.id)
    question = await world.command(world.alice, "mydata delete")
    await world.server.press_button(question.message, world.alice, label=CANCEL_LABEL)
    assert question.message.content == CANCELLED and question.message.buttons() == []
    assert rows_mentioning(world.tenant_file(world.guild), world.alice.id) == before


async def test_unanswered_question_times_out_and_deletes_nothing(world: World) -> None:
    cog = world.running.get_cog("MyData")
    assert isinstance(cog, MyDataCog)
    cog.confirm_timeout = 0.05
    before = rows_mentioning(world.tenant_file(world.guild), world.alice.id)
    question = await world.command(world.alice, "mydata delete")
    await eventually(lambda: question.message.content == TIMED_OUT, what="the question to expire")
    assert question.message.buttons() == []
    assert rows_mentioning(world.tenant_file(world.guild), world.alice.id) == before


async def test_a_delete_question_from_before_a_restart_expires_and_deletes_nothing(world: World) -> None:
    before = rows_mentioning(world.tenant_file(world.guild), world.alice.id)
    question = await world.command(world.alice, "mydata delete")
    await world.restart()
    pressed = await world.server.press_button(question.message, world.alice, label=CONFIRM_LABEL)
    assert pressed.message.content == EXPIRED
    assert question.message.buttons() == []
    assert rows_mentioning(world.tenant_file(world.guild), world.alice.id) == before
