-- How many members hold each XP total, so /rank counts the members above one without walking
-- them: a count over the xp_by_total index reads every member above (100,000 in a big server).
--   xp_counts        members per exact total: ties at the low end (thousands of members on a
--                    few totals) are one row each;
--   xp_block_counts  members per block of 1,024 totals: a board whose totals are all different
--                    is summed by blocks, with xp_counts only inside the member's own block.
-- Members above `t` = blocks above t's block + exact totals above t inside it: one row per occupied
-- block (a thousand blocks reach a million XP), then at most 1,023 totals. Kept by the triggers
-- below, whatever writes xp (the flush, admin edits, rewards, purges, the legacy split), in the
-- writer's own transaction. A member with no row counts nowhere, as in the xp table.

CREATE TABLE xp_counts (
  xp      INTEGER PRIMARY KEY,
  members INTEGER NOT NULL CHECK (members > 0)
) STRICT;

CREATE TABLE xp_block_counts (
  block   INTEGER PRIMARY KEY,  -- xp >> 10
  members INTEGER NOT NULL CHECK (members > 0)
) STRICT;

INSERT INTO xp_counts (xp, members) SELECT xp, count(*) FROM xp GROUP BY xp;
INSERT INTO xp_block_counts (block, members) SELECT xp >> 10, count(*) FROM xp GROUP BY xp >> 10;

-- A count that reaches zero is deleted (rows only for totals someone holds): delete it when it is
-- the last one, else decrement; exactly one of the two matches.
CREATE TRIGGER xp_counts_after_insert AFTER INSERT ON xp BEGIN
  INSERT INTO xp_counts (xp, members) VALUES (new.xp, 1)
    ON CONFLICT (xp) DO UPDATE SET members = members + 1;
  INSERT INTO xp_block_counts (block, members) VALUES (new.xp >> 10, 1)
    ON CONFLICT (block) DO UPDATE SET members = members + 1;
END;

CREATE TRIGGER xp_counts_after_delete AFTER DELETE ON xp BEGIN
  DELETE FROM xp_counts WHERE xp = old.xp AND members = 1;
  UPDATE xp_counts SET members = members - 1 WHERE xp = old.xp;
  DELETE FROM xp_block_counts WHERE block = old.xp >> 10 AND members = 1;
  UPDATE xp_block_counts SET members = members - 1 WHERE block = old.xp >> 10;
END;

CREATE TRIGGER xp_counts_after_update AFTER UPDATE OF xp ON xp WHEN old.xp <> new.xp BEGIN
  DELETE FROM xp_counts WHERE xp = old.xp AND members = 1;
  UPDATE xp_counts SET members = members - 1 WHERE xp = old.xp;
  INSERT INTO xp_counts (xp, members) VALUES (new.xp, 1)
    ON CONFLICT (xp) DO UPDATE SET members = members + 1;
END;

-- Its own trigger: most chat awards stay inside their block, and then it does not run at all.
CREATE TRIGGER xp_block_counts_after_update AFTER UPDATE OF xp ON xp
WHEN old.xp >> 10 <> new.xp >> 10 BEGIN
  DELETE FROM xp_block_counts WHERE block = old.xp >> 10 AND members = 1;
  UPDATE xp_block_counts SET members = members - 1 WHERE block = old.xp >> 10;
  INSERT INTO xp_block_counts (block, members) VALUES (new.xp >> 10, 1)
    ON CONFLICT (block) DO UPDATE SET members = members + 1;
END;
