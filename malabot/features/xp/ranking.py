"""Leaderboard paging over ranked rows, counting only current server members.

Rows come best first (value descending, then user id). Members who left but whose rows are still
there (say the bot was offline when they left) are skipped without leaving holes: page 2 always
starts right after the tenth member shown on page 1. Ties share a position (1, 2, 2, 4).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Collection
from dataclasses import dataclass

from malabot.errors import UserInputError

MemberFilter = Callable[[int], bool] | Collection[int]

PAGE_SIZE = 10


def member_test(is_member: MemberFilter | None) -> Callable[[int], bool]:
    """A predicate from a callable, a set of member ids, or None (everyone counts)."""
    if is_member is None:
        return lambda _user_id: True
    if callable(is_member):
        return is_member
    members = is_member if isinstance(is_member, set | frozenset) else frozenset(is_member)
    return members.__contains__


@dataclass(frozen=True)
class RankedRow:
    position: int
    user_id: int
    value: int


def check_page(page: int) -> int:
    if page < 1:
        raise UserInputError("The page number must be 1 or more.")
    return page


async def page_of_members(rows: AsyncIterable[tuple[int, int]], is_member: MemberFilter | None,
                          page: int, per_page: int = PAGE_SIZE) -> tuple[list[RankedRow], bool]:
    """The `page`-th slice of members among `rows`, and whether another page follows."""
    is_member_id = member_test(is_member)
    first = (page - 1) * per_page
    shown: list[RankedRow] = []
    seen = 0                      # members counted so far
    position = 0
    previous_value: int | None = None
    async for user_id, value in rows:
        if not is_member_id(user_id):
            continue
        seen += 1
        if value != previous_value:
            position, previous_value = seen, value
        if seen <= first:
            continue
        if len(shown) == per_page:
            return shown, True
        shown.append(RankedRow(position, user_id, value))
    return shown, False


async def board_page(rows: Callable[[], AsyncGenerator[tuple[int, int], None]],
                     listed: Callable[[], Awaitable[int]], is_member: MemberFilter | None, page: int,
                     per_page: int = PAGE_SIZE) -> tuple[list[RankedRow], bool]:
    """`page_of_members` over `rows()`, which list at most `listed()` members: a later page past them
    is empty without reading the board (thousands of rows, under the server's lock, for nothing).
    Page 1, the usual one, is read at once: it stops after ten members anyway."""
    if page > 1 and (page - 1) * per_page >= await listed():
        return [], False
    async with contextlib.aclosing(rows()) as ranked:
        return await page_of_members(ranked, is_member, page, per_page)
