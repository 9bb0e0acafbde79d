"""The shared bits of English: counts with their nouns and the page-range answer."""

from __future__ import annotations

from malabot.texts import counted, only_pages, plural


def test_a_noun_is_plural_for_every_count_but_one() -> None:
    assert plural(1, "row") == "row"
    assert [plural(count, "row") for count in (0, 2, 1000)] == ["rows", "rows", "rows"]


def test_a_count_keeps_its_digits_ungrouped() -> None:
    assert counted(1, "message") == "1 message"
    assert counted(0, "active warning") == "0 active warnings"
    assert counted(1234, "day") == "1234 days"


def test_the_page_range_answer_agrees_with_its_count() -> None:
    assert only_pages(1) == "There is only 1 page"
    assert only_pages(3) == "There are only 3 pages"
