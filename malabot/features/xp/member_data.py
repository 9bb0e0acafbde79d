"""Member data of XP: the member's row in `xp` goes when they leave.

Level roles map levels to roles and hold no member ids. The XP still buffered in memory for the
member is dropped by `XpService.forget_member`, which the member-data registry calls before a purge.
"""

from __future__ import annotations

from malabot.privacy import SimpleTableHandler


def xp_member_data() -> SimpleTableHandler:
    return SimpleTableHandler("xp", [("xp", "user_id")])
