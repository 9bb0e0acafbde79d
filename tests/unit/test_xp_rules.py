"""XP rules: who earns XP, cooldown, amounts, progress, level-up text, level roles, admin amounts."""

from __future__ import annotations

import random

import pytest
from pydantic import ValidationError

from malabot.errors import UserInputError
from malabot.features.xp.rules import (
    MAX_TOTAL_XP,
    cooldown_over,
    level_progress,
    level_role_changes,
    may_earn_xp,
    render_levelup,
    roll_message_xp,
    total_after_add,
    total_after_remove,
    validate_amount,
    validate_role_level,
)
from malabot.guild_settings import GuildSettings

DEFAULTS = GuildSettings()
QUIET = GuildSettings(no_xp_channel_ids=(11,), no_xp_role_ids=(21, 22))


# --- who earns XP ----------------------------------------------------------------------------------

def test_an_ordinary_member_earns_xp() -> None:
    assert may_earn_xp(QUIET, 10, [20], is_bot=False, is_webhook=False)


@pytest.mark.parametrize(("is_bot", "is_webhook"), [(True, False), (False, True), (True, True)])
def test_bots_and_webhooks_never_earn_xp(is_bot: bool, is_webhook: bool) -> None:
    assert not may_earn_xp(DEFAULTS, 10, [], is_bot=is_bot, is_webhook=is_webhook)


def test_no_xp_channel_and_no_xp_role_block_xp() -> None:
    assert not may_earn_xp(QUIET, 11, [], is_bot=False, is_webhook=False)
    assert not may_earn_xp(QUIET, 10, [5, 22], is_bot=False, is_webhook=False)


def test_xp_switched_off_blocks_everyone() -> None:
    assert not may_earn_xp(DEFAULTS.changed(xp_enabled=False), 10, [], is_bot=False, is_webhook=False)


@pytest.mark.parametrize(("last", "now", "expected"), [
    (None, 0.0, True), (100.0, 159.9, False), (100.0, 160.0, True), (100.0, 100.0, False),
])
def test_cooldown_of_sixty_seconds(last: float | None, now: float, expected: bool) -> None:
    assert cooldown_over(last, now, 60) is expected


def test_zero_cooldown_allows_every_message() -> None:
    assert cooldown_over(100.0, 100.0, 0)


def test_message_xp_stays_within_the_configured_range_and_hits_both_ends() -> None:
    rng = random.Random(7)
    rolled = {roll_message_xp(DEFAULTS, rng) for _ in range(2000)}
    assert rolled == set(range(15, 26))


def test_fixed_message_xp_when_min_equals_max() -> None:
    assert roll_message_xp(DEFAULTS.changed(xp_min=3, xp_max=3), random.Random(1)) == 3


# --- progress --------------------------------------------------------------------------------------

def test_progress_inside_a_level() -> None:
    progress = level_progress("standard", 300)  # level 2 starts at 255, level 3 at 475
    assert (progress.level, progress.xp_into_level, progress.xp_for_level, progress.xp_to_next) == \
        (2, 45, 220, 175)


def test_progress_exactly_at_a_threshold_starts_the_level() -> None:
    progress = level_progress("standard", 100)
    assert (progress.level, progress.xp_into_level, progress.xp_to_next) == (1, 0, 155)


def test_progress_on_the_custom_curve_names_the_level_it_jumps_to() -> None:
    progress = level_progress("custom", 16_000)  # level 25 at 15,050; the next listed one is 30 at 22,000
    assert (progress.level, progress.next_level, progress.xp_into_level, progress.xp_to_next) == (25, 30, 950, 6000)


def test_progress_at_the_top_of_the_custom_curve_has_no_next_level() -> None:
    progress = level_progress("custom", 400_000)  # level 100 at 350,000 is the last
    assert (progress.level, progress.next_level, progress.xp_into_level, progress.xp_for_level,
            progress.xp_to_next) == (100, None, 50_000, 0, 0)


def test_curves_without_an_end_always_have_a_next_level() -> None:
    for curve in ("standard", "basic", "gradual"):
        progress = level_progress(curve, 10**30)
        assert progress.next_level == progress.level + 1 and progress.xp_to_next > 0


# --- level-up message ------------------------------------------------------------------------------

def test_default_levelup_template_renders() -> None:
    assert render_levelup(DEFAULTS.levelup_template, member="<@5>", level=3, server="Mala") == \
        "GG <@5>, you reached level 3!"


def test_every_placeholder_is_filled() -> None:
    text = render_levelup("{member} hit {level} on {server}; well done {member}", member="<@5>", level=12,
                          server="Mala")
    assert text == "<@5> hit 12 on Mala; well done <@5>"


@pytest.mark.parametrize(("template", "words"), [
    ("{user} levelled up", "{user}"),
    ("{member.name}", "{member.name}"),
    ("{member!r}", "{member!r}"),
    ("{level:>999}", "{level:>999}"),
    ("{}", "unnamed"),
    ("level {level", "unmatched"),
])
def test_unknown_or_unsafe_placeholders_are_refused_with_a_clear_message(template: str, words: str) -> None:
    with pytest.raises(ValidationError) as refused:   # what /config set checks before storing
        DEFAULTS.changed(levelup_template=template)
    assert words in str(refused.value)
    with pytest.raises(UserInputError) as raised:
        render_levelup(template, member="<@5>", level=1, server="Mala")
    assert words in raised.value.message


def test_valid_template_is_stored_unchanged() -> None:
    template = "{member} is now {level} in {server} {{literal}}"
    assert DEFAULTS.changed(levelup_template=template).levelup_template == template


def test_server_name_with_braces_is_not_interpreted() -> None:
    assert render_levelup("{server}", member="m", level=1, server="{level}") == "{level}"


# --- level roles -----------------------------------------------------------------------------------

TABLE = {5: 105, 10: 110, 20: 120}


def test_stack_gives_every_earned_role() -> None:
    add, remove = level_role_changes([1], TABLE, 12, "stack")
    assert (add, remove) == ({105, 110}, set())


def test_replace_keeps_only_the_highest_earned_role() -> None:
    add, remove = level_role_changes([1, 105], TABLE, 12, "replace")
    assert (add, remove) == ({110}, {105})


def test_roles_follow_xp_down_in_both_modes() -> None:
    assert level_role_changes([105, 110, 120, 7], TABLE, 6, "stack") == (set(), {110, 120})
    assert level_role_changes([105, 110, 120, 7], TABLE, 6, "replace") == (set(), {110, 120})


def test_level_zero_loses_every_level_role_and_keeps_other_roles() -> None:
    add, remove = level_role_changes([105, 120, 7, 8], TABLE, 0, "stack")
    assert (add, remove) == (set(), {105, 120})


def test_exactly_at_the_role_level_earns_it() -> None:
    assert level_role_changes([], TABLE, 5, "replace").to_add == {105}
    assert level_role_changes([], TABLE, 4, "replace").empty


def test_nothing_to_do_when_roles_already_match() -> None:
    assert level_role_changes([105, 110, 120], TABLE, 30, "stack").empty
    assert level_role_changes([120, 9], TABLE, 30, "replace").empty


def test_no_level_roles_means_no_changes() -> None:
    assert level_role_changes([1, 2], {}, 50, "stack").empty


@pytest.mark.parametrize("level", [0, -1, 1001])
def test_role_level_out_of_range_is_refused(level: int) -> None:
    with pytest.raises(UserInputError, match="between 1 and 1,000"):
        validate_role_level(level)


# --- admin amounts ---------------------------------------------------------------------------------

def test_amounts_must_be_positive_except_for_set() -> None:
    with pytest.raises(UserInputError, match="between 1 and"):
        validate_amount(0)
    with pytest.raises(UserInputError):
        validate_amount(-5, allow_zero=True)
    with pytest.raises(UserInputError):
        validate_amount(MAX_TOTAL_XP + 1)
    assert validate_amount(0, allow_zero=True) == 0
    assert validate_amount(MAX_TOTAL_XP) == MAX_TOTAL_XP


def test_adding_past_the_limit_is_refused_and_removing_stops_at_zero() -> None:
    assert total_after_add(10, 5) == 15
    with pytest.raises(UserInputError, match="past the limit"):
        total_after_add(MAX_TOTAL_XP - 1, 2)
    assert total_after_remove(10, 25) == 0
    assert total_after_remove(10, 4) == 6


def test_replace_keeps_the_highest_usable_role_below_broken_ones() -> None:
    # 120 cannot be given (deleted, or above the bot): it is still asked for (to be reported), and the
    # member keeps 110 instead of losing every level role.
    assert level_role_changes([105, 110], TABLE, 25, "replace", unusable={120}) == ({120}, {105})
    assert level_role_changes([105], TABLE, 25, "replace", unusable={110, 120}) == ({110, 120}, set())
    assert level_role_changes([105], TABLE, 25, "stack", unusable={120}) == ({110, 120}, set())
