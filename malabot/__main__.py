"""`malabot …` (also `python -m malabot`): run, sandbox, tenants …, legacy split.

Every failure a person can cause ends as one readable line on stderr (control characters escaped)
and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from malabot.errors import MalabotError, one_line, os_reason
from malabot.tenancy.sqlite_version import check_sqlite_version

EXIT_FAILURE = 1
EXIT_USAGE = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage mistakes are one line on stderr, naming the sub-command's --help, exit 2
    (argparse's own print its usage block first). Sub-commands' parsers are of this class too;
    `--help` is unchanged."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, one_line(f"{self.prog}: {message} (see {self.prog} --help)") + "\n")

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> tuple[Any, list[str]]:
        # A sub-command's parser would hand what it does not know up to the top-level parser, whose
        # error would then name `malabot`, not the sub-command that was mistyped.
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


def build_parser() -> argparse.ArgumentParser:
    # Imported here so `malabot --help` stays fast and each group owns its own arguments.
    from malabot.cli import legacy, runtime, tenants

    parser = OneLineParser(prog="malabot", description="MalaBoT: one SQLite file per server.")
    groups = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (runtime, tenants, legacy):
        module.register(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_sqlite_version()
        return int(args.handler(args) or 0)
    except MalabotError as error:
        print(one_line(f"malabot: {error}"), file=sys.stderr)
        return EXIT_FAILURE
    except OSError as error:  # the operator's files: a permission, a full disk, a path that is a file
        print(one_line(f"malabot: {os_reason(error)}"), file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("malabot: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
