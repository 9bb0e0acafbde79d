"""What admins type in /config set becomes typed values, or a sentence saying what was expected."""

from __future__ import annotations

import pytest

from malabot.errors import UserInputError
from malabot.features.settings.parsing import display_value, parse_setting_value, setting_names
from malabot.guild_settings import GuildSettings, WarnThreshold


@pytest.mark.parametrize(("name", "text", "expected"), [
    ("xp_min", " 20 ", 20),
    ("xp_enabled", "off", False),
    ("levelup_enabled", "Yes", True),
    *[("xp_enabled", text, True) for text in ("on", "true", "yes", "enable", "enabled", "1")],
    *[("xp_enabled", text, False) for text in ("off", "false", "no", "disable", "disabled", "0")],
    *[("birthday_channel_id", text, None) for text in ("None", "NONE", "off", "clear", "-", "Not Set")],
    ("level_curve", "Gradual", "gradual"),
    ("levelup_channel_id", "<#123456789012345678>", 123456789012345678),
    ("levelup_channel_id", "none", None),
    ("birthday_role_id", "<@&42>", 42),
    ("no_xp_channel_ids", "<#1>, <#2> 3", (1, 2, 3)),
    ("no_xp_role_ids", "clear", ()),
    ("warn_thresholds", "none", ()),  # README: `none` clears a list
    ("warn_thresholds", "Clear", ()),
    ("timezone", "Europe/Berlin", "Europe/Berlin"),
    ("levelup_template", "{member} is level {level}", "{member} is level {level}"),
    ("warn_thresholds", '[{"count": 3, "days": 7, "action": "kick"}]', [{"count": 3, "days": 7, "action": "kick"}]),
])
def test_values_parse(name: str, text: str, expected: object) -> None:
    value = parse_setting_value(name, text)
    assert value == expected
    GuildSettings().changed(**{name: value})  # and the model accepts it


@pytest.mark.parametrize(("name", "text", "fragment"), [
    ("nonsense", "1", "There is no setting called `nonsense`"),
    ("xp_min", "ten", "must be a whole number"),
    ("xp_enabled", "maybe", "is on or off"),
    ("level_curve", "steep", "must be one of: standard, basic, gradual, custom"),
    ("levelup_channel_id", "general", "needs a #channel"),
    ("no_xp_role_ids", "<@&1> admins", "needs a @role"),
    ("levelup_channel_id", "１２３", "needs a #channel"),             # full-width digits are not an id
    ("birthday_role_id", "<@&١٢٣>", "needs a @role"),
    ("levelup_channel_id", str(2**63), "needs a #channel"),           # past 64 bits
    ("warn_thresholds", "three", "takes a JSON list"),
    ("warn_thresholds", "[" * 3000, "takes a JSON list"),  # nested deeper than the JSON decoder goes
    # More digits than Python converts to an int (4,300): json.loads raises a plain ValueError.
    pytest.param("warn_thresholds", '[{"count": 1' + "0" * 4400 + "}]", "takes a JSON list", id="huge-number"),
])
def test_bad_values_say_what_was_expected(name: str, text: str, fragment: str) -> None:
    with pytest.raises(UserInputError) as caught:
        parse_setting_value(name, text)
    assert fragment in caught.value.message


def test_every_setting_is_parsable_from_its_own_display() -> None:
    settings = GuildSettings().changed(levelup_channel_id=5, no_xp_role_ids=(6, 7), xp_enabled=False)
    for name in setting_names():
        value = getattr(settings, name)
        shown = display_value(name, value)
        assert parse_setting_value(name, shown) == (value if not isinstance(value, tuple) or value else ())


def test_the_summary_of_the_longest_settings_still_names_every_setting_within_one_embed() -> None:
    from malabot.cogs.config import settings_summary

    big_id = 987654321098765432
    ids = {name: big_id for name in setting_names() if name.endswith(("_channel_id", "_role_id"))}
    # As long, but never the verified role.
    ids["unverified_role_id"], ids["birthday_role_id"] = big_id - 1, big_id - 2
    longest = GuildSettings().changed(
        no_xp_channel_ids=tuple(range(big_id, big_id + 200)), no_xp_role_ids=tuple(range(big_id, big_id + 200)),
        warn_thresholds=tuple(WarnThreshold(count=n, days=365, action="ban") for n in range(1, 40)),
        **{name: "{member} " + "x" * 1491 for name in setting_names() if name.endswith("_template")}, **ids)
    summary = settings_summary(longest)
    assert len(summary) <= 4096, "an embed description holds 4,096 characters"
    assert [line.split("`")[1] for line in summary.splitlines()] == setting_names()
    assert "and 195 more" in summary and "(1,500 characters)" in summary
