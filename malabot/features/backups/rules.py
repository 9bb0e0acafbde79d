"""Snapshot names, ids and retention, as pure functions over file names and times.

A snapshot of guild 42 is `42-20261125T033000Z.sqlite3` (the nightly job, or `malabot tenants backup`);
a restore keeps the data it replaced as `42-20261125T120102Z-before-restore.sqlite3`. A snapshot's id
is its name without the guild and suffix: `20261125T033000Z` or `20261125T120102Z-before-restore`.
Ids are stable (a new snapshot never renumbers the others) and never name a path by themselves.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from malabot.tenancy.paths import UTC_STAMP_FORMAT
from malabot.texts import counted

SnapshotKind = Literal["snapshot", "before restore"]
NIGHTLY: SnapshotKind = "snapshot"
BEFORE_RESTORE: SnapshotKind = "before restore"  # the data a restore replaced
SNAPSHOT_KINDS: tuple[SnapshotKind, ...] = (NIGHTLY, BEFORE_RESTORE)

_ID = re.compile(r"(?P<stamp>\d{8}T\d{6}Z)(?P<before>-before-restore)?")
_SUFFIX = ".sqlite3"


@dataclass(frozen=True)
class Snapshot:
    id: str
    taken_at: datetime
    kind: SnapshotKind
    path: Path
    size: int  # bytes


@dataclass(frozen=True)
class SnapshotName:
    id: str
    taken_at: datetime
    kind: SnapshotKind


def parse_snapshot_id(text: str) -> SnapshotName | None:
    """The snapshot an id (as typed by a person) names, or None when it is not an id."""
    return _parse(text.strip())


def parse_snapshot_file(guild_id: int, file_name: str) -> SnapshotName | None:
    """The snapshot a file of the guild's backup folder is, or None for any other file."""
    prefix = f"{guild_id}-"
    if not file_name.startswith(prefix) or not file_name.endswith(_SUFFIX):
        return None
    return _parse(file_name.removeprefix(prefix).removesuffix(_SUFFIX))


def _parse(text: str) -> SnapshotName | None:
    match = _ID.fullmatch(text)
    if match is None:
        return None
    try:
        taken_at = datetime.strptime(match["stamp"], UTC_STAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None
    kind = BEFORE_RESTORE if match["before"] else NIGHTLY
    return SnapshotName(match[0], taken_at, kind)


def newest_first(snapshots: Iterable[Snapshot]) -> list[Snapshot]:
    return sorted(snapshots, key=lambda s: (s.taken_at, s.id), reverse=True)


def beyond_retention(snapshots: Sequence[Snapshot], keep: int) -> list[Snapshot]:
    """Snapshots to delete so that the newest `keep` of each kind remain."""
    doomed: list[Snapshot] = []
    for kind in SNAPSHOT_KINDS:
        of_kind = newest_first(s for s in snapshots if s.kind == kind)
        doomed += of_kind[max(keep, 0):]
    return doomed


def size_text(size: int) -> str:
    """A file size for people: 512 B, 3.4 KiB, 12.0 MiB."""
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / (1024 * 1024):.1f} MiB"


def smaller_retention_notice(keep_before: int, keep_restored: int) -> str:
    """What the owner should know when the restored data keeps fewer snapshots than the server did:
    tonight's pass keeps only that many (the snapshots are not in the data, so nothing else brings
    the newer ones back)."""
    if keep_restored >= keep_before:
        return ""
    return (f" Its settings came back too: `backup_keep` is {keep_restored} again (it was {keep_before}), so "
            f"from tonight only the newest {counted(keep_restored, 'snapshot')} of each kind (nightly, before a "
            "restore) will be kept; `/config set backup_keep` changes that.")
