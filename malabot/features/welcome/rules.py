"""Welcome and goodbye messages: which ones to send where, rendered from the server's templates.

Pure: the cog passes plain values (the member as text, the server name, the member count) and carries
out the plan on Discord. Templates may use the placeholders guild_settings.TEMPLATE_PLACEHOLDERS lists
for their setting ({member}, {server} and {member_count}).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from malabot import templates
from malabot.errors import UserInputError
from malabot.guild_settings import TEMPLATE_PLACEHOLDERS, GuildSettings

MessageKind = Literal["welcome", "welcome_dm", "goodbye"]
# The GuildSettings field holding each kind's template.
TEMPLATE_SETTINGS: dict[MessageKind, str] = {
    "welcome": "welcome_template",
    "welcome_dm": "welcome_dm_template",
    "goodbye": "goodbye_template",
}


def render_welcome(template: str, *, kind: MessageKind, member: str, server: str, member_count: int) -> str:
    """`template` is the `kind`'s setting; `member` is a mention (<@id>) for joins and usually a plain
    name for goodbyes."""
    names = TEMPLATE_PLACEHOLDERS[TEMPLATE_SETTINGS[kind]]
    return templates.render(template, templates.values_for(names, member=member, server=server,
                                                           member_count=str(member_count)))


@dataclass(frozen=True)
class ChannelMessage:
    channel_id: int
    text: str


@dataclass(frozen=True)
class JoinPlan:
    """What to do when a member joins; None/empty parts are skipped.

    `problems` describes settings that could not be honoured as configured (for the log, not the member).
    """

    channel_message: ChannelMessage | None = None
    dm_text: str | None = None
    autorole_id: int | None = None
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class LeavePlan:
    channel_message: ChannelMessage | None = None
    problems: tuple[str, ...] = ()


def _render_setting(settings: GuildSettings, kind: MessageKind, problems: list[str], *, member: str,
                    server: str, member_count: int) -> str:
    """Render the server's template; a template that is not acceptable (it may have been stored before
    it was validated) falls back to the default text, so the member still gets a message."""
    name = TEMPLATE_SETTINGS[kind]
    template: str = getattr(settings, name)
    try:
        return render_welcome(template, kind=kind, member=member, server=server, member_count=member_count)
    except UserInputError as error:
        problems.append(f"{name}: {error.message} The default text was used.")
        default: str = GuildSettings.model_fields[name].default
        return render_welcome(default, kind=kind, member=member, server=server, member_count=member_count)


def _channel_message(settings: GuildSettings, kind: Literal["welcome", "goodbye"], problems: list[str], *,
                     member: str, server: str, member_count: int) -> ChannelMessage | None:
    """The `welcome` or `goodbye` channel post, when it is switched on and has a channel."""
    if not getattr(settings, f"{kind}_enabled"):
        return None
    channel_id: int | None = getattr(settings, f"{kind}_channel_id")
    if channel_id is None:
        problems.append(f"{kind}_enabled is on but {kind}_channel_id is not set.")
        return None
    text = _render_setting(settings, kind, problems, member=member, server=server, member_count=member_count)
    return ChannelMessage(channel_id, text)


def plan_join(settings: GuildSettings, *, member: str, server: str, member_count: int) -> JoinPlan:
    problems: list[str] = []
    channel_message = _channel_message(settings, "welcome", problems, member=member, server=server,
                                       member_count=member_count)
    dm_text = None
    if settings.welcome_dm_enabled:
        dm_text = _render_setting(settings, "welcome_dm", problems, member=member, server=server,
                                  member_count=member_count)
    return JoinPlan(channel_message=channel_message, dm_text=dm_text, autorole_id=settings.autorole_id,
                    problems=tuple(problems))


def autorole_to_give(autorole_id: int | None, held_role_ids: Iterable[int], *, pending: bool,
                     verified: bool = False, unverified_role_id: int | None = None) -> int | None:
    """The auto-role to give a member now, if any. A member still in Membership Screening (`pending`)
    waits: Discord lets a member given any role skip the server's rules. One who holds it keeps it.
    A server whose auto-role is its unverified role marks newcomers with it: not a member who has
    verified meanwhile (pressing Verify right after accepting the rules, before the bot heard they had)."""
    if autorole_id is None or pending or autorole_id in set(held_role_ids):
        return None
    if verified and marks_unverified(autorole_id, unverified_role_id):
        return None
    return autorole_id


def marks_unverified(autorole_id: int | None, unverified_role_id: int | None) -> bool:
    """Whether the auto-role is the role verification takes away."""
    return autorole_id is not None and autorole_id == unverified_role_id


def passed_screening(was_pending: bool, is_pending: bool) -> bool:
    """Whether a member update is the one that ends Membership Screening (it happens once per join)."""
    return was_pending and not is_pending


def plan_leave(settings: GuildSettings, *, member: str, server: str, member_count: int) -> LeavePlan:
    problems: list[str] = []
    channel_message = _channel_message(settings, "goodbye", problems, member=member, server=server,
                                       member_count=member_count)
    return LeavePlan(channel_message=channel_message, problems=tuple(problems))
