"""When slow XP flush rounds are reported: only rounds over their interval, at most once a minute."""

from __future__ import annotations

from malabot.features.xp.slow_rounds import FlushRound, SlowRounds

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
