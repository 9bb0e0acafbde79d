"""The ledger: every legacy row read must end written, in the holding file, or held back with a reason.

Rows are identified by (table, rowid). A global row may be written into several servers; it counts
once per table ("written" wins over "holding" wins over "held back") and once per server it was meant
for. `unaccounted()` is what the run fails on: rows read that reached none of the three.

A written row may leave part of itself behind (a member's XP written, their impossible birthday not):
that part is named apart ("partly"), so that every row still counts once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from malabot.errors import one_line

HOLDING_LABEL = "holding"
PARTLY = "part of written rows"


@dataclass
class DestinationTally:
    """Per legacy table: rows written into this destination, and why rows meant for it were not."""

    written: Counter[str] = field(default_factory=Counter)
    held: dict[str, Counter[str]] = field(default_factory=dict)
    partly: dict[str, Counter[str]] = field(default_factory=dict)  # what rows written here left behind

    def held_reasons(self, table: str) -> Counter[str]:
        return self.held.get(table, Counter())

    def partly_held(self, table: str) -> Counter[str]:
        return self.partly.get(table, Counter())


@dataclass
class TableTotals:
    read: int
    written: int
    holding: int
    held: Counter[str]
    partly: Counter[str] = field(default_factory=Counter)  # parts of written rows held back, not rows

    @property
    def unaccounted(self) -> int:
        return self.read - self.written - self.holding - sum(self.held.values())


@dataclass
class Ledger:
    read: dict[str, set[int]] = field(default_factory=dict)
    counted_only: dict[str, tuple[int, str]] = field(default_factory=dict)  # unknown tables: (rows, why)
    written: dict[str, set[int]] = field(default_factory=dict)
    holding: dict[str, set[int]] = field(default_factory=dict)
    held: dict[str, dict[int, str]] = field(default_factory=dict)
    partly: dict[str, set[tuple[int, str]]] = field(default_factory=dict)  # (rowid, what it left behind)
    destinations: dict[str, DestinationTally] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)  # destination → new, skipped …, merged …
    status_reason: dict[str, str] = field(default_factory=dict)  # why a skipped destination's rows are held

    def add_read(self, table: str, rowids: Iterable[int]) -> None:
        self.read.setdefault(table, set()).update(rowids)

    def add_counted_only(self, table: str, rows: int, reason: str) -> None:
        self.counted_only[table] = (rows, reason)

    def hold(self, table: str, rowid: int, reason: str) -> None:
        """A row that goes nowhere, whatever the destinations (profile only, process data …)."""
        self.held.setdefault(table, {})[rowid] = reason

    def record(self, destination: str, written: Mapping[str, Collection[int]],
               held: Iterable[tuple[str, int, str]]) -> None:
        """One destination's outcome: the rows it got, and the rows meant for it that were held back.

        A row both written and held in one destination (a member's XP kept, their birthday superseded)
        counts as written there; the reason names what it left behind.
        """
        tally = self.destinations.setdefault(destination, DestinationTally())
        outcome = self.holding if destination == HOLDING_LABEL else self.written
        for table, rowids in written.items():
            outcome.setdefault(table, set()).update(rowids)
            tally.written[table] += len(rowids)
        seen: set[tuple[str, int]] = set()
        left_behind: set[tuple[str, int, str]] = set()
        for table, rowid, reason in held:
            self.held.setdefault(table, {})[rowid] = reason
            if rowid in written.get(table, ()):
                if (table, rowid, reason) not in left_behind:
                    left_behind.add((table, rowid, reason))
                    self.partly.setdefault(table, set()).add((rowid, reason))
                    tally.partly.setdefault(table, Counter())[reason] += 1
            elif (table, rowid) not in seen:
                seen.add((table, rowid))
                tally.held.setdefault(table, Counter())[reason] += 1

    def totals(self) -> dict[str, TableTotals]:
        result = {}
        for table in sorted(set(self.read) | set(self.counted_only)):
            if table in self.counted_only:
                rows, reason = self.counted_only[table]
                result[table] = TableTotals(rows, 0, 0, Counter({reason: rows}))
                continue
            read = self.read[table]
            written = self.written.get(table, set()) & read
            holding = (self.holding.get(table, set()) & read) - written
            held = Counter(reason for rowid, reason in self.held.get(table, {}).items()
                           if rowid in read and rowid not in written and rowid not in holding)
            partly = Counter(reason for rowid, reason in self.partly.get(table, set()) if rowid in written)
            result[table] = TableTotals(len(read), len(written), len(holding), held, partly)
        return result

    def unaccounted(self) -> dict[str, int]:
        """Rows read that were neither written, held, nor sent to the holding file, per table."""
        return {table: totals.unaccounted for table, totals in self.totals().items() if totals.unaccounted}

    def strays(self) -> dict[str, int]:
        """Rows recorded as written or held that were never read (a bug if not empty)."""
        found = {}
        for table in set(self.written) | set(self.holding) | set(self.held):
            known = self.read.get(table, set())
            recorded = (self.written.get(table, set()) | self.holding.get(table, set())
                        | set(self.held.get(table, {})))
            if recorded - known:
                found[table] = len(recorded - known)
        return found


# --- printing -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Summary:
    """Facts of the run that the ledger does not know."""

    source: str
    variant: str
    fingerprint: str
    dry_run: bool
    holding_file: str | None
    global_settings: tuple[str, ...]
    settings_kept: Counter[tuple[str, str]]   # (legacy key, why) → servers
    removed_leftovers: int
    backups: tuple[str, ...]
    notes: tuple[str, ...] = ()
    roles_shared: Counter[str] = field(default_factory=Counter)  # "a = b: why" → servers


def render(ledger: Ledger, summary: Summary) -> str:
    """The report, for stdout; the paths in it are written as `one_line` writes them (a name with a
    newline would split its line, one that is not UTF-8 could not be printed)."""
    lines = [f"Legacy split of {one_line(summary.source)} "
             f"({summary.variant} variant, sha256 {summary.fingerprint[:16]})"]
    if summary.dry_run:
        lines.append("DRY RUN: nothing was written; 'written' means 'would be written'.")
    lines += _status_lines(ledger, summary)
    lines += ["", "Per table (each legacy row once):"]
    lines += _table_section(ledger)
    lines += ["", "Per server (rows written; 'w/r' where some of the r rows meant for it were held back):"]
    lines += _destination_section(ledger)
    if summary.settings_kept:
        lines += ["", "Settings kept verbatim in legacy_settings (servers):"]
        for (key, why), servers in sorted(summary.settings_kept.items()):
            lines.append(f"  {key}: {why} ({servers})")
    if summary.roles_shared:
        lines += ["", "Role settings naming one role, kept as the old bot had them (the bot no longer lets "
                      "an admin set such a pair; servers):"]
        lines += [f"  {pair} ({servers})" for pair, servers in sorted(summary.roles_shared.items())]
    if summary.notes:
        lines += ["", *summary.notes]
    lines.append("")
    lines.append(_verdict(ledger))
    return "\n".join(lines)


def _status_lines(ledger: Ledger, summary: Summary) -> list[str]:
    counts = Counter(status for label, status in ledger.status.items() if label != HOLDING_LABEL)
    lines = ["Servers: " + (", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
                            or "none")]
    if summary.holding_file:
        lines.append(f"Holding file (rows with no evidence of a server): {one_line(summary.holding_file)}"
                     f" [{ledger.status.get(HOLDING_LABEL, 'new')}]")
    if summary.global_settings:
        lines.append("Global settings (guild NULL, oldest row per key) applied as defaults to every server "
                     "that does not set the key itself: " + ", ".join(summary.global_settings))
    for backup in summary.backups:
        lines.append(f"Backup before merge: {one_line(backup)}")
    if summary.removed_leftovers:
        lines.append(f"Removed {summary.removed_leftovers} temporary file(s) of an interrupted earlier run.")
    return lines


def _table_section(ledger: Ledger) -> list[str]:
    lines = [f"  {'table':<16}{'read':>9}{'written':>9}{'holding':>9}{'held':>9}  why held"]
    for table, totals in ledger.totals().items():
        reasons = [f"{reason} ({count})" for reason, count in totals.held.most_common()]
        reasons += [f"{PARTLY}: {reason} ({count})" for reason, count in totals.partly.most_common()]
        lines.append(f"  {table:<16}{totals.read:>9}{totals.written:>9}{totals.holding:>9}"
                     f"{sum(totals.held.values()):>9}  {reasons[0] if reasons else ''}")
        for reason in reasons[1:]:
            lines.append(f"  {'':<52}  {reason}")
    return lines


def _destination_section(ledger: Ledger) -> list[str]:
    tables = sorted({table for tally in ledger.destinations.values()
                     for table in (*tally.written, *tally.held)})
    if not tables:
        return ["  (none)"]
    widths = [max(len(table), 7) for table in tables]
    columns = list(zip(tables, widths, strict=True))
    status_width = max(len(status) for status in [*ledger.status.values(), "status"])
    header = f"  {'server':<20} {'status':<{status_width}}" + "".join(
        f"{table:>{width + 1}}" for table, width in columns)
    lines = [header]
    for label in sorted(ledger.destinations, key=lambda name: (name == HOLDING_LABEL, name.zfill(20))):
        tally = ledger.destinations[label]
        cells = []
        reasons: Counter[str] = Counter()
        for table, width in columns:
            written = tally.written[table]
            held = tally.held_reasons(table)
            reasons.update({f"{table}: {reason}": count for reason, count in held.items()})
            cell = f"{written}/{written + sum(held.values())}" if held else str(written)
            cells.append(f"{cell:>{width + 1}}")
        lines.append(f"  {label:<20} {ledger.status.get(label, ''):<{status_width}}" + "".join(cells))
        skipped_because = ledger.status_reason.get(label)
        if skipped_because:
            lines.append(f"      held: {skipped_because}")
        for reason, count in sorted(reasons.items()):
            if not reason.endswith(f": {skipped_because}"):
                lines.append(f"      held: {reason} ({count})")
        for table in tables:
            for reason, count in sorted(tally.partly_held(table).items()):
                lines.append(f"      held, {PARTLY}: {table}: {reason} ({count})")
    return lines


def _verdict(ledger: Ledger) -> str:
    missing = ledger.unaccounted()
    strays = ledger.strays()
    if not missing and not strays:
        read = sum(totals.read for totals in ledger.totals().values())
        return f"Every legacy row is accounted for ({read} rows read)."
    parts = [f"{table}: {count} unaccounted" for table, count in sorted(missing.items())]
    parts += [f"{table}: {count} recorded but never read" for table, count in sorted(strays.items())]
    return "FAILED: " + "; ".join(parts)
