"""Verification rules: account age from the snowflake, and the decisions of the panel and review buttons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from malabot.features.verification.rules import (
    RequestDecision,
    ReviewDecision,
    account_created_at,
    account_old_enough,
    decide_request,
    decide_review,
    old_enough_at,
    review_never_posted,
    try_again_after,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def user_created(moment: datetime) -> int:
    return (int(moment.timestamp() * 1000) - 1_420_070_400_000) << 22


def test_account_creation_time_comes_from_the_snowflake() -> None:
    # Discord's documented example: 175928847299117063 was created 2016-04-30 11:18:25.796 UTC.
    assert account_created_at(175928847299117063) == datetime(2016, 4, 30, 11, 18, 25, 796000, tzinfo=UTC)
    assert account_created_at(user_created(NOW)) == NOW


def test_minimum_age_is_reached_exactly_after_the_days() -> None:
    user = user_created(NOW - timedelta(days=7))
    assert account_old_enough(user, NOW, 7)
    assert not account_old_enough(user, NOW - timedelta(milliseconds=1), 7)
    assert old_enough_at(user, 7) == NOW
    assert account_old_enough(user_created(NOW), NOW, 0), "0 days: no minimum"


def test_the_time_to_try_again_is_rounded_up_to_a_whole_minute() -> None:
    assert try_again_after(user_created(NOW - timedelta(days=7)), 7) == NOW, "a whole minute stays"
    almost = user_created(NOW - timedelta(days=7, seconds=-50))        # old enough at 12:00:50
    assert try_again_after(almost, 7) == NOW + timedelta(minutes=1)
    just_after = user_created(NOW - timedelta(days=7, milliseconds=-1))  # at 12:00:00.001
    assert try_again_after(just_after, 7) == NOW + timedelta(minutes=1)
    assert account_old_enough(almost, try_again_after(almost, 7), 7)


def decide(status: str | None = None, *, role: int | None = 10, review: bool = False, min_days: int = 0,
           age_days: float = 100) -> RequestDecision:
    return decide_request(status=status, verified_role_id=role, review=review,  # type: ignore[arg-type]
                          min_age_days=min_days, user_id=user_created(NOW - timedelta(days=age_days)), now=NOW)


@pytest.mark.parametrize("kwargs, expected", [
    ({}, RequestDecision.VERIFY),
    ({"review": True}, RequestDecision.REVIEW),
    ({"role": None}, RequestDecision.NOT_SET_UP),
    ({"role": None, "status": "verified"}, RequestDecision.NOT_SET_UP),
    ({"status": "verified"}, RequestDecision.ALREADY_VERIFIED),
    ({"status": "verified", "review": True, "min_days": 500}, RequestDecision.ALREADY_VERIFIED),
    ({"status": "pending", "review": True}, RequestDecision.ALREADY_PENDING),
    ({"status": "pending"}, RequestDecision.VERIFY),  # review was switched off meanwhile
    ({"status": "denied"}, RequestDecision.DENIED),
    ({"status": "denied", "review": True}, RequestDecision.DENIED),
    ({"min_days": 7, "age_days": 6.9}, RequestDecision.TOO_YOUNG),
    ({"min_days": 7, "age_days": 6.9, "review": True}, RequestDecision.TOO_YOUNG),
    ({"min_days": 7, "age_days": 7}, RequestDecision.VERIFY),
])
def test_request_decisions(kwargs: dict[str, object], expected: RequestDecision) -> None:
    assert decide(**kwargs) is expected  # type: ignore[arg-type]


@pytest.mark.parametrize("status, approve, expected", [
    (None, True, ReviewDecision.NO_REQUEST),
    ("pending", True, ReviewDecision.APPROVE),
    ("pending", False, ReviewDecision.DENY),
    ("verified", False, ReviewDecision.ALREADY_DECIDED),
    ("denied", True, ReviewDecision.ALREADY_DECIDED),
])
def test_review_decisions(status: str | None, approve: bool, expected: ReviewDecision) -> None:
    assert decide_review(status, approve=approve) is expected  # type: ignore[arg-type]


@pytest.mark.parametrize("status, pressed, own, expected", [
    ("pending", 1, 2, ReviewDecision.OUT_OF_DATE),    # a message from before a reset
    ("verified", 1, 2, ReviewDecision.OUT_OF_DATE),
    ("pending", 2, 2, ReviewDecision.APPROVE),
    ("pending", 1, None, ReviewDecision.APPROVE),     # its message not yet remembered
    (None, 1, None, ReviewDecision.NO_REQUEST),
])
def test_review_decisions_of_a_message_that_is_not_the_requests_own(status: str | None, pressed: int,
                                                                    own: int | None, expected: ReviewDecision) -> None:
    assert decide_review(status, approve=True, pressed_message_id=pressed,  # type: ignore[arg-type]
                         review_message_id=own) is expected


@pytest.mark.parametrize("message_id, seconds_ago, expected", [
    (None, 61, True),     # stored, then the bot stopped before posting it
    (None, 60, False),    # another press may still be posting it
    (None, 5, False),
    (42, 3600, False),    # posted: whether that message still exists is Discord's to say
])
def test_a_review_message_never_posted(message_id: int | None, seconds_ago: int, expected: bool) -> None:
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    assert review_never_posted(message_id, now - timedelta(seconds=seconds_ago), now) is expected
