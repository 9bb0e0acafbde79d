"""The tests' movable clock: its monotonic reading follows time passing, not the wall clock set back."""

from __future__ import annotations

from datetime import UTC, datetime

from malabot.clock import MovableClock


def test_the_monotonic_reading_moves_forward_with_the_clock_and_stays_when_it_is_set_back() -> None:
    clock = MovableClock(datetime(2026, 6, 15, 12, 0, tzinfo=UTC))
    clock.advance(seconds=30)
    assert clock.monotonic() == 30.0
    clock.advance(hours=-1)
    assert clock.now == datetime(2026, 6, 15, 11, 0, 30, tzinfo=UTC)
    assert clock.monotonic() == 30.0
    clock.advance(minutes=1)
    assert clock.monotonic() == 90.0
