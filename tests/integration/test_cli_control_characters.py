"""Every CLI error stays one readable line on stderr: a newline (or another control character) in a
path given on the command line is written escaped, never splitting the line or printing a second one."""

from __future__ import annotations

from pathlib import Path

import pytest
from legacy_fixtures import LegacyDb

from malabot.__main__ import main
from malabot.errors import one_line
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


# A name that is not UTF-8 (`$'\xff'`, a Latin-1 name another tool made): Python hands it over with a
# lone surrogate, which a UTF-8 stream cannot write (pytest's captured stdout is strict, as is a
# terminal's under a UTF-8 locale) and SQLite cannot take as a file name in SQL.
UNDECODABLE = "o\udcff"


@pytest.mark.parametrize("name", ["o\nx", "o\rx", "o\x1b[2J", "o\u202ex", UNDECODABLE])
@pytest.mark.parametrize("given", ["--out", "--tenants-dir"])
def test_backup_refuses_a_folder_whose_files_could_not_be_printed_one_a_line(
        paths: TenantPaths, capsys: pytest.CaptureFixture[str], name: str, given: str) -> None:
    """stdout lists the files written, one a line, as they are: for scripts. A newline in the folder
    would split a line; escaped, the line would not name the file. So it is a usage mistake (exit 2),
    refused before anything is written. A name that is not UTF-8 cannot be printed as text at all (it
    used to make the folder, then die with a UnicodeEncodeError traceback from VACUUM INTO)."""
    folder = paths.root.parent / name
    if given == "--out":
        args = ["--tenants-dir", str(paths.root), "backup", "--all", "--out", str(folder)]
        said = f"--out {one_line(str(folder))}"
    else:
        paths.root.rename(folder)  # the default place is tenants/backups/<guild>/
        args = ["--tenants-dir", str(folder), "backup", "--all"]
        said = f"the tenants folder {one_line(str(folder))}"
    with pytest.raises(SystemExit) as exit_:
        main(["tenants", *args])
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    why = ("a byte that is not UTF-8 (\\xff) in its name, and the files written are printed one a line as "
           "text; choose a folder named in UTF-8" if name == UNDECODABLE else
           f"a control character ({one_line(name[1])}) in its name, and the files written are printed one a "
           "line; choose a folder without one")
    assert captured.err.splitlines() == [
        f"malabot tenants backup: {said} has {why} (see malabot tenants backup --help)"]
    assert not folder.exists() if given == "--out" else not (folder / "backups").exists()


@pytest.mark.parametrize(("name", "said"), [("evil\nguild 1: restored", "evil\\nguild 1: restored"),
                                            (f"{UNDECODABLE}.sqlite3", "o\\xff.sqlite3")])
def test_a_restore_from_a_file_named_with_a_newline_or_not_in_utf8_says_so_in_one_line(
        paths: TenantPaths, capsys: pytest.CaptureFixture[str], name: str, said: str) -> None:
    """Not in UTF-8, the restore was done, then printing its line raised a traceback."""
    source = paths.root.parent / name
    assert main(["tenants", "--tenants-dir", str(paths.root), "backup", str(GUILD),
                 "--out", str(paths.root.parent / "out")]) == 0
    Path(capsys.readouterr().out.strip()).rename(source)
    assert main(["tenants", "--tenants-dir", str(paths.root), "restore", str(GUILD), str(source)]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith(f"guild {GUILD}: restored from {paths.root.parent}/{said}; "), line


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


def test_an_archive_in_a_tenants_folder_named_not_in_utf8_is_said_in_one_line(
        paths: TenantPaths, capsys: pytest.CaptureFixture[str]) -> None:
    folder = paths.root.parent / UNDECODABLE
    paths.root.rename(folder)
    assert main(["tenants", "--tenants-dir", str(folder), "archive", str(GUILD)]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith(f"guild {GUILD}: archived to {paths.root.parent}/o\\xff/archive/{GUILD}-"), line
    assert not (folder / f"{GUILD}.sqlite3").exists()


def test_the_legacy_report_names_a_file_named_not_in_utf8_readably(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    legacy = LegacyDb(tmp_path / f"{UNDECODABLE}.db")
    legacy.user(5, xp=10)
    legacy.close()
    assert main(["legacy", "split", str(legacy.path), "--tenants-dir", str(tmp_path / "t")]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(f"Legacy split of {tmp_path}/o\\xff.db ("), first
