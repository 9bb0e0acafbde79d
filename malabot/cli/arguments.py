"""Argument types shared by the sub-commands: a bad value is a usage mistake (exit 2, naming the
sub-command's --help), as argparse reports its own."""

from __future__ import annotations

import argparse

from malabot.errors import MalabotError
from malabot.tenancy.paths import parse_guild_id


def guild_id(text: str) -> int:
    try:
        return parse_guild_id(text)
    except MalabotError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
