"""Guild ids and the paths of their files. Ids are validated before any path is built."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from malabot.errors import InvalidGuildId
from malabot.snowflakes import MAX_SNOWFLAKE, snowflake_from_text

TENANT_SUFFIX = ".sqlite3"

# The UTC moment in file names (archives, snapshots, exports): sortable as text, e.g. 20261125T174501Z.
UTC_STAMP_FORMAT = "%Y%m%dT%H%M%SZ"


def parse_guild_id(value: object) -> int:
    """The guild id as a positive 64-bit int; anything else (text, paths, bools, 0, huge) is refused."""
    if isinstance(value, bool):
        raise InvalidGuildId(f"not a guild id: {value!r}")
    number: int | None = None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        number = snowflake_from_text(value)  # also None for "0" and past 64 bits
    if number is None:
        raise InvalidGuildId(f"not a guild id: {value!r} (a guild id is a positive whole number)")
    if not 0 < number <= MAX_SNOWFLAKE:
        raise InvalidGuildId(f"not a guild id: {value!r} (out of range)")
    return number


def utc_stamp(moment: datetime | None = None) -> str:
    """A UTC timestamp safe for file names and sortable as text, e.g. 20261125T174501Z."""
    return (moment or datetime.now(UTC)).strftime(UTC_STAMP_FORMAT)


@dataclass(frozen=True)
class TenantPaths:
    """Where the files of the tenants folder live."""

    root: Path

    @property
    def archive_dir(self) -> Path:
        return self.root / "archive"

    @property
    def backups_dir(self) -> Path:
        return self.root / "backups"

    @property
    def downloads_dir(self) -> Path:
        """Copies made for `/backup create` on their way to Discord. Only a running bot writes here,
        under the tenants lock, so at its start anything here is what a crash left."""
        return self.root / ".downloads"

    @property
    def lock_file(self) -> Path:
        return self.root / ".malabot.lock"

    def live(self, guild_id: int) -> Path:
        return self.root / f"{parse_guild_id(guild_id)}{TENANT_SUFFIX}"

    def staging(self, guild_id: int, purpose: str) -> Path:
        """A temporary name in the same folder, so the final rename is atomic."""
        return self.root / f".{parse_guild_id(guild_id)}.{purpose}.tmp"

    def staging_leftovers(self) -> list[Path]:
        """Temporary files of creations, restores and legacy splits that never finished (a crash)."""
        if not self.root.is_dir():
            return []
        return sorted(path for path in self.root.glob(".*.*.tmp") if _STAGING_NAME.fullmatch(path.name))

    def archive(self, guild_id: int, moment: datetime | None = None) -> Path:
        return self.archive_dir / f"{parse_guild_id(guild_id)}-{utc_stamp(moment)}{TENANT_SUFFIX}"

    def backup(self, guild_id: int, moment: datetime | None = None, folder: Path | None = None) -> Path:
        target = folder if folder is not None else self.backups_dir / str(parse_guild_id(guild_id))
        return target / f"{parse_guild_id(guild_id)}-{utc_stamp(moment)}{TENANT_SUFFIX}"

    def live_guild_ids(self) -> list[int]:
        """Guild ids of the live files, sorted; stray files with other names are ignored."""
        if not self.root.is_dir():
            return []
        return _guild_ids(path.name.removesuffix(TENANT_SUFFIX) for path in self.root.glob(f"*{TENANT_SUFFIX}"))

    def archived_guild_ids(self) -> list[int]:
        """Guild ids with a file in the archive folder (`<guild>-….sqlite3`), sorted."""
        if not self.archive_dir.is_dir():
            return []
        return _guild_ids(path.name.partition("-")[0] for path in self.archive_dir.glob(f"*-*{TENANT_SUFFIX}"))

    def backed_up_guild_ids(self) -> list[int]:
        """Guild ids with a folder under backups/, sorted; an operator's other folders are ignored."""
        if not self.backups_dir.is_dir():
            return []
        return _guild_ids(path.name for path in self.backups_dir.iterdir() if path.is_dir())

    def archives_of(self, guild_id: int) -> list[Path]:
        """Archived files of one guild, oldest first."""
        pattern = f"{parse_guild_id(guild_id)}-*{TENANT_SUFFIX}"
        if not self.archive_dir.is_dir():
            return []
        return sorted(self.archive_dir.glob(pattern))


def _guild_ids(names: Iterable[str]) -> list[int]:
    """The names that are guild ids as this code writes them, as ids, sorted and without repeats."""
    found: set[int] = set()
    for name in names:
        try:
            guild_id = parse_guild_id(name)
        except InvalidGuildId:
            continue
        if name == str(guild_id):  # `0111.sqlite3` is a stray file, not guild 111's
            found.add(guild_id)
    return sorted(found)


# `.<guild id>.<purpose>.tmp`, as `staging` makes them.
_STAGING_NAME = re.compile(r"\.[0-9]+\.[A-Za-z0-9_-]+\.tmp")


def sidecars(path: Path) -> tuple[Path, Path]:
    """The -wal and -shm files SQLite keeps beside a database in WAL mode."""
    return path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")
