"""Guild ids are validated before any path is built from them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from malabot.errors import InvalidGuildId
from malabot.tenancy.paths import MAX_SNOWFLAKE, TenantPaths, parse_guild_id


@pytest.mark.parametrize(("value", "expected"), [
    (1, 1),
    ("1", 1),
    (123456789012345678, 123456789012345678),
    ("123456789012345678", 123456789012345678),
    (MAX_SNOWFLAKE, MAX_SNOWFLAKE),
    (str(MAX_SNOWFLAKE), MAX_SNOWFLAKE),
])
def test_positive_64_bit_integers_are_guild_ids(value: object, expected: int) -> None:
    assert parse_guild_id(value) == expected


@pytest.mark.parametrize("value", [
    "../x", "..", "1/../2", "1/2", "/etc/passwd", "1\x00", "x",
    "", " 1", "1 ", "+1", "-1", "1.0", "1e3", "0x10", "１２",  # full-width digits
    -1, 0, "0", MAX_SNOWFLAKE + 1, str(MAX_SNOWFLAKE + 1), 2**64, "12345678901234567890",
    True, False, 1.0, None, b"1", [1],
])
def test_anything_else_is_refused(value: object) -> None:
    with pytest.raises(InvalidGuildId, match="not a guild id"):
        parse_guild_id(value)


@pytest.mark.parametrize("value", ["../x", "-1", 0, 2**64, "1/2"])
def test_no_path_is_built_from_a_bad_id(tmp_path: Path, value: object) -> None:
    paths = TenantPaths(tmp_path)
    builders = [paths.live, lambda v: paths.staging(v, "create"), paths.archive, paths.backup,
                paths.archives_of]
    for build in builders:
        with pytest.raises(InvalidGuildId):
            build(value)  # type: ignore[operator]


def test_paths_of_a_guild(tmp_path: Path) -> None:
    paths = TenantPaths(tmp_path)
    moment = datetime(2026, 11, 25, 17, 45, 1, tzinfo=UTC)
    assert paths.live(42) == tmp_path / "42.sqlite3"
    assert paths.archive(42, moment) == tmp_path / "archive" / "42-20261125T174501Z.sqlite3"
    assert paths.backup(42, moment) == tmp_path / "backups" / "42" / "42-20261125T174501Z.sqlite3"
    assert paths.staging(42, "create").parent == tmp_path
    assert paths.staging(42, "create").name.startswith(".")


def test_live_guild_ids_ignore_other_files(tmp_path: Path) -> None:
    for name in ("5.sqlite3", "17.sqlite3", "abc.sqlite3", "0.sqlite3", "-3.sqlite3", "5.sqlite3-wal",
                 ".9.create.tmp", "notes.txt", "017.sqlite3", "+5.sqlite3", " 5.sqlite3"):
        (tmp_path / name).touch()
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive" / "8-20260101T000000Z.sqlite3").touch()
    assert TenantPaths(tmp_path).live_guild_ids() == [5, 17]
    assert TenantPaths(tmp_path / "missing").live_guild_ids() == []


def test_archives_of_one_guild_oldest_first(tmp_path: Path) -> None:
    paths = TenantPaths(tmp_path)
    paths.archive_dir.mkdir()
    for name in ("8-20260301T000000Z.sqlite3", "8-20260101T000000Z.sqlite3", "88-20260201T000000Z.sqlite3"):
        (paths.archive_dir / name).touch()
    assert [path.name for path in paths.archives_of(8)] == [
        "8-20260101T000000Z.sqlite3", "8-20260301T000000Z.sqlite3"]


def test_guilds_with_archives_or_snapshot_folders(tmp_path: Path) -> None:
    paths = TenantPaths(tmp_path)
    assert paths.archived_guild_ids() == [] and paths.backed_up_guild_ids() == []
    paths.archive_dir.mkdir()
    for name in ("8-20260301T000000Z.sqlite3", "8-20260101T000000Z.sqlite3", "88-20260201T000000Z.sqlite3",
                 "08-20260201T000000Z.sqlite3", "notes-20260201T000000Z.sqlite3", "9.sqlite3"):
        (paths.archive_dir / name).touch()
    assert paths.archived_guild_ids() == [8, 88]
    for name in ("5", "17", "017", "mine"):
        (paths.backups_dir / name).mkdir(parents=True)
    (paths.backups_dir / "6").touch()
    assert paths.backed_up_guild_ids() == [5, 17]
