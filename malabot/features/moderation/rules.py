"""Moderation rules: plain functions of plain values. No Discord, no database, no clock.

Each refusal raises UserInputError or PermissionRefused carrying the sentence the member sees.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from malabot.errors import PermissionRefused, UserInputError, quoted
from malabot.features.moderation.models import Case, NewCase, Party
from malabot.guild_settings import ThresholdAction, WarnThreshold
from malabot.snowflakes import snowflake_from_text
from malabot.texts import counted

# Discord's own limits.
MAX_TIMEOUT = timedelta(days=28)
# Discord checks a timeout against its own clock: one of exactly 28 days by ours is refused when
# ours runs a little ahead. What is sent stops this much short of the limit.
CLOCK_MARGIN = timedelta(minutes=1)
BULK_DELETE_MAX_AGE = timedelta(days=14)
PURGE_MIN, PURGE_MAX = 1, 100
DELETE_MESSAGE_DAYS_MAX = 7
MAX_REASON_LENGTH = 512  # what Discord keeps of an audit-log reason

# A threshold of action "timeout" without timeout_minutes times the member out for this long.
DEFAULT_ESCALATION_TIMEOUT = timedelta(hours=1)

# ---------------------------------------------------------------------------------------------------
# Durations

_UNIT_SECONDS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
_DURATION = re.compile(r"(?:[0-9]+[dhms])+", re.ASCII)
_DURATION_PART = re.compile(r"([0-9]+)([dhms])", re.ASCII)
_DURATION_HINT = "Use a duration like 10m, 2h, 7d or 1h30m (units: d, h, m, s; at most 28 days)."
_MAX_DURATION_TEXT = 32


def parse_duration(text: str, maximum: timedelta = MAX_TIMEOUT) -> timedelta:
    """"10m", "2h", "7d", "1h30m", "90s", "1d 12h" → timedelta; more than 0 and at most `maximum`."""
    compact = "".join(text.split()).lower()
    if not compact or len(compact) > _MAX_DURATION_TEXT or not _DURATION.fullmatch(compact):
        if compact.isdigit():
            raise UserInputError(f"“{text.strip()}” has no unit. {_DURATION_HINT}")
        raise UserInputError(f"“{text.strip()[:_MAX_DURATION_TEXT]}” is not a duration. {_DURATION_HINT}")
    seconds = 0
    seen: set[str] = set()
    for number, unit in _DURATION_PART.findall(compact):
        if unit in seen:
            raise UserInputError(f"“{text.strip()}” gives the unit {unit} twice. {_DURATION_HINT}")
        seen.add(unit)
        seconds += int(number) * _UNIT_SECONDS[unit]
    if seconds > maximum.total_seconds():  # before timedelta(), which overflows on huge numbers
        raise UserInputError(f"“{text.strip()}” is too long: the most is {format_duration(maximum)}.")
    return check_duration(timedelta(seconds=seconds), maximum, shown=text.strip())


def check_duration(duration: timedelta, maximum: timedelta = MAX_TIMEOUT, *,
                   shown: str | None = None) -> timedelta:
    """The duration if it is more than zero and at most `maximum`; otherwise UserInputError."""
    if duration <= timedelta(0):
        raise UserInputError("The duration must be longer than zero.")
    if duration > maximum:
        shown = shown or format_duration(duration)
        raise UserInputError(f"“{shown}” is too long: the most is {format_duration(maximum)}.")
    return duration


def timeout_to_send(duration: timedelta) -> timedelta:
    """The timeout to ask Discord for: the one chosen, kept a clock margin inside the 28 days."""
    return min(duration, MAX_TIMEOUT - CLOCK_MARGIN)


def format_duration(duration: timedelta) -> str:
    """E.g. "1d 2h 30m"; whole seconds, largest units first, "0s" for nothing."""
    remaining = int(duration.total_seconds())
    parts = []
    for unit, size in _UNIT_SECONDS.items():
        amount, remaining = divmod(remaining, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return " ".join(parts) or "0s"


# ---------------------------------------------------------------------------------------------------
# Who may act on whom


def role_rank(position: int, role_id: int) -> tuple[int, int]:
    """Discord's order of roles (py-cord's too): by position; on a tie, which Discord's API can
    report, the older role (smaller id) ranks higher."""
    return (position, -role_id)


def is_below(target: Party, other: Party) -> bool:
    """Whether the target's highest role ranks below the other's."""
    return (role_rank(target.top_role_position, target.top_role_id)
            < role_rank(other.top_role_position, other.top_role_id))


def check_target(actor: Party, target: Party, bot: Party, owner_id: int) -> None:
    """Refuse an action on yourself, the owner, the bot, or anyone not below both the actor and the bot.

    The server owner acts on anyone below the bot: Discord lets the owner outrank every role.
    """
    if target.user_id == actor.user_id:
        raise PermissionRefused("You cannot do that to yourself.")
    if target.is_owner or target.user_id == owner_id:
        raise PermissionRefused("You cannot do that to the server owner.")
    if target.user_id == bot.user_id:
        raise PermissionRefused("You cannot do that to the bot.")
    actor_is_owner = actor.is_owner or actor.user_id == owner_id
    if not actor_is_owner and not is_below(target, actor):
        raise PermissionRefused(
            f"You cannot do that to <@{target.user_id}>: their top role is not below yours.")
    if not is_below(target, bot):
        raise PermissionRefused(
            f"I cannot do that to <@{target.user_id}>: their top role is not below mine.")


# Permission names as Discord (and py-cord's Permissions attributes) spell them, with their UI labels.
PERMISSION_LABELS = {
    "moderate_members": "Timeout Members",
    "kick_members": "Kick Members",
    "ban_members": "Ban Members",
    "manage_messages": "Manage Messages",
    "read_message_history": "Read Message History",
}

# What the bot needs to carry out each action (a warning is only a record).
BOT_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "warn": (),
    "unwarn": (),
    "timeout": ("moderate_members",),
    "untimeout": ("moderate_members",),
    "kick": ("kick_members",),
    "ban": ("ban_members",),
    "unban": ("ban_members",),
    "purge": ("manage_messages", "read_message_history"),
}

# What a moderator needs: the Discord-side default_member_permissions, checked again at run time.
MODERATOR_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "warn": ("moderate_members",),
    "unwarn": ("moderate_members",),
    "timeout": ("moderate_members",),
    "untimeout": ("moderate_members",),
    "kick": ("kick_members",),
    "ban": ("ban_members",),
    "unban": ("ban_members",),
    "purge": ("manage_messages",),
}


def _missing(needed: Iterable[str], granted: Iterable[str]) -> list[str]:
    have = set(granted)
    return [PERMISSION_LABELS.get(name, name) for name in needed if name not in have]


def _permission_phrase(labels: list[str]) -> str:
    noun = "permission" if len(labels) == 1 else "permissions"
    return f"the {' and '.join(labels)} {noun}"


def check_bot_permissions(action: str, granted: Iterable[str]) -> None:
    """`granted`: the names of the permissions the bot has where it acts (server or channel)."""
    missing = _missing(BOT_PERMISSIONS[action], granted)
    if missing:
        raise PermissionRefused(f"I need {_permission_phrase(missing)} to do that.")


def check_moderator_permissions(action: str, granted: Iterable[str]) -> None:
    missing = _missing(MODERATOR_PERMISSIONS[action], granted)
    if missing:
        raise PermissionRefused(f"You need {_permission_phrase(missing)} to do that.")


def is_purge_without_hierarchy(action: str, actor: Party, target: Party, bot: Party, owner_id: int) -> bool:
    """Whether the action is a purge of your own, the bot's or the owner's messages. Deleting messages
    with Manage Messages knows no role hierarchy, and a purge of the whole channel deletes theirs too."""
    return action == "purge" and (target.user_id in (actor.user_id, bot.user_id, owner_id) or target.is_owner)


def check_action(action: str, *, actor: Party, target: Party | None, bot: Party, owner_id: int,
                 actor_permissions: Iterable[str], bot_permissions: Iterable[str]) -> None:
    """Every refusal a moderation command can meet, in the order the member should hear them:
    their own permissions, the bot's, then the role hierarchy (skipped without a target member, e.g.
    an unban or a purge of a whole channel, and for a purge of your own, the bot's or the owner's messages)."""
    check_moderator_permissions(action, actor_permissions)
    check_bot_permissions(action, bot_permissions)
    if target is not None and not is_purge_without_hierarchy(action, actor, target, bot, owner_id):
        check_target(actor, target, bot, owner_id)


# ---------------------------------------------------------------------------------------------------
# Option values


def parse_user_id(text: str) -> int:
    """A user id as typed: digits, or a mention like <@123>."""
    user_id = snowflake_from_text(text.strip().removeprefix("<@").removeprefix("!").removesuffix(">"))
    if user_id is None:
        raise UserInputError(f"“{quoted(text)}” is not a user id (a number like 123456789012345678).")
    return user_id


def check_purge_count(count: int) -> int:
    if not PURGE_MIN <= count <= PURGE_MAX:
        raise UserInputError(f"Purge between {PURGE_MIN} and {PURGE_MAX} messages (you asked for {count}).")
    return count


# Message types Discord never deletes, whoever asks (recipient added or removed, call, channel name or
# icon changed, a thread's starter message): a delete that includes one is refused whole with 403,
# code 50021, so a purge leaves them out as it leaves out pinned messages.
UNDELETABLE_MESSAGE_TYPES = frozenset({1, 2, 3, 4, 5, 21})


def is_deletable_type(message_type: int) -> bool:
    """Whether Discord deletes a message of this type (its `type` number) when asked to."""
    return message_type not in UNDELETABLE_MESSAGE_TYPES


def bulk_delete_cutoff(now: datetime) -> datetime:
    """Messages created before this instant are too old for Discord's bulk delete: purge skips them."""
    return now - BULK_DELETE_MAX_AGE


def check_delete_message_days(days: int) -> int:
    if not 0 <= days <= DELETE_MESSAGE_DAYS_MAX:
        raise UserInputError(f"delete_message_days must be between 0 and {DELETE_MESSAGE_DAYS_MAX} "
                             f"(you gave {days}).")
    return days


def normalise_reason(reason: str | None, *, required: bool = False) -> str | None:
    """The reason without surrounding blanks; None when empty (refused if `required`)."""
    cleaned = (reason or "").strip()
    if not cleaned:
        if required:
            raise UserInputError("Give a reason.")
        return None
    if len(cleaned) > MAX_REASON_LENGTH:
        raise UserInputError(
            f"The reason is {len(cleaned)} characters long; the most is {MAX_REASON_LENGTH}.")
    return cleaned


# ---------------------------------------------------------------------------------------------------
# Warn thresholds

_STRICTNESS: dict[ThresholdAction, int] = {"timeout": 0, "kick": 1, "ban": 2}


@dataclass(frozen=True)
class Escalation:
    """The automatic action a warning triggered, for the cog to carry out (and record as its own case)."""

    action: ThresholdAction
    threshold: WarnThreshold
    warnings: int  # active warnings within the threshold's window, this one included
    duration: timedelta | None = None  # for timeouts

    @property
    def reason(self) -> str:
        return (f"Automatic {self.action}: {counted(self.warnings, 'warning')} within "
                f"{counted(self.threshold.days, 'day')}.")


def _escalation_timeout(threshold: WarnThreshold) -> timedelta:
    if threshold.timeout_minutes is None:
        return DEFAULT_ESCALATION_TIMEOUT
    return min(timedelta(minutes=threshold.timeout_minutes), MAX_TIMEOUT)


def longer_timeout(escalation: Escalation, timed_out_until: datetime | None, now: datetime) -> datetime | None:
    """The end of the member's running timeout when it lasts longer than the timeout `escalation` would
    give from `now` (Discord replaces a timeout's end: applying it would shorten the punishment)."""
    if escalation.duration is None or timed_out_until is None or timed_out_until <= now + escalation.duration:
        return None
    return timed_out_until


def threshold_window(thresholds: Sequence[WarnThreshold]) -> timedelta | None:
    """How far back warnings matter for any threshold (None: no thresholds)."""
    return max((timedelta(days=item.days) for item in thresholds), default=None)


def escalation_for(warn_times: Iterable[datetime], thresholds: Sequence[WarnThreshold],
                   now: datetime) -> Escalation | None:
    """The strictest threshold reached by the active warnings at `now`, if any.

    A threshold is reached when at least `count` warnings were given in the last `days` days (both ends
    included), so every further warning inside the window applies it again. Strictest: ban, then kick,
    then the longest timeout; on a tie the threshold listed first wins.
    """
    times = list(warn_times)
    reached: list[Escalation] = []
    for threshold in thresholds:
        since = now - timedelta(days=threshold.days)
        warnings = sum(1 for when in times if when >= since)
        if warnings >= threshold.count:
            duration = _escalation_timeout(threshold) if threshold.action == "timeout" else None
            reached.append(Escalation(threshold.action, threshold, warnings, duration))
    if not reached:
        return None
    return max(reached, key=lambda item: (_STRICTNESS[item.action], item.duration or timedelta(0)))


# ---------------------------------------------------------------------------------------------------
# Mod-log rendering

ACTION_LABELS = {
    "warn": "Warning",
    "unwarn": "Warning removed",
    "timeout": "Timeout",
    "untimeout": "Timeout removed",
    "kick": "Kick",
    "ban": "Ban",
    "unban": "Unban",
    "purge": "Purge",
}

ACTION_COLOURS = {
    "warn": 0xF1C40F,
    "unwarn": 0x95A5A6,
    "timeout": 0xE67E22,
    "untimeout": 0x95A5A6,
    "kick": 0xE67E22,
    "ban": 0xE74C3C,
    "unban": 0x2ECC71,
    "purge": 0x3498DB,
}

_FIELD_VALUE_MAX = 1024  # Discord embed limit


def action_label(action: str) -> str:
    return ACTION_LABELS.get(action, action.replace("_", " ").capitalize())


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _timestamp(moment: datetime) -> str:
    """Discord's timestamp markup: every reader sees it in their own timezone."""
    return f"<t:{int(moment.timestamp())}:f>"


def _user(user_id: int | None) -> str:
    return "unknown (data erased)" if user_id is None else f"<@{user_id}> (`{user_id}`)"


# How a mod-log entry names an action whose case the server's file could not take.
NOT_RECORDED = "Not recorded (no case number)"


def case_heading(case: Case | NewCase) -> str:
    """"Case #12", or for an action that could not be recorded, that it has no number."""
    return f"Case #{case.case_number}" if isinstance(case, Case) else NOT_RECORDED


def applied_sentence(done: str, case_number: int | None, why: str | None = None, *,
                     threshold: str | None = None) -> str:
    """What the moderator is told of an action carried out on Discord (`done`: "<@1> was kicked."),
    after the warn threshold that caused it, if any: its case number, or, when its case could not be
    written, that the action stands all the same and why it has no case."""
    if case_number is not None:
        return f"{threshold}: case #{case_number}, {done}" if threshold else f"Case #{case_number}: {done}"
    unrecorded = f"Its case could not be recorded ({why}): it has no case number and is not in `/warnings list`."
    return f"{threshold}: {done} {unrecorded}" if threshold else f"{done[:1].upper()}{done[1:]} {unrecorded}"


def render_case(case: Case | NewCase) -> dict[str, Any]:
    """The mod-log entry of a case as an embed dict (`discord.Embed.from_dict` accepts it as is); an
    action whose case could not be recorded (a NewCase) is marked so."""
    fields: list[dict[str, Any]] = []

    def field(name: str, value: str, inline: bool = True) -> None:
        fields.append({"name": name, "value": _clip(value, _FIELD_VALUE_MAX), "inline": inline})

    if case.target_id is not None:
        field("Member", _user(case.target_id))
    field("Moderator", _user(case.moderator_id))
    if case.duration_seconds is not None:
        field("Duration", format_duration(timedelta(seconds=case.duration_seconds)))
    if case.expires_at is not None:
        field("Ends", _timestamp(case.expires_at))
    if case.channel_id is not None:
        field("Channel", f"<#{case.channel_id}>")
    if case.message_count is not None:
        field("Messages", str(case.message_count))
    field("Reason", case.reason or "No reason given.", inline=False)
    if isinstance(case, Case) and case.removed_at is not None:
        field("Removed", _timestamp(case.removed_at), inline=False)
    return {
        "title": f"{case_heading(case)} · {action_label(case.action)}",
        "color": ACTION_COLOURS.get(case.action, 0x95A5A6),
        "fields": fields,
        "timestamp": case.created_at.isoformat(),
    }


def render_case_text(case: Case | NewCase) -> str:
    """One line per case, for `/warnings` lists and for a mod-log channel where embeds are not allowed."""
    number = f"#{case.case_number}" if isinstance(case, Case) else f"({NOT_RECORDED.lower()})"
    parts = [f"{number} {action_label(case.action)}"]
    if case.target_id is not None:
        parts.append(f"<@{case.target_id}>")
    if case.duration_seconds is not None:
        parts.append(format_duration(timedelta(seconds=case.duration_seconds)))
    if case.message_count is not None:
        parts.append(counted(case.message_count, "message"))
    if case.channel_id is not None:
        parts.append(f"in <#{case.channel_id}>")
    parts.append(_timestamp(case.created_at))
    moderator = "unknown" if case.moderator_id is None else f"<@{case.moderator_id}>"
    parts.append(f"by {moderator}")
    line = " · ".join(parts)
    if case.reason:
        line += f": {_clip(case.reason, 200)}"
    if isinstance(case, Case) and case.removed_at is not None:
        line = f"~~{line}~~ (removed)"
    return line
