"""Pure rules of the legacy split: values, settings, the row layouts the builder unpacks, the ledger."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from malabot.features.audit.member_data import audit_member_data
from malabot.features.birthdays.member_data import birthday_member_data
from malabot.features.birthdays.rules import Birthday, render_announcement
from malabot.features.checkins.member_data import checkin_member_data
from malabot.features.moderation.member_data import moderation_member_data
from malabot.features.mydata.member_data import erasure_member_data
from malabot.features.verification.member_data import verification_member_data
from malabot.features.xp.member_data import xp_member_data
from malabot.guild_settings import GuildSettings
from malabot.legacy import writer
from malabot.legacy.mapping import (
    RULES,
    case_time,
    celebration_day,
    map_settings,
    parse_birthday,
    parse_day,
    parse_snowflake,
    parse_toggle,
    translate_placeholders,
)
from malabot.legacy.report import HOLDING_LABEL, Ledger
from malabot.legacy.schema_detect import TABLES

# --- values -------------------------------------------------------------------------------------

def test_old_placeholders_become_new_ones() -> None:
    assert translate_placeholders("{member.mention} / {member.name} / {server.name} / #{member.count}") == (
        "{member} / {member} / {server} / #{member_count}")
    assert translate_placeholders("GG {member.mention}, level {level}") == "GG {member}, level {level}"


@pytest.mark.parametrize(("text", "expected"), [
    ("true", True), ("False", False), (" yes ", True), ("off", False), ("1", True), ("0", False)])
def test_toggles(text: str, expected: bool) -> None:
    assert parse_toggle(text) is expected


def test_a_toggle_must_be_one() -> None:
    with pytest.raises(ValueError, match="not a toggle"):
        parse_toggle("maybe")


def test_ids_are_decimal_and_empty_means_unset() -> None:
    assert parse_snowflake(" 123456789012345678 ") == 123456789012345678
    assert parse_snowflake("") is None and parse_snowflake("None") is None and parse_snowflake("0") is None
    for bad in ("<#123>", "-5", "12a", str(2**63)):
        with pytest.raises(ValueError, match="not a Discord id"):
            parse_snowflake(bad)


SPLIT_DAY = date(2027, 5, 1)


def test_birthdays_are_month_day_with_feb_29_allowed() -> None:
    assert parse_birthday("02-29", SPLIT_DAY) == (2, 29, None, None)
    assert parse_birthday("12-31", SPLIT_DAY) == (12, 31, None, None)
    assert parse_birthday("1990-07-04", SPLIT_DAY) == (7, 4, 1990, None)
    assert parse_birthday("2027-05-01", SPLIT_DAY) == (5, 1, 2027, None)  # born on the day of the split


@pytest.mark.parametrize("text, why", [
    ("1850-07-04", "a birth year before 1900: '1850-07-04' (kept without its year)"),  # the schema's floor
    ("2031-05-01", "a birth date in the future: '2031-05-01' (kept without its year)"),
    ("2027-05-02", "a birth date in the future: '2027-05-02' (kept without its year)"),
])
def test_a_birth_year_the_new_bot_refuses_is_left_out_and_the_day_kept(text: str, why: str) -> None:
    month, day, year, year_left_out = parse_birthday(text, SPLIT_DAY)
    assert (year, year_left_out) == (None, why), "as /birthday set refuses it"
    assert (month, day) == (int(text[5:7]), int(text[8:10]))
    age = Birthday(month, day, year).age_on(date(2031, 5, 1))
    assert render_announcement("Happy {age}th birthday {member}!", 1, age) == "Happy birthday <@1>!"


@pytest.mark.parametrize("text", ["13-01", "02-30", "04-31", "00-10", "2-3", "", "1991-02-29", None, 229])
def test_impossible_birthdays_are_refused(text: object) -> None:
    with pytest.raises(ValueError, match="invalid birthday"):
        parse_birthday(text, SPLIT_DAY)


def test_feb_29_is_celebrated_on_feb_28_in_other_years() -> None:
    assert celebration_day(2, 29, 2023) == "2023-02-28"
    assert celebration_day(2, 29, 2024) == "2024-02-29"
    assert celebration_day(7, 4, 2023) == "2023-07-04"


def test_check_in_days_must_exist() -> None:
    assert parse_day("2024-02-29") == "2024-02-29"
    for bad in ("2023-02-29", "2024-13-01", "01-05-2024", None):
        with pytest.raises(ValueError, match="invalid date"):
            parse_day(bad)


# --- settings -----------------------------------------------------------------------------------

def test_a_server_without_settings_keeps_the_old_defaults() -> None:
    mapped = map_settings({})
    assert mapped.values == {"level_curve": "custom", "xp_min": 10, "xp_max": 10}
    assert mapped.kept == {}


def test_known_keys_map_onto_the_new_settings() -> None:
    mapped = map_settings({
        "xp_per_message": "30", "xp_message_enabled": "false", "xp_channel": "11",
        "xp_levelup_message": "{member.mention} is level {level}", "xp_progression_type": "Gradual",
        "timezone": "Europe/Paris", "birthday_channel": "12", "birthday_time": "18:00",
        "birthday_message": "Happy birthday {member.name}!", "birthday_set_xp": "250",
        "welcome_channel": "13", "welcome_message": "Hi {member.mention}", "welcome_enabled": "false",
        "goodbye_channel": "14", "goodbye_message": "{member.name} left {server.name}",
        "onboarding_role": "15", "verify_role": "16",
    })
    assert mapped.values == {
        "xp_min": 30, "xp_max": 30, "xp_enabled": False, "levelup_channel_id": 11,
        "levelup_template": "{member} is level {level}", "level_curve": "gradual", "timezone": "Europe/Paris",
        "birthday_channel_id": 12, "birthday_hour": 18, "birthday_template": "Happy birthday {member}!",
        "birthday_xp": 250, "welcome_channel_id": 13, "welcome_template": "Hi {member}",
        "goodbye_enabled": True, "goodbye_channel_id": 14, "goodbye_template": "{member} left {server}",
        "autorole_id": 15, "verified_role_id": 16,
    }
    assert mapped.kept == {}
    GuildSettings.model_validate(mapped.values)


def test_keys_without_counterpart_are_kept_verbatim() -> None:
    legacy = {"xp_per_reaction": "2", "welcome_title": "Hey", "role_connections": '{"1": [2, 3]}',
              "mod_role": "77", "verify_channel": "78", "something_new": None}
    mapped = map_settings(legacy)
    assert mapped.kept == legacy
    assert set(mapped.values) == {"level_curve", "xp_min", "xp_max"}


@pytest.mark.parametrize(("key", "value", "why"), [
    ("timezone", "Mars/Olympus", "refused by the new settings (timezone)"),
    ("xp_channel", "#general", "not a Discord id"),
    ("xp_per_message", "20000", "refused by the new settings"),
    ("welcome_enabled", "sometimes", "not a toggle"),
    ("birthday_message", "Happy {server.name} day", "Unknown placeholder {server}"),
    ("birthday_time", "25:00", "not a time HH:MM"),
])
def test_unusable_values_of_known_keys_are_kept_verbatim_with_the_reason(key: str, value: str,
                                                                         why: str) -> None:
    mapped = map_settings({key: value})
    assert mapped.kept == {key: value}
    assert why in mapped.why_kept[key]
    GuildSettings.model_validate(mapped.values)


def test_minutes_of_the_birthday_time_are_kept_beside_the_hour() -> None:
    mapped = map_settings({"birthday_time": "07:45"})
    assert mapped.values["birthday_hour"] == 7
    assert mapped.kept == {"birthday_time": "07:45"}


def test_an_unknown_curve_falls_back_to_the_old_default_and_is_kept() -> None:
    mapped = map_settings({"xp_progression_type": "exponential"})
    assert mapped.values["level_curve"] == "custom"
    assert mapped.kept == {"xp_progression_type": "exponential"}


def test_birthday_announcements_switched_off_means_no_birthday_channel() -> None:
    mapped = map_settings({"birthday_channel": "12", "birthday_announcements_enabled": "false"})
    assert "birthday_channel_id" not in mapped.values
    assert mapped.kept == {"birthday_channel": "12"}
    assert map_settings({"birthday_channel": "12", "birthday_announcements_enabled": "true"}).values[
        "birthday_channel_id"] == 12


def test_a_welcome_channel_without_a_toggle_means_welcomes_were_sent() -> None:
    assert map_settings({"welcome_channel": "13"}).values["welcome_enabled"] is True
    assert "welcome_enabled" not in map_settings({"welcome_channel": "13", "welcome_enabled": "false"}).values


def test_every_rule_targets_a_real_setting() -> None:
    fields = set(GuildSettings.model_fields)
    for key in RULES:
        assert key not in fields or key in {"timezone", "welcome_enabled"}


# The row layouts the builder's tuple unpacking (malabot/legacy/build.py) relies on.
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


def test_the_builder_unpacks_rows_in_the_readers_layout() -> None:
    assert {name: TABLES[name].row_layout for name in EXPECTED_LAYOUTS} == EXPECTED_LAYOUTS


# --- the ledger ---------------------------------------------------------------------------------

def test_a_row_read_but_never_placed_is_unaccounted() -> None:
    ledger = Ledger()
    ledger.add_read("users", [1, 2, 3, 4])
    ledger.record("1001", {"users": {1}}, [])
    ledger.record("1002", {"users": {1}}, [])      # the same global row in two servers counts once
    ledger.record(HOLDING_LABEL, {"users": {2}}, [])
    ledger.hold("users", 3, "profile only")

    assert ledger.unaccounted() == {"users": 1}
    totals = ledger.totals()["users"]
    assert (totals.read, totals.written, totals.holding, dict(totals.held)) == (4, 1, 1, {"profile only": 1})

    ledger.record("1001", {}, [("users", 4, "superseded")])
    assert ledger.unaccounted() == {}


def test_written_somewhere_wins_over_held_elsewhere() -> None:
    ledger = Ledger()
    ledger.add_read("birthdays", [7])
    ledger.record("1001", {}, [("birthdays", 7, "superseded")])
    ledger.record("1002", {"birthdays": {7}}, [])

    assert ledger.totals()["birthdays"].written == 1
    assert ledger.totals()["birthdays"].held == {}
    assert ledger.destinations["1001"].held_reasons("birthdays") == {"superseded": 1}
    assert ledger.destinations["1002"].written["birthdays"] == 1


def test_a_row_written_and_held_in_one_server_counts_as_written_there() -> None:
    ledger = Ledger()
    ledger.add_read("users", [5])
    ledger.record("1001", {"users": {5}}, [("users", 5, "birthday superseded"), ("users", 5, "again")])

    assert ledger.destinations["1001"].held_reasons("users") == {}
    assert ledger.totals()["users"].written == 1


def test_what_a_written_row_leaves_behind_is_counted_apart_from_the_held_rows() -> None:
    ledger = Ledger()
    ledger.add_read("users", [5, 6])
    ledger.record("1001", {"users": {5}}, [("users", 5, "invalid birthday '02-30'"), ("users", 6, "superseded")])
    ledger.record("1002", {"users": {5}}, [("users", 5, "invalid birthday '02-30'")])  # the same global row

    totals = ledger.totals()["users"]
    assert (totals.written, dict(totals.held)) == (1, {"superseded": 1})
    assert dict(totals.partly) == {"invalid birthday '02-30'": 1}  # each legacy row once
    assert ledger.destinations["1001"].partly_held("users") == {"invalid birthday '02-30'": 1}
    assert ledger.unaccounted() == {}


def test_rows_recorded_but_never_read_are_reported() -> None:
    ledger = Ledger()
    ledger.add_read("users", [1])
    ledger.record("1001", {"users": {1, 2}}, [])
    assert ledger.strays() == {"users": 1}


# --- members who erased their data ----------------------------------------------------------------

def test_a_merge_treats_an_erased_members_columns_as_the_bot_does_on_erasure() -> None:
    handlers = [audit_member_data(), moderation_member_data(), verification_member_data(),
                birthday_member_data(), xp_member_data(), checkin_member_data(), erasure_member_data()]
    merged = {(table, column) for handler in handlers for table, column in handler.covers
              if table in writer.TARGET_COLUMNS}
    changed = {(table, column) for handler in handlers for table, column in handler.changes
               if table in writer.TARGET_COLUMNS}
    subject = {(table, column) for table, columns in writer.ERASED_SUBJECT.items() for column in columns}
    actor = {(table, column) for table, columns in writer.ERASED_ACTOR_COLUMNS.items() for column in columns}
    assert subject | actor == changed and not subject & actor
    assert merged - changed == {("mod_cases", "target_id")}  # kept by the bot: written by a merge too
    assert all(column.endswith(("moderator_id", "reviewer_id", "actor_id")) for _table, column in actor)


@pytest.mark.parametrize(("stored", "read"), [
    ("2024-03-01T10:00:00+00:00", "2024-03-01T10:00:00+00:00"),
    ("2024-03-01 12:00:00+02:00", "2024-03-01T10:00:00+00:00"),
    ("2024-03-01 10:00", "2024-03-01T10:00:00+00:00"),              # no offset: UTC, as the old bot's
    (1709287200, "2024-03-01T10:00:00+00:00"),                       # Unix seconds
    (1709287200.5, "2024-03-01T10:00:00.500000+00:00"),
    (" 1709287200 ", "2024-03-01T10:00:00+00:00"),                   # kept as text
    (1709287200123, "2024-03-01T10:00:00.123000+00:00"),             # milliseconds
    (1420070400, "2015-01-01T00:00:00+00:00"),                       # Discord's first second
    (1420070399, None), (2024, None), ("20240301", None),            # before Discord: something else
    ("yesterday", None), ("", None), (None, None), (True, None), ("nan", None), (float("inf"), None),
    (10**30, None), (b"2024-03-01", None),
    (20240301100000, None), ("2026-11-25 12:00:01", None),           # after the split: something else
    ("2026-11-25 12:00:00", "2026-11-25T12:00:00+00:00"),
])
def test_case_times_are_read_as_the_bot_reads_them(stored: object, read: str | None) -> None:
    assert case_time(stored, not_after=datetime(2026, 11, 25, 12, 0, tzinfo=UTC)) == read
