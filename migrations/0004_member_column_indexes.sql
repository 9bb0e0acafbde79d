-- Every column holding a member's id leads an index, so a member's rows are found without reading
-- the whole table: when they leave (the purge), on /mydata export, and in the look-up for members
-- who left a moment ago that runs before each commit for a minute after a leave. The other member
-- columns already lead a primary key or an index (migrations/0001_initial.sql).
CREATE INDEX mod_cases_by_moderator ON mod_cases (moderator_id);
CREATE INDEX verification_requests_by_reviewer ON verification_requests (reviewer_id);
CREATE INDEX game_verifications_by_user ON game_verifications (user_id);
CREATE INDEX game_verifications_by_reviewer ON game_verifications (reviewer_id);
CREATE INDEX appeals_by_user ON appeals (user_id);
CREATE INDEX appeals_by_reviewer ON appeals (reviewer_id);
CREATE INDEX audit_log_by_actor ON audit_log (actor_id);
CREATE INDEX legacy_roast_log_by_user ON legacy_roast_log (user_id);
CREATE INDEX legacy_roast_log_by_target ON legacy_roast_log (target_id);
