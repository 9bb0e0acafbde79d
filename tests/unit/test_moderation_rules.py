"""Moderation rules: durations, hierarchy, permissions, option values, thresholds, mod-log rendering."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from malabot.errors import PermissionRefused, UserInputError
from malabot.features.moderation import rules
from malabot.features.moderation.models import Case, NewCase, Party
from malabot.guild_settings import WarnThreshold

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)

# ---------------------------------------------------------------------------------------------------
# parse_duration


@pytest.mark.parametrize(("text", "expected"), [
    ("10m", timedelta(minutes=10)),
    ("2h", timedelta(hours=2)),
    ("7d", timedelta(days=7)),
    ("1h30m", timedelta(hours=1, minutes=30)),
    ("90s", timedelta(seconds=90)),
    ("1d 12h", timedelta(days=1, hours=12)),
    ("  2H ", timedelta(hours=2)),
    ("1s", timedelta(seconds=1)),
    ("28d", timedelta(days=28)),
    ("27d23h59m60s", timedelta(days=28)),
])
def test_parse_duration_accepts(text: str, expected: timedelta) -> None:
    assert rules.parse_duration(text) == expected


def test_28_days_and_one_second_is_refused_as_too_long() -> None:
    with pytest.raises(UserInputError, match="too long: the most is 28d"):
        rules.parse_duration("28d1s")


@pytest.mark.parametrize("text", ["0s", "0m", "0d0h"])
def test_zero_durations_are_refused(text: str) -> None:
    with pytest.raises(UserInputError, match="longer than zero"):
        rules.parse_duration(text)


@pytest.mark.parametrize("text", ["", "   ", "abc", "10x", "m10", "1.5h", "-5m", "10 minutes", "1h30",
                                  "١٠m", "h", "1w"])
def test_garbage_durations_are_refused_with_the_hint(text: str) -> None:
    with pytest.raises(UserInputError, match="Use a duration like 10m"):
        rules.parse_duration(text)


def test_a_bare_number_is_told_it_lacks_a_unit() -> None:
    with pytest.raises(UserInputError, match="has no unit"):
        rules.parse_duration("10")


def test_a_repeated_unit_is_refused() -> None:
    with pytest.raises(UserInputError, match="unit h twice"):
        rules.parse_duration("1h1h")


def test_an_enormous_number_is_refused_without_overflow() -> None:
    with pytest.raises(UserInputError):
        rules.parse_duration("9" * 25 + "d")
    with pytest.raises(UserInputError, match="not a duration"):
        rules.parse_duration("9" * 5000 + "d")


def test_a_custom_maximum_is_respected() -> None:
    assert rules.parse_duration("1h", maximum=timedelta(hours=1)) == timedelta(hours=1)
    with pytest.raises(UserInputError, match="the most is 1h"):
        rules.parse_duration("61m", maximum=timedelta(hours=1))


@pytest.mark.parametrize(("duration", "text"), [
    (timedelta(0), "0s"),
    (timedelta(seconds=90), "1m 30s"),
    (timedelta(days=1, hours=2, minutes=30), "1d 2h 30m"),
    (timedelta(days=28), "28d"),
])
def test_format_duration(duration: timedelta, text: str) -> None:
    assert rules.format_duration(duration) == text


# ---------------------------------------------------------------------------------------------------
# check_target

OWNER = 1
MOD = Party(user_id=10, top_role_position=5)
BOT = Party(user_id=99, top_role_position=8)


def test_a_member_below_both_is_accepted() -> None:
    rules.check_target(MOD, Party(20, 4), BOT, OWNER)
    rules.check_target(MOD, Party(20, 0), BOT, OWNER)


def test_acting_on_yourself_is_refused() -> None:
    with pytest.raises(PermissionRefused, match="^You cannot do that to yourself.$"):
        rules.check_target(MOD, Party(10, 5), BOT, OWNER)


def test_acting_on_the_owner_is_refused_even_by_id_only() -> None:
    with pytest.raises(PermissionRefused, match="^You cannot do that to the server owner.$"):
        rules.check_target(MOD, Party(OWNER, 0), BOT, OWNER)
    with pytest.raises(PermissionRefused, match="the server owner"):
        rules.check_target(MOD, Party(2, 0, is_owner=True), BOT, OWNER)


def test_acting_on_the_bot_is_refused() -> None:
    with pytest.raises(PermissionRefused, match="^You cannot do that to the bot.$"):
        rules.check_target(MOD, Party(99, 0), BOT, OWNER)


@pytest.mark.parametrize("position", [5, 6])
def test_a_target_not_below_the_actor_is_refused(position: int) -> None:
    with pytest.raises(PermissionRefused, match=r"<@20>: their top role is not below yours\.$"):
        rules.check_target(MOD, Party(20, position), BOT, OWNER)


@pytest.mark.parametrize("position", [8, 9])
def test_a_target_not_below_the_bot_is_refused(position: int) -> None:
    owner = Party(OWNER, 10, is_owner=True)
    refusal = r"^I cannot do that to <@20>: their top role is not below mine\.$"
    with pytest.raises(PermissionRefused, match=refusal):
        rules.check_target(owner, Party(20, position), BOT, OWNER)


def test_the_owner_outranks_every_role_but_not_the_bot_limit() -> None:
    owner_with_low_role = Party(OWNER, 0)
    rules.check_target(owner_with_low_role, Party(20, 7), BOT, OWNER)
    with pytest.raises(PermissionRefused, match="not below mine"):
        rules.check_target(owner_with_low_role, Party(20, 8), BOT, OWNER)


def test_the_actor_limit_is_reported_before_the_bot_limit() -> None:
    with pytest.raises(PermissionRefused, match="not below yours"):
        rules.check_target(MOD, Party(20, 9), BOT, OWNER)


def test_on_a_shared_position_the_older_role_ranks_higher() -> None:
    # Discord (and py-cord's Role ordering) break a tie of positions by id: the smaller id is higher.
    older, younger = Party(20, 8, top_role_id=100), Party(21, 8, top_role_id=200)
    assert rules.is_below(younger, older) and not rules.is_below(older, younger)
    assert not rules.is_below(older, older), "the same role is not below itself"
    assert rules.is_below(Party(22, 7, top_role_id=1), older), "the position comes first"


def test_a_younger_role_at_the_bots_position_is_below_the_bot() -> None:
    owner, bot = Party(OWNER, 10, is_owner=True), Party(99, 8, top_role_id=500)
    rules.check_target(owner, Party(20, 8, top_role_id=501), bot, OWNER)
    with pytest.raises(PermissionRefused, match="not below mine"):
        rules.check_target(owner, Party(20, 8, top_role_id=499), bot, OWNER)


def test_a_younger_role_at_the_moderators_position_is_below_theirs() -> None:
    mod = Party(10, 5, top_role_id=300)
    rules.check_target(mod, Party(20, 5, top_role_id=301), BOT, OWNER)
    for same_or_older in (300, 299):
        with pytest.raises(PermissionRefused, match="not below yours"):
            rules.check_target(mod, Party(20, 5, top_role_id=same_or_older), BOT, OWNER)


# ---------------------------------------------------------------------------------------------------
# permissions


def test_bot_permissions_per_action() -> None:
    rules.check_bot_permissions("warn", [])
    rules.check_bot_permissions("ban", ["ban_members"])
    with pytest.raises(PermissionRefused, match="^I need the Timeout Members permission to do that.$"):
        rules.check_bot_permissions("timeout", ["kick_members"])
    with pytest.raises(PermissionRefused,
                       match="^I need the Manage Messages and Read Message History permissions to do that.$"):
        rules.check_bot_permissions("purge", [])


def test_moderator_permissions_per_action() -> None:
    rules.check_moderator_permissions("kick", {"kick_members"})
    with pytest.raises(PermissionRefused, match="^You need the Ban Members permission to do that.$"):
        rules.check_moderator_permissions("unban", {"kick_members"})


def test_every_case_action_has_permission_entries() -> None:
    from malabot.features.moderation.models import CASE_ACTIONS

    assert set(rules.BOT_PERMISSIONS) == set(CASE_ACTIONS) == set(rules.MODERATOR_PERMISSIONS)


# ---------------------------------------------------------------------------------------------------
# option values


@pytest.mark.parametrize(("typed", "expected"), [
    ("123456789012345678", 123456789012345678),
    (" <@123456789012345678> ", 123456789012345678),
    ("<@!42>", 42),
])
def test_user_ids_as_typed(typed: str, expected: int) -> None:
    assert rules.parse_user_id(typed) == expected


@pytest.mark.parametrize("typed", [
    "", "carol", "0", "-5", "12.5", str(2**63), "<@abc>",
    "²", "¹²³", "<@²>", "１２",  # digits other than 0-9: str.isdigit() accepts them
])
def test_what_is_not_a_user_id(typed: str) -> None:
    with pytest.raises(UserInputError, match="is not a user id"):
        rules.parse_user_id(typed)


@pytest.mark.parametrize("count", [1, 50, 100])
def test_purge_count_in_range(count: int) -> None:
    assert rules.check_purge_count(count) == count


@pytest.mark.parametrize("count", [0, -1, 101])
def test_purge_count_out_of_range(count: int) -> None:
    with pytest.raises(UserInputError, match="between 1 and 100"):
        rules.check_purge_count(count)


def test_bulk_delete_cutoff_is_14_days_back() -> None:
    assert rules.bulk_delete_cutoff(NOW) == NOW - timedelta(days=14)


@pytest.mark.parametrize("message_type", [1, 2, 3, 4, 5, 21])
def test_system_messages_discord_never_deletes(message_type: int) -> None:
    # recipient add/remove, call, channel name/icon change, thread starter: Discord answers 403/50021
    assert not rules.is_deletable_type(message_type)


@pytest.mark.parametrize("message_type", [0, 6, 7, 8, 18, 19, 20, 46])
def test_other_messages_are_deletable(message_type: int) -> None:
    # default, pin notice, join, boost, thread created, reply, slash command answer, poll result
    assert rules.is_deletable_type(message_type)


def test_delete_message_days() -> None:
    assert rules.check_delete_message_days(0) == 0
    assert rules.check_delete_message_days(7) == 7
    for bad in (-1, 8):
        with pytest.raises(UserInputError, match="between 0 and 7"):
            rules.check_delete_message_days(bad)


def test_reasons_are_trimmed_limited_and_optional_unless_required() -> None:
    assert rules.normalise_reason("  spam  ") == "spam"
    assert rules.normalise_reason("   ") is None
    assert rules.normalise_reason(None) is None
    assert rules.normalise_reason("x" * 512) == "x" * 512
    with pytest.raises(UserInputError, match="513 characters"):
        rules.normalise_reason("x" * 513)
    with pytest.raises(UserInputError, match="Give a reason"):
        rules.normalise_reason(" ", required=True)


# ---------------------------------------------------------------------------------------------------
# thresholds


def ago(**delta: float) -> datetime:
    return NOW - timedelta(**delta)


def test_no_thresholds_or_too_few_warnings_escalate_nothing() -> None:
    assert rules.escalation_for([ago(days=1)] * 5, [], NOW) is None
    three_in_week = WarnThreshold(count=3, days=7, action="kick")
    assert rules.escalation_for([ago(days=1), ago(days=2)], [three_in_week], NOW) is None


def test_warnings_outside_the_window_do_not_count_and_the_edge_does() -> None:
    threshold = WarnThreshold(count=3, days=7, action="kick")
    assert rules.escalation_for([ago(days=1), ago(days=2), ago(days=7, seconds=1)], [threshold], NOW) is None
    reached = rules.escalation_for([ago(days=1), ago(days=2), ago(days=7)], [threshold], NOW)
    assert reached is not None
    assert (reached.action, reached.warnings, reached.duration) == ("kick", 3, None)
    assert reached.reason == "Automatic kick: 3 warnings within 7 days."


def test_a_threshold_of_one_warning_in_one_day_reads_in_the_singular() -> None:
    reached = rules.escalation_for([ago(hours=1)], [WarnThreshold(count=1, days=1, action="kick")], NOW)
    assert reached is not None and reached.reason == "Automatic kick: 1 warning within 1 day."


def test_the_strictest_reached_threshold_wins() -> None:
    thresholds = [
        WarnThreshold(count=2, days=30, action="timeout", timeout_minutes=60),
        WarnThreshold(count=3, days=30, action="ban"),
        WarnThreshold(count=3, days=30, action="kick"),
        WarnThreshold(count=3, days=30, action="timeout", timeout_minutes=600),
        WarnThreshold(count=9, days=30, action="ban"),
    ]
    two = rules.escalation_for([ago(days=1)] * 2, thresholds, NOW)
    assert two is not None and (two.action, two.duration) == ("timeout", timedelta(hours=1))
    three = rules.escalation_for([ago(days=1)] * 3, thresholds, NOW)
    assert three is not None and three.action == "ban" and three.threshold == thresholds[1]


def test_the_longest_timeout_wins_among_timeouts_and_a_missing_length_uses_the_default() -> None:
    thresholds = [  # the longest listed last: the first one listed must not win for being first
        WarnThreshold(count=1, days=1, action="timeout", timeout_minutes=30),
        WarnThreshold(count=1, days=1, action="timeout"),
    ]
    reached = rules.escalation_for([ago(hours=1)], thresholds, NOW)
    assert reached is not None
    assert reached.duration == rules.DEFAULT_ESCALATION_TIMEOUT == timedelta(hours=1)
    assert reached.threshold == thresholds[1]


def test_a_threshold_keeps_applying_to_further_warnings_in_the_window() -> None:
    threshold = WarnThreshold(count=2, days=1, action="timeout", timeout_minutes=10)
    reached = rules.escalation_for([ago(hours=3), ago(hours=2), ago(hours=1)], [threshold], NOW)
    assert reached is not None and reached.warnings == 3


def test_a_threshold_timeout_gives_way_only_to_a_longer_running_timeout() -> None:
    half_hour = rules.Escalation("timeout", WarnThreshold(count=1, days=1, action="timeout", timeout_minutes=30),
                                 1, timedelta(minutes=30))
    kick = rules.Escalation("kick", WarnThreshold(count=1, days=1, action="kick"), 1)
    week = NOW + timedelta(days=7)
    assert rules.longer_timeout(half_hour, week, NOW) == week
    assert rules.longer_timeout(half_hour, NOW + timedelta(minutes=30), NOW) is None   # same end: applied
    assert rules.longer_timeout(half_hour, NOW + timedelta(minutes=5), NOW) is None
    assert rules.longer_timeout(half_hour, None, NOW) is None
    assert rules.longer_timeout(kick, week, NOW) is None                               # not a timeout


def test_threshold_window_is_the_longest() -> None:
    assert rules.threshold_window([]) is None
    assert rules.threshold_window([WarnThreshold(count=1, days=3, action="kick"),
                                   WarnThreshold(count=1, days=30, action="ban")]) == timedelta(days=30)


# ---------------------------------------------------------------------------------------------------
# rendering


def test_render_timeout_case() -> None:
    case = Case(case_number=7, action="timeout", created_at=NOW, target_id=20, moderator_id=10,
                reason="spam", duration_seconds=5400, expires_at=NOW + timedelta(seconds=5400))
    embed = rules.render_case(case)
    assert embed["title"] == "Case #7 · Timeout"
    assert embed["color"] == rules.ACTION_COLOURS["timeout"]
    assert embed["timestamp"] == NOW.isoformat()
    fields = {field["name"]: field["value"] for field in embed["fields"]}
    assert fields == {
        "Member": "<@20> (`20`)",
        "Moderator": "<@10> (`10`)",
        "Duration": "1h 30m",
        "Ends": f"<t:{int((NOW + timedelta(seconds=5400)).timestamp())}:f>",
        "Reason": "spam",
    }


def test_render_purge_case_and_erased_moderator_and_long_reason() -> None:
    case = Case(case_number=1, action="purge", created_at=NOW, moderator_id=None, channel_id=5,
                message_count=12, reason="y" * 2000)
    fields = {field["name"]: field["value"] for field in rules.render_case(case)["fields"]}
    assert fields["Channel"] == "<#5>"
    assert fields["Messages"] == "12"
    assert fields["Moderator"] == "unknown (data erased)"
    assert "Member" not in fields
    assert len(fields["Reason"]) == 1024 and fields["Reason"].endswith("…")


def test_render_unknown_legacy_action_and_no_reason() -> None:
    case = Case(case_number=3, action="soft_ban", created_at=NOW, target_id=20, moderator_id=10)
    embed = rules.render_case(case)
    assert embed["title"] == "Case #3 · Soft ban"
    assert {field["name"]: field["value"] for field in embed["fields"]}["Reason"] == "No reason given."


def test_render_case_text() -> None:
    warn = Case(case_number=4, action="warn", created_at=NOW, target_id=20, moderator_id=10, reason="rude")
    stamp = f"<t:{int(NOW.timestamp())}:f>"
    assert rules.render_case_text(warn) == f"#4 Warning · <@20> · {stamp} · by <@10>: rude"
    removed = Case(case_number=4, action="warn", created_at=NOW, target_id=20, moderator_id=None,
                   removed_at=NOW)
    assert rules.render_case_text(removed) == f"~~#4 Warning · <@20> · {stamp} · by unknown~~ (removed)"


@pytest.mark.parametrize(("count", "shown"), [(1, "1 message"), (2, "2 messages"), (100, "100 messages")])
def test_render_purge_case_text_counts_its_messages(count: int, shown: str) -> None:
    purge = Case(case_number=2, action="purge", created_at=NOW, moderator_id=10, channel_id=5, message_count=count)
    stamp = f"<t:{int(NOW.timestamp())}:f>"
    assert rules.render_case_text(purge) == f"#2 Purge · {shown} · in <#5> · {stamp} · by <@10>"


# ---------------------------------------------------------------------------------------------------
# check_duration and check_action


def test_check_duration_for_computed_durations() -> None:
    assert rules.check_duration(timedelta(days=28)) == timedelta(days=28)
    with pytest.raises(UserInputError, match="“28d 1s” is too long"):
        rules.check_duration(timedelta(days=28, seconds=1))
    for bad in (timedelta(0), timedelta(seconds=-5)):
        with pytest.raises(UserInputError, match="longer than zero"):
            rules.check_duration(bad)


def test_check_action_reports_the_moderator_first_then_the_bot_then_the_hierarchy() -> None:
    target = Party(20, 9)  # above both: would be refused by the hierarchy
    with pytest.raises(PermissionRefused, match="^You need the Kick Members"):
        rules.check_action("kick", actor=MOD, target=target, bot=BOT, owner_id=OWNER,
                           actor_permissions=[], bot_permissions=[])
    with pytest.raises(PermissionRefused, match="^I need the Kick Members"):
        rules.check_action("kick", actor=MOD, target=target, bot=BOT, owner_id=OWNER,
                           actor_permissions=["kick_members"], bot_permissions=[])
    with pytest.raises(PermissionRefused, match="not below yours"):
        rules.check_action("kick", actor=MOD, target=target, bot=BOT, owner_id=OWNER,
                           actor_permissions=["kick_members"], bot_permissions=["kick_members"])
    rules.check_action("kick", actor=MOD, target=Party(20, 1), bot=BOT, owner_id=OWNER,
                       actor_permissions=["kick_members"], bot_permissions=["kick_members"])


def test_check_action_without_a_target_skips_the_hierarchy() -> None:
    rules.check_action("unban", actor=MOD, target=None, bot=BOT, owner_id=OWNER,
                       actor_permissions=["ban_members"], bot_permissions=["ban_members"])


def test_a_purge_of_your_own_the_bots_or_the_owners_messages_skips_the_hierarchy() -> None:
    # Manage Messages knows no role hierarchy; a purge of the whole channel deletes these messages too.
    allowed = {"actor_permissions": ["manage_messages"],
               "bot_permissions": ["manage_messages", "read_message_history"]}
    owner_by_flag = Party(2, 12, is_owner=True)
    for target in (Party(10, 5), Party(99, 8), Party(OWNER, 12), owner_by_flag):
        rules.check_action("purge", actor=MOD, target=target, bot=BOT, owner_id=OWNER, **allowed)
    with pytest.raises(PermissionRefused, match="not below yours"):  # a senior member stays refused
        rules.check_action("purge", actor=MOD, target=Party(20, 6), bot=BOT, owner_id=OWNER, **allowed)
    with pytest.raises(PermissionRefused, match="^You cannot do that to the bot.$"):  # other actions as before
        rules.check_action("kick", actor=MOD, target=Party(99, 8), bot=BOT, owner_id=OWNER,
                           actor_permissions=["kick_members"], bot_permissions=["kick_members"])


def test_a_timeout_sent_to_discord_stays_a_clock_margin_inside_28_days() -> None:
    assert rules.timeout_to_send(timedelta(hours=2)) == timedelta(hours=2)
    assert rules.timeout_to_send(rules.MAX_TIMEOUT) == rules.MAX_TIMEOUT - timedelta(minutes=1)


# ---------------------------------------------------------------------------------------------------
# an action carried out on Discord whose case could not be recorded


def test_an_unrecorded_action_renders_without_a_number() -> None:
    draft = NewCase(action="timeout", created_at=NOW, target_id=20, moderator_id=10, reason="spam",
                    duration_seconds=600, expires_at=NOW + timedelta(minutes=10))
    embed = rules.render_case(draft)
    assert embed["title"] == "Not recorded (no case number) · Timeout"
    assert {field["name"]: field["value"] for field in embed["fields"]}["Duration"] == "10m"
    stamp = f"<t:{int(NOW.timestamp())}:f>"
    assert rules.render_case_text(draft) == \
        f"(not recorded (no case number)) Timeout · <@20> · 10m · {stamp} · by <@10>: spam"


def test_applied_sentence_with_and_without_a_case() -> None:
    assert rules.applied_sentence("<@1> was kicked.", 3) == "Case #3: <@1> was kicked."
    assert rules.applied_sentence("deleted 2 messages.", None, "the disk is full") == (
        "Deleted 2 messages. Its case could not be recorded (the disk is full): it has no case number and "
        "is not in `/warnings list`.")
    reached = "Warn threshold reached (3 warnings within 7 days)"
    assert rules.applied_sentence("<@1> was banned automatically.", 9, threshold=reached) == \
        f"{reached}: case #9, <@1> was banned automatically."
    assert rules.applied_sentence("<@1> was banned automatically.", None, "why", threshold=reached) == (
        f"{reached}: <@1> was banned automatically. Its case could not be recorded (why): it has no case "
        "number and is not in `/warnings list`.")
