"""Daily check-ins on real tenant files: once a local day, streaks, rewards as XP, boards, concurrency."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from xp_fixtures import XpWorld, read_file, xp_world

from malabot.departures import RecentDepartures
from malabot.errors import UserInputError
from malabot.features.checkins import repository
from malabot.features.checkins.member_data import checkin_member_data
from malabot.features.xp.member_data import xp_member_data
from malabot.member_data import MemberData

GUILD = 111_111_111_111_111_111
ADMIN = 9
ALICE, BOB, CAROL = 1001, 1002, 1003


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[XpWorld]:
    async with xp_world(tmp_path / "tenants", start=datetime(2026, 1, 30, 12, 0, tzinfo=UTC)) as built:
        yield built


def days_in_file(world: XpWorld, user_id: int) -> list[tuple[str, int]]:
    return read_file(world.tenants.paths.live(GUILD),
                     "SELECT day, xp_awarded FROM checkin_days WHERE user_id = ? ORDER BY day", (user_id,))


async def test_first_check_in_gives_fifty_xp_and_a_streak_of_one(world: XpWorld) -> None:
    result = await world.checkins.check_in(GUILD, ALICE)
    assert (result.day, result.streak, result.best_streak, result.total_checkins, result.xp_awarded) == \
        (date(2026, 1, 30), 1, 1, 1, 50)
    assert (result.level_change.old_level, result.level_change.total_xp) == (0, 50)
    assert (await world.xp.rank(GUILD, ALICE)).total_xp == 50


async def test_a_second_check_in_the_same_day_is_refused_with_the_wait(world: XpWorld) -> None:
    await world.checkins.check_in(GUILD, ALICE)
    world.clock.advance(hours=9, minutes=15)
    with pytest.raises(UserInputError, match=r"already checked in today.*2h 45m"):
        await world.checkins.check_in(GUILD, ALICE)
    assert days_in_file(world, ALICE) == [("2026-01-30", 50)]
    assert (await world.xp.rank(GUILD, ALICE)).total_xp == 50


async def test_streak_grows_across_the_month_end_and_the_bonus_stops_after_seven_days(world: XpWorld) -> None:
    rewards = []
    for _ in range(10):
        rewards.append((await world.checkins.check_in(GUILD, ALICE)).xp_awarded)
        world.clock.advance(days=1)
    assert rewards == [50, 60, 70, 80, 90, 100, 110, 120, 120, 120]
    assert (await world.xp.rank(GUILD, ALICE)).total_xp == sum(rewards)
    streak = await world.checkins.streak(GUILD, ALICE)
    assert (streak.current_streak, streak.best_streak, streak.total_checkins) == (10, 10, 10)
    assert streak.last_day == date(2026, 2, 8)


async def test_a_missed_day_starts_the_streak_again_but_keeps_the_best(world: XpWorld) -> None:
    for _ in range(3):
        await world.checkins.check_in(GUILD, ALICE)
        world.clock.advance(days=1)
    world.clock.advance(days=1)                                  # one day missed
    result = await world.checkins.check_in(GUILD, ALICE)
    assert (result.streak, result.best_streak, result.total_checkins, result.xp_awarded) == (1, 3, 4, 50)


async def test_the_day_is_the_servers_local_day(world: XpWorld) -> None:
    await world.settings.update(GUILD, ADMIN, timezone="America/Los_Angeles")
    world.clock.now = datetime(2026, 1, 1, 7, 30, tzinfo=UTC)     # 23:30 on Dec 31 in Los Angeles
    first = await world.checkins.check_in(GUILD, ALICE)
    world.clock.now = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)      # midnight in Los Angeles: a new day
    second = await world.checkins.check_in(GUILD, ALICE)
    assert (first.day, second.day, second.streak) == (date(2025, 12, 31), date(2026, 1, 1), 2)


async def test_after_the_server_moves_to_a_zone_far_behind_the_wait_names_the_real_opening(world: XpWorld) -> None:
    await world.settings.update(GUILD, ADMIN, timezone="Pacific/Kiritimati")   # UTC+14
    first = await world.checkins.check_in(GUILD, ALICE)                        # Jan 31 there
    await world.settings.update(GUILD, ADMIN, timezone="Pacific/Pago_Pago")    # UTC-11: Jan 30 there
    # Not at the next midnight (11 h away: still Jan 31, the day already checked in) but at the
    # start of Feb 1 in Pago Pago, 11:00 UTC on Feb 1: 47 hours away.
    with pytest.raises(UserInputError, match=r"opens in 47h 00m"):
        await world.checkins.check_in(GUILD, ALICE)
    world.clock.now = datetime(2026, 2, 1, 10, 59, tzinfo=UTC)
    with pytest.raises(UserInputError, match=r"opens in 1m"):
        await world.checkins.check_in(GUILD, ALICE)
    world.clock.now = datetime(2026, 2, 1, 11, 0, tzinfo=UTC)
    second = await world.checkins.check_in(GUILD, ALICE)
    assert (first.day, second.day, second.streak) == (date(2026, 1, 31), date(2026, 2, 1), 2)


async def test_after_a_move_east_a_check_in_that_is_already_today_there_is_not_made_twice(world: XpWorld) -> None:
    world.clock.now = datetime(2026, 1, 30, 23, 30, tzinfo=UTC)
    await world.checkins.check_in(GUILD, ALICE)                            # Jan 30 in UTC
    await world.settings.update(GUILD, ADMIN, timezone="Asia/Tokyo")        # 08:40 on Jan 31 there
    world.clock.now = datetime(2026, 1, 30, 23, 40, tzinfo=UTC)
    info = await world.checkins.streak(GUILD, ALICE)
    assert (info.current_streak, info.checked_in_today) == (1, True)
    # That check-in was on Jan 31 by Tokyo's calendar: the next opens at midnight there, 15:00 UTC.
    with pytest.raises(UserInputError, match=r"already checked in today.*15h 20m"):
        await world.checkins.check_in(GUILD, ALICE)
    world.clock.now = datetime(2026, 1, 31, 15, 0, tzinfo=UTC)
    second = await world.checkins.check_in(GUILD, ALICE)
    assert (second.day, second.streak, second.total_checkins) == (date(2026, 2, 1), 2, 2)


async def test_after_the_server_moves_to_a_zone_behind_the_streak_still_shows(world: XpWorld) -> None:
    for _ in range(3):
        await world.checkins.check_in(GUILD, ALICE)
        world.clock.advance(days=1)
    # Checked in on Jan 30, 31 and Feb 1 (UTC); then the server moves to UTC-11, where it is Jan 31.
    await world.settings.update(GUILD, ADMIN, timezone="Pacific/Pago_Pago")
    world.clock.now = datetime(2026, 2, 1, 10, 0, tzinfo=UTC)
    info = await world.checkins.streak(GUILD, ALICE)
    assert (info.current_streak, info.best_streak, info.checked_in_today) == (3, 3, True)
    board = await world.checkins.leaderboard(GUILD, by="current")
    assert [(entry.user_id, entry.value) for entry in board.entries] == [(ALICE, 3)]


async def test_the_reward_follows_the_servers_settings(world: XpWorld) -> None:
    await world.settings.update(GUILD, ADMIN, checkin_base_xp=5, checkin_streak_bonus_xp=100,
                                checkin_bonus_cap_days=1)
    rewards = []
    for _ in range(3):
        rewards.append((await world.checkins.check_in(GUILD, ALICE)).xp_awarded)
        world.clock.advance(days=1)
    assert rewards == [5, 105, 105]


async def test_ten_simultaneous_check_ins_reward_exactly_once(world: XpWorld) -> None:
    results = await asyncio.gather(*(world.checkins.check_in(GUILD, ALICE) for _ in range(10)),
                                   return_exceptions=True)
    successes = [result for result in results if not isinstance(result, BaseException)]
    refusals = [result for result in results if isinstance(result, UserInputError)]
    assert (len(successes), len(refusals)) == (1, 9)
    assert days_in_file(world, ALICE) == [("2026-01-30", 50)]
    assert (await world.xp.rank(GUILD, ALICE)).total_xp == 50


async def test_a_check_in_that_levels_up_says_so(world: XpWorld) -> None:
    await world.admin.set(GUILD, ADMIN, ALICE, 60)
    result = await world.checkins.check_in(GUILD, ALICE)
    assert result.level_change.leveled_up and result.level_change.total_xp == 110


async def test_streak_of_someone_who_never_checked_in_or_missed_a_day(world: XpWorld) -> None:
    never = await world.checkins.streak(GUILD, BOB)
    assert (never.current_streak, never.best_streak, never.last_day, never.checked_in_today) == \
        (0, 0, None, False)
    await world.checkins.check_in(GUILD, ALICE)
    assert (await world.checkins.streak(GUILD, ALICE)).checked_in_today
    world.clock.advance(days=1)
    yesterday = await world.checkins.streak(GUILD, ALICE)
    assert (yesterday.current_streak, yesterday.checked_in_today) == (1, False)   # still alive
    world.clock.advance(days=1)
    assert (await world.checkins.streak(GUILD, ALICE)).current_streak == 0        # broken


async def test_boards_of_current_and_best_streaks_skip_members_who_left(world: XpWorld) -> None:
    # ALICE: 3 days then a break; BOB: 2 days up to today; CAROL: 2 days up to today, has left.
    for _ in range(3):
        await world.checkins.check_in(GUILD, ALICE)
        world.clock.advance(days=1)
    world.clock.advance(days=2)
    for _ in range(2):
        await world.checkins.check_in(GUILD, BOB)
        await world.checkins.check_in(GUILD, CAROL)
        world.clock.advance(days=1)
    world.clock.advance(days=-1)  # back to the day of the last check-ins
    members = {ALICE, BOB}
    current = await world.checkins.leaderboard(GUILD, by="current", is_member=members)
    best = await world.checkins.leaderboard(GUILD, by="best", is_member=members)
    everyone = await world.checkins.leaderboard(GUILD, by="current")
    assert [(entry.user_id, entry.value, entry.position) for entry in current.entries] == [(BOB, 2, 1)]
    assert [(entry.user_id, entry.value) for entry in best.entries] == [(ALICE, 3), (BOB, 2)]
    assert [(entry.user_id, entry.position) for entry in everyone.entries] == [(BOB, 1), (CAROL, 1)]


async def test_a_board_page_past_every_member_checked_in_is_answered_without_reading_the_board(
        world: XpWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    for user in (ALICE, BOB, CAROL):
        await world.checkins.check_in(GUILD, user)
    assert len((await world.checkins.leaderboard(GUILD, by="best", per_page=2)).entries) == 2

    def no_board(*_args: object) -> None:
        raise AssertionError("the whole board was read for a page past its end")

    monkeypatch.setattr(repository, "by_current_streak", no_board)
    monkeypatch.setattr(repository, "by_best_streak", no_board)
    for by in ("current", "best"):
        past = await world.checkins.leaderboard(GUILD, page=3, by=by, per_page=2)
        assert past.entries == () and not past.has_next


async def test_the_last_page_of_a_board_holds_the_member_who_fills_it_exactly(world: XpWorld) -> None:
    # Three members, two per page: the third is alone on page 2, and there is no page 3.
    for user in (ALICE, BOB, CAROL):
        await world.checkins.check_in(GUILD, user)
    for by in ("current", "best"):
        first = await world.checkins.leaderboard(GUILD, page=1, by=by, per_page=2)
        last = await world.checkins.leaderboard(GUILD, page=2, by=by, per_page=2)
        assert first.has_next and [entry.user_id for entry in last.entries] == [max(ALICE, BOB, CAROL)]
        assert not last.has_next


async def test_purge_removes_the_members_check_ins_only(world: XpWorld) -> None:
    await world.checkins.check_in(GUILD, ALICE)
    await world.checkins.check_in(GUILD, BOB)
    report = await world.member_data.purge(GUILD, ALICE)
    assert (report.rows_changed["checkins"], report.rows_changed["xp"]) == (2, 1)
    assert days_in_file(world, ALICE) == []
    assert days_in_file(world, BOB) == [("2026-01-30", 50)]
    assert (await world.checkins.streak(GUILD, ALICE)).total_checkins == 0
    again = await world.checkins.check_in(GUILD, ALICE)       # a returning member starts afresh
    assert (again.streak, again.total_checkins) == (1, 1)


async def test_a_member_who_left_is_kept_out_of_later_writes_for_a_while_only(world: XpWorld) -> None:
    # Long enough for a write under way as they left; after it, a member whose rejoin the bot missed
    # is not kept out for ever.
    member_data = MemberData(world.tenants, [xp_member_data(), checkin_member_data()],
                             departures=RecentDepartures(keep_seconds=0.2))
    await member_data.member_left(GUILD, ALICE)
    await world.checkins.check_in(GUILD, ALICE)                # a check-in that was under way
    await world.checkins.check_in(GUILD, BOB)
    assert days_in_file(world, ALICE) == []
    assert days_in_file(world, BOB) == [("2026-01-30", 50)]
    await asyncio.sleep(0.25)
    await world.checkins.check_in(GUILD, ALICE)
    assert days_in_file(world, ALICE) == [("2026-01-30", 50)]


async def test_the_database_refuses_a_second_claim_of_a_day_even_without_a_streak_row(world: XpWorld) -> None:
    # The day table alone decides: even if the streak row is missing, today cannot be claimed twice.
    async with world.tenants.transaction(GUILD) as conn:
        await conn.execute(
            "INSERT INTO checkin_days (user_id, day, xp_awarded) VALUES (?, '2026-01-30', 50)", (ALICE,))
    with pytest.raises(UserInputError, match="already checked in"):
        await world.checkins.check_in(GUILD, ALICE)
    assert (await world.xp.rank(GUILD, ALICE)).total_xp == 0
    assert (await world.checkins.streak(GUILD, ALICE)).total_checkins == 0


async def test_chat_after_a_check_in_does_not_announce_the_same_level_up_again(world: XpWorld) -> None:
    # The check-in's XP reaches the file, not the total the chat path knows: that must be forgotten.
    await world.settings.update(GUILD, ADMIN, xp_min=60, xp_max=60)
    first = await world.xp.on_message(GUILD, ALICE, 500, (), is_bot=False)    # 60 buffered, total known
    assert first is not None and first.new_level == 0
    result = await world.checkins.check_in(GUILD, ALICE)                       # +50: 110, level 1
    assert result.level_change.leveled_up and result.level_change.total_xp == 110
    world.clock.advance(minutes=1)
    second = await world.xp.on_message(GUILD, ALICE, 500, (), is_bot=False)
    assert second is not None
    assert (second.old_level, second.new_level, second.total_xp) == (1, 1, 170)


async def test_streak_shows_the_best_streak_after_a_break(world: XpWorld) -> None:
    for _ in range(3):
        await world.checkins.check_in(GUILD, ALICE)
        world.clock.advance(days=1)
    world.clock.advance(days=1)
    await world.checkins.check_in(GUILD, ALICE)
    info = await world.checkins.streak(GUILD, ALICE)
    assert (info.current_streak, info.best_streak) == (1, 3)


async def test_the_current_streak_board_leaves_out_a_streak_broken_since_yesterday(world: XpWorld) -> None:
    await world.checkins.check_in(GUILD, ALICE)
    world.clock.advance(days=2)
    assert (await world.checkins.streak(GUILD, ALICE)).current_streak == 0
    assert (await world.checkins.leaderboard(GUILD, by="current")).entries == ()
