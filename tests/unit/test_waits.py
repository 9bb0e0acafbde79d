"""The bot's waits: production values unless a test passes shorter ones (tests/e2e/world.QUICK)."""

from __future__ import annotations

from pathlib import Path

from malabot import member_data, member_list_loading
from malabot.app import Waits, build_services
from malabot.settings import Settings


def test_the_bot_waits_the_production_values_unless_told_otherwise(tmp_path: Path) -> None:
    waits = Waits()
    assert (waits.busy_timeout_ms, waits.owed_retry_seconds, waits.wipe_retry_seconds, waits.defer_after) == (
        5000, 5.0, 5.0, 2.0)
    assert build_services(Settings(tenants_dir=tmp_path, _env_file=None)).waits == waits  # type: ignore[call-arg]


def test_the_owed_purge_back_off_and_the_member_list_wait() -> None:
    assert (member_data.OWED_RETRY_SECONDS, member_data.OWED_RETRY_LONGEST_SECONDS) == (5.0, 60.0)
    assert member_list_loading.MEMBER_LIST_WAIT_SECONDS == 120
