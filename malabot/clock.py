"""Time as a dependency: services take a `Clock` so tests and the sandbox can move it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class MovableClock:
    """A clock that stands still until told to move: the sandbox demo's day and the tests' time."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta | None = None, **parts: float) -> None:
        self.now += (delta or timedelta()) + timedelta(**parts)
