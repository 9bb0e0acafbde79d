"""Every CLI error stays one readable line on stderr: a newline (or another control character) in a
path given on the command line is written escaped, never splitting the line or printing a second one."""

from __future__ import annotations

from pathlib import Path

import pytest

from malabot.__main__ import main
from malabot.tenancy.migrations import MigrationSet
from malabot.tenancy.opening import create_tenant_file
from malabot.tenancy.paths import TenantPaths

GUILD = 111111111111111111


@pytest.fixture
def paths(tmp_path: Path) -> TenantPaths:
    paths = TenantPaths(tmp_path / "t")
    create_tenant_file(paths, GUILD, MigrationSet.load())
    return paths


def test_a_restore_source_with_a_newline_cannot_forge_a_second_line(
        paths: TenantPaths, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tenants", "--tenants-dir", str(paths.root), "restore", str(GUILD),
                 "evil\nmalabot: restored OK"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"malabot: cannot restore evil\\nmalabot: restored OK into guild {GUILD}: no such file"]


def test_a_tenants_folder_with_a_newline_is_named_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tenants", "--tenants-dir", "t\nx", "list"]) == 1
    assert capsys.readouterr().err.splitlines() == ["malabot: t\\nx is not a folder of guild files (no such folder)"]


def test_backup_progress_names_an_out_folder_with_control_characters_in_one_line(
        paths: TenantPaths, capsys: pytest.CaptureFixture[str]) -> None:
    out = paths.root.parent / "o\nx\r\x1b[2J\u202e"
    assert main(["tenants", "--tenants-dir", str(paths.root), "backup", "--all", "--out", str(out)]) == 0
    progress, summary = capsys.readouterr().err.splitlines()
    assert progress.startswith(f"[1/1] guild {GUILD}: backed up to ")
    assert "o\\nx\\r\\x1b[2J\\u202e/" in progress
    assert summary == "1 of 1 guild(s) backed up"


def test_a_usage_mistake_with_a_newline_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["tenants", "list", "--bogus\nmalabot: all fine"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "malabot tenants list: unrecognized arguments: --bogus\\nmalabot: all fine "
        "(see malabot tenants list --help)"]


def test_a_legacy_file_with_a_newline_is_named_in_one_line(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["legacy", "split", "old\nbot.db", "--tenants-dir", str(tmp_path)]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("malabot: ") and "old\\nbot.db" in line, line


PERSIAN = "\u0646\u0627\u0645\u0647\u200c\u0647\u0627"  # "letters", with the ZWNJ a Persian keyboard types
FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # one composed emoji


@pytest.mark.parametrize("name", [PERSIAN, FAMILY, "Gro\u00dfvater\u00adsachen"], ids=["zwnj", "zwj", "soft-hyphen"])
def test_a_folder_named_with_joiners_or_a_soft_hyphen_is_printed_as_given(
        name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / name
    assert main(["tenants", "--tenants-dir", str(folder), "list"]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert str(folder) in line, line
