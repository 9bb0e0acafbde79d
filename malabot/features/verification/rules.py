"""Verification rules: how old a Discord account is, and what pressing "Verify" or a review button does.

Pure: the service passes the member's stored status, the server's settings and the time; these
functions say what should happen. A Discord id (snowflake) carries its creation time in its top bits,
so an account's age needs no API call.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Literal

from malabot.errors import UserInputError
from malabot.snowflakes import DISCORD_EPOCH_MS

RequestStatus = Literal["pending", "verified", "denied"]


def account_created_at(user_id: int) -> datetime:
    """The UTC moment a Discord account (or any snowflake) was created."""
    return datetime.fromtimestamp(((user_id >> 22) + DISCORD_EPOCH_MS) / 1000, tz=UTC)


def old_enough_at(user_id: int, min_age_days: int) -> datetime:
    """When the account reaches the minimum age."""
    return account_created_at(user_id) + timedelta(days=min_age_days)


def try_again_after(user_id: int, min_age_days: int) -> datetime:
    """The time a member too young to verify is told to wait for: when the account is old enough,
    rounded up to a whole minute (the sentence shows minutes), so that trying after it always works."""
    ready = old_enough_at(user_id, min_age_days)
    whole_minute = ready.replace(second=0, microsecond=0)
    return whole_minute if whole_minute == ready else whole_minute + timedelta(minutes=1)


def check_distinct_roles(verified_role_id: int | None, unverified_role_id: int | None) -> None:
    """Verifying gives the verified role and takes the unverified one: one role for both would be given
    and taken at once, and the member, told they are verified, would be left without it."""
    if verified_role_id is not None and verified_role_id == unverified_role_id:
        raise UserInputError("The verified and unverified roles must be different roles: verifying gives the "
                             "one and takes the other away.")


def account_old_enough(user_id: int, now: datetime, min_age_days: int) -> bool:
    return min_age_days <= 0 or now >= old_enough_at(user_id, min_age_days)


class RequestDecision(Enum):
    """What a press of the panel's Verify button leads to."""

    NOT_SET_UP = "not set up"              # no verified role configured: nothing to give
    VERIFY = "verify"                      # give the role now
    REVIEW = "review"                      # send the request to the moderators
    ALREADY_VERIFIED = "already verified"  # nothing new is stored; the role is given again
    ALREADY_PENDING = "already pending"    # a moderator has not answered yet
    DENIED = "denied"                      # a moderator said no
    TOO_YOUNG = "too young"                # the account is younger than the server's minimum


def decide_request(*, status: RequestStatus | None, verified_role_id: int | None, review: bool,
                   min_age_days: int, user_id: int, now: datetime) -> RequestDecision:
    """The decision for a member with `status` (None: never asked) pressing Verify at `now`."""
    if verified_role_id is None:
        return RequestDecision.NOT_SET_UP
    if status == "verified":
        return RequestDecision.ALREADY_VERIFIED
    if status == "denied":
        return RequestDecision.DENIED
    if status == "pending" and review:
        return RequestDecision.ALREADY_PENDING
    # Also a request still pending after the server turned review off: nobody will review it now.
    if not account_old_enough(user_id, now, min_age_days):
        return RequestDecision.TOO_YOUNG
    return RequestDecision.REVIEW if review else RequestDecision.VERIFY


class ReviewDecision(Enum):
    """What a moderator's Approve or Deny leads to."""

    NO_REQUEST = "no request"            # the member left (their request was purged) or never asked
    OUT_OF_DATE = "out of date"          # a message of an earlier request (reset since): nothing changes
    ALREADY_DECIDED = "already decided"  # another press (or moderator) was first: nothing changes
    APPROVE = "approve"
    DENY = "deny"


def decide_review(status: RequestStatus | None, *, approve: bool, pressed_message_id: int | None = None,
                  review_message_id: int | None = None) -> ReviewDecision:
    """`pressed_message_id`: the message whose button was pressed; `review_message_id`: the request's own."""
    if status is None:
        return ReviewDecision.NO_REQUEST
    if None not in (pressed_message_id, review_message_id) and pressed_message_id != review_message_id:
        return ReviewDecision.OUT_OF_DATE
    if status != "pending":
        return ReviewDecision.ALREADY_DECIDED
    return ReviewDecision.APPROVE if approve else ReviewDecision.DENY


# A request is posted for review right after it is stored. One still without its message this long
# after never got it: the bot stopped in between.
REVIEW_POST_GRACE = timedelta(minutes=1)


def review_never_posted(review_message_id: int | None, requested_at: datetime, now: datetime) -> bool:
    """Whether a pending request's review message was never posted, so no moderator can answer it."""
    return review_message_id is None and now - requested_at > REVIEW_POST_GRACE
