"""Benchmark: removing repeated rows from a member's `/mydata export`, on the event loop.

    python bench/export.py

A member named in many rows (a long-serving moderator's cases, say) is exported table by table; a
row naming them in two columns, or exported by two handlers, must appear once. Measured side by side
in one process on the same rows (dicts shaped like exported `mod_cases` rows, one in ten repeated):
  now       `malabot.privacy.without_repeats` (a set of each row's items);
  baseline  the list scan the export used before 2026-12-07 (`row not in kept`, quadratic).
Best of three runs per side and size; the ratio baseline / now (above 1: faster now).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from malabot.privacy import without_repeats  # noqa: E402

Row = dict[str, Any]


def list_scan(rows: list[Row]) -> list[Row]:
    """The baseline: each row compared with every row kept before it."""
    kept: list[Row] = []
    kept.extend(row for row in rows if row not in kept)
    return kept


def exported_rows(count: int) -> list[Row]:
    unique = [{"case_number": number, "action": "warn", "target_id": 10**17 + number % 977,
               "moderator_id": 10**17 + 1, "reason": f"spam in #general ({number})",
               "created_at": "2026-12-07T03:00:00+00:00", "expires_at": None}
              for number in range(count - count // 10)]
    return unique + [dict(row) for row in unique[: count // 10]]  # repeats, as a second column finds them


def best_of(work: Callable[[list[Row]], list[Row]], rows: list[Row], runs: int = 3) -> tuple[float, int]:
    best, kept = float("inf"), 0
    for _ in range(runs):
        started = time.perf_counter()
        kept = len(work(rows))
        best = min(best, time.perf_counter() - started)
    return best, kept


def main() -> int:
    print(f"Python {sys.version.split()[0]}")
    print("| rows | now s | baseline s | baseline / now | rows kept |")
    print("|---:|---:|---:|---:|---:|")
    for count in (2_500, 5_000, 10_000, 20_000):
        rows = exported_rows(count)
        now, kept = best_of(without_repeats, rows)
        baseline, kept_before = best_of(list_scan, rows, runs=1 if count > 5_000 else 3)
        assert kept == kept_before, "both keep the same rows"
        print(f"| {count:,} | {now:.4f} | {baseline:.2f} | {baseline / now:,.0f} | {kept:,} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
