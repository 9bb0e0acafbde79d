-- The instant of each member's last check-in, so that a streak survives the server moving its timezone
-- east: by the new zone's calendar a check-in stored as the day before yesterday may have been
-- yesterday. UTC ISO text. Rows written before this migration (and by the legacy split, which only
-- has a date) keep NULL: their instant is unknown, and any value made up from the day would move the
-- check-in in time; for them the streak follows the stored local day, as it always did.
ALTER TABLE checkins ADD COLUMN last_at TEXT;
