"""`malabot legacy split`: the run from the legacy file to one tenant file per server.

1. Take the tenants folder's lock (a running bot holds it: refused), unless it is a dry run.
2. Read the legacy file read-only, detect its variant, and account for every row in the ledger.
3. Place each row (placement.py), build each server's rows (build.py) and write its file (writer.py):
   a new file is built under a temporary name and renamed when complete; a server that already has
   a live file is skipped, or merged into with `--merge` after a backup.
4. Check that the legacy file is byte for byte what it was and that no row is unaccounted for.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from malabot.errors import MalabotError
from malabot.legacy import writer
from malabot.legacy.build import Content, Destination, build
from malabot.legacy.evidence import Evidence, read_members_csv
from malabot.legacy.placement import Placement, place
from malabot.legacy.reader import count_rows, fingerprint, read_only, read_rows
from malabot.legacy.report import HOLDING_LABEL, Ledger, Summary, render
from malabot.legacy.schema_detect import TABLES, LegacySchema, detect
from malabot.tenancy.lock import TenantsLock
from malabot.tenancy.migrations import MigrationSet
from malabot.tenancy.opening import remove_database_files
from malabot.tenancy.paths import TenantPaths, parse_guild_id

Progress = Callable[[str], None]

NEW = "new"
MERGED = "merged"
ALREADY = "already split from this file"
SKIPPED = "skipped: has a live file"
APPEARED = "skipped: a live file appeared"

HOLDING_ALREADY = "already in the holding file from an earlier run of this file"

_STATUS_REASONS = {
    ALREADY: "already in this server's file from an earlier run of this file",
    SKIPPED: "the server already has a live file (use --merge to merge into it)",
    APPEARED: "a live file appeared during the run",
}


@dataclass(frozen=True)
class SplitOptions:
    legacy_db: Path
    tenants_dir: Path
    members_csv: Path | None = None
    assign_unknown: int | None = None
    dry_run: bool = False
    merge: bool = False


@dataclass
class SplitReport:
    ledger: Ledger
    summary: Summary
    written_files: int = 0

    @property
    def accounted(self) -> bool:
        return not self.ledger.unaccounted() and not self.ledger.strays()

    @property
    def nothing_to_do(self) -> bool:
        return self.written_files == 0 and all(status == ALREADY for status in self.ledger.status.values())

    def render(self) -> str:
        text = render(self.ledger, self.summary)
        if self.nothing_to_do and not self.summary.dry_run:
            text += "\nNothing to do: every server was already split from this file."
        return text


@dataclass
class _Run:
    """State of one run, threaded through its steps."""

    options: SplitOptions
    paths: TenantPaths
    migrations: MigrationSet
    progress: Progress
    source: str
    schema: LegacySchema
    now: str
    ledger: Ledger = field(default_factory=Ledger)
    settings_kept: Counter[tuple[str, str]] = field(default_factory=Counter)
    backups: list[str] = field(default_factory=list)
    written_files: int = 0

    @property
    def marker(self) -> writer.Marker:
        return writer.Marker(self.source, self.options.legacy_db.name)


def split_legacy(options: SplitOptions, progress: Progress = lambda line: None,
                 migrations: MigrationSet | None = None) -> SplitReport:
    paths = TenantPaths(options.tenants_dir)
    if options.assign_unknown is not None:
        parse_guild_id(options.assign_unknown)
    lock = TenantsLock(paths.lock_file, "malabot legacy split")
    if not options.dry_run:
        lock.acquire()
    try:
        return _split(options, paths, migrations or MigrationSet.load(), progress)
    finally:
        lock.release()


def _split(options: SplitOptions, paths: TenantPaths, migrations: MigrationSet,
           progress: Progress) -> SplitReport:
    source = fingerprint(options.legacy_db)
    evidence = Evidence()
    if options.members_csv is not None:
        read_members_csv(options.members_csv, evidence)
    with read_only(options.legacy_db) as conn:
        schema = detect(conn)
        rows = {name: read_rows(conn, schema, name) for name in TABLES if schema.has(name)}
        unknown = {name: count_rows(conn, name) for name in schema.unknown_tables}
    run = _Run(options, paths, migrations, progress, source, schema, datetime.now(UTC).isoformat())
    for name, table_rows in rows.items():
        run.ledger.add_read(name, (row[0] for row in table_rows))
    for name, count in unknown.items():
        run.ledger.add_counted_only(name, count, "unknown table, not part of the legacy schema")
    removed = 0 if options.dry_run else _remove_leftovers(paths)

    placement = place(rows, schema, evidence, options.assign_unknown, run.ledger)
    del rows  # the placement holds what is still needed
    total = len(placement.destinations)
    for number, guild_id in enumerate(sorted(placement.destinations), start=1):
        status, written = _split_guild(run, guild_id, placement.destinations.pop(guild_id))
        progress(f"[{number}/{total}] guild {guild_id}: {status}, {written} rows")
    holding_file = _split_holding(run, placement)
    _account_unused_global_settings(run, placement)

    if fingerprint(options.legacy_db) != source:
        raise MalabotError(f"the legacy file {options.legacy_db} changed during the split; "
                           "stop whatever writes to it and run again")
    summary = Summary(
        source=str(options.legacy_db), variant=str(schema.variant), fingerprint=source,
        dry_run=options.dry_run, holding_file=holding_file,
        global_settings=tuple(sorted(placement.global_settings)), settings_kept=run.settings_kept,
        removed_leftovers=removed, backups=tuple(run.backups),
        notes=(f"Merge rules: {writer.MERGE_RULES}.",) if options.merge else ())
    return SplitReport(run.ledger, summary, run.written_files)


# --- one server ---------------------------------------------------------------------------------

def _split_guild(run: _Run, guild_id: int, destination: Destination) -> tuple[str, int]:
    label = str(guild_id)
    content = build(destination, run.schema, run.now)
    status = _status(run, guild_id)
    result: writer.WriteResult | None = None
    if status in (NEW, MERGED) and run.options.dry_run:
        result = writer.WriteResult(written=list(content.units),
                                    settings_written=content.settings.rowids if content.settings else [])
    elif status == NEW:
        result = writer.create_tenant(run.paths, guild_id, content, run.migrations, run.marker, run.now)
        if not result.published:
            status, result = APPEARED, None
    elif status == MERGED:
        result = writer.merge_into_live(run.paths, guild_id, content, run.migrations, run.marker, run.now)
        run.backups.append(str(result.backup))
    if result is not None and not run.options.dry_run:
        run.written_files += 1
    run.ledger.status[label] = status
    if result is None:
        run.ledger.status_reason[label] = _STATUS_REASONS[status]
    _record(run, label, content, result, _STATUS_REASONS.get(status, ""))
    if content.settings is not None and result is not None:
        run.settings_kept.update(content.settings.mapped.why_kept.items())
    return status, len(result.written) if result else 0


def _status(run: _Run, guild_id: int) -> str:
    live = run.paths.live(guild_id)
    if not live.exists():
        return NEW
    if writer.has_marker(live, run.source):
        return ALREADY
    return MERGED if run.options.merge else SKIPPED


def _record(run: _Run, label: str, content: Content, result: writer.WriteResult | None,
            skip_reason: str) -> None:
    ledger = run.ledger
    for table, rowid, reason in content.held:
        ledger.hold(table, rowid, reason, label)
    settings_rowids = content.settings.rowids if content.settings else []
    if result is None:
        for unit in content.units:
            ledger.hold(unit.table, unit.rowid, skip_reason, label)
        for rowid in settings_rowids:
            ledger.hold("settings", rowid, skip_reason, label)
        return
    written: dict[str, list[int]] = {}
    for unit in result.written:
        written.setdefault(unit.table, []).append(unit.rowid)
    for table, rowids in written.items():
        ledger.wrote(table, rowids, label)
    for unit, reason in result.refused:
        ledger.hold(unit.table, unit.rowid, reason, label)
    ledger.wrote("settings", result.settings_written, label)
    for rowid, reason in result.settings_kept:
        ledger.hold("settings", rowid, reason, label)


# --- the holding file and what is left -------------------------------------------------------------

def _split_holding(run: _Run, placement: Placement) -> str | None:
    if not placement.holding.placed:
        return None
    path = writer.holding_path(run.paths, run.source)
    content = build(placement.holding, run.schema, run.now)
    result: writer.WriteResult | None
    if path.exists():
        status, result = ALREADY, None
    elif run.options.dry_run:
        status, result = NEW, writer.WriteResult(written=list(content.units))
    else:
        status = NEW
        result = writer.create_holding(run.paths, content, placement.holding_reasons, run.migrations,
                                       run.marker, run.now)
        run.written_files += 1
    run.ledger.status[HOLDING_LABEL] = status
    if result is None:
        run.ledger.status_reason[HOLDING_LABEL] = HOLDING_ALREADY
    _record(run, HOLDING_LABEL, content, result, HOLDING_ALREADY)
    count = len(result.written) if result else 0
    run.progress(f"holding file {path}: {status}, {count} rows")
    return str(path)


def _account_unused_global_settings(run: _Run, placement: Placement) -> None:
    """A global key every server sets itself was applied nowhere: say so instead of losing it."""
    written = run.ledger.written.get("settings", set()) | run.ledger.holding.get("settings", set())
    held = run.ledger.held.get("settings", {})
    for rowid, _value in placement.global_settings.values():
        if rowid not in written and rowid not in held:
            run.ledger.hold("settings", rowid, "global default not needed: every server sets this key itself")


def _remove_leftovers(paths: TenantPaths) -> int:
    """Temporary files of an earlier run that was killed before it could clean up."""
    leftovers = list(paths.root.glob(f".*.{writer.STAGING_PURPOSE}-*.tmp"))
    holding_dir = paths.root / writer.HOLDING_DIR
    if holding_dir.is_dir():
        leftovers += list(holding_dir.glob(".*.tmp"))
    for path in leftovers:
        remove_database_files(path)
    return len(leftovers)

