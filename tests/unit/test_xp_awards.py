"""Chat awards whose level change is known later: settling in order, dropping and failing."""

from __future__ import annotations

import pytest

from malabot.features.xp.awards import ChatAward, settle_in_order
from malabot.features.xp.models import LevelChange


def awards(*amounts: int) -> list[ChatAward]:
    return [ChatAward(1, 2, amount, "standard") for amount in amounts]


async def test_settling_walks_back_from_the_total_so_each_award_gets_its_own_before_and_after() -> None:
    made = awards(20, 25, 15)
    settle_in_order(made, total_now=140)       # 80 before the three awards
    changes = [await award.level_change() for award in made]
    assert [(c.total_xp, c.old_level, c.new_level) for c in changes if c] == [(100, 0, 1), (125, 1, 1),
                                                                             (140, 1, 1)]


async def test_when_known_reports_a_settled_award_at_once_and_an_unsettled_one_on_settling() -> None:
    early, late = awards(20, 20)
    early.settle(0)
    seen: list[LevelChange] = []
    early.when_known(seen.append)
    late.when_known(seen.append)
    assert [change.total_xp for change in seen] == [20]
    late.settle(20)
    assert [change.total_xp for change in seen] == [20, 40]


async def test_a_dropped_or_failed_award_reports_nothing_and_settles_only_once() -> None:
    dropped, failed = awards(20, 20)
    seen: list[LevelChange] = []
    dropped.when_known(seen.append)
    failed.when_known(seen.append)
    dropped.drop()
    dropped.settle(0)                           # too late: the member was forgotten
    failed.fail(OSError("disk says no"))
    assert seen == []
    assert await dropped.level_change() is None
    with pytest.raises(OSError, match="disk says no"):
        await failed.level_change()
