"""Snapshot names, ids and retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from malabot.features.backups.rules import (
    Snapshot,
    beyond_retention,
    newest_first,
    parse_snapshot_file,
    parse_snapshot_id,
    size_text,
    smaller_retention_notice,
)

GUILD = 42
T0 = datetime(2026, 11, 25, 3, 30, tzinfo=UTC)


def test_snapshot_files_of_the_guild_are_recognised() -> None:
    plain = parse_snapshot_file(GUILD, "42-20261125T033000Z.sqlite3")
    assert plain is not None and (plain.id, plain.taken_at, plain.kind) == ("20261125T033000Z", T0, "snapshot")
    kept = parse_snapshot_file(GUILD, "42-20261125T033000Z-before-restore.sqlite3")
    assert kept is not None and (kept.id, kept.kind) == ("20261125T033000Z-before-restore", "before restore")


@pytest.mark.parametrize("name", [
    "43-20261125T033000Z.sqlite3",            # another guild
    "20261125T033000Z.sqlite3",               # no guild at all
    "420-20261125T033000Z.sqlite3",
    "42-20261125T033000Z.sqlite3-wal",
    "42-20261125T033000Z.tmp",
    ".42-20261125T033000Z.sqlite3.tmp",       # a backup being written
    "42-20261399T033000Z.sqlite3",            # no such date
    "42-latest.sqlite3",
    "42- 20261125T033000Z.sqlite3",
    "42-20261125T033000Z\n.sqlite3",
])
def test_other_files_are_not_snapshots(name: str) -> None:
    assert parse_snapshot_file(GUILD, name) is None


@pytest.mark.parametrize("typed", ["", "latest", "../42-20261125T033000Z", "20261125T033000Z/..",
                                   "20261125T033000Z.sqlite3", "1"])
def test_ids_never_name_paths(typed: str) -> None:
    assert parse_snapshot_id(typed) is None


def test_ids_typed_with_spaces_are_accepted() -> None:
    found = parse_snapshot_id("  20261125T033000Z ")
    assert found is not None and found.id == "20261125T033000Z"


def snapshot(days: int, kind: str = "snapshot") -> Snapshot:
    moment = T0 + timedelta(days=days)
    suffix = "-before-restore" if kind == "before restore" else ""
    stamp = moment.strftime("%Y%m%dT%H%M%SZ") + suffix
    return Snapshot(stamp, moment, kind, Path(f"{GUILD}-{stamp}.sqlite3"), 1)  # type: ignore[arg-type]


def test_retention_keeps_the_newest_of_each_kind() -> None:
    nightly = [snapshot(day) for day in range(5)]
    before = [snapshot(day, "before restore") for day in (1, 3, 4)]
    doomed = beyond_retention(nightly + before, keep=2)
    assert sorted(s.id for s in doomed) == sorted(s.id for s in nightly[:3] + before[:1])
    assert beyond_retention(nightly, keep=5) == []


def test_newest_first() -> None:
    shuffled = [snapshot(2), snapshot(0), snapshot(1)]
    assert [s.taken_at for s in newest_first(shuffled)] == [T0 + timedelta(days=d) for d in (2, 1, 0)]


@pytest.mark.parametrize("size, text", [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"),
                                        (10 * 1024 * 1024, "10.0 MiB"), (11_600_000, "11.1 MiB")])
def test_sizes_for_people(size: int, text: str) -> None:
    assert size_text(size) == text


def test_a_restore_says_so_only_when_it_brings_back_a_smaller_backup_keep() -> None:
    assert smaller_retention_notice(7, 7) == "" and smaller_retention_notice(3, 9) == ""
    assert "`backup_keep` is 2 again (it was 7)" in smaller_retention_notice(7, 2)
    assert "newest 2 snapshots of each kind" in smaller_retention_notice(7, 2)
    assert "newest 1 snapshot of each kind" in smaller_retention_notice(7, 1)
