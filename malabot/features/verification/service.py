"""Verification without Discord: a member asks (the panel's button), a moderator answers (review buttons).

Every decision is taken inside the transaction that stores it, so pressing a button twice, or two
moderators answering at once, changes the member's row once. The cog gives and removes the roles the
results name; giving a role again is harmless, so "already verified" simply repeats it.

What a cog calls:
    Verify button         -> request(guild_id, user_id) -> VerificationResult   (UserInputError: refused)
    review message posted -> attach_review_message(guild_id, user_id, message_id)
    review not postable   -> withdraw(guild_id, user_id)
    Approve / Deny        -> review(guild_id, user_id, reviewer_id, approve=..., message_id=...) -> ReviewResult
    /verify reset         -> reset(guild_id, user_id) -> VerificationRequest | None (the request forgotten)
    auto-role (welcome)   -> status(guild_id, user_id) -> VerificationRequest | None (verified already?)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from malabot.clock import Clock, utc_now
from malabot.errors import UserInputError
from malabot.features.audit import repository as audit
from malabot.features.settings.service import SettingsService
from malabot.features.verification import repository
from malabot.features.verification.repository import VerificationRequest
from malabot.features.verification.rules import (
    RequestDecision,
    ReviewDecision,
    account_created_at,
    decide_request,
    decide_review,
    review_never_posted,
    try_again_after,
)
from malabot.tenancy.manager import TenantManager

RequestOutcome = Literal["verified", "already_verified", "pending_review", "already_pending"]

NOT_SET_UP = "Verification is not set up on this server yet; an admin can run `/verify setup`."


class OutOfDateReview(UserInputError):
    """A button of a review message that is not the request's own (one from before a reset)."""

    def __init__(self) -> None:
        super().__init__("This request message is out of date; use the newest one.")


@dataclass(frozen=True)
class VerificationResult:
    outcome: RequestOutcome
    verified_role_id: int              # give it on "verified" and "already_verified"
    unverified_role_id: int | None     # take it away then, when the server has one
    review_channel_id: int | None      # where to post a new request ("pending_review")
    account_created_at: datetime
    # "already_pending": the request's message for the moderators, and whether it was never posted.
    review_message_id: int | None = None
    review_never_posted: bool = False

    @property
    def gives_role(self) -> bool:
        return self.outcome in ("verified", "already_verified")


@dataclass(frozen=True)
class ReviewResult:
    user_id: int
    approved: bool                     # the request's final answer (also when decided earlier)
    reviewer_id: int | None            # who answered (None if that moderator has since left)
    decided_now: bool                  # False: it was already answered, nothing changed
    verified_role_id: int | None
    unverified_role_id: int | None


class VerificationService:
    def __init__(self, tenants: TenantManager, settings: SettingsService, *, clock: Clock = utc_now) -> None:
        self._tenants = tenants
        self._settings = settings
        self._clock = clock

    async def request(self, guild_id: int, user_id: int) -> VerificationResult:
        """The member pressed Verify: verified now, sent to review, or refused with UserInputError."""
        settings = await self._settings.get(guild_id)
        now = self._clock()
        review = settings.verify_review_channel_id is not None
        async with self._tenants.transaction(guild_id) as conn:
            existing = await repository.get_request(conn, user_id)
            decision = decide_request(
                status=existing.status if existing else None, verified_role_id=settings.verified_role_id,
                review=review, min_age_days=settings.verify_min_account_age_days, user_id=user_id, now=now)
            outcome = _refuse_or_outcome(decision, user_id, settings.verify_min_account_age_days)
            if decision is RequestDecision.VERIFY:
                await repository.save_verified(conn, user_id, now)
            elif decision is RequestDecision.REVIEW:
                await repository.add_pending(conn, user_id, now)
        assert settings.verified_role_id is not None  # NOT_SET_UP was refused above
        waiting = existing if decision is RequestDecision.ALREADY_PENDING else None
        return VerificationResult(
            outcome=outcome, verified_role_id=settings.verified_role_id,
            unverified_role_id=settings.unverified_role_id, review_channel_id=settings.verify_review_channel_id,
            account_created_at=account_created_at(user_id),
            review_message_id=waiting.review_message_id if waiting else None,
            review_never_posted=waiting is not None and review_never_posted(waiting.review_message_id,
                                                                           waiting.requested_at, now))

    async def attach_review_message(self, guild_id: int, user_id: int, message_id: int) -> None:
        """Remember the moderators' message of a pending request."""
        async with self._tenants.transaction(guild_id) as conn:
            await repository.set_review_message(conn, user_id, message_id)

    async def withdraw(self, guild_id: int, user_id: int) -> bool:
        """Drop a pending request whose review message could not be posted, so the member can retry."""
        async with self._tenants.transaction(guild_id) as conn:
            return await repository.delete_pending(conn, user_id)

    async def review(self, guild_id: int, user_id: int, reviewer_id: int, *, approve: bool,
                     message_id: int | None = None) -> ReviewResult:
        """A moderator approves or denies on review message `message_id`; a second answer changes nothing
        and says who was first. A message that is not the request's own raises OutOfDateReview."""
        settings = await self._settings.get(guild_id)
        if approve and settings.verified_role_id is None:
            raise UserInputError(NOT_SET_UP)
        now = self._clock()
        async with self._tenants.transaction(guild_id) as conn:
            existing = await repository.get_request(conn, user_id)
            decision = decide_review(existing.status if existing else None, approve=approve,
                                     pressed_message_id=message_id,
                                     review_message_id=existing.review_message_id if existing else None)
            if decision is ReviewDecision.NO_REQUEST:
                raise UserInputError(f"There is no verification request from <@{user_id}> any more "
                                     "(they may have left the server).")
            if decision is ReviewDecision.OUT_OF_DATE:
                raise OutOfDateReview()
            assert existing is not None
            decided_now = decision is not ReviewDecision.ALREADY_DECIDED
            if decided_now:
                await repository.record_review(conn, user_id, "verified" if approve else "denied",
                                               reviewer_id, now)
        approved = approve if decided_now else existing.status == "verified"
        return ReviewResult(user_id=user_id, approved=approved,
                            reviewer_id=reviewer_id if decided_now else existing.reviewer_id,
                            decided_now=decided_now, verified_role_id=settings.verified_role_id,
                            unverified_role_id=settings.unverified_role_id)

    async def reset(self, guild_id: int, user_id: int, actor_id: int) -> VerificationRequest | None:
        """Forget the member's request (a mistaken denial, say), so their next press of Verify asks anew;
        returns the request forgotten (its review message has buttons to take away), None when none.
        The audit log keeps who reset it and what it was, since the request itself is gone."""
        async with self._tenants.transaction(guild_id) as conn:
            existing = await repository.get_request(conn, user_id)
            if existing is not None:
                await repository.delete_request(conn, user_id)
                # No reviewer id in the details: only the actor column is cleared when someone leaves.
                await audit.record(conn, self._clock(), "verification", "reset", actor_id=actor_id,
                                   target_id=user_id, details={"status": existing.status})
            return existing

    async def status(self, guild_id: int, user_id: int) -> VerificationRequest | None:
        async with self._tenants.reading(guild_id) as conn:
            return await repository.get_request(conn, user_id)

    async def pending(self, guild_id: int) -> list[VerificationRequest]:
        async with self._tenants.reading(guild_id) as conn:
            return await repository.pending_requests(conn)


def _refuse_or_outcome(decision: RequestDecision, user_id: int, min_age_days: int) -> RequestOutcome:
    """The outcome of an accepted request; UserInputError with the member's sentence otherwise."""
    if decision is RequestDecision.NOT_SET_UP:
        raise UserInputError(NOT_SET_UP)
    if decision is RequestDecision.DENIED:
        raise UserInputError("A moderator denied your verification request; please contact the moderators.")
    if decision is RequestDecision.TOO_YOUNG:
        ready = try_again_after(user_id, min_age_days).strftime("%Y-%m-%d %H:%M UTC")
        raise UserInputError(f"Your Discord account is too new to verify here: it must be at least "
                             f"{min_age_days} days old. Try again after {ready}.")
    outcomes: dict[RequestDecision, RequestOutcome] = {
        RequestDecision.VERIFY: "verified",
        RequestDecision.ALREADY_VERIFIED: "already_verified",
        RequestDecision.REVIEW: "pending_review",
        RequestDecision.ALREADY_PENDING: "already_pending",
    }
    return outcomes[decision]
