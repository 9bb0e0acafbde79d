"""`malabot tenants …` exit codes and messages, on real files."""

from __future__ import annotations

import asyncio
import os
import random
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import unprivileged

from malabot.__main__ import main
from malabot.app import build_services, stop_services
from malabot.settings import Settings
from malabot.tenancy.lock import TenantsLock
from malabot.tenancy.migrations import MigrationSet
from malabot.tenancy.opening import create_tenant_file
from malabot.tenancy.paths import TenantPaths

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def paths(tmp_path: Path) -> TenantPaths:
    """A tenants folder with guilds 1 and 2, each holding a few xp rows."""
    paths = TenantPaths(tmp_path / "tenants")
    migrations = MigrationSet.load()
    for guild_id, user_ids in ((1, (10, 11)), (2, (20,))):
        create_tenant_file(paths, guild_id, migrations)
        set_users(paths.live(guild_id), user_ids)
    return paths


def set_users(path: Path, user_ids: tuple[int, ...]) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("DELETE FROM xp")
        conn.executemany("INSERT INTO xp (user_id, xp) VALUES (?, 1)", [(u,) for u in user_ids])
    conn.close()


def users(path: Path) -> list[int]:
    conn = sqlite3.connect(path)
    try:
        return [row[0] for row in conn.execute("SELECT user_id FROM xp ORDER BY user_id")]
    finally:
        conn.close()


def tenants(paths: TenantPaths, *args: str) -> int:
    return main(["tenants", "--tenants-dir", str(paths.root), *args])


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("malabot: ")
    return lines[0]


# -- list, check, migrate ------------------------------------------------------------------------


def test_list_shows_every_guild_file(paths: TenantPaths, capsys: pytest.CaptureFixture[str]) -> None:
    assert tenants(paths, "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["GUILD", "SIZE", "SCHEMA"]
    assert [line.split()[0] for line in lines[1:]] == ["1", "2"]
    assert all(line.split()[3] == str(MigrationSet.load().latest) for line in lines[1:])


def test_the_folder_comes_from_the_option_in_either_place_or_from_the_environment(
        paths: TenantPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tenants", "list", "--tenants-dir", str(paths.root)]) == 0
    assert "2 " in capsys.readouterr().out
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MALABOT_TENANTS_DIR", str(paths.root))
    assert main(["tenants", "list"]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("1 ")


def test_an_empty_folder_lists_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert tenants(TenantPaths(tmp_path), "list") == 0
    assert "no guild files" in capsys.readouterr().err


def test_a_sqlite_too_old_for_the_tenant_files_is_refused_in_one_line(
        paths: TenantPaths, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 31, 1))
    assert main(["tenants", "list", "--tenants-dir", str(paths.root)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "malabot: MalaBoT needs SQLite 3.38.0 or newer, but this Python's sqlite3 module uses 3.31.1; "
        "use a Python built with a newer SQLite (e.g. from python.org or pyenv)"]


@pytest.mark.parametrize("args", [["list"], ["check"], ["migrate", "--all"], ["migrate", "5"], ["backup", "--all"]])
def test_a_folder_that_is_not_there_fails_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      args: list[str]) -> None:
    missing = tmp_path / "tenats"  # a typo in a monitoring script must not read as healthy
    assert tenants(TenantPaths(missing), *args) == 1
    expected = f"malabot: {missing} is not a folder of guild files (no such folder)"
    assert one_error_line(capsys.readouterr().err) == expected
    assert not missing.exists()


@pytest.mark.parametrize("args", [["list"], ["check"], ["migrate", "--all"], ["backup", "--all", "--out", "bk"]])
def test_a_folder_that_cannot_be_listed_fails_in_one_line(paths: TenantPaths, tmp_path: Path,
                                                          args: list[str]) -> None:
    paths.root.chmod(0o311)  # e.g. a wrong owner after a restore from tape: it can be entered, not listed
    try:
        result = unprivileged.run_malabot("tenants", "--tenants-dir", str(paths.root),
                                          *[str(tmp_path / arg) if arg == "bk" else arg for arg in args])
    finally:
        paths.root.chmod(0o755)
    assert result.returncode == 1, "a cron backup or a monitoring check must not pass on it"
    assert one_error_line(result.stderr) == (
        f"malabot: cannot list the guild files in {paths.root} (Permission denied)")
    assert not (tmp_path / "bk").exists()


@pytest.mark.parametrize("action", ["restore", "archive"])
def test_restore_and_archive_refuse_a_folder_that_is_not_there_and_create_none(
        paths: TenantPaths, tmp_path: Path, capsys: pytest.CaptureFixture[str], action: str) -> None:
    backup = tmp_path / "good.sqlite3"
    shutil.copy(paths.live(1), backup)
    missing = tmp_path / "tenant"  # a typo: the bot would never see a file restored there
    args = ["restore", "1", str(backup)] if action == "restore" else ["archive", "1"]
    assert tenants(TenantPaths(missing), *args) == 1
    assert one_error_line(capsys.readouterr().err) == (
        f"malabot: {missing} is not a folder of guild files (no such folder)")
    assert not missing.exists()


def test_check_passes_good_files_and_fails_on_a_bad_one(paths: TenantPaths,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert tenants(paths, "check") == 0
    assert capsys.readouterr().err.strip().endswith("2 of 2 guild(s) passed")
    paths.live(7).write_bytes(random.Random(3).randbytes(8192))
    assert tenants(paths, "check") == 1
    err = capsys.readouterr().err
    assert "[3/3] guild 7: FAILED: it is not a usable SQLite database" in err
    assert err.strip().endswith("2 of 3 guild(s) passed; failed: 7")


def test_check_fails_a_file_whose_migration_history_was_edited(paths: TenantPaths,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    conn = sqlite3.connect(paths.live(2))
    with conn:
        conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
    conn.close()
    assert tenants(paths, "check") == 1
    assert "0001_initial.sql was changed after it was applied" in capsys.readouterr().err


def test_check_names_a_file_of_another_guild_without_a_flag_it_does_not_have(
        paths: TenantPaths, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(paths.live(1), paths.live(3))  # a file copied under another guild's name
    assert tenants(paths, "check") == 1
    err = capsys.readouterr().err.splitlines()
    assert "[3/3] guild 3: FAILED: it belongs to guild 1, not to guild 3" in err, err  # no --allow-other-guild


def test_list_and_check_change_nothing_on_disk(paths: TenantPaths, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    # Guild 2 as a crash leaves it: committed rows still only in its -wal, beside the file.
    holder = sqlite3.connect(paths.live(2))
    holder.execute("INSERT INTO xp (user_id, xp) VALUES (21, 5)")
    holder.commit()
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    for name in ("2.sqlite3", "2.sqlite3-wal", "2.sqlite3-shm"):
        shutil.copy(paths.root / name, crashed / name)
    holder.close()
    for name in ("2.sqlite3", "2.sqlite3-wal", "2.sqlite3-shm"):
        shutil.copy(crashed / name, paths.root / name)
    before = {path.name: path.read_bytes() for path in paths.root.iterdir() if path.is_file()}

    assert tenants(paths, "list") == 0
    assert tenants(paths, "check") == 0
    assert "2 of 2 guild(s) passed" in capsys.readouterr().err
    after = {path.name: path.read_bytes() for path in paths.root.iterdir() if path.is_file()}
    assert after.keys() == before.keys(), "no -wal or -shm appears beside guild 1's clean file"
    assert {name for name in after if after[name] != before[name]} <= {"2.sqlite3-shm"}, \
        "the crash-left -wal is read, not folded into the file"


def test_migrate_reports_each_guild_and_fails_when_one_fails(paths: TenantPaths,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert tenants(paths, "migrate", "--all") == 0
    assert "[1/2] guild 1: already up to date" in capsys.readouterr().err
    foreign = sqlite3.connect(paths.live(9))
    foreign.execute("CREATE TABLE t (x)")
    foreign.close()
    assert tenants(paths, "migrate", "--all") == 1
    err = capsys.readouterr().err
    assert "[3/3] guild 9: FAILED: guild 9: refusing to open" in err
    assert err.strip().endswith("failed: 9")
    assert tenants(paths, "migrate", "2", "5") == 1
    assert "guild 5: FAILED: no data file for guild 5" in capsys.readouterr().err


def test_a_guild_without_a_file_gets_one_line_and_exit_1(paths: TenantPaths,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert tenants(paths, "archive", "5") == 1
    assert "no data file for guild 5" in one_error_line(capsys.readouterr().err)
    assert paths.live_guild_ids() == [1, 2]


@pytest.mark.parametrize(("args", "message"), [
    (["migrate", "../x"], "argument GUILD: not a guild id: '../x'"),
    (["backup", "1", "-3"], "argument GUILD: not a guild id: '-3'"),
    (["restore", "0", "file.sqlite3"], "argument GUILD: not a guild id: '0'"),
    (["archive", "99999999999999999999"], "argument GUILD: not a guild id"),
])
def test_a_malformed_guild_id_is_a_usage_mistake_that_changes_nothing(
        paths: TenantPaths, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        tenants(paths, *args)
    assert exit_.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert message in line and line.endswith(f"(see malabot tenants {args[0]} --help)"), line
    assert paths.live_guild_ids() == [1, 2]


def test_a_folder_that_is_a_file_is_one_line_not_a_traceback(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    not_a_folder = tmp_path / "tenants"
    not_a_folder.write_text("oops")
    assert main(["tenants", "--tenants-dir", str(not_a_folder), "archive", "1"]) == 1
    assert one_error_line(capsys.readouterr().err) == (
        f"malabot: {not_a_folder} is not a folder of guild files (it is a file)")


def test_list_skips_a_file_that_goes_away_while_listing(paths: TenantPaths,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    (paths.root / "555.sqlite3").symlink_to(paths.root / "archived-meanwhile.sqlite3")  # listed, then gone
    assert tenants(paths, "list") == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]] == ["1", "2"]


def test_a_missing_argument_is_a_usage_error(paths: TenantPaths) -> None:
    with pytest.raises(SystemExit) as exit_:
        tenants(paths, "restore", "1")
    assert exit_.value.code == 2


@pytest.mark.parametrize(("argv", "start", "end"), [
    (["tenants", "restore", "1001"],
     "malabot tenants restore: the following arguments are required: FILE", "(see malabot tenants restore --help)"),
    (["tenants", "lst"], "malabot tenants: argument ACTION: invalid choice: 'lst'", "(see malabot tenants --help)"),
    (["tenants", "list", "--tenant-dir", "t"],  # reported by the sub-command, not by `malabot`
     "malabot tenants list: unrecognized arguments: --tenant-dir t", "(see malabot tenants list --help)"),
    (["legacy", "split", "x.db", "--assign-unknown", "abc"],
     "malabot legacy split: argument --assign-unknown: not a guild id: 'abc'", "(see malabot legacy split --help)"),
    ([], "malabot: the following arguments are required: COMMAND", "(see malabot --help)"),
    (["tenants", "migrate"],  # neither GUILD nor --all: found by the handler, still a usage mistake
     "malabot tenants migrate: give guild ids or --all (not both)", "(see malabot tenants migrate --help)"),
    (["tenants", "migrate", "1", "--all"],
     "malabot tenants migrate: give guild ids or --all (not both)", "(see malabot tenants migrate --help)"),
    (["tenants", "backup"],
     "malabot tenants backup: give guild ids or --all (not both)", "(see malabot tenants backup --help)"),
    (["tenants", "backup", "1", "2", "--all"],
     "malabot tenants backup: give guild ids or --all (not both)", "(see malabot tenants backup --help)"),
])
def test_a_usage_mistake_is_one_line_that_names_the_help_to_read(
        capsys: pytest.CaptureFixture[str], argv: list[str], start: str, end: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(start) and line.endswith(end), line


def test_help_still_shows_the_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["tenants", "restore", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: malabot tenants restore [-h]") and "--allow-other-guild" in out


# -- backup, restore, archive --------------------------------------------------------------------


def test_backup_writes_checked_files(paths: TenantPaths, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert tenants(paths, "backup", "1", "--out", str(out)) == 0
    [written] = capsys.readouterr().out.split()
    assert Path(written).parent == out and users(Path(written)) == [10, 11]
    assert tenants(paths, "backup", "--all") == 0
    captured = capsys.readouterr()
    assert [Path(line).parent for line in captured.out.split()] == [
        paths.backups_dir / "1", paths.backups_dir / "2"]
    assert captured.err.strip().endswith("2 of 2 guild(s) backed up")
    assert tenants(paths, "backup", "1", "5") == 1
    assert "guild 5: FAILED: no data file for guild 5" in capsys.readouterr().err


@pytest.mark.parametrize("out", ["a-file", "a-file/backups"])
def test_backup_out_that_is_a_file_is_refused_in_words(paths: TenantPaths, tmp_path: Path, out: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a-file").write_text("x")
    assert tenants(paths, "backup", "--all", "--out", str(tmp_path / out)) == 1
    where = "" if out == "a-file" else f" ({tmp_path / 'a-file'} is a file)"
    assert one_error_line(capsys.readouterr().err) == f"malabot: --out {tmp_path / out} is not a folder{where}"


def test_backup_removes_crashed_backups_leftovers_where_it_writes_and_nothing_else(
        paths: TenantPaths, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    two_hours_ago = time.time() - 2 * 3600
    left: dict[str, list[Path]] = {"crashed": [], "kept": []}
    for folder in (paths.backups_dir / "1", tmp_path / "out"):
        folder.mkdir(parents=True)
        for name, age, kind in ((".1-20260101T000000Z.sqlite3.tmp", two_hours_ago, "crashed"),
                                (".1-20260101T000000Z.sqlite3.tmp-wal", two_hours_ago, "crashed"),
                                (".1-20260102T000000Z.sqlite3.tmp", time.time(), "kept"),  # in progress
                                (".1-notes.sqlite3.tmp", two_hours_ago, "kept"),
                                ("1-20260101T000000Z.sqlite3", two_hours_ago, "kept")):
            (folder / name).write_text("x")
            os.utime(folder / name, (age, age))
            left[kind].append(folder / name)
    assert tenants(paths, "backup", "1") == 0
    assert tenants(paths, "backup", "1", "--out", str(tmp_path / "out")) == 0
    assert [path for path in left["crashed"] if path.exists()] == []
    assert all(path.exists() for path in left["kept"])
    assert len(capsys.readouterr().out.split()) == 2


def test_restore_replaces_data_and_refuses_bad_files(paths: TenantPaths, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert tenants(paths, "backup", "1", "--out", str(tmp_path)) == 0
    backup = Path(capsys.readouterr().out.strip())
    set_users(paths.live(1), (99,))

    assert tenants(paths, "restore", "1", str(backup)) == 0
    assert "the previous data is kept in" in capsys.readouterr().out
    assert users(paths.live(1)) == [10, 11]

    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(random.Random(4).randbytes(4096))
    assert tenants(paths, "restore", "1", str(garbage)) == 1
    assert "not a usable SQLite database" in one_error_line(capsys.readouterr().err)

    assert tenants(paths, "restore", "2", str(backup)) == 1
    assert one_error_line(capsys.readouterr().err).endswith(
        "it belongs to guild 1, not to guild 2 (moving data between guilds needs --allow-other-guild)")
    assert users(paths.live(2)) == [20]
    assert tenants(paths, "restore", "2", str(backup), "--allow-other-guild") == 0
    assert users(paths.live(2)) == [10, 11]


def test_a_folder_given_as_the_file_to_restore_is_called_a_folder(paths: TenantPaths, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert tenants(paths, "restore", "1", str(tmp_path)) == 1
    assert one_error_line(capsys.readouterr().err) == (
        f"malabot: cannot restore {tmp_path} into guild 1: it is a folder, not a file")
    assert users(paths.live(1)) == [10, 11]


def test_a_restore_erases_again_whoever_erased_their_data_after_the_backup(
        paths: TenantPaths, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert tenants(paths, "backup", "1", "--out", str(tmp_path)) == 0
    backup = Path(capsys.readouterr().out.strip())

    async def erase(user_id: int) -> None:  # /mydata delete, as the bot does it
        services = build_services(Settings(tenants_dir=paths.root, _env_file=None))  # type: ignore[call-arg]
        try:
            await services.mydata.delete(1, user_id)
        finally:
            await stop_services(services)

    asyncio.run(erase(10))
    assert users(paths.live(1)) == [11]
    assert tenants(paths, "restore", "1", str(backup)) == 0
    assert users(paths.live(1)) == [11], "the backup's row of member 10 is erased again"
    conn = sqlite3.connect(paths.live(1))
    try:
        erased = conn.execute("SELECT user_id FROM member_erasures").fetchall()
    finally:
        conn.close()
    assert erased == [(10,)], "and the erasure stays on record for the next restore"


def test_a_restore_keeps_the_birthday_celebrations_since_the_backup(
        paths: TenantPaths, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert tenants(paths, "backup", "1", "--out", str(tmp_path)) == 0
    backup = Path(capsys.readouterr().out.strip())
    celebrated = (10, 2026, "2026-06-15", "2026-06-15T07:00:00+00:00", 100, 600, None, None)
    conn = sqlite3.connect(paths.live(1))  # member 10 celebrated since, the role not yet taken back
    with conn:
        conn.execute("INSERT INTO birthday_celebrations VALUES (?, ?, ?, ?, ?, ?, ?, ?)", celebrated)
    conn.close()

    assert tenants(paths, "restore", "1", str(backup)) == 0
    conn = sqlite3.connect(paths.live(1))
    try:
        assert conn.execute("SELECT * FROM birthday_celebrations").fetchall() == [celebrated]
    finally:
        conn.close()


def test_a_restore_that_fails_while_erasing_again_is_one_line_and_changes_nothing(
        paths: TenantPaths, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conn = sqlite3.connect(paths.live(1))  # stands in for a disk that fills while erasing again
    with conn:
        conn.execute("CREATE TRIGGER no_room BEFORE INSERT ON member_erasures"
                     " BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
    conn.close()
    assert tenants(paths, "backup", "1", "--out", str(tmp_path)) == 0
    backup = Path(capsys.readouterr().out.strip())
    conn = sqlite3.connect(paths.live(1))
    with conn:
        conn.execute("DROP TRIGGER no_room")
        conn.execute("INSERT INTO member_erasures (user_id, erased_at) VALUES (10, '2099-01-01T00:00:00+00:00')")
    conn.close()
    before = paths.live(1).read_bytes()

    assert tenants(paths, "restore", "1", str(backup)) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "nothing restored" in line and "database or disk is full" in line
    assert paths.live(1).read_bytes() == before
    assert not paths.staging_leftovers()


def test_a_damaged_live_file_is_replaced_after_archiving_it_and_explained_before(
        paths: TenantPaths, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert tenants(paths, "backup", "1", "--out", str(tmp_path)) == 0
    backup = Path(capsys.readouterr().out.strip())
    damaged = paths.live(1).read_bytes()[:8192]  # truncated: the case a restore is for
    paths.live(1).write_bytes(damaged)

    # Its erasures cannot be read to carry them over: refused in one line that says what to do.
    assert tenants(paths, "restore", "1", str(backup)) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "cannot be read" in line and "malabot tenants archive 1" in line
    assert paths.live(1).read_bytes() == damaged

    assert tenants(paths, "archive", "1") == 0
    assert tenants(paths, "restore", "1", str(backup)) == 0
    assert users(paths.live(1)) == [10, 11]


def test_archive_moves_the_file(paths: TenantPaths, capsys: pytest.CaptureFixture[str]) -> None:
    assert tenants(paths, "archive", "2") == 0
    assert "guild 2: archived to" in capsys.readouterr().out
    assert paths.live_guild_ids() == [1]
    [archived] = paths.archives_of(2)
    assert users(archived) == [20]


def test_a_running_bot_blocks_restore_archive_and_migrate_but_not_reading_or_backup(
        paths: TenantPaths, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # migrate too: files migrated by a newer malabot would lock the older running bot out of them.
    with TenantsLock(paths.lock_file, "malabot run"):
        assert tenants(paths, "backup", "1", "--out", str(tmp_path)) == 0
        backup = capsys.readouterr().out.strip()
        assert tenants(paths, "list") == 0
        assert tenants(paths, "check") == 0
        capsys.readouterr()
        for args in (["restore", "1", backup], ["archive", "1"], ["migrate", "--all"]):
            assert tenants(paths, *args) == 1
            assert "is in use by malabot run (pid" in one_error_line(capsys.readouterr().err)
    assert paths.live_guild_ids() == [1, 2] and paths.archives_of(1) == []
    assert tenants(paths, "archive", "1") == 0  # the lock is free again


# -- as a separate process -----------------------------------------------------------------------


def run_malabot(*args: str, max_file_bytes: int | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m malabot …`; `max_file_bytes`: no file it writes may grow beyond that (a full disk)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MALABOT_")}

    def limit_file_size() -> None:
        if max_file_bytes is not None:  # a write beyond it fails with EFBIG instead of a signal
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, resource.RLIM_INFINITY))

    return subprocess.run([sys.executable, "-m", "malabot", *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False,
                          preexec_fn=limit_file_size)


def test_python_dash_m_malabot_lists_and_refuses_with_exit_codes(paths: TenantPaths) -> None:
    listed = run_malabot("tenants", "--tenants-dir", str(paths.root), "list")
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines()[1:]] == ["1", "2"]

    refused = run_malabot("tenants", "--tenants-dir", str(paths.root), "restore", "../x", "f.sqlite3")
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "malabot tenants restore: argument GUILD: not a guild id: '../x' (a guild id is a positive whole number) "
        "(see malabot tenants restore --help)")
    missing = run_malabot("tenants", "--tenants-dir", str(paths.root), "archive", "5")
    assert missing.returncode == 1
    assert missing.stderr.strip().startswith("malabot: ") and "no data file for guild 5" in missing.stderr


def test_a_restore_that_cannot_write_its_copy_does_not_blame_the_backup(paths: TenantPaths,
                                                                        tmp_path: Path) -> None:
    backup = tmp_path / "good.sqlite3"
    shutil.copy(paths.live(1), backup)
    before = paths.live(1).read_bytes()

    full = run_malabot("tenants", "--tenants-dir", str(paths.root), "restore", "1", str(backup),
                       max_file_bytes=backup.stat().st_size // 4)

    assert full.returncode == 1
    line = one_error_line(full.stderr)
    assert "not a usable SQLite database" not in line, "the backup is fine: the tenants folder is full"
    assert f"copying it into {paths.root} failed" in line
    assert paths.live(1).read_bytes() == before
    assert not paths.staging_leftovers()


# `python -m malabot …` whose restore copy takes 2 s more once in the tenants folder (a large server's).
SLOW_RESTORE_COPY = """
import sys, time
from datetime import UTC, datetime
from pathlib import Path
from malabot.tenancy import backup
copy = backup._copy_database
def slow_copy(source, target):
    copy(source, target)
    Path(sys.argv[1]).touch()
    time.sleep(2)
backup._copy_database = slow_copy
from malabot.__main__ import main
sys.exit(main(sys.argv[2:]))
"""


def test_ctrl_c_during_a_restore_leaves_no_copy_in_the_tenants_folder(paths: TenantPaths, tmp_path: Path) -> None:
    backup = tmp_path / "good.sqlite3"
    shutil.copy(paths.live(1), backup)
    before = paths.live(1).read_bytes()
    copying = tmp_path / "copying"
    env = {key: value for key, value in os.environ.items() if not key.startswith("MALABOT_")}
    restoring = subprocess.Popen(
        [sys.executable, "-c", SLOW_RESTORE_COPY, str(copying),
         "tenants", "--tenants-dir", str(paths.root), "restore", "1", str(backup)],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # as from a terminal: a suite run as a background job passes SIGINT on ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while not copying.exists() and restoring.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert paths.staging_leftovers(), "the copy is in the tenants folder"
    restoring.send_signal(signal.SIGINT)  # the operator presses Ctrl-C
    _, err = restoring.communicate(timeout=60)

    assert restoring.returncode == 130
    assert err.strip() == "malabot: interrupted"
    assert paths.staging_leftovers() == [], "no full copy of the server is left behind"
    assert paths.live(1).read_bytes() == before


def test_a_full_disk_is_not_reported_as_a_damaged_guild_file(paths: TenantPaths) -> None:
    for action in (("backup", "1"), ("check",)):  # opening a live file needs its -shm, which cannot grow
        full = run_malabot("tenants", "--tenants-dir", str(paths.root), *action, max_file_bytes=4096)
        assert full.returncode == 1
        failed = [line for line in full.stderr.splitlines() if "FAILED" in line]
        assert failed and all("not a usable SQLite database" not in line for line in failed), full.stderr
        assert all("cannot read" in line for line in failed), full.stderr
    assert tenants(paths, "check") == 0, "the files were fine all along"


def test_list_shows_the_last_write_including_the_wal(paths: TenantPaths, capsys: pytest.CaptureFixture[str]) -> None:
    """While the bot runs its writes sit in the -wal first: the last write counts them."""
    live = paths.live(1)
    old = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    os.utime(paths.live(2), (old, old))
    writer = sqlite3.connect(live)  # a running bot: WAL mode, its write still in the -wal
    writer.execute("PRAGMA journal_mode = WAL")
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    with writer:
        writer.execute("INSERT INTO xp (user_id, xp) VALUES (99, 5)")
    os.utime(live, (old, old))  # the main file not written since 2020
    try:
        assert tenants(paths, "list") == 0
    finally:
        writer.close()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("LAST WRITE (UTC)")
    row = {line.split()[0]: line for line in lines[1:]}
    assert row["2"].endswith("2020-01-02 03:04:05"), row["2"]
    assert datetime.now(UTC).strftime("%Y-%m-%d") in row["1"], "the write in the -wal counts as the last write"


# -- folders and files the operator's account may not use ----------------------------------------

STAMP = r"\d{8}T\d{6}Z"


def _unusable(paths: TenantPaths, tmp_path: Path, case: str) -> tuple[list[str], list[str], list[Path]]:
    """Set up `case`: the command's arguments, the stderr lines expected (regexes) and the folders to
    give back their mode afterwards."""
    root, escaped = paths.root, re.escape(str(paths.root))
    read_only, hidden = tmp_path / "read-only", tmp_path / "hidden"
    for folder in (read_only, hidden):
        folder.mkdir()
    shutil.copy(paths.live(2), hidden / "backup.sqlite3")
    summary = "0 of 2 guild(s) backed up; failed: 1, 2"
    if case == "out not writable":
        args = ["backup", "--all", "--out", str(read_only)]
        lines = [rf"\[{n}/2\] guild {n}: FAILED: guild {n}: cannot write the backup "
                 rf"{re.escape(str(read_only))}/{n}-{STAMP}\.sqlite3 \(Permission denied\)" for n in (1, 2)]
        return args, [*lines, re.escape(summary)], [read_only]
    if case == "out not creatable":
        out = read_only / "nightly"
        args = ["backup", "--all", "--out", str(out)]
        lines = [rf"\[{n}/2\] guild {n}: FAILED: guild {n}: cannot create the folder {re.escape(str(out))} "
                 r"for the backup \(Permission denied\)" for n in (1, 2)]
        return args, [*lines, re.escape(summary)], [read_only]
    if case == "out not searchable":
        return (["backup", "1", "--out", str(hidden / "out")],
                [re.escape(f"malabot: --out {hidden / 'out'} cannot be looked at (Permission denied)")], [hidden])
    if case == "backups is a file":
        paths.backups_dir.write_text("not a folder")
        return (["backup", "1"],
                [re.escape(f"[1/1] guild 1: FAILED: guild 1: cannot create the folder {paths.backups_dir / '1'} "
                           f"for the backup (a file is in the way: {paths.backups_dir})"),
                 re.escape("0 of 1 guild(s) backed up; failed: 1")], [])
    if case == "restore source not searchable":
        source = hidden / "backup.sqlite3"
        return (["restore", "2", str(source)],
                [re.escape(f"malabot: cannot restore {source} into guild 2: it cannot be looked at "
                           "(Permission denied)")], [hidden])
    if case == "tenants folder not writable":
        with TenantsLock(paths.lock_file, "an earlier restore"):  # the lock file is there; the copy is not
            pass
        source = hidden / "backup.sqlite3"
        return (["restore", "2", str(source)],
                [rf"malabot: cannot restore {re.escape(str(source))} into guild 2: copying it into {escaped} "
                 rf"failed \(Permission denied: {escaped}/\.2\.restore-[0-9a-f]+\.tmp\)"], [root])
    if case == "lock not creatable":
        return (["archive", "2"],
                [re.escape(f"malabot: cannot take the lock {paths.lock_file} on the tenants folder "
                           "(Permission denied)")], [root])
    if case == "archive not writable":
        paths.archive_dir.mkdir()
        return (["archive", "2"],
                [rf"malabot: guild 2: cannot move {re.escape(str(paths.live(2)))} to "
                 rf"{re.escape(str(paths.archive_dir))}/2-{STAMP}\.sqlite3 \(Permission denied: "
                 rf"{re.escape(str(paths.archive_dir))}/2-{STAMP}\.sqlite3\)"], [paths.archive_dir])
    assert case == "archive is a file"
    paths.archive_dir.write_text("not a folder")
    return (["archive", "2"],
            [re.escape(f"malabot: guild 2: cannot create the archive folder {paths.archive_dir} "
                       "(a file is in the way)")], [])


@pytest.mark.parametrize("case", [
    "out not writable", "out not creatable", "out not searchable", "backups is a file",
    "restore source not searchable", "tenants folder not writable", "lock not creatable",
    "archive not writable", "archive is a file"])
def test_a_folder_or_file_that_cannot_be_used_is_named_in_words(paths: TenantPaths, tmp_path: Path,
                                                                 case: str) -> None:
    """Not Python's "[Errno 13] Permission denied: '…'", nor a bare reason: what failed, on which path,
    and why; an all-guilds run still reports each guild and its summary, and exits 1."""
    args, expected, folders = _unusable(paths, tmp_path, case)
    modes = {"read-only": 0o555, "hidden": 0o000, "archive": 0o555}
    for folder in folders:
        folder.chmod(modes.get(folder.name, 0o555))
    try:
        result = unprivileged.run_malabot("tenants", "--tenants-dir", str(paths.root), *args)
    finally:
        for folder in folders:
            folder.chmod(0o755)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == len(expected), result.stderr
    for line, pattern in zip(lines, expected, strict=True):
        assert re.fullmatch(pattern, line), (line, pattern)
    assert paths.live_guild_ids() == [1, 2], "nothing was moved or replaced"
