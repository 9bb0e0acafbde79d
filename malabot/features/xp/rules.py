"""Pure XP rules: who earns XP for a message, how much, progress within a level, level-up text, level roles.

No I/O here: the service feeds these functions plain values read from settings and the database.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from malabot import templates
from malabot.errors import UserInputError
from malabot.features.xp.curves import level_for_xp, threshold, top_level
from malabot.features.xp.models import LevelChange, LevelRole
from malabot.guild_settings import TEMPLATE_PLACEHOLDERS, GuildSettings, LevelRoleMode

# The highest total an admin edit may give a member, and its largest single amount. Far above any real
# server (level ~84,000 on the standard curve) and far below SQLite's 64-bit integer limit: chat and
# rewards may add to it (25 XP a minute would take millions of years to matter), so it is a limit
# of the edits, not of what a member holds.
MAX_TOTAL_XP = 10**15


def may_earn_xp(settings: GuildSettings, channel_id: int, role_ids: Iterable[int], *,
                is_bot: bool, is_webhook: bool) -> bool:
    """Whether a message can earn XP at all (the cooldown is checked separately)."""
    if is_bot or is_webhook or not settings.xp_enabled:
        return False
    if channel_id in settings.no_xp_channel_ids:
        return False
    blocked = settings.no_xp_role_ids
    return not (blocked and any(role_id in blocked for role_id in role_ids))


def cooldown_over(last_award_at: float | None, now: float, cooldown_seconds: float) -> bool:
    """True when a member last earned XP at least `cooldown_seconds` ago (or never)."""
    return last_award_at is None or now - last_award_at >= cooldown_seconds


def roll_message_xp(settings: GuildSettings, rng: random.Random) -> int:
    """A random amount between xp_min and xp_max, both included."""
    return rng.randint(settings.xp_min, settings.xp_max)


@dataclass(frozen=True)
class LevelProgress:
    """Where a total XP stands on a curve: the level and the way to the next one."""

    total_xp: int
    level: int
    level_start_xp: int    # total XP at which `level` was reached
    next_level_xp: int     # total XP at which the next level is reached (unreachable at the top)
    next_level: int | None  # the level reached then (custom skips levels); None at the top of the curve

    @property
    def xp_into_level(self) -> int:
        return self.total_xp - self.level_start_xp

    @property
    def xp_for_level(self) -> int:
        """The whole cost of the current level step (0 at the top of the curve)."""
        return 0 if self.next_level is None else self.next_level_xp - self.level_start_xp

    @property
    def xp_to_next(self) -> int:
        return 0 if self.next_level is None else self.next_level_xp - self.total_xp


def level_progress(curve: str, total_xp: int) -> LevelProgress:
    level = level_for_xp(curve, total_xp)
    next_xp = threshold(curve, level + 1)
    at_top = level == top_level(curve)
    next_level = None if at_top else level_for_xp(curve, next_xp)
    return LevelProgress(total_xp=total_xp, level=level, level_start_xp=threshold(curve, level),
                         next_level_xp=next_xp, next_level=next_level)


def level_change(guild_id: int, user_id: int, curve: str, before: int, after: int) -> LevelChange:
    """The member's levels on the server's curve before and after their XP went from `before` to `after`."""
    return LevelChange(guild_id=guild_id, user_id=user_id, old_level=level_for_xp(curve, before),
                       new_level=level_for_xp(curve, after), total_xp=after)


# --- level-up message ------------------------------------------------------------------------------

def render_levelup(template: str, *, member: str, level: int, server: str) -> str:
    """The level-up announcement; `member` is usually a mention such as <@123>. Raises
    UserInputError naming the allowed placeholders when the template uses any other."""
    return templates.render(template, templates.values_for(
        TEMPLATE_PLACEHOLDERS["levelup_template"], member=member, level=str(level), server=server))


# --- level roles -----------------------------------------------------------------------------------

class RoleChanges(NamedTuple):
    """Level roles to give and to take away; unpacks as (roles_to_add, roles_to_remove)."""

    to_add: frozenset[int]
    to_remove: frozenset[int]

    @property
    def empty(self) -> bool:
        return not self.to_add and not self.to_remove


def level_role_changes(current_role_ids: Iterable[int], level_roles: Mapping[int, int], level: int,
                       mode: LevelRoleMode, unusable: Collection[int] = frozenset()) -> RoleChanges:
    """Which level roles a member at `level` should gain and lose.

    `level_roles` maps a level to the role given at that level. In `stack` mode a member keeps every
    role earned so far; in `replace` mode only the role of the highest level reached. Either way a
    level role above the member's level is taken away, so roles follow XP down after an admin edit.
    Roles that are not level roles are never touched.

    `unusable`: level roles the bot cannot give (deleted, above its own). In `replace` mode the member
    also keeps the highest earned role below those that can be given, rather than losing every level
    role to a broken one; the broken ones stay in `to_add`, for the caller to report.
    """
    current = set(current_role_ids)
    earned = [(role_level, role_id) for role_level, role_id in level_roles.items() if role_level <= level]
    if mode == "replace":
        wanted = set()
        for _, role_id in sorted(earned, reverse=True):
            wanted.add(role_id)
            if role_id not in unusable:
                break
    else:
        wanted = {role_id for _, role_id in earned}
    all_level_roles = set(level_roles.values())
    return RoleChanges(to_add=frozenset(wanted - current),
                       to_remove=frozenset((current & all_level_roles) - wanted))


MAX_ROLE_LEVEL = 1000


def validate_role_level(level: int) -> int:
    if not 1 <= level <= MAX_ROLE_LEVEL:
        raise UserInputError(f"The level must be between 1 and {MAX_ROLE_LEVEL:,}.")
    return level


def check_not_a_level_role(setting: str, role_id: int, level_roles: Iterable[LevelRole]) -> None:
    """A role a setting has the bot give (GIVEN_ROLE_SETTINGS) cannot be a level role: levels give and
    take their roles (in `replace` mode the next level takes the last one away), fighting the setting."""
    for level_role in level_roles:
        if level_role.role_id == role_id:
            raise UserInputError(f"`{setting}`: that role is the level role of level {level_role.level}, and "
                                 "levels give and take their roles. Choose another role, or stop giving it "
                                 "at that level first with `/levelrole remove`.")


def check_level_role_of_its_own(settings: GuildSettings, role_id: int) -> None:
    """The same rule from the other side: a level role cannot be one a setting has the bot give."""
    setting = settings.setting_giving(role_id)
    if setting is not None:
        raise UserInputError(f"That role is already `{setting}`, and levels give and take their roles. "
                             "Choose another role for this level, or change that setting first.")


# --- admin edits -----------------------------------------------------------------------------------

def validate_amount(amount: int, *, allow_zero: bool = False) -> int:
    """An admin's XP amount: a whole number from 1 (or 0 for `set`) up to MAX_TOTAL_XP."""
    lowest = 0 if allow_zero else 1
    if not lowest <= amount <= MAX_TOTAL_XP:
        raise UserInputError(f"The amount must be between {lowest} and {MAX_TOTAL_XP:,}.")
    return amount


def total_after_add(total: int, amount: int) -> int:
    """`total + amount`, refused when it would pass MAX_TOTAL_XP."""
    if total + amount > MAX_TOTAL_XP:
        raise UserInputError(f"That would take the member past the limit of {MAX_TOTAL_XP:,} XP that an admin "
                             f"edit may give (they have {total:,}).")
    return total + amount


def total_after_remove(total: int, amount: int) -> int:
    """`total - amount`, never below zero."""
    return max(total - amount, 0)
