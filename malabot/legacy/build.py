"""One destination's new rows (a server's tenant file, or the holding file) from its legacy rows.

Pure: no I/O. The input is the rows of the server's own scope (`own`) and the global rows placed
there by evidence (`placed`). The output is the new rows per target table, each with the legacy row
it came from (its origin), plus the legacy rows meant for this destination that are held back, each
with its reason.

Where two legacy rows give the same member's XP, birthday or check-in, one wins: a row of the
server's own scope beats a global one; then the larger XP, the newer check-in day, the newer row.
The losers are held back as "superseded", never merged silently.

Target rows are tuples in the column order of writer.TARGET_COLUMNS. Timestamps in SQLite's
CURRENT_TIMESTAMP form arrive as ISO text (the reader's query converts them, see schema_detect.ISO_UTC),
anything else as stored; a case's time, which the bot reads, is converted or replaced (mapping.case_time).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

from malabot.legacy.evidence import is_member_id
from malabot.legacy.mapping import (
    MappedSettings,
    case_time,
    celebration_day,
    legacy_xp,
    map_settings,
    parse_birthday,
    parse_day,
    why_not_xp,
)
from malabot.legacy.reader import Row
from malabot.legacy.schema_detect import LegacySchema, Variant

SCRATCH_XP = "global variant: written only by birthday XP and never read by the old bot"
PROFILE_ONLY = "profile only (no XP, messages or birthday)"

Origin = tuple[str, int]                      # (legacy table, rowid)
TargetRow = tuple[object, ...]


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

    def add_placed(self, table: str, row: Row) -> None:
        self.placed.setdefault(table, []).append(row)


@dataclass
class Content:
    """The new rows of one file, by target table, with the origin of each row."""

    rows: dict[str, list[TargetRow]] = field(default_factory=dict)
    origins: dict[str, list[Origin]] = field(default_factory=dict)
    sources: dict[str, list[int]] = field(default_factory=dict)  # legacy table → rowids used
    held: list[tuple[str, int, str]] = field(default_factory=list)  # (legacy table, rowid, reason)
    settings: SettingsPlan | None = None

    def target(self, table: str) -> tuple[list[TargetRow], list[Origin]]:
        """The row and origin lists of a target table, to append to in step."""
        return self.rows.setdefault(table, []), self.origins.setdefault(table, [])

    def source(self, table: str) -> list[int]:
        """The list of legacy rowids of `table` used, to append to with each new row made from one."""
        return self.sources.setdefault(table, [])

    def hold(self, table: str, rowid: int, reason: str) -> None:
        self.held.append((table, rowid, reason))

    def origins_by_table(self) -> dict[str, set[int]]:
        """The legacy rows that made it into this content, by legacy table."""
        return {table: set(rowids) for table, rowids in self.sources.items()}

    def units(self) -> list[tuple[Origin, list[tuple[str, TargetRow]]]]:
        """The new rows grouped by the legacy row they came from (for writing one by one)."""
        grouped: dict[Origin, list[tuple[str, TargetRow]]] = {}
        for table, rows in self.rows.items():
            for origin, row in zip(self.origins[table], rows, strict=True):
                grouped.setdefault(origin, []).append((table, row))
        return list(grouped.items())


# A contestant: (rank, origin, new rows as ((target table, row), …), what it is for the loser's
# reason). A plain tuple: hundreds of thousands are made, and the higher rank wins.
_Candidate = tuple[tuple[object, ...], Origin, tuple[tuple[str, TargetRow], ...], str]


class _Contest:
    """One row per member wins; every loser is held back naming what beat it."""

    def __init__(self, content: Content) -> None:
        self._content = content
        self._best: dict[int, _Candidate] = {}
        self._left_behind: dict[Origin, str] = {}

    def offer(self, user_id: int, candidate: _Candidate, left_behind: str | None = None) -> None:
        """`left_behind`: the part of the row its new rows leave out, held back if it wins."""
        if left_behind is not None:
            self._left_behind[candidate[1]] = left_behind
        current = self._best.setdefault(user_id, candidate)
        if current is candidate:
            return
        winner, loser = (candidate, current) if candidate[0] > current[0] else (current, candidate)
        self._best[user_id] = winner
        self._content.hold(*loser[1], f"superseded by the member's {winner[3]}")

    def finish(self) -> None:
        """The winners' rows go into the content."""
        content = self._content
        targets: dict[str, tuple[list[TargetRow], list[Origin]]] = {}
        used: dict[str, list[int]] = {}
        for _rank, origin, new_rows, _description in self._best.values():
            table, rowid = origin
            left_behind = self._left_behind.get(origin)
            if left_behind is not None:
                content.hold(table, rowid, left_behind)
            rowids = used.get(table)
            if rowids is None:
                rowids = used[table] = []
            rowids.append(rowid)
            for target, row in new_rows:
                lists = targets.get(target)
                if lists is None:
                    lists = targets[target] = content.target(target)
                lists[0].append(row)
                lists[1].append(origin)
        for table, rowids in used.items():
            content.source(table).extend(rowids)


def build(dest: Destination, schema: LegacySchema, now: str) -> Content:
    content = Content()
    content.settings = _settings(dest)
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


def _both(dest: Destination, table: str) -> Iterator[tuple[bool, Row]]:
    """(is_own, row) for the server's own rows, then the global rows placed here."""
    for row in dest.own.get(table, ()):
        yield True, row
    for row in dest.placed.get(table, ()):
        yield False, row


def _all_rows(dest: Destination, table: str) -> list[Row]:
    # Rows in their table's row_layout (schema_detect.TABLES), which the unpacking below relies on;
    # tests/unit/test_legacy_mapping.py pins those layouts.
    return dest.own.get(table, []) + dest.placed.get(table, [])


# --- settings -----------------------------------------------------------------------------------

def _settings(dest: Destination) -> SettingsPlan | None:
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
    out, origins = content.target("legacy_settings")
    used = content.source("settings")
    for rowid, _guild, key, value in rows:
        out.append((key, value))
        origins.append(("settings", rowid))
        used.append(rowid)


# --- XP and level roles -------------------------------------------------------------------------

def _level_roles(rows: Iterable[Row], content: Content) -> None:
    out, origins = content.target("level_roles")
    used = content.source("level_roles")
    level_of_role: dict[object, object] = {}
    for rowid, _guild, level, role_id in sorted(rows, key=lambda row: (_sortable(row[2]), row[0])):
        if type(level) is not int or level < 1:
            content.hold("level_roles", rowid, f"level {level!r} is not a level from 1 up")
        elif not is_member_id(role_id):
            content.hold("level_roles", rowid, f"role {role_id!r} is not a Discord id")
        elif role_id in level_of_role:
            content.hold("level_roles", rowid, f"role already given at level {level_of_role[role_id]}")
        else:
            level_of_role[role_id] = level
            out.append((level, role_id))
            origins.append(("level_roles", rowid))
            used.append(rowid)


def _xp(dest: Destination, schema: LegacySchema, content: Content) -> None:
    contest = _Contest(content)
    # In the global variant user_xp is scratch; in a half-way file both may be real: the larger wins.
    xp_rows_are_real = schema.variant is not Variant.GLOBAL
    for rowid, _guild, user_id, xp, last_message in dest.own.get("user_xp", ()):
        if not xp_rows_are_real:
            content.hold("user_xp", rowid, SCRATCH_XP)
        elif not is_member_id(user_id):
            content.hold("user_xp", rowid, f"user {user_id!r} is not a Discord id")
        elif (whole := legacy_xp(xp)) is None:
            content.hold("user_xp", rowid, why_not_xp(xp))
        else:
            row = (user_id, whole, 0, last_message)
            candidate = ((whole, 1), ("user_xp", rowid), (("xp", row),), "XP row of this server")
            contest.offer(user_id, candidate)
    if schema.xp_in_users:
        for rowid, _guild, user_id, xp, messages, last_gain, _birthday in dest.placed.get("users", ()):
            if not is_member_id(user_id):  # 0 or negative: --assign-unknown places it without evidence
                content.hold("users", rowid, f"user {user_id!r} is not a Discord id")
                continue
            whole = legacy_xp(xp)
            if whole is None and xp is not None:  # named; the row's messages and birthday still count
                content.hold("users", rowid, why_not_xp(xp))
            xp = whole or 0
            messages = messages if type(messages) is int and messages > 0 else 0
            if xp or messages:  # otherwise the row is here for its birthday only
                row = (user_id, xp, messages, last_gain)
                candidate = ((xp, 0), ("users", rowid), (("xp", row),), "larger global XP")
                contest.offer(user_id, candidate)
    contest.finish()


def _sortable(value: object) -> int:
    return value if isinstance(value, int) else 0


def _whole_number(value: object) -> int | None:
    """An int, also from the digits-only text a non-strict legacy column may hold."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


# --- birthdays and check-ins --------------------------------------------------------------------

def _birthday_rows(user_id: int, text: object, announced_year: object, created_at: object,
                   today: date) -> tuple[tuple[tuple[str, TargetRow], ...], str | None]:
    """The new rows of a legacy birthday, and what of it they leave out (a year the new bot refuses).
    A birthday with no time it was set (the users table's column) keeps None there: the writer
    stamps it, and never lets it replace a birthday a merged file has."""
    month, day, year, year_left_out = parse_birthday(text, today)
    birthday = ("birthdays", (user_id, month, day, year, created_at or None))
    year_announced = _whole_number(announced_year)
    if year_announced is None or not 1900 <= year_announced <= 9999:
        return (birthday,), year_left_out
    # The old bot announced this year already: the new one must not announce again.
    # It did not record the hour, so midnight of the day stands for it.
    local_day = celebration_day(month, day, year_announced)
    announced_at = f"{local_day}T00:00:00+00:00"
    celebrated = ("birthday_celebrations", (user_id, year_announced, local_day, announced_at))
    return (birthday, celebrated), year_left_out


def _birthdays(dest: Destination, schema: LegacySchema, content: Content, now: str) -> None:
    contest = _Contest(content)
    today = date.fromisoformat(now[:10])  # the split's UTC day: a birth date after it is refused

    def offer(table: str, rowid: int, user_id: object, text: object, announced: object, created: object,
              rank: tuple[object, ...], description: str) -> None:
        if not is_member_id(user_id):
            content.hold(table, rowid, f"user {user_id!r} is not a Discord id")
            return
        try:
            rows, year_left_out = _birthday_rows(user_id, text, announced, created, today)
        except ValueError as error:
            content.hold(table, rowid, str(error))
            return
        contest.offer(user_id, (rank, (table, rowid), rows, description), year_left_out)

    for own, (rowid, _guild, user_id, text, announced, created) in _both(dest, "birthdays"):
        offer("birthdays", rowid, user_id, text, announced, created, (2 if own else 1, rowid),
              "birthday of this server" if own else "newer birthday")
    if schema.has_column("users", "birthday"):
        for rowid, _guild, user_id, _xp, _messages, _gain, text in dest.placed.get("users", ()):
            if text is not None and text != "":
                offer("users", rowid, user_id, text, None, None, (0, rowid),
                      "birthday in the birthdays table")
    contest.finish()


def _checkins(dest: Destination, content: Content) -> None:
    contest = _Contest(content)
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
        contest.offer(user_id, (
            (1 if own else 0, day, rowid), ("daily_checkins", rowid),
            (("checkins", (user_id, day, streak, streak, streak)), ("checkin_days", (user_id, day, 0))),
            "check-in of this server" if own else "newer check-in"))
    contest.finish()


# --- records kept as they were ------------------------------------------------------------------

def _verifications(dest: Destination, content: Content) -> None:
    out, origins = content.target("game_verifications")
    used = content.source("verifications")
    for row in _all_rows(dest, "verifications"):
        (rowid, _guild, user_id, activision_id, platform, screenshot_url, status, reviewed_by, reviewed_at,
         notes, created_at) = row
        if not is_member_id(user_id):
            content.hold("verifications", rowid, f"user {user_id!r} is not a Discord id")
            continue
        out.append((rowid, user_id, activision_id, platform, screenshot_url, status or "pending", reviewed_by,
                    reviewed_at, notes, created_at))
        origins.append(("verifications", rowid))
        used.append(rowid)


def _mod_cases(rows: Iterable[Row], content: Content, now: str) -> None:
    """Numbered per server in the order of the legacy ids, from 1."""
    out, origins = content.target("mod_cases")
    used = content.source("mod_logs")
    split_at = datetime.fromisoformat(now)
    for number, row in enumerate(sorted(rows), start=1):
        (rowid, _guild, user_id, moderator_id, action, reason, duration, channel_id, message_count,
         timestamp, created_at) = row
        when = case_time(timestamp, not_after=split_at) or case_time(created_at, not_after=split_at)
        if when is None and (timestamp or created_at):  # the case stays: a warning is not dropped for its date
            content.hold("mod_logs", rowid, "its time is not a date or a Unix time; the case is dated at the split")
        out.append((number, action, user_id, moderator_id, reason, duration, channel_id, message_count,
                    when or now))
        origins.append(("mod_logs", rowid))
        used.append(rowid)


def _appeals(rows: Iterable[Row], content: Content) -> None:
    out, origins = content.target("appeals")
    used = content.source("appeals")
    for row in rows:
        (rowid, _guild, user_id, appeal_text, status, submitted_at, reviewed_by, reviewed_at,
         review_notes) = row
        if not is_member_id(user_id):
            content.hold("appeals", rowid, f"user {user_id!r} is not a Discord id")
            continue
        out.append((rowid, user_id, appeal_text, status or "pending", submitted_at, reviewed_by, reviewed_at,
                    review_notes))
        origins.append(("appeals", rowid))
        used.append(rowid)


def _audit(dest: Destination, content: Content, now: str) -> None:
    out, origins = content.target("audit_log")
    used = content.source("audit_log")
    for row in _all_rows(dest, "audit_log"):
        rowid, _guild, category, action, timestamp, user_id, target_id, channel_id, details, created_at = row
        out.append((rowid, timestamp or created_at or now, category, action, user_id, target_id, channel_id,
                    details))
        origins.append(("audit_log", rowid))
        used.append(rowid)


def _roasts(dest: Destination, content: Content) -> None:
    out, origins = content.target("legacy_roast_log")
    used = content.source("roast_log")
    for row in _all_rows(dest, "roast_log"):
        rowid, _guild, user_id, action, target_id, xp_gained, message_content, created_at = row
        if not is_member_id(user_id):
            content.hold("roast_log", rowid, f"user {user_id!r} is not a Discord id")
            continue
        out.append((rowid, user_id, target_id, action, xp_gained, message_content, created_at))
        origins.append(("roast_log", rowid))
        used.append(rowid)
