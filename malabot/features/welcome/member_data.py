"""Member data of the welcome: that the auto-role waits for the member to pass Membership Screening.

Nothing is kept when they leave: a member who comes back is remembered again if they wait again.
"""

from __future__ import annotations

from malabot.privacy import SimpleTableHandler


def welcome_member_data() -> SimpleTableHandler:
    return SimpleTableHandler("welcome", [("autorole_waiting", "user_id")])
