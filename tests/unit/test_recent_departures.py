"""RecentDepartures: who left a server a moment ago, per server, for a while."""

from __future__ import annotations

from manual_clock import ManualClock

from malabot.departures import RecentDepartures


def test_a_leave_is_remembered_for_its_server_only_and_for_a_while() -> None:
    clock = ManualClock(100.0)
    departures = RecentDepartures(keep_seconds=60, clock=clock)
    departures.left(1, 7)
    assert departures.has_left(1, 7) and departures.in_guild(1) == [7]
    assert not departures.has_left(2, 7) and departures.in_guild(2) == []
    clock.now += 60
    assert departures.has_left(1, 7)
    clock.now += 0.5
    assert not departures.has_left(1, 7)
    assert departures.in_guild(1) == []


def test_a_rejoin_ends_it_at_once_and_says_whether_there_was_one() -> None:
    departures = RecentDepartures(clock=ManualClock(100.0))
    departures.left(1, 7)
    departures.left(1, 8)
    assert departures.rejoined(1, 7) is True
    assert departures.rejoined(1, 7) is False
    assert departures.in_guild(1) == [8]
    assert departures.rejoined(2, 8) is False


def test_leaving_again_restarts_the_time() -> None:
    clock = ManualClock(100.0)
    departures = RecentDepartures(keep_seconds=60, clock=clock)
    departures.left(1, 7)
    clock.now += 50
    departures.left(1, 7)
    clock.now += 50
    assert departures.has_left(1, 7)


def test_a_leave_counts_as_purged_from_its_purge_on_and_not_once_that_fails() -> None:
    # Until then the re-check before other commits leaves their rows to their own purge, which counts them.
    departures = RecentDepartures(clock=ManualClock(100.0))
    departures.left(1, 7)
    departures.left(1, 8)
    assert departures.purged_in_guild(1) == []
    departures.purged(1, [7, 9])  # 9 did not leave: nothing to remember
    assert departures.purged_in_guild(1) == [7] and departures.in_guild(1) == [7, 8]
    departures.purge_failed(1, [7])
    assert departures.purged_in_guild(1) == []
    departures.purged(1, [7, 8])
    departures.left(1, 8)  # left again: a purge of theirs is to come again
    assert departures.purged_in_guild(1) == [7]


def test_by_default_a_leave_is_remembered_for_a_minute() -> None:
    # A write delivered up to a minute after the leave must still be deleted by the purge's commits.
    clock = ManualClock(100.0)
    departures = RecentDepartures(clock=clock)
    departures.left(1, 2)
    clock.now += 59
    assert departures.has_left(1, 2), "a late write 59 s after the leave would keep the member's rows"
    clock.now += 2
    assert not departures.has_left(1, 2)
