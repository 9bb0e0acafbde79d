"""Time as a dependency: services take a `Clock` so tests and the sandbox can move it.

A `Clock` is the wall clock, for times that are stored or shown; it can be stepped back (an NTP
correction, a VM restored). Durations kept in memory (a cooldown) use a `Monotonic` clock instead.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]
Monotonic = Callable[[], float]  # seconds from an arbitrary start, never going back (time.monotonic)


def utc_now() -> datetime:
    return datetime.now(UTC)


class MovableClock:
    """A clock that stands still until told to move: the sandbox demo's day and the tests' time."""

    def __init__(self, start: datetime) -> None:
        self.now = start
        self.elapsed = 0.0  # what `monotonic` reads

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        """Seconds that passed since the start: moved forward with the wall clock, but not back."""
        return self.elapsed

    def advance(self, delta: timedelta | None = None, **parts: float) -> None:
        """Time passes (a positive step); a negative step is the wall clock set back, as by NTP,
        which a monotonic clock does not follow."""
        step = (delta or timedelta()) + timedelta(**parts)
        self.now += step
        self.elapsed += max(step.total_seconds(), 0.0)
