"""Telling the operator when XP flush rounds take longer than their interval.

A round writes every guild with buffered XP. When more guilds chat each second than the bot keeps
files open (MALABOT_MAX_OPEN_TENANTS), a round reopens most of them and can take seconds; XP then
waits that long for its write, and a crash loses up to that much. That is the operator's call (more
open files cost memory), so it is reported, at most once a minute, with what the rounds did.
"""

from __future__ import annotations

from dataclasses import dataclass

from malabot.texts import counted, plural

REPORT_EVERY_SECONDS = 60.0


@dataclass(frozen=True)
class FlushRound:
    """What one flush of every guild with buffered XP did."""

    guilds: int = 0
    reopened: int = 0  # guilds whose file was not open when the round began


class SlowRounds:
    def __init__(self, *, report_every: float = REPORT_EVERY_SECONDS) -> None:
        self._report_every = report_every
        self._reported_at: float | None = None
        self._slow = 0  # slow rounds since the last report
        self._longest = 0.0
        self._longest_round = FlushRound()

    def note(self, flushed: FlushRound, seconds: float, interval: float, now: float) -> str | None:
        """Record a round that took `seconds` (due every `interval`); the warning to log when one is
        due, else None."""
        if seconds <= interval:
            return None
        self._slow += 1
        if seconds > self._longest:
            self._longest, self._longest_round = seconds, flushed
        if self._reported_at is not None and now - self._reported_at < self._report_every:
            return None
        worst = self._longest_round
        message = (f"XP flush rounds are slower than their {interval:g} s interval: "
                   f"{counted(self._slow, 'slow round')}, the longest {self._longest:.1f} s for "
                   f"{worst.guilds:,} {plural(worst.guilds, 'server')} ({worst.reopened:,} of them reopened). Chat XP "
                   "waits that long for its write; with more open files (MALABOT_MAX_OPEN_TENANTS) "
                   "fewer need reopening, at the cost of memory.")
        self._reported_at, self._slow, self._longest, self._longest_round = now, 0, 0.0, FlushRound()
        return message
