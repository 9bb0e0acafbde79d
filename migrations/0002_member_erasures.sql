-- Members who erased their data here with /mydata delete, and when. A restore of an older snapshot
-- brings their rows back, so the erasures recorded in the file being replaced are applied again.
CREATE TABLE member_erasures (
  user_id   INTEGER PRIMARY KEY,
  erased_at TEXT    NOT NULL
) STRICT;
