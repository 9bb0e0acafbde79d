"""Discord snowflake ids: a millisecond timestamp since 2015 in the top bits, a counter below.

Ids made here are time-ordered like Discord's, so `created_at` of users, messages and roles is
meaningful on the bot side and sorting by id sorts by creation.
"""

from __future__ import annotations

from datetime import UTC, datetime

DISCORD_EPOCH_MS = 1_420_070_400_000


def snowflake_time(snowflake: int) -> datetime:
    """The UTC moment encoded in a snowflake."""
    return datetime.fromtimestamp(((snowflake >> 22) + DISCORD_EPOCH_MS) / 1000, tz=UTC)


def snowflake_at(moment: datetime) -> int:
    """The smallest snowflake of a moment (what Discord's `before`/`after` filters compare with)."""
    return (int(moment.timestamp() * 1000) - DISCORD_EPOCH_MS) << 22


class Snowflakes:
    """Hands out unique snowflakes, increasing for "now"; ids chosen by a caller are reserved too."""

    def __init__(self) -> None:
        self._last = 0
        self._issued: set[int] = set()

    def next(self, at: datetime | None = None) -> int:
        """A fresh id for now, or for a given moment (e.g. a message sent weeks ago)."""
        value = snowflake_at(at) if at is not None else max(snowflake_at(datetime.now(UTC)), self._last + 1)
        while value in self._issued:  # same millisecond: the low bits count up, as Discord's do
            value += 1
        return self.reserve(value)

    def reserve(self, snowflake: int) -> int:
        """Accept an id chosen by a test; later generated ids stay clear of it."""
        self._issued.add(snowflake)
        self._last = max(self._last, snowflake)
        return snowflake
