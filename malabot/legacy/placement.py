"""Where each legacy row goes: its server, the servers its member is known to be in, or the holding file.

  * Rows with a guild_id belong to that server.
  * Global member data (users' XP and birthday, birthdays, check-ins, verifications) is copied into
    every server where the member has evidence (see evidence.py), and nowhere else.
  * Global events (audit_log rows without guild_id, the global roast_log) happened in one server: they
    go to the member's server only when the evidence names exactly one; with several the server is
    unknown and the row goes to the holding file rather than leaking into servers it never concerned.
  * Rows with no evidence go to the holding file, or to the `--assign-unknown` server.
  * Settings with guild_id NULL are global defaults: the oldest row per key applies to every server
    that does not set the key itself.
Rows that go nowhere are held back in the ledger with their reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from malabot.legacy.build import PROFILE_ONLY, Destination
from malabot.legacy.evidence import Evidence, is_member_id
from malabot.legacy.mapping import legacy_xp, why_not_xp
from malabot.legacy.reader import Row
from malabot.legacy.report import HOLDING_LABEL, Ledger
from malabot.legacy.schema_detect import TABLES, LegacySchema

MEMBER_DATA = ("users", "birthdays", "daily_checkins", "verifications")
EVENTS = ("audit_log", "roast_log")
PROCESS_DATA = ("roast_xp", "health_logs", "system_flags")

NOT_TEXT = "the value is binary data (a BLOB), not text"
NO_EVIDENCE = "no evidence that the member is in any server"
NO_GUILD = "no server id"
NOT_SERVER_DATA = "process data of the old bot, not server data"


@dataclass
class Placement:
    destinations: dict[int, Destination] = field(default_factory=dict)
    holding: Destination = field(default_factory=lambda: Destination(is_server=False))
    holding_reasons: dict[tuple[str, int], tuple[object, str]] = field(default_factory=dict)
    global_settings: dict[str, tuple[int, str | None]] = field(default_factory=dict)

    def destination(self, guild_id: int) -> Destination:
        found = self.destinations.get(guild_id)
        if found is None:
            found = self.destinations[guild_id] = Destination(global_settings=self.global_settings)
        return found

    def to_holding(self, table: str, row: Row, user_id: object, reason: str) -> None:
        self.holding.add_placed(table, row)
        self.holding_reasons[table, row[0]] = (user_id if is_member_id(user_id) else None, reason)


def place(rows: dict[str, list[Row]], schema: LegacySchema, evidence: Evidence, assign_unknown: int | None,
          ledger: Ledger) -> Placement:
    """Sort every legacy row into a destination; `evidence` gains what the server-scoped rows show."""
    placement = Placement()
    global_rows: dict[str, list[Row]] = {}
    for table, table_rows in rows.items():
        if table in PROCESS_DATA:
            for row in table_rows:
                ledger.hold(table, row[0], NOT_SERVER_DATA)
            continue
        if table == "settings":
            table_rows = _text_settings(table_rows, ledger)
        global_rows[table] = _own_rows(table, table_rows, placement, ledger)
    _global_settings(global_rows.pop("settings", []), placement, ledger)
    global_rows["users"] = _with_member_data(global_rows.get("users", []), schema, ledger)
    to_place = {table for table, found in global_rows.items() if found and table in MEMBER_DATA + EVENTS}
    if to_place:  # evidence is only needed for rows without a server (none in a per-guild file)
        for guild_id, destination in placement.destinations.items():
            for table, own in destination.own.items():
                evidence.add_rows(table, guild_id, own)
    for table, table_rows in global_rows.items():
        if table in to_place:
            _place_global(table, table_rows, schema, evidence, assign_unknown, placement, ledger)
        else:
            for row in table_rows:
                ledger.hold(table, row[0], NO_GUILD)
    if not placement.destinations:
        _orphan_global_settings(placement)
    return placement


def _own_rows(table: str, rows: list[Row], placement: Placement, ledger: Ledger) -> list[Row]:
    """Give each row with a guild id to its server; returns the rows without one."""
    by_guild: dict[object, list[Row]] = {}
    for row in rows:
        bucket = by_guild.get(row[1])
        if bucket is None:
            bucket = by_guild[row[1]] = []
        bucket.append(row)
    without_guild = by_guild.pop(None, [])
    for guild_id, guild_rows in by_guild.items():
        if not is_member_id(guild_id):
            for row in guild_rows:
                ledger.hold(table, row[0], f"server id {guild_id!r} is not a Discord id")
            continue
        destination = placement.destination(guild_id)
        if table == "settings":
            for row in guild_rows:
                _own_setting(destination, row, ledger)
        else:
            destination.own.setdefault(table, []).extend(guild_rows)
    return without_guild


def _text_settings(rows: list[Row], ledger: Ledger) -> list[Row]:
    """The settings rows whose key and value are text. Their TEXT columns hold nothing else but a
    BLOB (or a NULL value): held back, that key only, since no setting reads it and no text column
    takes it."""
    usable = []
    for row in rows:
        rowid, _guild, key, value = row
        if not isinstance(key, str):
            ledger.hold("settings", rowid, f"the key {key!r} is not text")
        elif not isinstance(value, str | None):
            ledger.hold("settings", rowid, NOT_TEXT)
        else:
            usable.append(row)
    return usable


def _own_setting(destination: Destination, row: Row, ledger: Ledger) -> None:
    rowid, _guild, key, value = row
    earlier = destination.settings.get(key)
    if earlier is not None:  # UNIQUE(guild_id, key) should prevent it; the newer row wins then
        ledger.hold("settings", earlier[0], "an older duplicate of the server's key")
    destination.settings[key] = (rowid, value)


def _global_settings(rows: list[Row], placement: Placement, ledger: Ledger) -> None:
    for rowid, _guild, key, value in sorted(rows, key=lambda row: row[0]):
        if key in placement.global_settings:
            ledger.hold("settings", rowid, "a newer duplicate of a global key (the oldest row wins)")
        else:
            placement.global_settings[key] = (rowid, value)


def _place_global(table: str, rows: list[Row], schema: LegacySchema, evidence: Evidence,
                  assign_unknown: int | None, placement: Placement, ledger: Ledger) -> None:
    user_column = TABLES[table].index("discord_id" if table == "verifications" else "user_id")
    every_server = table in MEMBER_DATA
    for row in rows:
        user_id = row[user_column]
        guilds = evidence.guilds(user_id)
        if every_server and guilds:
            for guild_id in guilds:
                placement.destination(guild_id).add_placed(table, row)
        elif len(guilds) == 1:
            placement.destination(next(iter(guilds))).add_placed(table, row)
        elif guilds:
            placement.to_holding(table, row, user_id, f"event of a member of {len(guilds)} servers; "
                                                      "which one it happened in is unknown")
        elif assign_unknown is not None:
            placement.destination(assign_unknown).add_placed(table, row)
        else:
            placement.to_holding(table, row, user_id, NO_EVIDENCE)


def _orphan_global_settings(placement: Placement) -> None:
    """With no server at all, the global settings are kept verbatim in the holding file."""
    for key, (rowid, value) in placement.global_settings.items():
        placement.to_holding("settings", (rowid, None, key, value), None, "no server to apply it to")


def _with_member_data(users: list[Row], schema: LegacySchema, ledger: Ledger) -> list[Row]:
    """The users rows with XP, messages or a birthday; the others are profiles only, held back."""
    kept = []
    for row in users:
        _rowid, _guild, _user, xp, messages, _gain, birthday = row
        has_xp = schema.xp_in_users and (
            (legacy_xp(xp) or 0) > 0 or (isinstance(messages, int) and messages > 0))
        if has_xp or (birthday is not None and birthday != ""):
            kept.append(row)
        elif schema.xp_in_users and xp is not None and legacy_xp(xp) is None:
            ledger.hold("users", row[0], why_not_xp(xp))
        else:
            ledger.hold("users", row[0], PROFILE_ONLY)
    return kept


__all__ = ["HOLDING_LABEL", "Placement", "place"]
