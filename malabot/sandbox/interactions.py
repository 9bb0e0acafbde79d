"""Interactions the sandbox sends the bot, and `InteractionReply`: what the bot answered to one.

Payloads follow Discord's shape for guild and DM invocations (member with a permissions string,
`resolved` users/members/roles/channels/attachments, app_permissions, context, entitlements...).
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from malabot.sandbox import payloads
from malabot.sandbox.errors import ApiError, SandboxError, unknown
from malabot.sandbox.messaging import UPLOAD_LIMIT
from malabot.sandbox.permissions import DEFAULT_EVERYONE, channel_permissions
from malabot.sandbox.state import (
    Attachment,
    Channel,
    Guild,
    IdLike,
    Member,
    Message,
    RegisteredCommand,
    Role,
    UploadedFile,
    User,
    World,
    id_of,
)
from malabot.sandbox.waiting import Waiters

# Interaction types.
APPLICATION_COMMAND, MESSAGE_COMPONENT, AUTOCOMPLETE, MODAL_SUBMIT = 2, 3, 4, 5
# Callback (response) types.
CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE = 4, 5, 6, 7
AUTOCOMPLETE_RESULT, MODAL = 8, 9
# Application command option types.
SUB_COMMAND, SUB_COMMAND_GROUP, STRING, INTEGER, BOOLEAN = 1, 2, 3, 4, 5
USER, CHANNEL, ROLE, MENTIONABLE, NUMBER, ATTACHMENT = 6, 7, 8, 9, 10, 11
# Command types.
CHAT_INPUT, USER_COMMAND, MESSAGE_COMMAND = 1, 2, 3

Json = dict[str, Any]


class InteractionReply:
    """Everything the bot did with one interaction, kept live as the bot answers.

    `messages` are the visible answers in order: the original response (once it has content)
    then the follow-ups. `content`, `embeds`, `flags`, `ephemeral`, `files`, `components` and
    `text` read the first of them. Messages are the sandbox's live records, so later edits show.
    """

    def __init__(self, *, id: int, token: str, type: int, name: str | None, guild_id: int | None,
                 channel_id: int, user_id: int, source_message: Message | None = None,
                 within: float = 5.0) -> None:
        self.id = id
        self.token = token
        self.type = type
        self.name = name
        self.guild_id = guild_id
        self.channel_id = channel_id
        self.user_id = user_id
        self.source_message = source_message  # the message whose component was used, if any
        self.callback_type: int | None = None
        self.original: Message | None = None
        self.followups: list[Message] = []
        self.modal: Json | None = None  # the modal the bot opened (callback type 9)
        self.choices: list[Json] | None = None  # autocomplete choices (callback type 8)
        self.within = within  # how long waits on this reply last before failing
        self.sent_at: float | None = None  # time.monotonic() when the interaction went to the bot
        self.late_by: float | None = None  # set when the first answer came after Discord's deadline
        self._waiters = Waiters()

    def __repr__(self) -> str:
        shown = self.messages[0].content[:40] if self.messages else None
        return (f"<InteractionReply {self.name or self.type} callback={self.callback_type} "
                f"messages={len(self.messages)} first={shown!r}>")

    # ---- reading --------------------------------------------------------------------------

    @property
    def acknowledged(self) -> bool:
        return self.callback_type is not None

    @property
    def deferred(self) -> bool:
        return self.callback_type in (DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE_MESSAGE)

    @property
    def messages(self) -> list[Message]:
        found = [self.original] if self.original is not None and not self.original.loading else []
        return [m for m in found + self.followups if not m.deleted]

    @property
    def message(self) -> Message:
        """The first visible answer; a clear error when the bot answered without a message."""
        if not self.messages:
            raise SandboxError(f"the bot answered {self!r} without a message "
                               f"(callback type {self.callback_type}, modal={self.modal is not None})")
        return self.messages[0]

    @property
    def content(self) -> str:
        return self.message.content

    @property
    def embeds(self) -> list[Json]:
        return self.message.embeds

    @property
    def flags(self) -> int:
        return self.message.flags

    @property
    def ephemeral(self) -> bool:
        return self.message.ephemeral

    @property
    def files(self) -> list[Attachment]:
        return self.message.attachments

    @property
    def components(self) -> list[Json]:
        return self.message.components

    @property
    def text(self) -> str:
        return self.message.text

    @property
    def answered(self) -> bool:
        """Callback received and, after a "thinking..." deferral, real content arrived too."""
        if self.callback_type is None:
            return False
        if self.callback_type == DEFERRED_CHANNEL_MESSAGE:
            return bool(self.messages)
        return True

    async def wait_for_messages(self, count: int = 1) -> list[Message]:
        """Wait until the bot has sent at least `count` visible messages for this interaction."""
        await self._waiters.wait_until(lambda: len(self.messages) >= count, within=self.within,
                                       waiting_for=f"{count} message(s) answering {self.name or self.type}")
        return self.messages

    async def wait_until_answered(self) -> InteractionReply:
        await self._waiters.wait_until(lambda: self.answered or self.late_by is not None, within=self.within,
                                       waiting_for=f"the bot to answer {self.name or self.type}")
        if self.late_by is not None and not self.answered:
            raise SandboxError(f"the bot first answered {self.name or self.type} {self.late_by:.2f} s after it "
                               "was sent: Discord had dropped it (10062 Unknown interaction), the user saw "
                               "'The application did not respond'")
        return self

    def changed(self) -> None:
        """Routes call this after every callback, follow-up or edit."""
        self._waiters.notify()


# Discord's deadline for the first answer (callback) to an interaction; later, the token is invalid.
ANSWER_DEADLINE = 3.0


@dataclass
class InteractionRegistry:
    """Interactions sent to the bot, found again by id+token (callbacks) or token (webhooks).

    `deadline`: seconds the bot has for its first answer (None: no limit), as Discord's 3 s."""

    by_id: dict[int, InteractionReply] = field(default_factory=dict)
    deadline: float | None = ANSWER_DEADLINE

    def add(self, reply: InteractionReply) -> InteractionReply:
        reply.sent_at = time.monotonic()
        self.by_id[reply.id] = reply
        return reply

    def callback_target(self, interaction_id: int, token: str) -> InteractionReply:
        reply = self.by_id.get(interaction_id)
        if reply is None or reply.token != token:
            raise unknown("interaction")
        return reply

    def check_in_time(self, reply: InteractionReply) -> None:
        """404 Unknown interaction (10062) for a first answer after the deadline, as Discord answers."""
        delay = time.monotonic() - reply.sent_at if reply.sent_at is not None else 0.0
        if self.deadline is not None and delay > self.deadline:
            reply.late_by = delay
            reply.changed()
            raise unknown("interaction")

    def webhook_target(self, token: str) -> InteractionReply:
        for reply in self.by_id.values():
            if reply.token == token:
                return reply
        raise unknown("Webhook")


def new_reply(world: World, *, type: int, name: str | None, guild: Guild | None, channel: Channel,
              user: User, source_message: Message | None = None, within: float = 5.0) -> InteractionReply:
    return InteractionReply(
        id=world.snowflakes.next(), token=f"sandbox-{secrets.token_urlsafe(24)}", type=type, name=name,
        guild_id=guild.id if guild else None, channel_id=channel.id, user_id=user.id,
        source_message=source_message, within=within,
    )


def base_payload(world: World, reply: InteractionReply, guild: Guild | None, channel: Channel, user: User,
                 *, locale: str) -> Json:
    """The fields every interaction carries: who, where, with which permissions."""
    payload: Json = {
        "id": str(reply.id),
        "application_id": str(world.application_id),
        "type": reply.type,
        "token": reply.token,
        "version": 1,
        "locale": locale,
        "entitlements": [],
        "attachment_size_limit": UPLOAD_LIMIT,
        "channel_id": str(channel.id),
    }
    if guild is not None:
        member = world.member(guild.id, user.id)
        permissions = channel_permissions(guild, member, channel)
        # Without its bot user in the server (its commands added alone, or the bot removed while they
        # stay), the app has what @everyone has there.
        app_member = guild.members.get(world.bot_user.id) or Member(guild.id, world.bot_user.id)
        app_permissions = channel_permissions(guild, app_member, channel)
        payload.update(
            guild_id=str(guild.id),
            guild={"id": str(guild.id), "locale": guild.preferred_locale, "features": []},
            guild_locale=guild.preferred_locale,
            member=payloads.member_payload(world, member, permissions=permissions),
            channel=payloads.channel_payload(world, channel, permissions=permissions),
            app_permissions=str(app_permissions),
            authorizing_integration_owners={"0": str(guild.id)},
            context=0,
        )
    else:
        payload.update(
            user=payloads.user_payload(user),
            channel=payloads.channel_payload(world, channel),
            app_permissions=str(DEFAULT_EVERYONE),
            authorizing_integration_owners={"0": "0"},
            context=1,
        )
    return payload


# ---- application commands --------------------------------------------------------------------


def find_command(world: World, name: str, guild: Guild | None) -> RegisteredCommand | None:
    """A guild command of that name wins over a global one, as in the Discord client."""
    candidates = world.commands_for(guild.id) if guild else []
    candidates += world.commands_for(None)
    return next((c for c in candidates if c.name == name), None)


@dataclass
class ResolvedBuilder:
    """Collects the `resolved` section for user, role, channel, mentionable and attachment options."""

    world: World
    guild: Guild | None
    channel: Channel
    invoker_id: int
    data: dict[str, Json] = field(default_factory=dict)

    def user(self, user_id: int) -> None:
        user = self.world.user(user_id)
        self.data.setdefault("users", {})[str(user.id)] = payloads.user_payload(user)
        if self.guild is not None and user.id in self.guild.members:
            member = self.guild.members[user.id]
            permissions = channel_permissions(self.guild, member, self.channel)
            self.data.setdefault("members", {})[str(user.id)] = payloads.member_payload(
                self.world, member, with_user=False, permissions=permissions)

    def role(self, role: Role) -> None:
        self.data.setdefault("roles", {})[str(role.id)] = payloads.role_payload(role)

    def channel_option(self, channel: Channel) -> None:
        payload = payloads.channel_payload(self.world, channel)
        if self.guild is not None:
            # Discord reports what the invoking member may do in the chosen channel.
            member = self.world.member(self.guild.id, self.invoker_id)
            payload["permissions"] = str(channel_permissions(self.guild, member, channel))
        self.data.setdefault("channels", {})[str(channel.id)] = payload

    def attachment(self, attachment: Attachment) -> None:
        self.data.setdefault("attachments", {})[str(attachment.id)] = payloads.attachment_payload(attachment)

    def message(self, message: Message) -> None:
        self.data.setdefault("messages", {})[str(message.id)] = payloads.message_payload(self.world, message)


def command_data(world: World, command: RegisteredCommand, *, path: list[str], values: Mapping[str, Any],
                 guild: Guild | None, channel: Channel, invoker: User, url_root: str,
                 target: IdLike | None = None, focused: str | None = None) -> Json:
    """`data` of an APPLICATION_COMMAND (or AUTOCOMPLETE) interaction for a registered command."""
    resolved = ResolvedBuilder(world, guild, channel, invoker.id)
    data: Json = {"id": str(command.id), "name": command.name, "type": command.type}
    if command.guild_id is not None:
        data["guild_id"] = str(command.guild_id)
    if command.type in (USER_COMMAND, MESSAGE_COMMAND):
        if target is None:
            raise SandboxError(f"'{command.name}' is a context-menu command: pass target=")
        target_id = id_of(target)
        data["target_id"] = str(target_id)
        if command.type == USER_COMMAND:
            resolved.user(target_id)
        else:
            resolved.message(world.messages[target_id])
    else:
        schema = command.payload.get("options") or []
        nested: list[tuple[int, str]] = []
        for step in path:
            option = _schema_option(command, schema, step, (SUB_COMMAND, SUB_COMMAND_GROUP))
            nested.append((option["type"], step))
            schema = option.get("options") or []
        if schema and all(o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP) for o in schema):
            names = ", ".join(o["name"] for o in schema)
            raise SandboxError(f"/{command.name} needs a subcommand ({names}): pass subcommand=")
        options = _leaf_options(world, command, schema, values, resolved, url_root, focused)
        for option_type, name in reversed(nested):
            options = [{"type": option_type, "name": name, "options": options}]
        data["options"] = options
    if resolved.data:
        data["resolved"] = resolved.data
    return data


def _schema_option(command: RegisteredCommand, schema: list[Json], name: str, types: tuple[int, ...]) -> Json:
    for option in schema:
        if option["name"] == name and option["type"] in types:
            return option
    known = ", ".join(o["name"] for o in schema) or "none"
    raise SandboxError(f"/{command.name} has no option or subcommand '{name}' (it has: {known})")


def _leaf_options(world: World, command: RegisteredCommand, schema: list[Json], values: Mapping[str, Any],
                  resolved: ResolvedBuilder, url_root: str, focused: str | None) -> list[Json]:
    for option in schema:
        # While autocompleting, Discord sends only what was typed so far: required options may be missing.
        if focused is None and option.get("required") and option["name"] not in values:
            raise SandboxError(f"/{command.name} requires option '{option['name']}'")
    result = []
    for name, value in values.items():
        option = _schema_option(command, schema, name, tuple(range(3, 12)))
        entry: Json = {"type": option["type"], "name": name}
        if focused == name:
            entry.update(value=str(value), focused=True)
        else:
            entry["value"] = _option_value(world, command, option, value, resolved, url_root)
        result.append(entry)
    return result


def _option_value(world: World, command: RegisteredCommand, option: Json, value: Any,
                  resolved: ResolvedBuilder, url_root: str) -> Any:
    kind = option["type"]
    try:
        return _checked_choice(command, option, _converted(world, option, value, resolved, url_root))
    except (ValueError, TypeError, AttributeError, ApiError) as error:  # e.g. a word typed for a number
        raise SandboxError(f"/{command.name} option '{option['name']}' cannot take {value!r} "
                           f"(option type {kind}): {error}") from None


def _converted(world: World, option: Json, value: Any, resolved: ResolvedBuilder, url_root: str) -> Any:
    kind = option["type"]
    if kind == STRING:
        converted: Any = str(value)
    elif kind == INTEGER:
        converted = int(value)
    elif kind == NUMBER:
        converted = float(value)
    elif kind == BOOLEAN:
        converted = _boolean(value)
    elif kind == USER:
        converted = str(_user(world, value).id)
        resolved.user(int(converted))
    elif kind == ROLE:
        role = _role(world, resolved.guild, value)
        resolved.role(role)
        converted = str(role.id)
    elif kind == CHANNEL:
        channel = _channel(world, resolved.guild, value)
        resolved.channel_option(channel)
        converted = str(channel.id)
    elif kind == MENTIONABLE:
        target_id = _mentionable_id(world, resolved.guild, value)
        if target_id in world.users:
            resolved.user(target_id)
        else:
            resolved.role(_role(world, resolved.guild, target_id))
        converted = str(target_id)
    elif kind == ATTACHMENT:
        attachment = _attachment(world, resolved.channel, value, url_root)
        resolved.attachment(attachment)
        converted = str(attachment.id)
    else:
        raise SandboxError(f"option type {kind} of '{option['name']}' is not supported by the sandbox")
    return converted


def _checked_choice(command: RegisteredCommand, option: Json, converted: Any) -> Any:
    choices = option.get("choices")
    if choices and converted not in [c["value"] for c in choices]:
        allowed = ", ".join(repr(c["value"]) for c in choices)
        raise SandboxError(f"/{command.name} option '{option['name']}' must be one of {allowed}")
    return converted


# What a boolean option may be typed as in the interactive sandbox (Discord's own client offers True/False).
_TRUE_WORDS, _FALSE_WORDS = {"true", "yes", "on"}, {"false", "no", "off"}


def _boolean(value: Any) -> bool:
    """A boolean option's value: a bool, or a word as typed (`true`, `no`, `off` ...)."""
    if isinstance(value, bool):
        return value
    word = value.strip().lower() if isinstance(value, str) else None
    if word not in _TRUE_WORDS | _FALSE_WORDS:
        raise ValueError("type true or false (or yes/no, on/off)")
    return word in _TRUE_WORDS


_Named = TypeVar("_Named")


def _typed_id(value: Any) -> int:
    """An id given as a number, as its digits, or as any object with an `id`."""
    return int(value) if isinstance(value, str) else id_of(value)


def _named(typed: str, prefix: str, kind: str, candidates: Iterable[tuple[str | None, _Named]]) -> _Named:
    """The candidate (name, thing) called as typed, with or without its prefix (`#general`, `@Member`)."""
    name = typed.removeprefix(prefix)
    found = next((thing for candidate, thing in candidates if candidate in (name, typed)), None)
    if found is None:
        raise ValueError(f"no {kind} called {prefix}{name}")
    return found


def _user(world: World, value: Any) -> User:
    """A user option's value: a user, an id, or a username as typed (`ben`, `@ben`)."""
    if isinstance(value, str) and not value.isdigit():
        return _named(value, "@", "user", ((user.username, user) for user in world.users.values()))
    return world.user(_typed_id(value))


def _role(world: World, guild: Guild | None, value: Any) -> Role:
    """A role option's value: a role, an id, or a role's name as typed (`@Member`, `@everyone`)."""
    if guild is None:
        raise SandboxError("role options only exist in a guild")
    if isinstance(value, str) and not value.isdigit():
        return _named(value, "@", f"role in {guild.name}", ((role.name, role) for role in guild.roles.values()))
    return world.role(guild.id, _typed_id(value))


def _channel(world: World, guild: Guild | None, value: Any) -> Channel:
    """A channel option's value: a channel, an id, or a channel's name as typed (`#general`)."""
    if isinstance(value, str) and not value.isdigit():
        here = world.guild_channels(guild) if guild is not None else []
        return _named(value, "#", "channel" + (f" in {guild.name}" if guild else ""),
                      ((channel.name, channel) for channel in here))
    return world.channel(_typed_id(value))


def _mentionable_id(world: World, guild: Guild | None, value: Any) -> int:
    """A mentionable option's value: a user's or a role's id, or either's name as typed (`@ana`, `@Member`)."""
    if isinstance(value, str) and not value.isdigit():
        with contextlib.suppress(ValueError):
            return _user(world, value).id
        return _role(world, guild, value).id
    return _typed_id(value)


def _attachment(world: World, channel: Channel, value: Any, url_root: str) -> Attachment:
    """An uploaded option file from (filename, bytes) or an `UploadedFile`."""
    if isinstance(value, UploadedFile):
        filename, data, content_type = value.filename, value.data, value.content_type
    elif isinstance(value, tuple) and len(value) == 2:
        filename, data, content_type = str(value[0]), bytes(value[1]), "application/octet-stream"
    else:
        raise SandboxError("an attachment option takes (filename, bytes) or an UploadedFile")
    return world.new_attachment(channel.id, filename, data, content_type, None, url_root)


# ---- components and modals -------------------------------------------------------------------


def find_component(message: Message, *, custom_id: str | None, label: str | None,
                   component_types: tuple[int, ...]) -> Json:
    """A button or select on a message, by custom_id or by its visible label/placeholder."""
    if (custom_id is None) == (label is None):
        raise SandboxError("pass exactly one of custom_id= or label=")
    candidates = message.buttons() + message.selects()
    for component in candidates:
        if component.get("type") not in component_types:
            continue
        if custom_id is not None and component.get("custom_id") == custom_id:
            return component
        if label is not None and label in (component.get("label"), component.get("placeholder")):
            return component
    shown = [c.get("label") or c.get("placeholder") or c.get("custom_id") for c in candidates]
    raise SandboxError(f"message {message.id} has no such component (it has: {shown})")


def modal_submit_components(modal: Json, values: Mapping[str, str]) -> list[Json]:
    """The submitted components of a modal, filled from `values` keyed by custom_id or label."""
    remaining = dict(values)

    def fill(text_input: Json, label: str | None) -> Json:
        key = text_input.get("custom_id")
        for candidate in (key, label, text_input.get("label")):
            if candidate is not None and candidate in remaining:
                return {"type": text_input["type"], "custom_id": key, "value": remaining.pop(candidate),
                        **({"id": text_input["id"]} if "id" in text_input else {})}
        return {"type": text_input["type"], "custom_id": key, "value": text_input.get("value") or ""}

    submitted = []
    for row in modal.get("components") or []:
        if row.get("type") == 1:
            submitted.append({"type": 1, "components": [fill(c, None) for c in row.get("components", [])]})
        elif row.get("type") == 18 and isinstance(row.get("component"), dict):
            submitted.append({"type": 18, **({"id": row["id"]} if "id" in row else {}),
                              "component": fill(row["component"], row.get("label"))})
    if remaining:
        raise SandboxError(f"the modal has no inputs named {sorted(remaining)}")
    return submitted
