-- A birthday role that could not be taken back is retried for a few days counted from its first
-- failed removal, not from the birthday: after a downtime longer than those days, the first attempt
-- (a Discord hiccup, a server in an outage) must not also be the last.
ALTER TABLE birthday_celebrations ADD COLUMN role_failed_on TEXT;  -- local YYYY-MM-DD of the first failed removal
