"""Verification on real tenant files: requests, review, idempotent presses and concurrent answers."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from malabot.clock import MovableClock
from malabot.errors import UserInputError
from malabot.features.settings.service import SettingsService
from malabot.features.verification import repository
from malabot.features.verification.service import VerificationService
from malabot.tenancy.manager import TenantManager

GUILD, OTHER = 111_111_111_111_111_111, 222_222_222_222_222_222
ADMIN, MOD, MOD2 = 9, 10, 11
VERIFIED, UNVERIFIED, REVIEW_CHANNEL = 501, 502, 601
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def user_created(days_ago: float, n: int = 0) -> int:
    moment = NOW - timedelta(days=days_ago)
    return ((int(moment.timestamp() * 1000) - 1_420_070_400_000) << 22) + n


ALICE, BOB = user_created(100, 1), user_created(100, 2)


@dataclass
class Place:
    tenants: TenantManager
    settings: SettingsService
    service: VerificationService
    clock: MovableClock

    async def configure(self, guild: int = GUILD, **values: Any) -> None:
        await self.settings.update(guild, ADMIN, **{"verified_role_id": VERIFIED, **values})

    def rows(self, guild: int = GUILD) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.tenants.paths.live(guild))
        try:
            return conn.execute("SELECT user_id, status, requested_at, reviewer_id, reviewed_at, review_message_id "
                                "FROM verification_requests ORDER BY user_id").fetchall()
        finally:
            conn.close()


@pytest.fixture
async def place(tenants: TenantManager) -> AsyncIterator[Place]:
    settings = SettingsService(tenants)
    clock = MovableClock(NOW)
    yield Place(tenants, settings, VerificationService(tenants, settings, clock=clock), clock)


async def test_without_review_the_member_is_verified_once(place: Place) -> None:
    await place.configure(unverified_role_id=UNVERIFIED)
    first = await place.service.request(GUILD, ALICE)
    assert (first.outcome, first.verified_role_id, first.unverified_role_id, first.gives_role) == \
        ("verified", VERIFIED, UNVERIFIED, True)
    assert first.account_created_at == NOW - timedelta(days=100)
    rows = place.rows()
    assert rows == [(ALICE, "verified", NOW.isoformat(), None, NOW.isoformat(), None)]

    place.clock.now += timedelta(hours=1)
    again = await place.service.request(GUILD, ALICE)
    assert again.outcome == "already_verified" and again.gives_role
    assert place.rows() == rows, "a second press stores nothing"


async def test_refusals_store_nothing(place: Place) -> None:
    with pytest.raises(UserInputError, match="Verification is not set up on this server yet"):
        await place.service.request(GUILD, ALICE)
    await place.configure(verify_min_account_age_days=30)
    young = user_created(29.5)
    with pytest.raises(UserInputError, match=r"at least 30 days old\. Try again after 2026-11-26 00:00 UTC\."):
        await place.service.request(GUILD, young)
    assert place.rows() == []
    place.clock.now += timedelta(hours=12)
    assert (await place.service.request(GUILD, young)).outcome == "verified"


async def test_trying_again_after_the_time_given_in_a_refusal_is_not_refused(place: Place) -> None:
    await place.configure(verify_min_account_age_days=7)
    young = user_created(7 - 50 / 86_400, 7)   # 7 days old at 12:00:50 UTC
    with pytest.raises(UserInputError, match=r"Try again after 2026-11-25 12:01 UTC\.") as refused:
        await place.service.request(GUILD, young)
    named = re.search(r"after (\d{4}-\d\d-\d\d \d\d:\d\d) UTC", refused.value.message)
    assert named is not None
    told = datetime.strptime(named[1], "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    place.clock.now = told + timedelta(seconds=1)   # as soon as the member may believe it works
    assert (await place.service.request(GUILD, young)).outcome == "verified"


async def test_review_flow_pending_then_approved_with_the_reviewer(place: Place) -> None:
    await place.configure(verify_review_channel_id=REVIEW_CHANNEL)
    sent = await place.service.request(GUILD, ALICE)
    assert (sent.outcome, sent.review_channel_id, sent.gives_role) == ("pending_review", REVIEW_CHANNEL, False)
    await place.service.attach_review_message(GUILD, ALICE, 777)
    assert (await place.service.request(GUILD, ALICE)).outcome == "already_pending"
    assert [(r.user_id, r.review_message_id) for r in await place.service.pending(GUILD)] == [(ALICE, 777)]

    place.clock.now += timedelta(minutes=5)
    approved = await place.service.review(GUILD, ALICE, MOD, approve=True)
    assert (approved.approved, approved.decided_now, approved.reviewer_id, approved.verified_role_id) == \
        (True, True, MOD, VERIFIED)
    stored = await place.service.status(GUILD, ALICE)
    assert stored is not None
    assert (stored.status, stored.reviewer_id, stored.reviewed_at, stored.review_message_id) == \
        ("verified", MOD, NOW + timedelta(minutes=5), 777)

    late = await place.service.review(GUILD, ALICE, MOD2, approve=False)
    assert (late.approved, late.decided_now, late.reviewer_id) == (True, False, MOD)
    assert (await place.service.status(GUILD, ALICE)) == stored
    assert (await place.service.request(GUILD, ALICE)).outcome == "already_verified"


async def test_denied_members_are_refused_until_they_leave(place: Place) -> None:
    await place.configure(verify_review_channel_id=REVIEW_CHANNEL)
    await place.service.request(GUILD, ALICE)
    denied = await place.service.review(GUILD, ALICE, MOD, approve=False)
    assert (denied.approved, denied.decided_now) == (False, True)
    with pytest.raises(UserInputError, match="denied your verification request"):
        await place.service.request(GUILD, ALICE)
    assert [row[1] for row in place.rows()] == ["denied"]


async def test_a_withdrawn_request_can_be_made_again(place: Place) -> None:
    await place.configure(verify_review_channel_id=REVIEW_CHANNEL)
    await place.service.request(GUILD, ALICE)
    assert await place.service.withdraw(GUILD, ALICE)
    assert place.rows() == []
    assert not await place.service.withdraw(GUILD, ALICE)
    assert (await place.service.request(GUILD, ALICE)).outcome == "pending_review"


async def test_a_reset_request_can_be_made_again_whatever_its_status(place: Place) -> None:
    await place.configure(verify_review_channel_id=REVIEW_CHANNEL)
    assert not await place.service.reset(GUILD, ALICE, MOD), "nothing to reset"
    await place.service.request(GUILD, ALICE)
    await place.service.request(GUILD, BOB)
    await place.service.review(GUILD, ALICE, MOD, approve=False)
    assert await place.service.reset(GUILD, ALICE, MOD)
    assert [row[0] for row in place.rows()] == [BOB], "only the member's own request goes"
    assert (await place.service.request(GUILD, ALICE)).outcome == "pending_review"


async def test_review_without_request_or_role_is_refused(place: Place) -> None:
    await place.configure(verify_review_channel_id=REVIEW_CHANNEL)
    with pytest.raises(UserInputError, match="no verification request from"):
        await place.service.review(GUILD, BOB, MOD, approve=True)
    await place.service.request(GUILD, ALICE)
    await place.settings.update(GUILD, ADMIN, verified_role_id=None)
    with pytest.raises(UserInputError, match="not set up"):
        await place.service.review(GUILD, ALICE, MOD, approve=True)
    assert [row[1] for row in place.rows()] == ["pending"]


async def test_review_switched_off_verifies_a_request_left_pending(place: Place) -> None:
    await place.configure(verify_review_channel_id=REVIEW_CHANNEL)
    await place.service.request(GUILD, ALICE)
    await place.settings.update(GUILD, ADMIN, verify_review_channel_id=None)
    assert (await place.service.request(GUILD, ALICE)).outcome == "verified"
    assert [row[1] for row in place.rows()] == ["verified"]


async def test_many_presses_at_once_make_one_request(place: Place) -> None:
    await place.configure(verify_review_channel_id=REVIEW_CHANNEL)
    results = await asyncio.gather(*(place.service.request(GUILD, ALICE) for _ in range(10)))
    assert sorted(r.outcome for r in results) == ["already_pending"] * 9 + ["pending_review"]
    assert len(place.rows()) == 1


async def test_concurrent_answers_decide_once(place: Place) -> None:
    await place.configure(verify_review_channel_id=REVIEW_CHANNEL)
    await place.service.request(GUILD, ALICE)
    answers = await asyncio.gather(place.service.review(GUILD, ALICE, MOD, approve=True),
                                   place.service.review(GUILD, ALICE, MOD2, approve=False))
    [first] = [a for a in answers if a.decided_now]
    [late] = [a for a in answers if not a.decided_now]
    assert (late.approved, late.reviewer_id) == (first.approved, first.reviewer_id)
    assert place.rows()[0][1] == ("verified" if first.approved else "denied")


async def test_servers_are_separate(place: Place) -> None:
    await place.configure()
    await place.configure(OTHER, verify_review_channel_id=REVIEW_CHANNEL)
    assert (await place.service.request(GUILD, ALICE)).outcome == "verified"
    assert (await place.service.request(OTHER, ALICE)).outcome == "pending_review"
    assert [row[1] for row in place.rows(GUILD)] == ["verified"]
    assert [row[1] for row in place.rows(OTHER)] == ["pending"]


async def test_repository_record_review_only_answers_pending_requests(tenants: TenantManager) -> None:
    async with tenants.transaction(GUILD) as conn:
        assert not await repository.record_review(conn, ALICE, "verified", MOD, NOW)
        await repository.add_pending(conn, ALICE, NOW)
        assert await repository.record_review(conn, ALICE, "denied", MOD, NOW)
        assert not await repository.record_review(conn, ALICE, "verified", MOD2, NOW)
        await repository.save_verified(conn, BOB, NOW)
        await repository.add_pending(conn, ALICE, NOW + timedelta(days=1))  # the upsert starts the request afresh
    async with tenants.reading(GUILD) as conn:
        alice = await repository.get_request(conn, ALICE)
        bob = await repository.get_request(conn, BOB)
        pending = await repository.pending_requests(conn)
    assert alice is not None and (alice.status, alice.reviewer_id, alice.requested_at) == \
        ("pending", None, NOW + timedelta(days=1))
    assert bob is not None and (bob.status, bob.reviewer_id, bob.reviewed_at) == ("verified", None, NOW)
    assert [r.user_id for r in pending] == [ALICE]


