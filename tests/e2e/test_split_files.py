"""Files made by `malabot legacy split`, served by the real bot: what the old bot stored reads back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from malabot.legacy.split import SplitOptions, split_legacy
from malabot.sandbox import FakeDiscord
from tests.e2e.world import World, make_world
from tests.integration.legacy_fixtures import GLOBAL, LegacyDb

UNIX_TIME = 1714564800  # 2024-05-01 12:00 UTC
# How the old bot may have dated a case (TIMESTAMP columns keep a number as a number).
OLD_CASE_TIMES: tuple[object, ...] = (UNIX_TIME, UNIX_TIME * 1000 + 250, str(UNIX_TIME), "2024-05-01 12:00:00",
                                      "the day before yesterday")


def split_old_cases(world: World) -> None:
    db = LegacyDb(world.tenants_dir.parent / "bot.db", GLOBAL)
    for number, stamp in enumerate(OLD_CASE_TIMES, start=1):
        db.conn.execute("INSERT INTO mod_logs (guild_id, user_id, moderator_id, action, reason, timestamp,"
                        " created_at) VALUES (?, ?, ?, 'warn', ?, ?, NULL)",
                        (world.guild.id, world.alice.id, world.admin.id, f"old warning {number}", stamp))
    db.close()
    report = split_legacy(SplitOptions(legacy_db=db.path, tenants_dir=world.tenants_dir))
    assert report.accounted
    assert dict(report.ledger.totals()["mod_logs"].partly) == {
        "its time is not a date or a Unix time; the case is dated at the split": 1}


@pytest.fixture
async def world(discord_server: FakeDiscord, tmp_path: Path) -> AsyncIterator[World]:
    async for running in make_world(discord_server, tmp_path, prepare=split_old_cases):
        yield running


async def test_old_cases_are_listed_with_their_dates_however_the_old_bot_stored_them(world: World) -> None:
    listed = await world.command(world.admin, "warnings list", {"member": world.alice})
    text = listed.content + "".join(str(embed.get("description")) for embed in listed.embeds)
    assert all(f"old warning {number}" in text for number in range(1, len(OLD_CASE_TIMES) + 1)), text
    assert text.count(f"<t:{UNIX_TIME}:f>") == 4, "each readable time is the case's date"
    recent = await world.command(world.admin, "warnings list")
    assert "old warning 5" in recent.content + "".join(str(embed.get("description")) for embed in recent.embeds)
