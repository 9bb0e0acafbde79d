"""Level curves: how much total XP a level needs, and the level a total XP reaches.

`standard` is the curve server admins know: going from level L to L+1 costs 5·L² + 50·L + 100 XP.
`basic`, `gradual` and `custom` are the legacy bot's curves, kept so servers split from the old
database show the levels their members saw. Below 50 XP every legacy curve gives level 0.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable


def standard_threshold(level: int) -> int:
    """Total XP at which `level` is reached on the standard curve (closed form of the step sum)."""
    n = level
    # sum_{L=0}^{n-1} (5L² + 50L + 100) = 5(n-1)n(2n-1)/6 + 25n(n-1) + 100n
    return (5 * (n - 1) * n * (2 * n - 1)) // 6 + 25 * n * (n - 1) + 100 * n


def basic_threshold(level: int) -> int:
    return 0 if level <= 0 else 100 * level - 50


def gradual_threshold(level: int) -> int:
    return 0 if level <= 0 else 50 * level * (level + 1) - 50


# The legacy `custom` table: levels 1–25 explicitly, then fixed anchors up to 100.
_CUSTOM_TABLE: dict[int, int] = {
    **dict(zip(range(1, 26), (50, 100, 200, 350, 550, 800, 1100, 1450, 1850, 2300, 2800, 3350, 3950,
                              4600, 5300, 6050, 6850, 7700, 8600, 9550, 10550, 11600, 12700, 13850,
                              15050), strict=True)),
    30: 22000, 35: 30000, 40: 40000, 45: 52000, 50: 66000, 60: 100000, 70: 145000, 80: 200000,
    90: 270000, 100: 350000,
}
_CUSTOM_LEVELS = sorted(_CUSTOM_TABLE)
_CUSTOM_THRESHOLDS = [_CUSTOM_TABLE[level] for level in _CUSTOM_LEVELS]


def custom_threshold(level: int) -> int:
    """The legacy table only lists some levels (1–25, 30, 35, … 100); the others are not reachable
    on their own: a member jumps from 25 to 30. Unlisted levels cost what the next listed one does,
    and nothing goes beyond 100."""
    if level <= 0:
        return 0
    index = bisect.bisect_left(_CUSTOM_LEVELS, level)
    if index >= len(_CUSTOM_LEVELS):
        return UNREACHABLE
    return _CUSTOM_THRESHOLDS[index]


# The threshold of a level past the end of the custom curve: more XP than anyone can hold.
UNREACHABLE = 2**62


def top_level(curve: str) -> int | None:
    """The last level of a curve that ends (custom stops at 100); None for curves that go on."""
    return _CUSTOM_LEVELS[-1] if curve == "custom" else None


def custom_level(total_xp: int) -> int:
    index = bisect.bisect_right(_CUSTOM_THRESHOLDS, total_xp)
    return 0 if index == 0 else _CUSTOM_LEVELS[index - 1]


Threshold = Callable[[int], int]

THRESHOLDS: dict[str, Threshold] = {
    "standard": standard_threshold,
    "basic": basic_threshold,
    "gradual": gradual_threshold,
    "custom": custom_threshold,
}


def threshold(curve: str, level: int) -> int:
    """Total XP needed to reach `level` on `curve` (0 for level 0 and below)."""
    return THRESHOLDS[curve](max(level, 0))


def level_for_xp(curve: str, total_xp: int) -> int:
    """The highest level whose threshold is at most `total_xp`; works for huge totals."""
    if total_xp <= 0:
        return 0
    if curve == "custom":
        return custom_level(total_xp)
    needed = THRESHOLDS[curve]
    low, high = 0, 1
    while needed(high) <= total_xp:  # gallop: thresholds grow at least linearly
        low, high = high, high * 2
    while high - low > 1:  # invariant: needed(low) <= total_xp < needed(high)
        middle = (low + high) // 2
        if needed(middle) <= total_xp:
            low = middle
        else:
            high = middle
    return low
