"""CLI group `legacy`: `malabot legacy split LEGACY_DB …` (the split of the old bot's database).

The report goes to stdout, progress to stderr. Exit codes: 0 done (or nothing to do), 1 refused or
some legacy row unaccounted for, 130 interrupted (no half-written file is left behind).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from malabot.cli import arguments
from malabot.errors import MalabotError, one_line


def register(groups: Any) -> None:
    """Add this group's sub-commands to the top-level parser."""
    legacy = groups.add_parser("legacy", help="the legacy bot's database")
    commands = legacy.add_subparsers(dest="legacy_command", required=True, metavar="COMMAND")
    split = commands.add_parser(
        "split", help="split the legacy database into one tenant file per server",
        description="Split the legacy MalaBoT database into one tenant file per server. The legacy "
                    "file is only read. Rows of a user go only to servers where that user is known to "
                    "be a member; the rest go to a holding file.")
    split.add_argument("legacy_db", metavar="LEGACY_DB", type=Path, help="the legacy data/bot.db")
    split.add_argument("--tenants-dir", type=Path, default=None, metavar="DIR",
                       help="the tenants folder (default: MALABOT_TENANTS_DIR or ./tenants)")
    split.add_argument("--members", type=Path, default=None, metavar="FILE",
                       help="CSV of guild_id,user_id lines: evidence of membership")
    split.add_argument("--assign-unknown", type=arguments.guild_id, default=None, metavar="GUILD",
                       help="send rows with no evidence of any server to this server "
                            "(the usual single-server deployment) instead of the holding file")
    split.add_argument("--merge", action="store_true",
                       help="merge into servers that already have a live file (backed up first)")
    split.add_argument("--dry-run", action="store_true", help="print the report and write nothing")
    split.set_defaults(handler=run_split)


def _tenants_dir(args: argparse.Namespace) -> Path:
    if args.tenants_dir is not None:
        return Path(args.tenants_dir)
    from malabot.settings import Settings, describe_validation_error

    try:
        return Settings().tenants_dir
    except ValidationError as error:
        raise MalabotError(describe_validation_error(error)) from None


def run_split(args: argparse.Namespace) -> int:
    from malabot.legacy.split import SplitOptions, split_legacy

    options = SplitOptions(
        legacy_db=args.legacy_db, tenants_dir=_tenants_dir(args), members_csv=args.members,
        assign_unknown=args.assign_unknown, dry_run=args.dry_run, merge=args.merge)
    report = split_legacy(options, progress=lambda line: print(one_line(line), file=sys.stderr, flush=True))
    print(report.render())
    if not report.accounted:
        print("malabot: some legacy rows are unaccounted for (see the report)", file=sys.stderr)
        return 1
    return 0
