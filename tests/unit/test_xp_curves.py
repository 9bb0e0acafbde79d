"""Level curves: the standard step formula, the legacy curves, and level lookup for any total."""

from __future__ import annotations

import pytest

from malabot.features.xp.curves import (
    THRESHOLDS,
    custom_threshold,
    level_for_xp,
    standard_threshold,
    threshold,
)

CURVES = sorted(THRESHOLDS)


def standard_step(level: int) -> int:
    """The published formula: XP needed to go from `level` to `level + 1` on the standard curve."""
    return 5 * level * level + 50 * level + 100


def test_standard_steps_follow_the_published_formula() -> None:
    assert [standard_step(level) for level in range(4)] == [100, 155, 220, 295]


def test_standard_threshold_is_the_sum_of_the_steps() -> None:
    running = 0
    for level in range(0, 300):
        assert standard_threshold(level) == running, level
        running += standard_step(level)


@pytest.mark.parametrize(("total", "level"), [
    (0, 0), (99, 0), (100, 1), (254, 1), (255, 2), (474, 2), (475, 3),
])
def test_standard_level_changes_exactly_at_the_threshold(total: int, level: int) -> None:
    assert level_for_xp("standard", total) == level


@pytest.mark.parametrize("curve", CURVES)
def test_no_xp_or_negative_xp_is_level_zero(curve: str) -> None:
    assert level_for_xp(curve, 0) == 0
    assert level_for_xp(curve, -5) == 0
    assert threshold(curve, 0) == 0
    assert threshold(curve, -3) == 0


@pytest.mark.parametrize("curve", ["basic", "gradual", "custom"])
def test_legacy_curves_give_level_one_at_fifty_xp(curve: str) -> None:
    assert level_for_xp(curve, 49) == 0
    assert level_for_xp(curve, 50) == 1


@pytest.mark.parametrize(("curve", "level", "total"), [
    ("basic", 1, 50), ("basic", 2, 150), ("basic", 10, 950),
    ("gradual", 1, 50), ("gradual", 2, 250), ("gradual", 3, 550),
])
def test_legacy_formula_thresholds(curve: str, level: int, total: int) -> None:
    assert threshold(curve, level) == total
    assert level_for_xp(curve, total) == level
    assert level_for_xp(curve, total - 1) == level - 1


@pytest.mark.parametrize("curve", CURVES)
def test_thresholds_never_decrease_and_agree_with_level_lookup(curve: str) -> None:
    previous = -1
    for level in range(0, 400):
        needed = threshold(curve, level)
        assert needed >= previous, (curve, level)
        previous = needed
        if level <= 100 or curve != "custom":
            # The level reached at exactly a threshold is at least that level (custom skips levels).
            assert level_for_xp(curve, needed) >= level


@pytest.mark.parametrize("curve", ["standard", "basic", "gradual"])
def test_level_lookup_is_exact_around_every_threshold(curve: str) -> None:
    for level in range(1, 500):
        needed = threshold(curve, level)
        assert level_for_xp(curve, needed) == level
        assert level_for_xp(curve, needed - 1) == level - 1


@pytest.mark.parametrize("curve", ["standard", "basic", "gradual"])
@pytest.mark.parametrize("total", [10**18, 10**30, 2**200 + 7])
def test_huge_totals_find_the_exact_level(curve: str, total: int) -> None:
    level = level_for_xp(curve, total)
    assert threshold(curve, level) <= total < threshold(curve, level + 1)


def test_standard_level_for_ten_to_the_thirty() -> None:
    level = level_for_xp("standard", 10**30)
    # 5/3·L³ ≈ 10**30 → L ≈ 8.4·10**9
    assert 8_000_000_000 < level < 9_000_000_000


@pytest.mark.parametrize(("level", "total"), [
    (1, 50), (2, 100), (10, 2300), (25, 15050), (30, 22000), (50, 66000), (90, 270000), (100, 350000),
])
def test_custom_table_anchors(level: int, total: int) -> None:
    assert custom_threshold(level) == total
    assert level_for_xp("custom", total) == level
    assert level_for_xp("custom", total - 1) < level


# As ../shared/legacy/README.md lists it: every level of the old bot's table, not only some.
LEGACY_CUSTOM_TABLE = {
    **dict(enumerate([50, 100, 200, 350, 550, 800, 1100, 1450, 1850, 2300, 2800, 3350, 3950, 4600, 5300, 6050,
                      6850, 7700, 8600, 9550, 10550, 11600, 12700, 13850, 15050], start=1)),
    30: 22000, 35: 30000, 40: 40000, 45: 52000, 50: 66000, 60: 100000, 70: 145000, 80: 200000,
    90: 270000, 100: 350000,
}


def test_every_level_of_the_custom_table_is_reached_where_the_old_bot_reached_it() -> None:
    assert {level: custom_threshold(level) for level in LEGACY_CUSTOM_TABLE} == LEGACY_CUSTOM_TABLE
    for level, total in LEGACY_CUSTOM_TABLE.items():
        assert (level_for_xp("custom", total - 1), level_for_xp("custom", total)) == (
            max(known for known in [0, *LEGACY_CUSTOM_TABLE] if known < level), level)


def test_custom_levels_between_anchors_cost_the_next_anchor() -> None:
    # The legacy table jumps from 25 to 30: 26–29 are reached together with 30.
    assert [custom_threshold(level) for level in range(26, 31)] == [22000] * 5
    assert level_for_xp("custom", 21999) == 25
    assert level_for_xp("custom", 22000) == 30


def test_custom_curve_stops_at_level_one_hundred() -> None:
    assert level_for_xp("custom", 10**30) == 100
    assert custom_threshold(101) > 10**18
