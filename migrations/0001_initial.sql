-- MalaBoT tenant schema, version 1: everything one Discord server (guild) owns lives in this file.
-- Column naming rule relied on by privacy.py and its meta-test: a column holding a Discord member's id
-- is named user_id, or ends in _user_id, target_id, actor_id, moderator_id or reviewer_id.

-- Identity of the file: one row, stamped by the tenant manager when the file is created.
CREATE TABLE tenant_meta (
  singleton  INTEGER PRIMARY KEY CHECK (singleton = 1),
  guild_id   INTEGER NOT NULL CHECK (guild_id > 0),
  created_at TEXT    NOT NULL
) STRICT;

-- Per-server settings: one JSON value per key, validated by malabot.guild_settings.GuildSettings.
CREATE TABLE settings (
  key        TEXT PRIMARY KEY,
  value      TEXT NOT NULL CHECK (json_valid(value)),
  updated_at TEXT NOT NULL
) STRICT;

-- Settings of the legacy bot that have no counterpart here, kept verbatim by `malabot legacy split`.
CREATE TABLE legacy_settings (
  key   TEXT PRIMARY KEY,
  value TEXT
) STRICT;

-- XP and levels. The level is derived from xp with the server's curve, so it is never stored.
CREATE TABLE xp (
  user_id         INTEGER PRIMARY KEY,
  xp              INTEGER NOT NULL DEFAULT 0 CHECK (xp >= 0),
  messages        INTEGER NOT NULL DEFAULT 0 CHECK (messages >= 0),
  last_message_at TEXT
) STRICT;
CREATE INDEX xp_by_total ON xp (xp DESC, user_id);

CREATE TABLE level_roles (
  level   INTEGER PRIMARY KEY CHECK (level >= 1),
  role_id INTEGER NOT NULL UNIQUE
) STRICT;

-- Daily check-ins: the current streak and one row per member per local calendar day;
-- the primary key makes a second check-in on the same day impossible, however concurrent.
CREATE TABLE checkins (
  user_id     INTEGER PRIMARY KEY,
  last_day    TEXT    NOT NULL,            -- YYYY-MM-DD in the server's timezone
  streak      INTEGER NOT NULL CHECK (streak >= 1),
  best_streak INTEGER NOT NULL CHECK (best_streak >= streak),
  total       INTEGER NOT NULL DEFAULT 1 CHECK (total >= 1)
) STRICT;

CREATE TABLE checkin_days (
  user_id    INTEGER NOT NULL,
  day        TEXT    NOT NULL,
  xp_awarded INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (user_id, day)
) STRICT, WITHOUT ROWID;

-- Birthdays: the year is optional and shown only to the member themself.
CREATE TABLE birthdays (
  user_id    INTEGER PRIMARY KEY,
  month      INTEGER NOT NULL CHECK (month BETWEEN 1 AND 12),
  day        INTEGER NOT NULL CHECK (day BETWEEN 1 AND 31),
  year       INTEGER CHECK (year IS NULL OR year >= 1900),
  created_at TEXT    NOT NULL
) STRICT;
CREATE INDEX birthdays_by_date ON birthdays (month, day);

-- One row per member per celebrated year: makes announcements, roles and XP idempotent.
CREATE TABLE birthday_celebrations (
  user_id         INTEGER NOT NULL,
  year            INTEGER NOT NULL,
  local_day       TEXT    NOT NULL,        -- the YYYY-MM-DD it was celebrated on
  announced_at    TEXT,
  xp_awarded      INTEGER NOT NULL DEFAULT 0,
  role_id         INTEGER,                 -- the birthday role given, to remove after the day
  role_removed_at TEXT,
  PRIMARY KEY (user_id, year)
) STRICT;

-- Moderation cases, numbered per server. Kept when the target leaves: a ban keeps its record.
CREATE TABLE mod_cases (
  case_number      INTEGER PRIMARY KEY,
  action           TEXT    NOT NULL,       -- warn, timeout, untimeout, kick, ban, unban, purge, ...
  target_id        INTEGER,
  moderator_id     INTEGER,
  reason           TEXT,
  duration_seconds INTEGER,
  channel_id       INTEGER,
  message_count    INTEGER,
  created_at       TEXT    NOT NULL,
  expires_at       TEXT,
  removed_at       TEXT,                   -- a warning withdrawn by /warnings remove
  log_message_id   INTEGER
) STRICT;
CREATE INDEX mod_cases_by_target ON mod_cases (target_id, action, created_at);

-- Discord verification (the button panel) state per member.
CREATE TABLE verification_requests (
  user_id           INTEGER PRIMARY KEY,
  status            TEXT    NOT NULL CHECK (status IN ('pending', 'verified', 'denied')),
  requested_at      TEXT    NOT NULL,
  reviewer_id       INTEGER,
  reviewed_at       TEXT,
  review_message_id INTEGER,
  notes             TEXT
) STRICT;

-- Game-account verifications carried over from the legacy bot.
CREATE TABLE game_verifications (
  id             INTEGER PRIMARY KEY,
  user_id        INTEGER NOT NULL,
  activision_id  TEXT    NOT NULL,
  platform       TEXT    NOT NULL,
  screenshot_url TEXT,
  status         TEXT    NOT NULL DEFAULT 'pending',
  reviewer_id    INTEGER,
  reviewed_at    TEXT,
  notes          TEXT,
  created_at     TEXT
) STRICT;

-- Ban and cheater appeals carried over from the legacy bot.
CREATE TABLE appeals (
  id           INTEGER PRIMARY KEY,
  user_id      INTEGER NOT NULL,
  appeal_text  TEXT    NOT NULL,
  status       TEXT    NOT NULL DEFAULT 'pending',
  submitted_at TEXT,
  reviewer_id  INTEGER,
  reviewed_at  TEXT,
  review_notes TEXT
) STRICT;

-- Audit of admin actions (XP edits, settings changes, legacy events). The actor is anonymised,
-- not deleted, when they leave; rows about a member who leaves are deleted.
CREATE TABLE audit_log (
  id         INTEGER PRIMARY KEY,
  at         TEXT    NOT NULL,
  category   TEXT    NOT NULL,
  action     TEXT    NOT NULL,
  actor_id   INTEGER,
  target_id  INTEGER,
  channel_id INTEGER,
  details    TEXT
) STRICT;
CREATE INDEX audit_log_by_target ON audit_log (target_id);

-- Fun-command log of the legacy bot (per-guild variant only).
CREATE TABLE legacy_roast_log (
  id              INTEGER PRIMARY KEY,
  user_id         INTEGER NOT NULL,
  target_id       INTEGER,
  action          TEXT    NOT NULL,
  xp_gained       INTEGER,
  message_content TEXT,
  created_at      TEXT
) STRICT;
