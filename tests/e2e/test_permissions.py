"""Admin commands refuse members without the permission at run time, whatever Discord's client shows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import discord
import pytest

from malabot.app import build_bot, build_services
from malabot.sandbox import FakeDiscord, sandbox_client_options
from malabot.settings import Settings
from tests.e2e.world import World, make_world


@pytest.fixture
async def world(discord_server: FakeDiscord, tmp_path: Path) -> AsyncIterator[World]:
    async for running in make_world(discord_server, tmp_path):
        yield running


@pytest.mark.parametrize("command", ["xp reset member", "xp add"])
async def test_nested_admin_commands_are_checked_for_plain_members(world: World, command: str) -> None:
    await world.live.xp_admin.add(world.guild.id, world.admin.id, world.bob.id, 300)
    options = {"member": world.bob} | ({"amount": 5} if command == "xp add" else {})
    reply = await world.command(world.alice, command, options)
    assert reply.ephemeral
    assert reply.content == "You need the Manage Server permission to use this command."
    card = await world.live.xp.rank(world.guild.id, world.bob.id)
    assert card.total_xp == 300


async def test_the_bot_owners_are_the_configured_ones(discord_server: FakeDiscord, tmp_path: Path) -> None:
    owner, other = discord_server.add_user("operator"), discord_server.add_user("someone")
    settings = Settings(tenants_dir=tmp_path / "tenants", api_base_url=discord_server.api_base_url,
                        token=discord_server.token, owner_ids=f"{owner.id}")
    bot = build_bot(build_services(settings), **sandbox_client_options())
    try:
        assert await bot.is_owner(discord.Object(owner.id))  # type: ignore[arg-type]
        assert not await bot.is_owner(discord.Object(other.id))  # type: ignore[arg-type]
    finally:
        await bot.close()
    assert discord_server.requests_to("GET", "/oauth2/applications/@me") == [], "Discord was not asked"
