"""Welcome rules: template rendering and refusals, and the join/leave plans built from settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from malabot.errors import UserInputError
from malabot.features.welcome import rules
from malabot.features.welcome.rules import ChannelMessage
from malabot.guild_settings import GuildSettings

MEMBER = {"member": "<@5>", "server": "Mala", "member_count": 42}


def test_render_welcome_fills_every_placeholder() -> None:
    text = rules.render_welcome("{member} joined {server}, now {member_count} strong", kind="welcome", **MEMBER)
    assert text == "<@5> joined Mala, now 42 strong"


def test_default_templates_are_acceptable() -> None:
    defaults = GuildSettings()
    for kind, name in rules.TEMPLATE_SETTINGS.items():
        assert "{" not in rules.render_welcome(getattr(defaults, name), kind=kind, **MEMBER)


@pytest.mark.parametrize("kind", sorted(rules.TEMPLATE_SETTINGS))
@pytest.mark.parametrize("template", ["Hi {user}", "{member.name}", "{server[0]}", "{level}"])
def test_unknown_placeholders_are_refused_listing_the_allowed_ones(kind: rules.MessageKind, template: str) -> None:
    allowed = r"Allowed placeholders: \{member\}, \{server\}, \{member_count\}"
    with pytest.raises(ValidationError, match=allowed):   # what /config set checks before storing
        GuildSettings().changed(**{rules.TEMPLATE_SETTINGS[kind]: template})
    with pytest.raises(UserInputError, match=allowed):
        rules.render_welcome(template, kind=kind, **MEMBER)


def test_nothing_is_planned_by_default() -> None:
    plan = rules.plan_join(GuildSettings(), **MEMBER)
    assert plan == rules.JoinPlan()
    assert rules.plan_leave(GuildSettings(), **MEMBER) == rules.LeavePlan()


def test_full_join_plan() -> None:
    settings = GuildSettings(welcome_enabled=True, welcome_channel_id=100, welcome_template="Hey {member}",
                             welcome_dm_enabled=True, welcome_dm_template="Welcome to {server}!",
                             autorole_id=200)
    plan = rules.plan_join(settings, **MEMBER)
    assert plan == rules.JoinPlan(channel_message=ChannelMessage(100, "Hey <@5>"),
                                  dm_text="Welcome to Mala!", autorole_id=200)


def test_dm_and_autorole_work_without_a_channel_message() -> None:
    settings = GuildSettings(welcome_dm_enabled=True, autorole_id=200)
    plan = rules.plan_join(settings, **MEMBER)
    assert plan.channel_message is None
    assert plan.dm_text == "Welcome to Mala, <@5>!"
    assert plan.autorole_id == 200 and plan.problems == ()


def test_enabled_without_a_channel_is_reported_not_sent() -> None:
    plan = rules.plan_join(GuildSettings(welcome_enabled=True), **MEMBER)
    assert plan.channel_message is None
    assert plan.problems == ("welcome_enabled is on but welcome_channel_id is not set.",)
    leave = rules.plan_leave(GuildSettings(goodbye_enabled=True), **MEMBER)
    assert leave.channel_message is None and "goodbye_channel_id" in leave.problems[0]


def test_goodbye_plan() -> None:
    settings = GuildSettings(goodbye_enabled=True, goodbye_channel_id=300)
    plan = rules.plan_leave(settings, member="Alice", server="Mala", member_count=41)
    assert plan == rules.LeavePlan(channel_message=ChannelMessage(300, "Alice left Mala."))


def test_a_stored_bad_template_falls_back_to_the_default_and_says_why() -> None:
    # Settings validate templates, so only a file edited behind the bot's back could hold this one.
    settings = GuildSettings.model_construct(**{**GuildSettings().model_dump(), "welcome_enabled": True,
                                                "welcome_channel_id": 100, "welcome_template": "Hi {user}"})
    plan = rules.plan_join(settings, **MEMBER)
    assert plan.channel_message == ChannelMessage(100, "Welcome to Mala, <@5>! You are member #42.")
    assert len(plan.problems) == 1
    assert plan.problems[0].startswith("welcome_template: Unknown placeholder {user}.")


# -- the auto-role and Membership Screening --------------------------------------------------------


def test_the_auto_role_is_given_to_a_member_past_screening_who_lacks_it() -> None:
    assert rules.autorole_to_give(7, [], pending=False) == 7
    assert rules.autorole_to_give(7, [3, 4], pending=False) == 7


def test_the_auto_role_waits_while_the_member_is_pending() -> None:
    # Discord lets a pending member who is given any role skip the server's rules
    assert rules.autorole_to_give(7, [], pending=True) is None


def test_no_auto_role_when_none_is_set_or_the_member_holds_it() -> None:
    assert rules.autorole_to_give(None, [], pending=False) is None
    assert rules.autorole_to_give(7, [3, 7], pending=False) is None


def test_an_auto_role_that_is_the_unverified_role_is_not_given_to_a_verified_member() -> None:
    assert rules.autorole_to_give(7, [], pending=False, verified=True, unverified_role_id=7) is None
    assert rules.autorole_to_give(7, [], pending=False, verified=False, unverified_role_id=7) == 7
    assert rules.autorole_to_give(7, [], pending=False, verified=True, unverified_role_id=8) == 7, \
        "any other auto-role is for verified members too"
    assert not rules.marks_unverified(None, None)


@pytest.mark.parametrize(("was_pending", "is_pending", "passed"), [
    (True, False, True),     # they accepted the rules
    (True, True, False),     # another change while still pending
    (False, False, False),   # any later update: screening ended long ago (or never applied)
    (False, True, False),
])
def test_screening_ends_on_the_update_from_pending_to_not(was_pending: bool, is_pending: bool,
                                                          passed: bool) -> None:
    assert rules.passed_screening(was_pending, is_pending) is passed
