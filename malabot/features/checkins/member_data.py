"""Member data of daily check-ins: the member's streak row and every day they checked in go."""

from __future__ import annotations

from malabot.privacy import SimpleTableHandler


def checkin_member_data() -> SimpleTableHandler:
    return SimpleTableHandler("checkins", [("checkins", "user_id"), ("checkin_days", "user_id")])
