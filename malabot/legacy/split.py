"""`malabot legacy split`: the run from the legacy file to one tenant file per server.

1. Take the tenants folder's lock (a running bot holds it: refused), unless it is a dry run.
2. Read the legacy file read-only, detect its variant, and account for every row in the ledger.
3. Place each row (placement.py), build each server's rows (build.py) and write its file (writer.py):
   a new file is built under a temporary name and renamed when complete; a server that already has
   a live file is skipped, or merged into with `--merge` after a backup. Large runs build and write
   in forked worker processes (workers.py); the ledger is kept here, from what each file reports.
   A dry run writes each file (or merges into a copy of the live one) in a temporary folder outside
   the tenants folder and throws it away, so that it reports what the schema would refuse.
4. Check that the legacy file is byte for byte what it was and that no row is unaccounted for.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from malabot.legacy import writer
from malabot.legacy.build import Content, Destination, build
from malabot.legacy.evidence import Evidence, read_members_csv
from malabot.legacy.placement import Placement, place
from malabot.legacy.reader import TableRows, count_rows, fingerprint, read_only, read_rows, require_file
from malabot.legacy.report import HOLDING_LABEL, Ledger, Summary, render
from malabot.legacy.schema_detect import TABLES, LegacyInputRefused, LegacySchema, detect
from malabot.legacy.workers import in_workers
from malabot.tenancy.lock import TenantsLock
from malabot.tenancy.migrations import MigrationSet
from malabot.tenancy.opening import remove_database_files, remove_staging_leftovers
from malabot.tenancy.paths import TenantPaths, parse_guild_id

Progress = Callable[[str], None]

NEW = "new"
MERGED = "merged"
ALREADY = "already split from this file"
OTHER_OPTIONS = "skipped: split with other options"
OTHER_VERSION = "skipped: split from another version"
SKIPPED = "skipped: has a live file"
APPEARED = "skipped: a live file appeared"

_SKIP_REASONS = {
    ALREADY: "already in this server's file from an earlier run of this file",
    OTHER_OPTIONS: ("split earlier from this file with another --members or --assign-unknown; not merged "
                    "again, which would count rows twice (move the file away to split it anew)"),
    OTHER_VERSION: ("split or merged earlier from another legacy file, or from this one before it changed "
                    "(the old bot wrote to it, or SQLite folded its -wal in); not merged again, which would "
                    "count rows twice (move the file away to split it anew)"),
    SKIPPED: "the server already has a live file (use --merge to merge into it)",
    APPEARED: "a live file appeared during the run",
}
HOLDING_ALREADY = "already in the holding file from an earlier run of this file"

# Below this many servers, forking workers costs more than it saves.
_SERVERS_PER_WORKER = 100
_MAX_WORKERS = 4


@dataclass(frozen=True)
class SplitOptions:
    legacy_db: Path
    tenants_dir: Path
    members_csv: Path | None = None
    assign_unknown: int | None = None
    dry_run: bool = False
    merge: bool = False
    workers: int | None = None  # None: one per CPU (at most 4) for large runs


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
        statuses = self.ledger.status.values()  # none at all: no server data, not "already split"
        return self.written_files == 0 and bool(statuses) and all(status == ALREADY for status in statuses)

    def render(self) -> str:
        text = render(self.ledger, self.summary)
        if self.nothing_to_do and not self.summary.dry_run:
            text += "\nNothing to do: every server was already split from this file."
        return text


@dataclass
class FileOutcome:
    """What happened to one destination: small enough to come back from a worker process."""

    label: str
    status: str
    held: list[tuple[str, int, str]]                 # held back by the build, with reasons
    result: writer.WriteResult | None                # None: the file was not written (skipped)
    skipped: dict[str, set[int]] = field(default_factory=dict)  # rows a skipped file would have got
    settings_rowids: list[int] = field(default_factory=list)
    settings_kept: list[tuple[str, str]] = field(default_factory=list)  # (legacy key, why), for the report


@dataclass
class _Run:
    """What every step of one run needs."""

    options: SplitOptions
    paths: TenantPaths
    migrations: MigrationSet
    source: str
    schema: LegacySchema
    now: str
    files: ExitStack
    placement: str
    _template: Path | None = None
    _scratch: Path | None = None

    @property
    def marker(self) -> writer.Marker:
        return writer.Marker(self.source, self.options.legacy_db.name, self.placement)

    def template(self) -> Path:
        """The migrated empty file new files are copied from, made when first needed."""
        if self._template is None:
            folder = self.scratch() or self.paths.root
            self._template = self.files.enter_context(writer.tenant_template(folder, self.migrations))
        return self._template

    def scratch(self) -> Path | None:
        """In a dry run, a temporary folder outside the tenants folder where every file is written as
        in a real run and thrown away, so that the report says what the schema would refuse; removed
        at the end of the run. None in a real run."""
        if not self.options.dry_run:
            return None
        if self._scratch is None:
            folder = tempfile.TemporaryDirectory(prefix="malabot-legacy-dry-run-")
            self._scratch = Path(self.files.enter_context(folder))
        return self._scratch


@dataclass
class _Tally:
    """The parent's record of the run, fed by the outcomes."""

    ledger: Ledger = field(default_factory=Ledger)
    settings_kept: Counter[tuple[str, str]] = field(default_factory=Counter)
    roles_shared: Counter[str] = field(default_factory=Counter)
    backups: list[str] = field(default_factory=list)
    written_files: int = 0


def split_legacy(options: SplitOptions, progress: Progress = lambda line: None,
                 migrations: MigrationSet | None = None) -> SplitReport:
    paths = TenantPaths(options.tenants_dir)
    if options.assign_unknown is not None:
        parse_guild_id(options.assign_unknown)
    require_file(options.legacy_db)
    lock = TenantsLock(paths.lock_file, "malabot legacy split")
    if not options.dry_run:
        lock.acquire()
    try:
        with ExitStack() as files:
            return _split(options, paths, migrations or MigrationSet.load(), progress, files)
    finally:
        lock.release()


def _split(options: SplitOptions, paths: TenantPaths, migrations: MigrationSet, progress: Progress,
           files: ExitStack) -> SplitReport:
    source = fingerprint(options.legacy_db)
    evidence = Evidence()
    if options.members_csv is not None:
        read_members_csv(options.members_csv, evidence)
    with read_only(options.legacy_db) as conn:
        schema = detect(conn)
        tables = {name: read_rows(conn, schema, name) for name in TABLES if schema.has(name)}
        unknown = {name: count_rows(conn, name) for name in schema.unknown_tables}
    # Before anything is written: rows read from a file that was being written may not fit together.
    if fingerprint(options.legacy_db) != source:
        raise LegacyInputRefused(f"the legacy file {options.legacy_db} changed while it was read; stop "
                                 "whatever writes to it (the old bot?) and run again")
    run = _Run(options, paths, migrations, source, schema, datetime.now(UTC).isoformat(), files,
               _placement_key(options))
    tally = _Tally()
    _read(tally.ledger, tables, unknown)
    removed = 0 if options.dry_run else _remove_leftovers(paths)
    placement = place({name: table.rows for name, table in tables.items()}, schema, evidence,
                      options.assign_unknown, tally.ledger)
    tables.clear()  # the placement holds what is still needed

    _split_servers(run, placement, tally, progress)
    holding_file = _split_holding(run, placement, tally, progress)
    _account_unused_global_settings(tally.ledger, placement)

    if fingerprint(options.legacy_db) != source:
        # The files written are complete, but a re-run would skip them as live files and keep their
        # rows, stale by what was written to the legacy file since.
        written = ";" if options.dry_run else (
            ": the files this run wrote hold it as it was read, without the later changes; "
            "move the files this run wrote away (see the progress lines),")
        raise LegacyInputRefused(f"the legacy file {options.legacy_db} changed after it was read{written} "
                                 "stop whatever writes to it (the old bot?) and run again")
    summary = Summary(
        source=str(options.legacy_db), variant=str(schema.variant), fingerprint=source,
        dry_run=options.dry_run, holding_file=holding_file,
        global_settings=tuple(sorted(placement.global_settings)), settings_kept=tally.settings_kept,
        roles_shared=tally.roles_shared,
        removed_leftovers=removed, backups=tuple(tally.backups),
        notes=_notes(schema, options))
    return SplitReport(tally.ledger, summary, tally.written_files)


def _notes(schema: LegacySchema, options: SplitOptions) -> tuple[str, ...]:
    notes = [f"Merge rules: {writer.MERGE_RULES}."] if options.merge else []
    if unread := schema.unread_columns():
        columns = "; ".join(f"{table}: {', '.join(names)}" for table, names in unread.items())
        notes.append("Legacy columns not carried over (profile fields, counters kept for all servers at once, "
                     f"a member's own birthday timezone: MalaBoT announces in the server's): {columns}.")
    return tuple(notes)


def _read(ledger: Ledger, tables: dict[str, TableRows], unknown: dict[str, int]) -> None:
    for name, table in tables.items():
        ledger.add_read(name, (row[0] for row in table.rows))
        ledger.add_read(name, (rowid for rowid, _why in table.unusable))
        for rowid, why in table.unusable:
            ledger.hold(name, rowid, why)
    for name, count in unknown.items():
        ledger.add_counted_only(name, count, "unknown table, not part of the legacy schema")


# --- the servers --------------------------------------------------------------------------------

def _split_servers(run: _Run, placement: Placement, tally: _Tally, progress: Progress) -> None:
    guild_ids = sorted(placement.destinations)
    workers = run.options.workers or min(os.cpu_count() or 1, _MAX_WORKERS,
                                         len(guild_ids) // _SERVERS_PER_WORKER)
    if workers > 1:
        run.template()  # made once, before the workers fork, and shared by them

    def one_server(guild_id: int) -> FileOutcome:
        return _split_guild(run, guild_id, placement.destinations[guild_id])

    for number, outcome in enumerate(in_workers(guild_ids, one_server, workers), start=1):
        _take(tally, outcome)
        written = outcome.result.count if outcome.result else 0
        progress(f"[{number}/{len(guild_ids)}] guild {outcome.label}: {outcome.status}, {written} rows")


def _split_guild(run: _Run, guild_id: int, destination: Destination) -> FileOutcome:
    content = build(destination, run.schema, run.now)
    status = _status(run, guild_id)
    result: writer.WriteResult | None = None
    if status == NEW:
        result = writer.create_tenant(run.paths, guild_id, content, run.template(), run.marker, run.now,
                                      dry_run_in=run.scratch())
        if not result.published:
            status, result = APPEARED, None
    elif status == MERGED:
        result = writer.merge_into_live(run.paths, guild_id, content, run.migrations, run.marker, run.now,
                                        dry_run_in=run.scratch())
    return _outcome(str(guild_id), status, content, result)


def _status(run: _Run, guild_id: int) -> str:
    live = run.paths.live(guild_id)
    if not live.exists():
        return NEW
    markers = writer.legacy_markers(live)
    from_this_file = [marker for marker in markers if marker.get("source") == run.source]
    if from_this_file:
        return ALREADY if from_this_file[0].get("placement") == run.placement else OTHER_OPTIONS
    if markers:  # its rows may be in the file already: a merge would add them again
        return OTHER_VERSION
    return MERGED if run.options.merge else SKIPPED


def _placement_key(options: SplitOptions) -> str:
    """What besides the legacy file decides where rows go: the members file and --assign-unknown."""
    members = "-"
    if options.members_csv is not None:
        members = hashlib.sha256(options.members_csv.read_bytes()).hexdigest()[:16]
    return f"members={members};assign-unknown={options.assign_unknown or '-'}"


def _outcome(label: str, status: str, content: Content, result: writer.WriteResult | None) -> FileOutcome:
    settings = content.settings
    return FileOutcome(
        label=label, status=status, held=content.held, result=result,
        skipped=content.origins_by_table() if result is None else {},
        settings_rowids=settings.rowids if settings else [],
        settings_kept=list(settings.mapped.why_kept.items()) if settings and result is not None else [])


def _take(tally: _Tally, outcome: FileOutcome) -> None:
    """Record one destination's outcome in the ledger."""
    ledger, label, result = tally.ledger, outcome.label, outcome.result
    ledger.status[label] = outcome.status
    tally.settings_kept.update(outcome.settings_kept)
    held = list(outcome.held)
    if result is None:
        reason = HOLDING_ALREADY if label == HOLDING_LABEL else _SKIP_REASONS[outcome.status]
        ledger.status_reason[label] = reason
        held += [(table, rowid, reason) for table, rowids in outcome.skipped.items() for rowid in rowids]
        held += [("settings", rowid, reason) for rowid in outcome.settings_rowids]
        ledger.record(label, {}, held)
        return
    tally.roles_shared.update(result.roles_shared)
    if not result.dry_run:
        tally.written_files += 1
    if result.backup is not None:
        tally.backups.append(str(result.backup))
    held += [(table, rowid, reason) for (table, rowid), reason in result.refused]
    held += [("settings", rowid, reason) for rowid, reason in result.settings_kept]
    written = dict(result.written)
    if result.settings_written:
        written["settings"] = written.get("settings", set()) | set(result.settings_written)
    ledger.record(label, written, held)


# --- the holding file and what is left ------------------------------------------------------------

def _split_holding(run: _Run, placement: Placement, tally: _Tally, progress: Progress) -> str | None:
    if not placement.holding.placed:
        return None
    path = writer.holding_path(run.paths, run.marker)
    content = build(placement.holding, run.schema, run.now)
    result: writer.WriteResult | None
    if path.exists():
        status, result = ALREADY, None
    else:
        status = NEW
        result = writer.create_holding(run.paths, content, placement.holding_reasons, run.template(),
                                       run.marker, run.now, dry_run_in=run.scratch())
    _take(tally, _outcome(HOLDING_LABEL, status, content, result))
    progress(f"holding file {path}: {status}, {result.count if result else 0} rows")
    return str(path)


def _account_unused_global_settings(ledger: Ledger, placement: Placement) -> None:
    """A global key every server sets itself was applied nowhere: say so instead of losing it."""
    written = ledger.written.get("settings", set()) | ledger.holding.get("settings", set())
    held = ledger.held.get("settings", {})
    for rowid, _value in placement.global_settings.values():
        if rowid not in written and rowid not in held:
            ledger.hold("settings", rowid, "global default not needed: every server sets this key itself")


def _remove_leftovers(paths: TenantPaths) -> int:
    """Temporary files of an earlier run that was killed before it could clean up: any staged tenant
    file (the split holds the tenants lock), and the split's own template and holding files."""
    leftovers = list(paths.root.glob(f"{writer.TEMPLATE_PREFIX}*.tmp"))
    holding_dir = paths.root / writer.HOLDING_DIR
    if holding_dir.is_dir():
        leftovers += list(holding_dir.glob(".*.tmp"))
    for path in leftovers:
        remove_database_files(path)
    return remove_staging_leftovers(paths) + len(leftovers)
