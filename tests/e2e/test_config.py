"""/config through the real bot: validated changes are stored, bad values are refused ephemerally."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from malabot.sandbox import FakeDiscord
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
    assert f"• `birthday_channel_id`: <#{world.general.id}>" in shown.embeds[0]["description"]

    reset = await world.command(world.admin, "config reset", {"setting": "birthday_channel_id"})
    assert reset.content == "`birthday_channel_id` is back to its default: not set."
    assert (await world.live.guild_settings.get(world.guild.id)).birthday_channel_id is None


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
