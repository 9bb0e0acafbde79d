"""Member data of the audit log and the legacy fun log.

Audit rows about the member go; rows where the member acted on others stay with the actor removed,
so the server keeps a record of what happened. Legacy roast rows by or about the member go.
"""

from __future__ import annotations

from malabot.privacy import AnonymisingHandler


def audit_member_data() -> AnonymisingHandler:
    return AnonymisingHandler(
        "audit",
        delete_by=[("audit_log", "target_id"), ("legacy_roast_log", "user_id"),
                   ("legacy_roast_log", "target_id")],
        anonymise=[("audit_log", "actor_id")],
    )
