"""/config through the real bot: validated changes are stored, bad values are refused ephemerally."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from malabot.sandbox import FakeDiscord
from malabot.sandbox.state import GUILD_CATEGORY, GUILD_VOICE
from tests.e2e.world import World, make_world


@pytest.fixture
async def world(discord_server: FakeDiscord, tmp_path: Path) -> AsyncIterator[World]:
    async for running in make_world(discord_server, tmp_path):
        yield running


async def test_set_show_and_reset_a_setting(world: World) -> None:
    reply = await world.command(world.admin, "config set",
                                {"setting": "birthday_channel_id", "value": f"<#{world.general.id}>"})
    assert reply.ephemeral
    assert reply.content == f"`birthday_channel_id` is now <#{world.general.id}>."
    assert (await world.live.guild_settings.get(world.guild.id)).birthday_channel_id == world.general.id

    shown = await world.command(world.admin, "config show")
    assert shown.ephemeral
    assert f"• `birthday_channel_id`: <#{world.general.id}>" in shown.embeds[0]["description"]

    reset = await world.command(world.admin, "config reset", {"setting": "birthday_channel_id"})
    assert reset.ephemeral
    assert reset.content == "`birthday_channel_id` is back to its default: not set."
    assert (await world.live.guild_settings.get(world.guild.id)).birthday_channel_id is None
    assert await settings_audit(world) == [
        (world.admin.id, {"birthday_channel_id": world.general.id}),
        (world.admin.id, {"birthday_channel_id": None}),
    ], "both changes are on record, with who made them"


async def settings_audit(world: World) -> list[tuple[int, dict[str, object]]]:
    """(actor, changed values) of the settings audit rows, oldest first."""
    async with world.live.tenants.reading(world.guild.id) as conn:
        rows = await conn.execute_fetchall(
            "SELECT actor_id, details FROM audit_log WHERE category = 'settings' ORDER BY id")
    return [(actor, json.loads(details)) for actor, details in rows]


@pytest.mark.parametrize(("setting", "value", "answer"), [
    ("timezone", "Mars/Olympus", "timezone: unknown timezone 'Mars/Olympus'; use an IANA name such as Europe/Berlin"),
    ("birthday_hour", "25", "birthday_hour: Input should be less than or equal to 23"),
    ("levelup_channel_id", "<#999>", "`levelup_channel_id`: there is no channel with id 999 in this server."),
    ("xp_enabled", "maybe", "`xp_enabled` is on or off, not `maybe`."),
    ("levelup_template", "{member} hit {lvl}", "levelup_template: Unknown placeholder {lvl}."),
])
async def test_bad_values_are_refused_and_nothing_is_stored(world: World, setting: str, value: str,
                                                            answer: str) -> None:
    reply = await world.command(world.admin, "config set", {"setting": setting, "value": value})
    assert reply.ephemeral
    assert reply.content.startswith(answer)
    async with world.live.tenants.reading(world.guild.id) as conn, \
            conn.execute("SELECT COUNT(*) FROM settings") as cursor:
        assert (await cursor.fetchone())[0] == 0


async def test_setting_names_autocomplete(world: World) -> None:
    choices = await world.server.autocomplete(world.guild, world.general, world.admin, "config set",
                                              "setting", "birthday_h")
    assert [choice["value"] for choice in choices] == ["birthday_hour"]


async def stored_settings(world: World) -> dict[str, str]:
    async with world.live.tenants.reading(world.guild.id) as conn:
        return {key: value for key, value in await conn.execute_fetchall("SELECT key, value FROM settings")}


async def test_two_admins_changing_different_settings_at_once_both_keep_their_change(world: World) -> None:
    timezone, base_xp = await asyncio.gather(
        world.command(world.admin, "config set", {"setting": "timezone", "value": "Europe/Berlin"}),
        world.command(world.bob, "config set", {"setting": "checkin_base_xp", "value": "70"}))
    assert timezone.content == "`timezone` is now Europe/Berlin."
    assert base_xp.content == "`checkin_base_xp` is now 70."
    assert await stored_settings(world) == {"timezone": '"Europe/Berlin"', "checkin_base_xp": "70"}
    await world.restart()  # what the file says, not a cached copy
    settings = await world.live.guild_settings.get(world.guild.id)
    assert (settings.timezone, settings.checkin_base_xp) == ("Europe/Berlin", 70)


@pytest.fixture
async def odd_things(discord_server: FakeDiscord, tmp_path: Path) -> AsyncIterator[tuple[World, dict[str, int]]]:
    made: dict[str, int] = {}

    def add_them(world: World) -> None:
        made["category"] = world.server.add_channel(world.guild, "Events", type=GUILD_CATEGORY).id
        made["voice"] = world.server.add_channel(world.guild, "Lounge", type=GUILD_VOICE).id
        made["role elsewhere"] = world.server.add_role(world.other_guild, "Elsewhere mods").id

    async for running in make_world(discord_server, tmp_path, prepare=add_them):
        yield running, made


async def test_references_must_be_of_this_server_and_of_the_right_kind(
        odd_things: tuple[World, dict[str, int]]) -> None:
    world, made = odd_things
    category, voice, elsewhere_role = made["category"], made["voice"], made["role elsewhere"]
    refusals = {
        ("levelup_channel_id", f"<#{world.other_general.id}>"):
            f"`levelup_channel_id`: there is no channel with id {world.other_general.id} in this server.",
        ("birthday_role_id", f"<@&{elsewhere_role}>"):
            f"`birthday_role_id`: there is no role with id {elsewhere_role} in this server.",
        ("no_xp_channel_ids", f"<#{category}>"):
            f"`no_xp_channel_ids`: <#{category}> is a category; name its channels instead.",
        ("welcome_channel_id", f"<#{voice}>"):
            f"`welcome_channel_id`: <#{voice}> is not a text channel; I post there, so choose a text channel.",
        ("timezone", "localtime"): "timezone: unknown timezone 'localtime'",
    }
    for (setting, value), answer in refusals.items():
        reply = await world.command(world.admin, "config set", {"setting": setting, "value": value})
        assert reply.ephemeral and reply.content.startswith(answer), (setting, reply.content)
    assert await stored_settings(world) == {}

    chat_anywhere = await world.command(world.admin, "config set",
                                        {"setting": "no_xp_channel_ids", "value": f"<#{voice}>"})
    assert chat_anywhere.content == f"`no_xp_channel_ids` is now <#{voice}>."
