"""`malabot tenants …`: list, migrate, back up, restore, archive and check the per-server files.

Read-only commands and backup work while the bot runs. Restore and archive replace or move files,
so they take the tenants-folder lock and refuse while a bot holds it; so does migrate (the bot
migrates each file as it opens it, and files migrated by newer code would lock an older running bot
out of them). Work over many guilds prints
progress per guild on stderr and ends with a summary; any failure makes the exit code non-zero.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from malabot.cli import arguments
from malabot.errors import MalabotError, one_line, os_reason, undecodable_byte, unprintable_character
from malabot.settings import Settings, describe_validation_error
from malabot.tenancy.backup import archive_tenant, backup_tenant, inspect_file
from malabot.tenancy.lock import TenantsLock
from malabot.tenancy.migrations import MigrationSet, schema_version
from malabot.tenancy.opening import connect_to_look, migrate_tenant
from malabot.tenancy.paths import TenantPaths, sidecars

EXIT_OK = 0
EXIT_FAILURE = 1

Handler = Callable[[argparse.Namespace], int]


def register(groups: Any) -> None:
    """Add `malabot tenants …` to the top-level parser."""
    parser = groups.add_parser("tenants", help="manage the per-server SQLite files",
                               description="Manage the per-server SQLite files (tenants/<guild_id>.sqlite3).")
    _add_tenants_dir(parser, default=None)
    actions = parser.add_subparsers(dest="tenants_action", required=True, metavar="ACTION")

    def action(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = actions.add_parser(name, help=help_text, description=help_text)
        _add_tenants_dir(sub, default=argparse.SUPPRESS)  # accepted after the action too
        sub.set_defaults(handler=handler, parser=sub)  # parser: for a usage mistake found by the handler
        return sub

    action("list", list_tenants, "list the guild files: size, schema version, last write")

    migrate = action("migrate", migrate_tenants, "apply pending migrations to guild files")
    _add_guild_selection(migrate)

    backup = action("backup", backup_tenants, "write a consistent backup file (works while the bot runs)")
    _add_guild_selection(backup)
    backup.add_argument("--out", type=Path, metavar="DIR",
                        help="folder for the backup files (default: <tenants>/backups/<guild>/)")

    restore = action("restore", restore_tenant_file, "replace a guild's data with a checked backup file")
    restore.add_argument("guild", type=arguments.guild_id, metavar="GUILD")
    restore.add_argument("file", type=Path, metavar="FILE")
    restore.add_argument("--allow-other-guild", action="store_true",
                         help="accept a file that belongs to another guild (moving data between guilds)")

    archive = action("archive", archive_tenant_file, "move a guild's file to <tenants>/archive/")
    archive.add_argument("guild", type=arguments.guild_id, metavar="GUILD")

    action("check", check_tenants, "run an integrity and identity check on every guild file")


def _add_tenants_dir(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument("--tenants-dir", type=Path, default=default, metavar="DIR",
                        help="folder of the guild files (default: MALABOT_TENANTS_DIR, else ./tenants)")


def _add_guild_selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("guilds", nargs="*", type=arguments.guild_id, metavar="GUILD", help="guild ids")
    parser.add_argument("--all", action="store_true", help="every guild file in the tenants folder")


# -- handlers ------------------------------------------------------------------------------------


def list_tenants(args: argparse.Namespace) -> int:
    paths = _paths(args)
    guild_ids = _live_guild_ids(paths)
    if not guild_ids:
        _progress(f"no guild files in {paths.root}")
        return EXIT_OK
    rows = [("GUILD", "SIZE", "SCHEMA", "LAST WRITE (UTC)")]
    rows += [row for guild_id in guild_ids if (row := _describe(paths, guild_id)) is not None]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return EXIT_OK


def migrate_tenants(args: argparse.Namespace) -> int:
    paths = _paths(args)
    guild_ids = _selected_guilds(args, paths)
    migrations = MigrationSet.load()

    def migrate_one(guild_id: int) -> str:
        applied = migrate_tenant(paths, guild_id, migrations)
        if not applied:
            return "already up to date"
        return "applied " + ", ".join(migration.path.name for migration in applied)

    _require_folder(paths)  # the lock would create a mistyped one
    with TenantsLock(paths.lock_file, "malabot tenants migrate"):
        return _for_each(guild_ids, migrate_one, f"at schema version {migrations.latest}")


def backup_tenants(args: argparse.Namespace) -> int:
    paths = _paths(args)
    _require_printable_output(args, paths)
    guild_ids = _selected_guilds(args, paths)
    migrations = MigrationSet.load()
    folder: Path | None = args.out
    if folder is not None:
        _require_out_folder(folder)

    def backup_one(guild_id: int) -> str:
        written = backup_tenant(paths, guild_id, migrations, folder=folder)
        print(written)  # stdout: the files written, one a line, for scripts
        return f"backed up to {written}"

    return _for_each(guild_ids, backup_one, "backed up")


def restore_tenant_file(args: argparse.Namespace) -> int:
    paths = _paths(args)
    guild_id: int = args.guild
    _require_folder(paths)
    with TenantsLock(paths.lock_file, "malabot tenants restore"):
        previous = asyncio.run(_restore(paths, guild_id, Path(args.file), args.allow_other_guild))
    kept = f"; the previous data is kept in {previous}" if previous is not None else ""
    print(one_line(f"guild {guild_id}: restored from {args.file}{kept}"))
    return EXIT_OK


async def _restore(paths: TenantPaths, guild_id: int, source: Path, allow_other_guild: bool) -> Path | None:
    """The bot's own restore, with what its services do after one (members who erased their data
    after the backup was taken are erased again)."""
    from malabot.app import build_services, stop_services  # the bot's whole graph: only this verb needs it

    try:
        settings = Settings(tenants_dir=paths.root)
    except ValidationError as error:
        raise MalabotError(describe_validation_error(error)) from None
    services = build_services(settings)
    try:
        return await services.tenants.restore(guild_id, source, allow_other_guild=allow_other_guild)
    finally:
        await stop_services(services)


def archive_tenant_file(args: argparse.Namespace) -> int:
    paths = _paths(args)
    guild_id: int = args.guild
    _require_folder(paths)
    with TenantsLock(paths.lock_file, "malabot tenants archive"):
        archived = archive_tenant(paths, guild_id)
    print(one_line(f"guild {guild_id}: archived to {archived}"))
    return EXIT_OK


def check_tenants(args: argparse.Namespace) -> int:
    paths = _paths(args)
    guild_ids = _live_guild_ids(paths)
    if not guild_ids:
        _progress(f"no guild files in {paths.root}")
        return EXIT_OK
    migrations = MigrationSet.load()

    def check_one(guild_id: int) -> str:
        problem = inspect_file(paths.live(guild_id), guild_id, migrations, look_only=True)
        if problem is not None:
            raise MalabotError(problem)
        return "ok"

    return _for_each(guild_ids, check_one, "passed")


# -- helpers -------------------------------------------------------------------------------------


def _paths(args: argparse.Namespace) -> TenantPaths:
    if args.tenants_dir is not None:
        return TenantPaths(args.tenants_dir)
    try:
        return TenantPaths(Settings().tenants_dir)
    except ValidationError as error:
        raise MalabotError(describe_validation_error(error)) from None


def _selected_guilds(args: argparse.Namespace, paths: TenantPaths) -> list[int]:
    if args.all == bool(args.guilds):  # a usage mistake: exit 2, naming the --help to read
        args.parser.error("give guild ids or --all (not both)")
    if args.all:
        return _live_guild_ids(paths)
    return list(args.guilds)


def _require_folder(paths: TenantPaths) -> None:
    """The tenants folder must be there: a mistyped path must neither read as healthy (an empty
    folder) nor get a new folder that the bot never reads (a restore there "succeeds"). Only the
    bot's own first start creates it."""
    if not paths.root.is_dir():
        why = "it is a file" if paths.root.exists() else "no such folder"
        raise MalabotError(f"{paths.root} is not a folder of guild files ({why})")


def _require_out_folder(folder: Path) -> None:
    """`--out` names a folder, or where one can be made: a file in the way would fail every guild
    alike, in Python's errno words, so it is refused once and plainly."""
    for place in (folder, *folder.parents):
        try:
            there = place.exists()
        except OSError as error:  # a folder on the way that may not be looked into
            raise MalabotError(f"--out {folder} cannot be looked at ({os_reason(error, folder)})") from None
        if there:
            if not place.is_dir():
                where = "" if place == folder else f" ({place} is a file)"
                raise MalabotError(f"--out {folder} is not a folder{where}")
            return


def _require_printable_output(args: argparse.Namespace, paths: TenantPaths) -> None:
    """`backup` prints the files it writes on stdout as they are, one a line, for scripts: in a folder
    named with a control character (a newline) such a line would split, or escaped not name the file;
    a name that is not UTF-8 (`$'\\xff'`) cannot be written as text at all (nor can SQLite write a
    backup there). So that folder is refused before anything is written, as a usage mistake (exit 2)."""
    given, folder = ("--out", args.out) if args.out is not None else ("the tenants folder", paths.root)
    char = unprintable_character(str(folder))
    if char is None:
        return
    if undecodable_byte(char) is not None:
        args.parser.error(f"{given} {folder} has a byte that is not UTF-8 ({char}) in its name, and the "
                          "files written are printed one a line as text; choose a folder named in UTF-8")
    args.parser.error(f"{given} {folder} has a control character ({char}) in its name, and the files "
                      "written are printed one a line; choose a folder without one")


def _live_guild_ids(paths: TenantPaths) -> list[int]:
    """The guilds of the folder; a folder that is not there, or that may not be listed, is an error,
    not "no guild files": a wrong owner must not read as healthy to a monitoring script or a cron
    backup either (`live_guild_ids` finds nothing in a folder it cannot list)."""
    _require_folder(paths)
    try:
        os.scandir(paths.root).close()
    except OSError as error:
        raise MalabotError(f"cannot list the guild files in {paths.root} ({error.strerror})") from None
    return paths.live_guild_ids()


def _for_each(guild_ids: Sequence[int], work: Callable[[int], str], done_word: str) -> int:
    """Run `work` per guild with a progress line each and a summary; 1 when any guild failed."""
    failed: list[int] = []
    for number, guild_id in enumerate(guild_ids, 1):
        prefix = f"[{number}/{len(guild_ids)}] guild {guild_id}:"
        try:
            _progress(f"{prefix} {work(guild_id)}")
        except (MalabotError, sqlite3.Error, OSError) as error:
            failed.append(guild_id)
            _progress(f"{prefix} FAILED: {os_reason(error) if isinstance(error, OSError) else error}")
    summary = f"{len(guild_ids) - len(failed)} of {len(guild_ids)} guild(s) {done_word}"
    if failed:
        summary += f"; failed: {', '.join(str(guild_id) for guild_id in failed)}"
    _progress(summary)
    return EXIT_FAILURE if failed else EXIT_OK


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:
        return None


def _describe(paths: TenantPaths, guild_id: int) -> tuple[str, str, str, str] | None:
    """A row of `tenants list`; None when the file went away meanwhile (the bot archived it)."""
    live = paths.live(guild_id)
    live_stat = _stat(live)
    if live_stat is None:
        return None
    stats = [stat for stat in (live_stat, _stat(sidecars(live)[0])) if stat is not None]
    size = sum(stat.st_size for stat in stats)
    last_write = max(stat.st_mtime for stat in stats)
    try:
        conn = connect_to_look(live)
        try:
            version = str(schema_version(conn))
        finally:
            conn.close()
    except (MalabotError, sqlite3.Error):
        version = "unreadable"
    stamp = datetime.fromtimestamp(last_write, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return str(guild_id), _human_size(size), version, stamp


def _human_size(size: int) -> str:
    amount = float(size)
    for unit in ("B", "KiB", "MiB"):
        if amount < 1024:
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} GiB"


def _progress(line: str) -> None:
    print(one_line(line), file=sys.stderr, flush=True)
