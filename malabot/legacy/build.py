"""One destination's new rows (a server's tenant file, or the holding file) from its legacy rows.

Pure: no I/O. The input is the rows of the server's own scope (`own`) and the global rows placed
there by evidence (`placed`). The output is a list of units, each the new rows made from one legacy
row, plus the legacy rows meant for this destination that are held back, each with its reason.

Where two legacy rows give the same member's XP, birthday or check-in, one wins: a row of the
server's own scope beats a global one; then the larger XP, the newer check-in day, the newer row.
The losers are held back as "superseded", never merged silently.

Target rows are tuples in the column order of writer.TARGET_COLUMNS.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from malabot.legacy.evidence import is_member_id
from malabot.legacy.mapping import (
    MappedSettings,
    celebration_day,
    map_settings,
    normalize_timestamp,
    parse_birthday,
    parse_day,
)
from malabot.legacy.reader import Row
from malabot.legacy.schema_detect import TABLES, LegacySchema, Variant

SCRATCH_XP = "global variant: written only by birthday XP and never read by the old bot"
PROFILE_ONLY = "profile only (no XP, messages or birthday)"


class Unit(NamedTuple):
    """The new rows made from one legacy row."""

    table: str                               # the legacy table
    rowid: int
    rows: tuple[tuple[str, tuple[object, ...]], ...]  # (target table, row)


@dataclass(frozen=True)
class SettingsPlan:
    """A server's settings: its own legacy keys plus the global defaults it does not set itself."""

    mapped: MappedSettings
    rowid_of_key: dict[str, int]
    defaults_applied: tuple[str, ...]

    @property
    def rowids(self) -> list[int]:
        return sorted(set(self.rowid_of_key.values()))


@dataclass
class Destination:
    """The legacy rows meant for one tenant file."""

    own: dict[str, list[Row]] = field(default_factory=dict)
    placed: dict[str, list[Row]] = field(default_factory=dict)
    settings: dict[str, tuple[int, str | None]] = field(default_factory=dict)  # key → (rowid, value)
    global_settings: Mapping[str, tuple[int, str | None]] = field(default_factory=dict)
    is_server: bool = True  # False for the holding file, which has no settings of its own

    def add_own(self, table: str, row: Row) -> None:
        self.own.setdefault(table, []).append(row)

    def add_placed(self, table: str, row: Row) -> None:
        self.placed.setdefault(table, []).append(row)


@dataclass
class Content:
    units: list[Unit] = field(default_factory=list)
    held: list[tuple[str, int, str]] = field(default_factory=list)  # (legacy table, rowid, reason)
    settings: SettingsPlan | None = None

    def hold(self, table: str, rowid: int, reason: str) -> None:
        self.held.append((table, rowid, reason))


class _Candidate(NamedTuple):
    rank: tuple[object, ...]   # higher wins
    unit: Unit
    description: str           # what it is, for the loser's reason


def build(dest: Destination, schema: LegacySchema, now: str) -> Content:
    content = Content()
    content.settings = _settings(dest, content)
    _placed_settings(dest.placed.get("settings", ()), content)
    _level_roles(dest.own.get("level_roles", ()), content)
    _xp(dest, schema, content)
    _birthdays(dest, schema, content, now)
    _checkins(dest, content)
    _verifications(dest, content)
    _mod_cases(dest.own.get("mod_logs", ()), content, now)
    _appeals(dest.own.get("appeals", ()), content)
    _audit(dest, content, now)
    _roasts(dest, content)
    return content


def _both(dest: Destination, table: str) -> Iterable[tuple[bool, Row]]:
    """(is_own, row) for the server's own rows, then the global rows placed here."""
    for row in dest.own.get(table, ()):
        yield True, row
    for row in dest.placed.get(table, ()):
        yield False, row


def _keep_winners(candidates: dict[int, list[_Candidate]], content: Content) -> None:
    for rivals in candidates.values():
        rivals.sort(key=lambda candidate: candidate.rank, reverse=True)
        winner = rivals[0]
        content.units.append(winner.unit)
        for loser in rivals[1:]:
            reason = f"superseded by the member's {winner.description}"
            content.hold(loser.unit.table, loser.unit.rowid, reason)


# --- settings -----------------------------------------------------------------------------------

def _settings(dest: Destination, content: Content) -> SettingsPlan | None:
    """Every server gets settings, even without legacy keys: the old defaults differ from the new."""
    if not dest.is_server:
        return None
    effective = dict(dest.settings)
    applied = tuple(sorted(key for key in dest.global_settings if key not in effective))
    for key in applied:
        effective[key] = dest.global_settings[key]
    mapped = map_settings({key: value for key, (_, value) in effective.items()})
    return SettingsPlan(mapped, {key: rowid for key, (rowid, _) in effective.items()}, applied)


def _placed_settings(rows: Iterable[Row], content: Content) -> None:
    """Global settings in the holding file (there was no server to apply them to): verbatim."""
    for rowid, _guild, key, value in rows:
        content.units.append(Unit("settings", rowid, (("legacy_settings", (key, value)),)))


# --- XP and level roles -------------------------------------------------------------------------

def _level_roles(rows: Iterable[Row], content: Content) -> None:
    used_roles: dict[object, object] = {}
    for rowid, _guild, level, role_id in sorted(rows, key=lambda row: (_sortable(row[2]), row[0])):
        if type(level) is not int or level < 1:
            content.hold("level_roles", rowid, f"level {level!r} is not a level from 1 up")
        elif not is_member_id(role_id):
            content.hold("level_roles", rowid, f"role {role_id!r} is not a Discord id")
        elif role_id in used_roles:
            content.hold("level_roles", rowid, f"role already given at level {used_roles[role_id]}")
        else:
            used_roles[role_id] = level
            content.units.append(Unit("level_roles", rowid, (("level_roles", (level, role_id)),)))


def _sortable(value: object) -> int:
    return value if isinstance(value, int) else 0


def _whole_number(value: object) -> int | None:
    """An int, also from the digits-only text a non-strict legacy column may hold."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _xp(dest: Destination, schema: LegacySchema, content: Content) -> None:
    candidates: dict[int, list[_Candidate]] = {}
    # In the global variant user_xp is scratch; in a half-way file both may be real: the larger wins.
    xp_rows_are_real = schema.variant is not Variant.GLOBAL
    for rowid, _guild, user_id, xp, last_message in dest.own.get("user_xp", ()):
        if not xp_rows_are_real:
            content.hold("user_xp", rowid, SCRATCH_XP)
        elif not is_member_id(user_id):
            content.hold("user_xp", rowid, f"user {user_id!r} is not a Discord id")
        elif type(xp) is not int or xp < 0:
            content.hold("user_xp", rowid, f"XP {xp!r} is not a whole number from 0 up")
        else:
            unit = Unit("user_xp", rowid, (("xp", (user_id, xp, 0, normalize_timestamp(last_message))),))
            candidates.setdefault(user_id, []).append(_Candidate((xp, 1), unit, "XP row of this server"))
    if schema.xp_in_users:
        for rowid, _guild, user_id, xp, messages, last_gain, _birthday in dest.placed.get("users", ()):
            xp = xp if type(xp) is int and xp > 0 else 0
            messages = messages if type(messages) is int and messages > 0 else 0
            if xp == 0 and messages == 0:
                continue  # the row is here for its birthday
            unit = Unit("users", rowid, (("xp", (user_id, xp, messages, normalize_timestamp(last_gain))),))
            candidates.setdefault(user_id, []).append(_Candidate((xp, 0), unit, "larger global XP"))
    _keep_winners(candidates, content)


# --- birthdays and check-ins --------------------------------------------------------------------

def _birthday_unit(table: str, rowid: int, user_id: int, text: object, announced_year: object,
                   created_at: object, now: str) -> Unit:
    month, day, year = parse_birthday(text)
    rows: list[tuple[str, tuple[object, ...]]] = [
        ("birthdays", (user_id, month, day, year, normalize_timestamp(created_at) or now))]
    year_announced = _whole_number(announced_year)
    if year_announced is not None and 1900 <= year_announced <= 9999:
        # The old bot announced this year already: the new one must not announce again.
        # It did not record the hour, so midnight of the day stands for it.
        local_day = celebration_day(month, day, year_announced)
        rows.append(("birthday_celebrations",
                     (user_id, year_announced, local_day, f"{local_day}T00:00:00+00:00")))
    return Unit(table, rowid, tuple(rows))


def _birthdays(dest: Destination, schema: LegacySchema, content: Content, now: str) -> None:
    candidates: dict[int, list[_Candidate]] = {}

    def offer(table: str, rowid: int, user_id: object, text: object, announced: object, created: object,
              rank: tuple[object, ...], description: str) -> None:
        if not is_member_id(user_id):
            content.hold(table, rowid, f"user {user_id!r} is not a Discord id")
            return
        try:
            unit = _birthday_unit(table, rowid, user_id, text, announced, created, now)
        except ValueError as error:
            content.hold(table, rowid, str(error))
            return
        candidates.setdefault(user_id, []).append(_Candidate(rank, unit, description))

    for own, (rowid, _guild, user_id, text, announced, created) in _both(dest, "birthdays"):
        offer("birthdays", rowid, user_id, text, announced, created, (2 if own else 1, rowid),
              "birthday of this server" if own else "newer birthday")
    if schema.has_column("users", "birthday"):
        for rowid, _guild, user_id, _xp, _messages, _gain, text in dest.placed.get("users", ()):
            if text is not None and text != "":
                offer("users", rowid, user_id, text, None, None, (0, rowid),
                      "birthday in the birthdays table")
    _keep_winners(candidates, content)


def _checkins(dest: Destination, content: Content) -> None:
    candidates: dict[int, list[_Candidate]] = {}
    for own, (rowid, _guild, user_id, last_checkin, streak) in _both(dest, "daily_checkins"):
        if not is_member_id(user_id):
            content.hold("daily_checkins", rowid, f"user {user_id!r} is not a Discord id")
            continue
        try:
            day = parse_day(last_checkin)
        except ValueError as error:
            content.hold("daily_checkins", rowid, str(error))
            continue
        streak = streak if type(streak) is int and streak >= 1 else 1
        unit = Unit("daily_checkins", rowid, (
            ("checkins", (user_id, day, streak, streak, streak)),
            ("checkin_days", (user_id, day, 0)),
        ))
        candidates.setdefault(user_id, []).append(_Candidate(
            (1 if own else 0, day, rowid), unit, "check-in of this server" if own else "newer check-in"))
    _keep_winners(candidates, content)


# --- records kept as they were ------------------------------------------------------------------

def _verifications(dest: Destination, content: Content) -> None:
    for _own, row in _both(dest, "verifications"):
        (rowid, _guild, user_id, activision_id, platform, screenshot_url, status, reviewed_by, reviewed_at,
         notes, created_at) = row
        if not is_member_id(user_id):
            content.hold("verifications", rowid, f"user {user_id!r} is not a Discord id")
            continue
        content.units.append(Unit("verifications", rowid, (("game_verifications", (
            rowid, user_id, activision_id, platform, screenshot_url, status or "pending", reviewed_by,
            normalize_timestamp(reviewed_at), notes, normalize_timestamp(created_at))),)))


def _mod_cases(rows: Iterable[Row], content: Content, now: str) -> None:
    """Numbered per server in the order of the legacy ids, from 1."""
    for number, row in enumerate(sorted(rows), start=1):
        (rowid, _guild, user_id, moderator_id, action, reason, duration, channel_id, message_count,
         timestamp, created_at) = row
        at = normalize_timestamp(timestamp) or normalize_timestamp(created_at) or now
        content.units.append(Unit("mod_logs", rowid, (("mod_cases", (
            number, action, user_id, moderator_id, reason, duration, channel_id, message_count, at)),)))


def _appeals(rows: Iterable[Row], content: Content) -> None:
    for row in rows:
        (rowid, _guild, user_id, appeal_text, status, submitted_at, reviewed_by, reviewed_at,
         review_notes) = row
        if not is_member_id(user_id):
            content.hold("appeals", rowid, f"user {user_id!r} is not a Discord id")
            continue
        content.units.append(Unit("appeals", rowid, (("appeals", (
            rowid, user_id, appeal_text, status or "pending", normalize_timestamp(submitted_at), reviewed_by,
            normalize_timestamp(reviewed_at), review_notes)),)))


def _audit(dest: Destination, content: Content, now: str) -> None:
    for _own, row in _both(dest, "audit_log"):
        rowid, _guild, category, action, timestamp, user_id, target_id, channel_id, details, created_at = row
        at = normalize_timestamp(timestamp) or normalize_timestamp(created_at) or now
        content.units.append(Unit("audit_log", rowid, (("audit_log", (
            rowid, at, category, action, user_id, target_id, channel_id, details)),)))


def _roasts(dest: Destination, content: Content) -> None:
    for _own, row in _both(dest, "roast_log"):
        rowid, _guild, user_id, action, target_id, xp_gained, message_content, created_at = row
        if not is_member_id(user_id):
            content.hold("roast_log", rowid, f"user {user_id!r} is not a Discord id")
            continue
        content.units.append(Unit("roast_log", rowid, (("legacy_roast_log", (
            rowid, user_id, target_id, action, xp_gained, message_content,
            normalize_timestamp(created_at))),)))


def layouts_match() -> bool:
    """The tuple unpacking above relies on these row layouts (checked by a unit test)."""
    return {name: TABLES[name].row_layout for name in EXPECTED_LAYOUTS} == EXPECTED_LAYOUTS


EXPECTED_LAYOUTS: dict[str, tuple[str, ...]] = {
    "users": ("rowid", "guild_id", "user_id", "xp", "total_messages", "last_xp_gain", "birthday"),
    "user_xp": ("rowid", "guild_id", "user_id", "xp", "last_message_time"),
    "birthdays": ("rowid", "guild_id", "user_id", "birthday", "announced_year", "created_at"),
    "daily_checkins": ("rowid", "guild_id", "user_id", "last_checkin", "checkin_streak"),
    "verifications": ("rowid", "guild_id", "discord_id", "activision_id", "platform", "screenshot_url",
                      "status", "reviewed_by", "reviewed_at", "notes", "created_at"),
    "roast_log": ("rowid", "guild_id", "user_id", "action", "target_id", "xp_gained", "message_content",
                  "created_at"),
    "settings": ("rowid", "guild_id", "setting_key", "value"),
    "level_roles": ("rowid", "guild_id", "level", "role_id"),
    "mod_logs": ("rowid", "guild_id", "user_id", "moderator_id", "action", "reason", "duration", "channel_id",
                 "message_count", "timestamp", "created_at"),
    "audit_log": ("rowid", "guild_id", "category", "action", "timestamp", "user_id", "target_id",
                  "channel_id", "details", "created_at"),
    "appeals": ("rowid", "guild_id", "user_id", "appeal_text", "status", "submitted_at", "reviewed_by",
                "reviewed_at", "review_notes"),
}
