"""Leaderboard paging: ties share a position, non-members are skipped without holes between pages."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from malabot.errors import UserInputError
from malabot.features.xp.ranking import check_page, page_of_members


async def rows_of(pairs: list[tuple[int, int]]) -> AsyncIterator[tuple[int, int]]:
    for pair in pairs:
        yield pair


async def page(pairs: list[tuple[int, int]], number: int, is_member: object = None,
               per_page: int = 3) -> tuple[list[tuple[int, int, int]], bool]:
    shown, has_next = await page_of_members(rows_of(pairs), is_member, number, per_page)  # type: ignore[arg-type]
    return [(row.position, row.user_id, row.value) for row in shown], has_next


async def test_ties_share_a_position_and_the_next_one_skips() -> None:
    rows = [(1, 50), (2, 40), (3, 40), (4, 30), (5, 30), (6, 30), (7, 10)]
    assert await page(rows, 1) == ([(1, 1, 50), (2, 2, 40), (2, 3, 40)], True)
    assert await page(rows, 2) == ([(4, 4, 30), (4, 5, 30), (4, 6, 30)], True)
    assert await page(rows, 3) == ([(7, 7, 10)], False)


async def test_non_members_are_skipped_and_pages_stay_full() -> None:
    rows = [(user, 100 - user) for user in range(1, 11)]
    members = {2, 3, 5, 6, 8, 9, 10}
    first, more = await page(rows, 1, members)
    second, _ = await page(rows, 2, members)
    third, last_more = await page(rows, 3, members)
    assert [user for _, user, _ in first] == [2, 3, 5]
    assert [user for _, user, _ in second] == [6, 8, 9]
    assert [user for _, user, _ in third] == [10]
    assert more and not last_more
    # Positions count members only: the tenth row is the seventh member.
    assert third[0][0] == 7


async def test_a_callable_member_test_works_like_a_set() -> None:
    rows = [(user, 100 - user) for user in range(1, 8)]
    assert await page(rows, 1, lambda user: user % 2 == 1) == await page(rows, 1, {1, 3, 5, 7})


async def test_a_tie_broken_by_a_departed_member_keeps_positions_among_members() -> None:
    rows = [(1, 50), (2, 50), (3, 40)]
    assert await page(rows, 1, {2, 3}) == ([(1, 2, 50), (2, 3, 40)], False)


async def test_exactly_full_last_page_has_no_next() -> None:
    rows = [(1, 3), (2, 2), (3, 1)]
    assert (await page(rows, 1))[1] is False
    assert await page(rows, 2) == ([], False)


async def test_empty_board() -> None:
    assert await page_of_members(rows_of([]), None, 1) == ([], False)


@pytest.mark.parametrize("number", [0, -2])
def test_page_numbers_start_at_one(number: int) -> None:
    with pytest.raises(UserInputError, match="1 or more"):
        check_page(number)
