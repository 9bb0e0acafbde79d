"""Member data of moderation: cases and appeals.

Cases where the member is the target are kept, whole: a ban must not erase its own record, and a
returning member's history must still be visible to moderators. A departed moderator's id is removed
from the cases they handled (the cases themselves stay). Appeals are the member's own words: deleted.
"""

from __future__ import annotations

from malabot.privacy import AnonymisingHandler


def moderation_member_data() -> AnonymisingHandler:
    return AnonymisingHandler(
        "moderation",
        delete_by=[("appeals", "user_id")],
        anonymise=[("mod_cases", "moderator_id"), ("appeals", "reviewer_id")],
        keep_by=[("mod_cases", "target_id")],
    )
