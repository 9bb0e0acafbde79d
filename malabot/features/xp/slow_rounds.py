"""Telling the operator how XP flush rounds go, without a log line every round.

A round writes every guild with buffered XP. When more guilds chat each second than the bot keeps
files open (MALABOT_MAX_OPEN_TENANTS), a round reopens most of them and can take seconds; XP then
waits that long for its write, and a crash loses up to that much. That is the operator's call (more
open files cost memory), so it is reported, at most once a minute, with what the rounds did.

A guild whose write fails (a full disk, a damaged page, a file made read-only) keeps its XP buffered
and is retried every round, possibly for hours: the first failure is reported with its traceback, then
at most one line a minute for that guild with how many rounds failed, and one when it works again.
"""

from __future__ import annotations

from dataclasses import dataclass

from malabot.texts import counted, plural

REPORT_EVERY_SECONDS = 60.0


@dataclass
class ReportLimit:
    """Counts events and says when to report them: the first at once, then at most once every
    `every` seconds (what happened meanwhile is counted into the next report)."""

    every: float = REPORT_EVERY_SECONDS
    reported_at: float | None = None
    unreported: int = 0  # events since the last report

    def note(self, now: float) -> int | None:
        """Count one event at `now`; when a report is due, how many events it covers, else None."""
        self.unreported += 1
        if self.reported_at is not None and now - self.reported_at < self.every:
            return None
        count, self.unreported, self.reported_at = self.unreported, 0, now
        return count


@dataclass(frozen=True)
class FlushRound:
    """What one flush of every guild with buffered XP did."""

    guilds: int = 0
    reopened: int = 0  # guilds whose file was not open when the round began


class SlowRounds:
    def __init__(self, *, report_every: float = REPORT_EVERY_SECONDS) -> None:
        self._limit = ReportLimit(report_every)
        self._longest = 0.0
        self._longest_round = FlushRound()

    def note(self, flushed: FlushRound, seconds: float, interval: float, now: float) -> str | None:
        """Record a round that took `seconds` (due every `interval`); the warning to log when one is
        due, else None."""
        if seconds <= interval:
            return None
        if seconds > self._longest:
            self._longest, self._longest_round = seconds, flushed
        slow = self._limit.note(now)
        if slow is None:
            return None
        worst = self._longest_round
        message = (f"XP flush rounds are slower than their {interval:g} s interval: "
                   f"{counted(slow, 'slow round')}, the longest {self._longest:.1f} s for "
                   f"{worst.guilds:,} {plural(worst.guilds, 'server')} ({worst.reopened:,} of them reopened). Chat XP "
                   "waits that long for its write; with more open files (MALABOT_MAX_OPEN_TENANTS) "
                   "fewer need reopening, at the cost of memory.")
        self._longest, self._longest_round = 0.0, FlushRound()
        return message


@dataclass(frozen=True)
class WriteFailure:
    """What to log for a failed write of a guild's buffered XP."""

    message: str
    first: bool  # the first of a run of failures: log it with its traceback


@dataclass
class _FailingGuild:
    limit: ReportLimit
    rounds: int = 0  # failed rounds since the last success


class FailingWrites:
    """Per guild, the failed rounds since its last successful write; only guilds failing now are kept."""

    def __init__(self, *, report_every: float = REPORT_EVERY_SECONDS) -> None:
        self._report_every = report_every
        self._failing: dict[int, _FailingGuild] = {}

    def failed(self, guild_id: int, error: BaseException, now: float) -> WriteFailure | None:
        """A round failed to write the guild's XP; what to log when a report is due, else None."""
        failing = self._failing.get(guild_id)
        first = failing is None
        if failing is None:
            failing = self._failing[guild_id] = _FailingGuild(ReportLimit(self._report_every))
        failing.rounds += 1
        count = failing.limit.note(now)
        if count is None:
            return None
        if first:
            return WriteFailure(f"guild {guild_id}: writing buffered XP failed; it stays buffered and is "
                                "retried every round (reported again at most once a minute)", first=True)
        return WriteFailure(f"guild {guild_id}: writing buffered XP still fails: {counted(count, 'failed round')} "
                            f"since the last report, {failing.rounds} in all; the last error: "
                            f"{type(error).__name__}: {' '.join(str(error).split())}", first=False)

    def worked(self, guild_id: int) -> str | None:
        """The guild's XP was written; the line to log when its writes had been failing, else None."""
        failing = self._failing.pop(guild_id, None)
        if failing is None:
            return None
        return f"guild {guild_id}: writing buffered XP works again after {counted(failing.rounds, 'failed round')}"

    def forget(self, guild_id: int) -> None:
        """Nothing of the guild is buffered any more (its file was archived, its members left)."""
        self._failing.pop(guild_id, None)
