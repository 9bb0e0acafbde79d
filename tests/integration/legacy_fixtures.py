"""Legacy databases for the split tests (and the split benchmark), built from the legacy schema.

`tests/fixtures/legacy/schema-global.sql` is the old bot's schema as it is (variant 1, global). The
per-guild variant and a half-way file are derived from it as the legacy README describes:
  * per-guild: `users` loses xp, level and birthday; birthdays, daily_checkins, verifications and
    roast_log gain `guild_id INTEGER NOT NULL`, with UNIQUE(user_id, guild_id) on birthdays and
    daily_checkins;
  * half-way: the global schema with a nullable `guild_id` added to those four tables.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "fixtures" / "legacy" / "schema-global.sql"

GLOBAL = "global"
PER_GUILD = "per-guild"
HALF_WAY = "half-way"
GAINED_GUILD_ID = ("birthdays", "daily_checkins", "verifications", "roast_log")

_PER_GUILD_EDITS = (
    ("DEFAULT FALSE, xp INTEGER DEFAULT 0, level INTEGER DEFAULT 0,", "DEFAULT FALSE,"),
    (" birthday DATE, currency_balance", " currency_balance"),
    ("UNIQUE(user_id), FOREIGN KEY", "guild_id INTEGER NOT NULL, UNIQUE(user_id, guild_id), FOREIGN KEY"),
    ("user_id INTEGER NOT NULL UNIQUE,", "user_id INTEGER NOT NULL, guild_id INTEGER NOT NULL,"),
    ("checkin_streak INTEGER DEFAULT 1, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP);",
     "checkin_streak INTEGER DEFAULT 1, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,"
     " UNIQUE(user_id, guild_id));"),
    ("id INTEGER PRIMARY KEY AUTOINCREMENT, discord_id INTEGER NOT NULL,",
     "id INTEGER PRIMARY KEY AUTOINCREMENT, guild_id INTEGER NOT NULL, discord_id INTEGER NOT NULL,"),
    ("id INTEGER PRIMARY KEY AUTOINCREMENT, user_id INTEGER NOT NULL, target_id INTEGER,",
     "id INTEGER PRIMARY KEY AUTOINCREMENT, guild_id INTEGER NOT NULL, user_id INTEGER NOT NULL,"
     " target_id INTEGER,"),
)


def schema_sql(variant: str) -> str:
    sql = SCHEMA_FILE.read_text(encoding="utf-8")
    if variant == PER_GUILD:
        for old, new in _PER_GUILD_EDITS:
            assert sql.count(old) == 1, f"the legacy schema changed: {old!r}"
            sql = sql.replace(old, new)
    elif variant == HALF_WAY:
        sql += "".join(f"\nALTER TABLE {table} ADD COLUMN guild_id INTEGER;" for table in GAINED_GUILD_ID)
    return sql


def create_legacy(path: Path, variant: str = GLOBAL) -> sqlite3.Connection:
    """A new legacy file of `variant` in WAL mode, as the old bot kept it; the caller fills and closes it."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript(schema_sql(variant))
    return conn


class LegacyDb:
    """Fills a legacy file row by row, the way the old bot wrote it (guild=None: no guild_id)."""

    def __init__(self, path: Path, variant: str = GLOBAL) -> None:
        self.path = path
        self.variant = variant
        self.conn = create_legacy(path, variant)

    @property
    def global_users(self) -> bool:
        return self.variant != PER_GUILD

    def close(self) -> None:
        self.conn.commit()
        self.conn.close()

    def user(self, user_id: int, xp: int = 0, messages: int = 0, birthday: str | None = None) -> None:
        if self.global_users:
            self.conn.execute(
                "INSERT INTO users (user_id, username, discriminator, xp, level, total_messages, birthday)"
                " VALUES (?, 'Unknown', '0', ?, 0, ?, ?)", (user_id, xp, messages, birthday))
        else:
            self.conn.execute("INSERT INTO users (user_id, username, discriminator, total_messages)"
                              " VALUES (?, 'Unknown', '0', ?)", (user_id, messages))

    def user_xp(self, user_id: int, guild_id: int, xp: int) -> None:
        self.conn.execute("INSERT INTO user_xp (user_id, guild_id, xp, level) VALUES (?, ?, ?, 0)",
                          (user_id, guild_id, xp))

    def _with_guild(self, table: str, columns: dict[str, object], guild_id: int | None) -> None:
        if guild_id is not None or self.variant == HALF_WAY:
            columns = {**columns, "guild_id": guild_id}
        names = ", ".join(columns)
        marks = ", ".join("?" * len(columns))
        self.conn.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", tuple(columns.values()))

    def birthday(self, user_id: int, month_day: str, announced_year: int | None = None,
                 guild_id: int | None = None) -> None:
        self._with_guild("birthdays", {"user_id": user_id, "birthday": month_day,
                                       "announced_year": announced_year}, guild_id)

    def checkin(self, user_id: int, day: str, streak: int, guild_id: int | None = None) -> None:
        self._with_guild("daily_checkins", {"user_id": user_id, "last_checkin": day,
                                            "checkin_streak": streak}, guild_id)

    def verification(self, user_id: int, activision_id: str, status: str = "verified",
                     guild_id: int | None = None) -> None:
        self._with_guild("verifications", {"discord_id": user_id, "activision_id": activision_id,
                                           "platform": "pc", "status": status}, guild_id)

    def roast(self, user_id: int, action: str = "roast_success", guild_id: int | None = None) -> None:
        self._with_guild("roast_log", {"user_id": user_id, "action": action, "xp_gained": 15,
                                       "message_content": "ouch"}, guild_id)

    def setting(self, guild_id: int | None, key: str, value: str | None) -> None:
        self.conn.execute("INSERT INTO settings (guild_id, setting_key, value) VALUES (?, ?, ?)",
                          (guild_id, key, value))

    def level_role(self, guild_id: int, level: int, role_id: int) -> None:
        self.conn.execute("INSERT INTO level_roles (guild_id, level, role_id) VALUES (?, ?, ?)",
                          (guild_id, level, role_id))

    def mod_log(self, guild_id: int, user_id: int, moderator_id: int, action: str = "warn") -> None:
        self.conn.execute(
            "INSERT INTO mod_logs (guild_id, user_id, moderator_id, action, reason, timestamp)"
            " VALUES (?, ?, ?, ?, 'spam', '2024-03-01 10:00:00')", (guild_id, user_id, moderator_id, action))

    def audit(self, guild_id: int | None, user_id: int | None, action: str = "xp_edit") -> None:
        self.conn.execute("INSERT INTO audit_log (category, action, user_id, guild_id)"
                          " VALUES ('admin', ?, ?, ?)",
                          (action, user_id, guild_id))

    def appeal(self, guild_id: int, user_id: int, status: str = "pending") -> None:
        self.conn.execute("INSERT INTO appeals (user_id, guild_id, appeal_text, status)"
                          " VALUES (?, ?, 'sorry', ?)",
                          (user_id, guild_id, status))

    def process_rows(self) -> None:
        self.conn.execute("INSERT INTO health_logs (component, status) VALUES ('bot', 'ok')")
        self.conn.execute("INSERT INTO system_flags (flag_name, flag_value) VALUES ('maintenance', 'false')")
