"""Member data of /mydata itself: the record that a member erased their data goes when they leave
(a restore then erases them again because they are no longer a member, not because of the record)."""

from __future__ import annotations

from malabot.privacy import SimpleTableHandler


def erasure_member_data() -> SimpleTableHandler:
    return SimpleTableHandler("erasures", [("member_erasures", "user_id")])
