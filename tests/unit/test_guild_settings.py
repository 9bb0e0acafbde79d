"""Per-server settings validate every value and store only what differs from the defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from malabot.errors import UserInputError
from malabot.features.settings.service import describe_settings_error
from malabot.guild_settings import GuildSettings, check_roles_kept_apart


def test_defaults_are_the_documented_numbers() -> None:
    settings = GuildSettings()
    assert (settings.xp_min, settings.xp_max, settings.xp_cooldown_seconds) == (15, 25, 60)
    assert settings.level_curve == "standard"
    assert (settings.checkin_base_xp, settings.checkin_streak_bonus_xp, settings.checkin_bonus_cap_days) == (50, 10, 7)
    assert (settings.birthday_hour, settings.birthday_xp, settings.timezone) == (9, 100, "UTC")
    assert settings.stored_values() == {}


def test_only_changed_values_are_stored() -> None:
    settings = GuildSettings().changed(timezone="Europe/Berlin", no_xp_channel_ids=[5, 5, 6])
    assert settings.stored_values() == {"timezone": "Europe/Berlin", "no_xp_channel_ids": [5, 6]}
    assert GuildSettings.model_validate(settings.stored_values()) == settings


@pytest.mark.parametrize(("changes", "fragment"), [
    ({"timezone": "Mars/Olympus"}, "unknown timezone 'Mars/Olympus'"),
    ({"birthday_hour": 24}, "birthday_hour"),
    ({"xp_min": 30, "xp_max": 20}, "`xp_min` (30) must not exceed `xp_max` (20)."),
    ({"level_curve": "steep"}, "level_curve"),
    ({"mod_log_channel_id": -4}, "must be a Discord id"),
    ({"unknown_key": 1}, "unknown_key"),
])
def test_invalid_changes_are_refused_with_the_reason(changes: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError) as caught:
        GuildSettings().changed(**changes)
    assert fragment in describe_settings_error(caught.value)


@pytest.mark.parametrize(("name", "template", "fragment"), [
    ("levelup_template", "{member} hit {lvl}", "Unknown placeholder {lvl}"),
    ("birthday_template", "Happy {member.__class__}", "Unknown placeholder {member.__class__}"),
    ("welcome_template", "Hi {member", "unmatched"),
])
def test_templates_with_unknown_placeholders_are_refused(name: str, template: str, fragment: str) -> None:
    with pytest.raises(ValidationError) as caught:
        GuildSettings().changed(**{name: template})
    assert fragment in describe_settings_error(caught.value)


def test_many_problems_are_described_by_the_first_few_and_how_many_more() -> None:
    with pytest.raises(ValidationError) as caught:
        GuildSettings().changed(warn_thresholds=[{}] * 1500)  # each entry lacks count, days and action
    assert describe_settings_error(caught.value) == (
        "warn_thresholds.0.count: Field required; warn_thresholds.0.days: Field required; "
        "warn_thresholds.0.action: Field required; … and 4,497 more")


def test_templates_with_known_placeholders_are_accepted() -> None:
    settings = GuildSettings().changed(levelup_template="{member} is now {level} on {server}",
                                       birthday_template="{member} turns {age}")
    assert settings.levelup_template.startswith("{member}")


def test_invalid_stored_values_fall_back_to_defaults_key_by_key() -> None:
    from malabot.features.settings.service import settings_from_stored

    settings = settings_from_stored(1, {"timezone": "Europe/Paris", "birthday_hour": 99, "unknown": True,
                                        "levelup_template": "{nope}"})
    assert settings.timezone == "Europe/Paris"
    assert settings.birthday_hour == 9
    assert settings.levelup_template == GuildSettings().levelup_template


def test_one_role_stored_as_both_verified_and_unverified_loses_only_the_unverified_one() -> None:
    # What two admins choosing at the same moment could store before the rule was checked under the lock.
    from malabot.features.settings.service import settings_from_stored
    settings = settings_from_stored(1, {"verified_role_id": 5, "unverified_role_id": 5, "timezone": "Europe/Paris"})
    assert (settings.verified_role_id, settings.unverified_role_id, settings.timezone) == (5, None, "Europe/Paris")


def test_one_role_stored_for_role_settings_that_work_against_each_other_is_kept() -> None:
    # Stored before the rule existed (the old bot allowed it): the rule is about changes, so every
    # role loads as stored, and an unrelated /config set stores them again unchanged.
    from malabot.features.settings.service import settings_from_stored
    settings = settings_from_stored(1, {"verified_role_id": 5, "birthday_role_id": 5, "autorole_id": 5,
                                        "unverified_role_id": 6, "timezone": "Europe/Paris"})
    assert (settings.verified_role_id, settings.birthday_role_id, settings.autorole_id,
            settings.unverified_role_id, settings.timezone) == (5, 5, 5, 6, "Europe/Paris")


@pytest.mark.parametrize(("changed", "refused"), [
    ({"autorole_id"}, True),
    ({"verified_role_id"}, True),
    ({"birthday_role_id"}, False),   # its own role, 6, is not the verified or auto-role
    ({"xp_max", "timezone"}, False),  # a change of other settings keeps the stored pair
    (set(), False),
])
def test_roles_kept_apart_are_checked_for_the_settings_that_change(changed: set[str], refused: bool) -> None:
    settings = GuildSettings(autorole_id=5, verified_role_id=5, birthday_role_id=6)
    if refused:
        with pytest.raises(UserInputError, match="`autorole_id` and `verified_role_id` must be different roles"):
            check_roles_kept_apart(settings, changed)
    else:
        check_roles_kept_apart(settings, changed)


def test_a_stored_xp_range_out_of_order_loses_only_the_range() -> None:
    # A file edited by hand: the other settings must survive, or the next /config set would store
    # every default over them.
    from malabot.features.settings.service import settings_from_stored
    settings = settings_from_stored(1, {"xp_min": 50, "xp_max": 10, "timezone": "Europe/Berlin",
                                        "level_curve": "gradual", "birthday_hour": 7})
    assert (settings.xp_min, settings.xp_max) == (15, 25)
    assert (settings.timezone, settings.level_curve, settings.birthday_hour) == ("Europe/Berlin", "gradual", 7)
    alone = settings_from_stored(1, {"xp_min": 50, "timezone": "Europe/Berlin"})   # above the default xp_max
    assert (alone.xp_min, alone.timezone) == (15, "Europe/Berlin")


def test_timezone_names_are_matched_whatever_their_case() -> None:
    assert GuildSettings(timezone="asia/kolkata").timezone == "Asia/Kolkata"
    assert GuildSettings(timezone="Utc").timezone == "UTC"
    with pytest.raises(ValueError, match="unknown timezone 'LOCALTIME'"):
        GuildSettings(timezone="LOCALTIME")


def test_every_server_setting_is_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    missing = [name for name in GuildSettings.model_fields if f"`{name}`" not in readme]
    assert missing == [], f"README.md does not document {missing}"
