"""Member data of birthdays: the birthday and the yearly celebration records go when the member leaves.

Nothing is kept: a birthday is personal, and the celebration ledger only exists to avoid repeats.
A member who comes back the same year and sets their birthday again may be celebrated again.
"""

from __future__ import annotations

from malabot.privacy import SimpleTableHandler


def birthday_member_data() -> SimpleTableHandler:
    return SimpleTableHandler(
        "birthdays",
        [("birthdays", "user_id"), ("birthday_celebrations", "user_id")],
    )
