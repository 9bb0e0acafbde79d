"""Who is known to be a member of which server.

A global legacy row (XP, a birthday, a check-in … keyed by user only) may be copied into a server's
file only when there is evidence that the user is a member of that server:
  * a row of that user in a server-scoped legacy table (the member's own XP row, birthday, check-in,
    verification, roast; a moderation case as target or moderator; an audit event as its actor; an
    appeal as appellant or reviewer), or
  * a `guild_id,user_id` line of the optional `--members` CSV.
Mentions (audit and roast targets) are not evidence: they may name anyone.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeGuard

from malabot.errors import InvalidGuildId, MalabotError
from malabot.legacy.reader import Row
from malabot.legacy.schema_detect import TABLES
from malabot.snowflakes import is_snowflake
from malabot.tenancy.paths import parse_guild_id

# Columns of server-scoped rows that name a member of that server.
EVIDENCE_COLUMNS: dict[str, tuple[str, ...]] = {
    "user_xp": ("user_id",),
    "birthdays": ("user_id",),
    "daily_checkins": ("user_id",),
    "verifications": ("discord_id", "reviewed_by"),
    "roast_log": ("user_id",),
    "mod_logs": ("user_id", "moderator_id"),
    "audit_log": ("user_id",),
    "appeals": ("user_id", "reviewed_by"),
}


class MembersFileRefused(MalabotError):
    """The --members CSV cannot be read."""


@dataclass
class Evidence:
    guilds_of: dict[int, set[int]] = field(default_factory=dict)

    def add(self, guild_id: int, user_id: object) -> None:
        if is_member_id(user_id):
            self.guilds_of.setdefault(user_id, set()).add(guild_id)

    def guilds(self, user_id: object) -> set[int]:
        return self.guilds_of.get(user_id, set()) if is_member_id(user_id) else set()

    def add_rows(self, table: str, guild_id: int, rows: Iterable[Row]) -> None:
        spec = TABLES[table]
        for column in EVIDENCE_COLUMNS.get(table, ()):
            position = spec.index(column)
            for user_id in {row[position] for row in rows}:
                self.add(guild_id, user_id)

    @property
    def guild_ids(self) -> set[int]:
        return {guild for guilds in self.guilds_of.values() for guild in guilds}


def is_member_id(value: object) -> TypeGuard[int]:
    """A Discord id as the legacy file stores it: a positive 64-bit int (not text, not a bool)."""
    return type(value) is int and is_snowflake(value)


def read_members_csv(path: Path, evidence: Evidence) -> int:
    """Add the `guild_id,user_id` lines of `path` (an optional header is skipped); returns the count."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as stream:  # -sig: a spreadsheet's byte order mark
            return _add_members(csv.reader(stream), path, evidence)
    except OSError as error:
        raise MembersFileRefused(f"cannot read the members file {path}: {error.strerror}") from error
    except UnicodeDecodeError:
        raise MembersFileRefused(f"the members file {path} is not UTF-8 text") from None


def _add_members(lines: Iterable[list[str]], path: Path, evidence: Evidence) -> int:
    added = 0
    first = True  # the header, if any, is on the first line that is not blank
    for number, line in enumerate(lines, start=1):
        cells = [cell.strip() for cell in line]
        if not any(cells):
            continue
        is_header = first and [cell.lower() for cell in cells] == ["guild_id", "user_id"]
        first = False
        if is_header:
            continue
        if len(cells) != 2:
            raise MembersFileRefused(f"{path}:{number}: expected guild_id,user_id, found {','.join(cells)!r}")
        try:
            guild_id, user_id = parse_guild_id(cells[0]), parse_guild_id(cells[1])
        except InvalidGuildId:
            raise MembersFileRefused(
                f"{path}:{number}: expected two Discord ids guild_id,user_id, found {','.join(cells)!r}"
            ) from None
        evidence.add(guild_id, user_id)
        added += 1
    return added
