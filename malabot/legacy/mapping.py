"""Pure translation rules from the legacy bot's values to the new schema. No I/O.

Settings: legacy key → GuildSettings field
| legacy key                     | new setting          | rule                                            |
|--------------------------------|----------------------|-------------------------------------------------|
| xp_per_message                 | xp_min, xp_max       | both = the value (the old bot gave fixed XP);   |
|                                |                      | absent → 10, the old default                    |
| xp_message_enabled             | xp_enabled           | toggle                                          |
| xp_channel                     | levelup_channel_id   | id                                              |
| xp_levelup_message             | levelup_template     | placeholders translated                         |
| xp_progression_type            | level_curve          | basic / gradual / custom; absent → custom (the  |
|                                |                      | old default); unknown → custom + kept verbatim  |
| timezone                       | timezone             | IANA name, validated                            |
| birthday_channel               | birthday_channel_id  | id                                              |
| birthday_time                  | birthday_hour        | HH:MM → HH; kept verbatim too when MM ≠ 00      |
| birthday_message               | birthday_template    | placeholders translated                         |
| birthday_announcements_enabled | birthday_channel_id  | "false" → no channel (no announcements); the    |
|                                |                      | old channel is kept verbatim                    |
| birthday_set_xp                | birthday_xp          | whole number                                    |
| welcome_channel                | welcome_channel_id   | id                                              |
| welcome_message                | welcome_template     | placeholders translated                         |
| welcome_enabled                | welcome_enabled      | toggle; absent → on when a channel is set       |
| goodbye_channel                | goodbye_channel_id   | id; also goodbye_enabled (the old bot had no    |
|                                |                      | toggle: a channel meant goodbyes were sent)     |
| goodbye_message                | goodbye_template     | placeholders translated                         |
| onboarding_role                | autorole_id          | id                                              |
| verify_role                    | verified_role_id     | id                                              |
Kept verbatim in `legacy_settings` (no counterpart): xp_per_reaction, xp_per_voice_minute,
birthday_pending_role, welcome_title, welcome_image, goodbye_title, verify_channel (the new review
channel changes behaviour, so it is not guessed), cheater_role, cheater_jail_channel, mod_role,
role_connections, protected_roles, and every key this table does not know. A known key whose value
cannot be used (not an id, unknown timezone, a template with placeholders the new bot cannot fill) is
kept verbatim as well, never dropped.

Ids are decimal strings; "", "0", "none" and "null" mean "not set". Toggles accept true/false,
yes/no, on/off, 1/0. Template placeholders: {member.mention} and {member.name} → {member},
{server.name} → {server}, {member.count} → {member_count}.
"""

from __future__ import annotations

import calendar
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from pydantic import ValidationError

from malabot import templates
from malabot.errors import UserInputError
from malabot.features.birthdays.rules import EARLIEST_YEAR, celebration_date, validate_birthday
from malabot.features.xp.rules import MAX_TOTAL_XP
from malabot.guild_settings import (
    TEMPLATE_PLACEHOLDERS,
    GuildSettings,
    roles_not_kept_apart,
    settings_at_fault,
)
from malabot.snowflakes import DISCORD_EPOCH_MS, snowflake_from_text

OLD_PLACEHOLDERS = {
    "{member.mention}": "{member}",
    "{member.name}": "{member}",
    "{server.name}": "{server}",
    "{member.count}": "{member_count}",
}

OLD_DEFAULT_XP_PER_MESSAGE = 10
OLD_DEFAULT_CURVE = "custom"
LEGACY_CURVES = ("basic", "gradual", "custom")

_UNSET = {"", "0", "none", "null"}
_TRUE = {"true", "yes", "on", "1", "enabled"}
_FALSE = {"false", "no", "off", "0", "disabled"}
# Every 'MM-DD' a birthday can be (February 29 included) → (month, day).
_MONTH_DAYS = {f"{month:02d}-{day:02d}": (month, day)
               for month in range(1, 13) for day in range(1, calendar.monthrange(2000, month)[1] + 1)}
_HOUR_MINUTE = re.compile(r"^(\d{1,2}):(\d{2})$")


# --- values -------------------------------------------------------------------------------------

def translate_placeholders(template: str) -> str:
    for old, new in OLD_PLACEHOLDERS.items():
        template = template.replace(old, new)
    return template


def parse_toggle(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"not a toggle: {text!r}")


def parse_snowflake(text: str) -> int | None:
    """A Discord id, or None when the old bot stored "not set"."""
    value = text.strip()
    if value.lower() in _UNSET:
        return None
    number = snowflake_from_text(value)
    if number is None:
        raise ValueError(f"not a Discord id: {text!r}")
    return number


def parse_whole_number(text: str) -> int:
    value = text.strip()
    if not re.fullmatch(r"-?\d{1,18}", value):
        raise ValueError(f"not a whole number: {text!r}")
    return int(value)


def legacy_xp(value: object) -> int | None:
    """XP as the old bot stored it: whole, or with a fraction where an `xp_multiplier` applied.
    Rounded down, which keeps every level (thresholds are whole numbers). None for what is not XP,
    and for more than a member may hold (MAX_TOTAL_XP; a REAL may be beyond any SQLite integer)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value <= MAX_TOTAL_XP else None
    if isinstance(value, float) and 0 <= value <= MAX_TOTAL_XP:
        return math.floor(value)
    return None


def why_not_xp(value: object) -> str:
    """Why legacy_xp(value) is None, for the report."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > MAX_TOTAL_XP:
        return f"XP {value!r} is more than a member may hold ({MAX_TOTAL_XP:,})"
    return f"XP {value!r} is not a number from 0 up"


def parse_birthday(text: object, today: date) -> tuple[int, int, int | None, str | None]:
    """(month, day, year, why the year is left out) of a legacy birthday: 'MM-DD' (Feb 29 allowed) or
    'YYYY-MM-DD'; ValueError for a day that does not exist. A year `/birthday set` would refuse on
    `today` (before 1900, or a birth date still to come) is left out with the reason, for the report:
    the day itself is still right."""
    month_day = _MONTH_DAYS.get(text) if isinstance(text, str) else None  # the common case, one lookup
    if month_day is not None:
        return (*month_day, None, None)
    if not isinstance(text, str):
        raise ValueError(f"invalid birthday {text!r}")
    value = text.strip()
    year: int | None = None
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        year, value = int(value[:4]), value[5:]
    month_day = _MONTH_DAYS.get(value)
    if month_day is None:
        raise ValueError(f"invalid birthday {text!r}")
    if year is None:
        return (*month_day, None, None)
    if not calendar.isleap(year) and month_day == (2, 29):
        raise ValueError(f"invalid birthday {text!r}")
    try:
        validate_birthday(*month_day, year, today)
    except UserInputError:
        refused = f"a birth year before {EARLIEST_YEAR}" if year < EARLIEST_YEAR else "a birth date in the future"
        return (*month_day, None, f"{refused}: {text!r} (kept without its year)")
    return (*month_day, year, None)


def celebration_day(month: int, day: int, year: int) -> str:
    """The date a birthday was celebrated in `year` (Feb 29 → Feb 28 in other years), ISO text."""
    return celebration_date(month, day, year).isoformat()


def parse_day(text: object) -> str:
    """A legacy 'YYYY-MM-DD' date, checked; ValueError when it is not one."""
    if isinstance(text, str) and len(text) == 10 and text[4] == "-" and text[7] == "-":
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError:
            pass
    raise ValueError(f"invalid date {text!r}")


def case_time(value: object, *, not_after: datetime) -> str | None:
    """A legacy moderation time as the ISO UTC text the bot reads (it dates every case it lists, and
    counts warnings by it); None when it is not a time. The old bot may have stored Unix seconds or
    milliseconds (TIMESTAMP columns keep `int(time.time())` as a number), not from before Discord (a
    number that small is something else); a time without an offset is UTC. A time after `not_after`
    (the split) was something else too: a compact `20240301100000` read as milliseconds is in 2611."""
    moment = _case_moment(value)
    return None if moment is None or moment > not_after else moment.isoformat()


def _case_moment(value: object) -> datetime | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text)
        except ValueError:
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                return None
            return (moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment).astimezone(UTC)
    if not isinstance(value, int | float) or not value >= DISCORD_EPOCH_MS / 1000:  # `not >=`: nan too
        return None
    seconds = value / 1000 if value >= DISCORD_EPOCH_MS else value
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (ValueError, OverflowError, OSError):  # inf, or beyond the years a datetime holds
        return None


# --- settings -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class MappedSettings:
    """One server's legacy settings, translated."""

    values: dict[str, object]           # non-default GuildSettings values, JSON-ready
    decided: dict[str, object]          # every value the legacy keys decide, defaults included
    kept: dict[str, str | None]         # legacy_settings rows: key → the value verbatim
    why_kept: dict[str, str]            # legacy key → why it is (also) kept verbatim
    sources: dict[str, tuple[str, ...]] = field(default_factory=dict)  # new field → legacy keys
    # Role settings naming one role, which the bot no longer lets an admin set: kept as the old bot had
    # them (it worked that way), and reported as "a = b: why".
    roles_shared: tuple[str, ...] = ()

    def rows(self, updated_at: str) -> list[tuple[str, str, str]]:
        return [(key, json.dumps(value), updated_at) for key, value in sorted(self.values.items())]


@dataclass
class _Draft:
    fields: dict[str, object] = field(default_factory=dict)
    sources: dict[str, list[str]] = field(default_factory=dict)
    kept: dict[str, str | None] = field(default_factory=dict)
    why_kept: dict[str, str] = field(default_factory=dict)
    birthday_announcements: bool | None = None

    def set(self, legacy_key: str, name: str, value: object) -> None:
        self.fields[name] = value
        self.sources.setdefault(name, []).append(legacy_key)

    def keep(self, legacy_key: str, value: str | None, why: str) -> None:
        self.kept[legacy_key] = value
        self.why_kept.setdefault(legacy_key, why)

    def withdraw(self, legacy_key: str) -> None:
        """Forget every field `legacy_key` set (it is kept verbatim instead)."""
        for name, keys in list(self.sources.items()):
            if legacy_key in keys:
                self.fields.pop(name, None)
                del self.sources[name]


Rule = Callable[[_Draft, str, str], None]


def _id_rule(name: str) -> Rule:
    def rule(draft: _Draft, key: str, raw: str) -> None:
        draft.set(key, name, parse_snowflake(raw))
    return rule


def _toggle_rule(name: str) -> Rule:
    def rule(draft: _Draft, key: str, raw: str) -> None:
        draft.set(key, name, parse_toggle(raw))
    return rule


def _number_rule(name: str) -> Rule:
    def rule(draft: _Draft, key: str, raw: str) -> None:
        draft.set(key, name, parse_whole_number(raw))
    return rule


def _template_rule(name: str) -> Rule:
    def rule(draft: _Draft, key: str, raw: str) -> None:
        translated = translate_placeholders(raw)
        try:
            templates.placeholders(translated, TEMPLATE_PLACEHOLDERS[name])
        except UserInputError as error:
            raise ValueError(str(error)) from None
        draft.set(key, name, translated)
    return rule


def _xp_per_message(draft: _Draft, key: str, raw: str) -> None:
    amount = parse_whole_number(raw)
    draft.set(key, "xp_min", amount)
    draft.set(key, "xp_max", amount)


def _curve(draft: _Draft, key: str, raw: str) -> None:
    curve = raw.strip().lower()
    if curve in LEGACY_CURVES:
        draft.set(key, "level_curve", curve)
    else:
        draft.set(key, "level_curve", OLD_DEFAULT_CURVE)
        draft.keep(key, raw, f"unknown curve; the old default {OLD_DEFAULT_CURVE!r} is used")


def _timezone(draft: _Draft, key: str, raw: str) -> None:
    draft.set(key, "timezone", raw.strip())


def _birthday_time(draft: _Draft, key: str, raw: str) -> None:
    match = _HOUR_MINUTE.match(raw.strip())
    if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise ValueError(f"not a time HH:MM: {raw!r}")
    draft.set(key, "birthday_hour", int(match.group(1)))
    if int(match.group(2)) != 0:
        draft.keep(key, raw, f"minutes are not supported; announced at {int(match.group(1)):02d}:00")


def _birthday_announcements(draft: _Draft, key: str, raw: str) -> None:
    draft.birthday_announcements = parse_toggle(raw)  # applied with the old defaults, see below


RULES: dict[str, Rule] = {
    "xp_per_message": _xp_per_message,
    "xp_message_enabled": _toggle_rule("xp_enabled"),
    "xp_channel": _id_rule("levelup_channel_id"),
    "xp_levelup_message": _template_rule("levelup_template"),
    "xp_progression_type": _curve,
    "timezone": _timezone,
    "birthday_channel": _id_rule("birthday_channel_id"),
    "birthday_time": _birthday_time,
    "birthday_message": _template_rule("birthday_template"),
    "birthday_announcements_enabled": _birthday_announcements,
    "birthday_set_xp": _number_rule("birthday_xp"),
    "welcome_channel": _id_rule("welcome_channel_id"),
    "welcome_message": _template_rule("welcome_template"),
    "welcome_enabled": _toggle_rule("welcome_enabled"),
    "goodbye_channel": _id_rule("goodbye_channel_id"),
    "goodbye_message": _template_rule("goodbye_template"),
    "onboarding_role": _id_rule("autorole_id"),
    "verify_role": _id_rule("verified_role_id"),
}


def map_settings(legacy: Mapping[str, str | None]) -> MappedSettings:
    """Translate one server's effective legacy settings (its own keys plus the global defaults)."""
    draft = _Draft()
    for key, raw in sorted(legacy.items()):
        rule = RULES.get(key)
        if rule is None:
            draft.keep(key, raw, "no counterpart in the new settings")
        elif raw is None:
            draft.keep(key, raw, "no value")
        else:
            try:
                rule(draft, key, raw)
            except ValueError as error:
                draft.keep(key, raw, f"value not usable: {error}")
    _apply_old_behaviour(draft, legacy)
    settings = _validated(draft, legacy)
    every_value = settings.model_dump(mode="json")
    return MappedSettings(
        values=settings.stored_values(), decided={name: every_value[name] for name in draft.sources},
        kept=dict(draft.kept), why_kept=dict(draft.why_kept),
        sources={name: tuple(keys) for name, keys in draft.sources.items()},
        roles_shared=shared_role_lines(settings))


def shared_role_lines(settings: GuildSettings) -> tuple[str, ...]:
    """The role settings that name one role, as the report lists them: "a = b: why"."""
    return tuple(f"{name} = {other}: {why}" for name, other, why in roles_not_kept_apart(settings))


def _apply_old_behaviour(draft: _Draft, legacy: Mapping[str, str | None]) -> None:
    """What the old bot did for keys a server never set, made explicit so that nothing changes."""
    if "xp_per_message" not in legacy:
        draft.set("xp_per_message", "xp_min", OLD_DEFAULT_XP_PER_MESSAGE)
        draft.set("xp_per_message", "xp_max", OLD_DEFAULT_XP_PER_MESSAGE)
    if "level_curve" not in draft.fields:
        draft.set("xp_progression_type", "level_curve", OLD_DEFAULT_CURVE)
    if "welcome_enabled" not in legacy and draft.fields.get("welcome_channel_id") is not None:
        draft.set("welcome_channel", "welcome_enabled", True)
    if draft.fields.get("goodbye_channel_id") is not None:
        draft.set("goodbye_channel", "goodbye_enabled", True)
    if draft.birthday_announcements is False and draft.fields.get("birthday_channel_id") is not None:
        draft.set("birthday_announcements_enabled", "birthday_channel_id", None)
        draft.keep("birthday_channel", legacy.get("birthday_channel"),
                   "birthday announcements were switched off; the channel is kept for reference")


def _validated(draft: _Draft, legacy: Mapping[str, str | None]) -> GuildSettings:
    """The settings model; a field it refuses sends its legacy key(s) to legacy_settings instead."""
    while True:
        try:
            return GuildSettings.model_validate(draft.fields)
        except ValidationError as error:
            refused = settings_at_fault(error)
            culprits = {key for name in refused for key in draft.sources.get(name, ())}
            if not culprits:
                raise
            for key in culprits:
                draft.withdraw(key)
                if key in legacy:
                    fields = ", ".join(sorted(refused))
                    draft.keep(key, legacy[key], f"value refused by the new settings ({fields})")
