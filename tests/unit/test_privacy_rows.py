"""A member's rows found twice (by two of their columns, or by two handlers) are exported once."""

from __future__ import annotations

from malabot.privacy import without_repeats


def test_each_row_is_kept_once_at_its_first_place() -> None:
    rows = [{"id": 2, "actor_id": 1}, {"id": 3, "actor_id": 1}, {"id": 2, "actor_id": 1}, {"id": 1, "actor_id": 1}]
    assert without_repeats(rows) == [{"id": 2, "actor_id": 1}, {"id": 3, "actor_id": 1}, {"id": 1, "actor_id": 1}]


def test_rows_equal_as_dicts_are_repeats_whatever_their_column_order() -> None:
    assert without_repeats([{"id": 1, "reason": None}, {"reason": None, "id": 1}]) == [{"id": 1, "reason": None}]


class Counted:
    """A column value that counts how often it is compared with another."""

    comparisons = 0

    def __init__(self, value: int) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        Counted.comparisons += 1
        return isinstance(other, Counted) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)


def test_the_work_grows_with_the_rows_not_with_their_square() -> None:
    # A member's export can hold tens of thousands of rows, deduplicated on the event loop: comparing
    # each row with every one kept before it stalled every server for seconds.
    rows = [{"id": Counted(number)} for number in range(2_000)]
    Counted.comparisons = 0
    assert len(without_repeats(rows + rows)) == 2_000
    assert Counted.comparisons <= 2 * len(rows)
