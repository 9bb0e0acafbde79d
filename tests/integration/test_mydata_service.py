"""`/mydata` services as the composition root wires them: an export includes XP still buffered."""

from __future__ import annotations

import json
from pathlib import Path

from malabot.app import build_services, stop_services
from malabot.settings import Settings

GUILD, ALICE, CHANNEL = 111_111_111_111_111_111, 1001, 5


async def test_an_export_includes_chat_xp_not_yet_written_to_the_file(tmp_path: Path) -> None:
    services = build_services(Settings(tenants_dir=tmp_path / "tenants", _env_file=None))  # type: ignore[call-arg]
    await services.tenants.start()  # the XP service is not started: nothing flushes on its own
    try:
        award = await services.xp.record_message(GUILD, ALICE, CHANNEL, (), is_bot=False)
        assert award is not None
        async with services.tenants.reading(GUILD) as conn:
            assert await conn.execute_fetchall("SELECT * FROM xp") == [], "still only in memory"
        exported = json.loads((await services.mydata.export(GUILD, ALICE)).content)
        [row] = exported["tables"]["xp"]
        assert (row["user_id"], row["messages"]) == (ALICE, 1) and 15 <= row["xp"] <= 25
    finally:
        await stop_services(services)
