"""When slow XP flush rounds are reported (only rounds over their interval, at most once a minute), and
a server whose XP write keeps failing (its traceback once, then one line a minute, then its recovery)."""

from __future__ import annotations

from malabot.features.xp.slow_rounds import FailingWrites, FlushRound, SlowRounds

BUSY = FlushRound(guilds=1000, reopened=744)


def test_rounds_within_their_interval_are_never_reported() -> None:
    rounds = SlowRounds()
    assert all(rounds.note(BUSY, 0.9, 1.0, now) is None for now in range(0, 600, 1))


def test_the_first_slow_round_is_reported_with_what_it_did() -> None:
    message = SlowRounds().note(BUSY, 3.4, 1.0, 100.0)
    assert message is not None
    assert "1 slow round, the longest 3.4 s for 1,000 servers (744 of them reopened)" in message
    assert "MALABOT_MAX_OPEN_TENANTS" in message


def test_later_slow_rounds_wait_a_minute_and_then_report_the_worst_of_them() -> None:
    rounds = SlowRounds(report_every=60.0)
    assert rounds.note(BUSY, 2.0, 1.0, 0.0) is not None
    assert rounds.note(FlushRound(guilds=900, reopened=600), 3.9, 1.0, 30.0) is None
    assert rounds.note(FlushRound(guilds=800, reopened=500), 2.5, 1.0, 59.0) is None
    later = rounds.note(FlushRound(guilds=10, reopened=0), 1.5, 1.0, 61.0)
    assert later is not None
    assert "3 slow rounds, the longest 3.9 s for 900 servers (600 of them reopened)" in later


def test_a_round_of_exactly_the_interval_is_not_slow() -> None:
    assert SlowRounds().note(BUSY, 1.0, 1.0, 0.0) is None


GUILD, OTHER = 111, 222
FULL = OSError("database or disk is full")


def test_a_failing_write_is_reported_with_its_traceback_first_then_once_a_minute() -> None:
    writes = FailingWrites(report_every=60.0)
    first = writes.failed(GUILD, FULL, 0.0)
    assert first is not None and first.first
    assert first.message.startswith(f"guild {GUILD}: writing buffered XP failed")
    assert all(writes.failed(GUILD, FULL, float(now)) is None for now in range(1, 60))
    later = writes.failed(GUILD, FULL, 60.0)
    assert later is not None and not later.first
    assert later.message == (f"guild {GUILD}: writing buffered XP still fails: 60 failed rounds since the last "
                             "report, 61 in all; the last error: OSError: database or disk is full")


def test_each_server_has_its_own_minute_and_a_recovery_ends_its_run() -> None:
    writes = FailingWrites(report_every=60.0)
    assert writes.failed(GUILD, FULL, 0.0) is not None
    other = writes.failed(OTHER, FULL, 1.0)
    assert other is not None and other.first
    assert writes.worked(OTHER) == f"guild {OTHER}: writing buffered XP works again after 1 failed round"
    assert writes.worked(OTHER) is None, "said once"
    again = writes.failed(OTHER, FULL, 2.0)
    assert again is not None and again.first, "a new run of failures starts with its traceback again"
    writes.forget(GUILD)
    assert writes.worked(GUILD) is None
