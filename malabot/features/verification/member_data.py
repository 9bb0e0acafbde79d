"""Member data of verification: the member's requests go; a departed reviewer's id is removed."""

from __future__ import annotations

from malabot.privacy import AnonymisingHandler


def verification_member_data() -> AnonymisingHandler:
    return AnonymisingHandler(
        "verification",
        delete_by=[("verification_requests", "user_id"), ("game_verifications", "user_id")],
        anonymise=[("verification_requests", "reviewer_id"), ("game_verifications", "reviewer_id")],
    )
