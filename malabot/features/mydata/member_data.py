"""Member data of /mydata itself: the record that a member asked for their data to be erased.

Kept when the member leaves (and exported): it is what makes a restore of an older backup, or of one
taken before they left and came back, erase them again.
"""

from __future__ import annotations

from malabot.privacy import AnonymisingHandler


def erasure_member_data() -> AnonymisingHandler:
    return AnonymisingHandler("erasures", keep_by=[("member_erasures", "user_id")])
