"""The in-memory world of the fake Discord: users, guilds, roles, members, channels and messages.

Plain dataclasses plus a `World` that creates and finds them. Lookups raise `ApiError` with
Discord's "Unknown ..." codes, so REST routes can call them directly. Nothing here talks to the
network or knows about py-cord; gateway events are the caller's business.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from malabot.sandbox.errors import SandboxError, unknown
from malabot.sandbox.permissions import ALL_PERMISSIONS, DEFAULT_EVERYONE
from malabot.sandbox.snowflakes import Snowflakes, snowflake_time

# Channel types (https://discord.com/developers/docs/resources/channel#channel-object-channel-types).
GUILD_TEXT = 0
DM = 1
GUILD_VOICE = 2
GUILD_CATEGORY = 4
GUILD_ANNOUNCEMENT = 5
GUILD_STAGE_VOICE = 13

# Message flags the sandbox cares about.
EPHEMERAL = 1 << 6
LOADING = 1 << 7

# Where the bot's own managed role sits unless a test says otherwise; roles added without a
# position go below it, `above_bot=True` puts one above it.
BOT_ROLE_POSITION = 50

_USER_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")


class HasId(Protocol):
    @property
    def id(self) -> int: ...


IdLike = int | HasId


def id_of(value: IdLike) -> int:
    """Accept either a snowflake or any object with an `id` (a sandbox record, a py-cord model)."""
    return value if isinstance(value, int) else int(value.id)


@dataclass
class User:
    id: int
    username: str
    global_name: str | None = None
    bot: bool = False
    avatar: str | None = None
    accepts_dms: bool = True

    @property
    def display_name(self) -> str:
        return self.global_name or self.username


@dataclass
class Role:
    id: int
    guild_id: int
    name: str
    permissions: int = 0
    position: int = 0
    color: int = 0
    hoist: bool = False
    mentionable: bool = False
    managed: bool = False
    bot_id: int | None = None  # set on a bot's own integration role


@dataclass
class Member:
    guild_id: int
    user_id: int
    roles: list[int] = field(default_factory=list)
    nick: str | None = None
    joined_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    communication_disabled_until: datetime | None = None
    pending: bool = False

    def is_timed_out(self, now: datetime) -> bool:
        return self.communication_disabled_until is not None and self.communication_disabled_until > now


@dataclass(frozen=True)
class Overwrite:
    """A channel permission overwrite; type 0 targets a role, type 1 a member."""

    id: int
    type: int
    allow: int = 0
    deny: int = 0

    @classmethod
    def for_role(cls, role: IdLike, *, allow: int = 0, deny: int = 0) -> Overwrite:
        return cls(id_of(role), 0, allow, deny)

    @classmethod
    def for_member(cls, user: IdLike, *, allow: int = 0, deny: int = 0) -> Overwrite:
        return cls(id_of(user), 1, allow, deny)


@dataclass
class Channel:
    id: int
    type: int
    name: str | None
    guild_id: int | None = None
    position: int = 0
    parent_id: int | None = None
    topic: str | None = None
    nsfw: bool = False
    overwrites: list[Overwrite] = field(default_factory=list)
    recipient_ids: list[int] = field(default_factory=list)  # DM channels only
    last_message_id: int | None = None


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart request, as the bot sent it."""

    field_name: str
    filename: str
    data: bytes
    content_type: str


@dataclass
class Attachment:
    id: int
    filename: str
    data: bytes
    content_type: str
    description: str | None
    url: str

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass
class InteractionMetadata:
    """What a message says about the interaction it answers."""

    id: int
    type: int
    user_id: int
    name: str | None = None
    original_response_message_id: int | None = None


@dataclass
class Message:
    id: int
    channel_id: int
    guild_id: int | None
    author_id: int
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    flags: int = 0
    type: int = 0
    tts: bool = False
    webhook_id: int | None = None
    interaction: InteractionMetadata | None = None
    reference_id: int | None = None
    edited_at: datetime | None = None
    deleted: bool = False
    nonce: str | int | None = None
    reactions: dict[str, set[int]] = field(default_factory=dict)

    @property
    def created_at(self) -> datetime:
        return snowflake_time(self.id)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def loading(self) -> bool:
        """A deferred interaction's "thinking..." placeholder that no content has replaced yet."""
        return bool(self.flags & LOADING)

    @property
    def files(self) -> list[Attachment]:
        return self.attachments

    @property
    def mention_ids(self) -> list[int]:
        return [int(found) for found in _USER_MENTION.findall(self.content)]

    @property
    def role_mention_ids(self) -> list[int]:
        return [int(found) for found in _ROLE_MENTION.findall(self.content)]

    @property
    def text(self) -> str:
        """Everything a reader sees as text: content plus embed titles, descriptions, fields, footers."""
        parts = [self.content] if self.content else []
        for embed in self.embeds:
            parts += [str(embed[key]) for key in ("title", "description") if embed.get(key)]
            for embed_field in embed.get("fields", []):
                parts += [str(embed_field.get("name", "")), str(embed_field.get("value", ""))]
            if embed.get("footer", {}).get("text"):
                parts.append(str(embed["footer"]["text"]))
        return "\n".join(parts)

    def buttons(self) -> list[dict[str, Any]]:
        """Every button (component type 2) on the message, flattened out of its rows."""
        return [c for c in _walk_components(self.components) if c.get("type") == 2]

    def selects(self) -> list[dict[str, Any]]:
        return [c for c in _walk_components(self.components) if c.get("type") in (3, 5, 6, 7, 8)]


def _walk_components(components: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    for component in components:
        yield component
        yield from _walk_components(component.get("components", []))
        if isinstance(component.get("component"), dict):
            yield from _walk_components([component["component"]])
        if isinstance(component.get("accessory"), dict):
            yield from _walk_components([component["accessory"]])


@dataclass
class Ban:
    user_id: int
    reason: str | None = None


@dataclass
class Guild:
    id: int
    name: str
    owner_id: int
    roles: dict[int, Role] = field(default_factory=dict)
    members: dict[int, Member] = field(default_factory=dict)
    channel_ids: list[int] = field(default_factory=list)
    bans: dict[int, Ban] = field(default_factory=dict)
    unavailable: bool = False
    preferred_locale: str = "en-US"
    system_channel_id: int | None = None

    @property
    def everyone_role(self) -> Role:
        return self.roles[self.id]


@dataclass
class RegisteredCommand:
    """An application command as the bot registered it; `payload` keeps options etc. verbatim."""

    id: int
    application_id: int
    guild_id: int | None
    name: str
    type: int
    payload: dict[str, Any]
    version: int


class World:
    """Everything the fake Discord knows. One per `FakeDiscord`; nothing is shared between servers."""

    def __init__(self, *, bot_name: str = "MalaBot") -> None:
        self.snowflakes = Snowflakes()
        self.users: dict[int, User] = {}
        self.guilds: dict[int, Guild] = {}
        self.channels: dict[int, Channel] = {}
        self.messages: dict[int, Message] = {}
        self.commands: dict[int, RegisteredCommand] = {}
        self.attachments: dict[int, Attachment] = {}  # every uploaded file, served at its URL
        self._dm_channels: dict[int, int] = {}  # user id -> DM channel with the bot
        # When members join (their joined_at): a test moving the bot's clock sets the same one here.
        self.now: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.bot_user = self.add_user(bot_name, bot=True)
        self.app_owner = self.add_user("sandbox-owner", global_name="Sandbox Owner")

    @property
    def application_id(self) -> int:
        # Modern applications share the id of their bot user.
        return self.bot_user.id

    def _new_id(self, chosen: int | None) -> int:
        return self.snowflakes.reserve(chosen) if chosen is not None else self.snowflakes.next()

    # ---- creation -------------------------------------------------------------------------

    def add_user(
        self,
        username: str,
        *,
        id: int | None = None,
        bot: bool = False,
        global_name: str | None = None,
        accepts_dms: bool = True,
    ) -> User:
        user = User(self._new_id(id), username, global_name=global_name, bot=bot, accepts_dms=accepts_dms)
        if user.id in self.users:
            raise SandboxError(f"user id {user.id} already exists")
        self.users[user.id] = user
        return user

    def add_guild(
        self,
        name: str,
        owner: IdLike | None = None,
        *,
        id: int | None = None,
        with_bot: bool = True,
        bot_permissions: int = ALL_PERMISSIONS,
        everyone_permissions: int = DEFAULT_EVERYONE,
        locale: str = "en-US",
    ) -> Guild:
        # A guild always has an owner; a test that does not care gets one made for it.
        owner_id = self.user(id_of(owner)).id if owner is not None else self.add_user(f"{name} owner").id
        guild = Guild(self._new_id(id), name, owner_id, preferred_locale=locale)
        if guild.id in self.guilds:
            raise SandboxError(f"guild id {guild.id} already exists")
        self.guilds[guild.id] = guild
        guild.roles[guild.id] = Role(guild.id, guild.id, "@everyone", permissions=int(everyone_permissions))
        self.add_member(guild, owner_id)
        general = self.add_channel(guild, "general")
        guild.system_channel_id = general.id
        if with_bot:
            self.add_bot_member(guild, permissions=bot_permissions)
        return guild

    def add_bot_member(self, guild: Guild, *, permissions: int = ALL_PERMISSIONS) -> Member:
        """Make the bot a member, with its managed integration role, as an OAuth2 invite would."""
        bot_role = self.add_role(
            guild, self.bot_user.username, permissions=permissions, position=BOT_ROLE_POSITION
        )
        bot_role.managed = True
        bot_role.bot_id = self.bot_user.id
        return self.add_member(guild, self.bot_user, roles=[bot_role])

    def remove_bot_member(self, guild: Guild) -> None:
        guild.members.pop(self.bot_user.id, None)
        for role in [r for r in guild.roles.values() if r.bot_id == self.bot_user.id]:
            del guild.roles[role.id]

    def add_role(
        self,
        guild: IdLike,
        name: str,
        *,
        id: int | None = None,
        permissions: int = 0,
        position: int | None = None,
        above_bot: bool = False,
        color: int = 0,
        hoist: bool = False,
        mentionable: bool = False,
    ) -> Role:
        target = self.guild(id_of(guild))
        if position is None:
            position = self._bot_role_position(target) + 1 if above_bot else self._next_position_below_bot(target)
        role = Role(
            self._new_id(id), target.id, name, permissions=int(permissions), position=position,
            color=color, hoist=hoist, mentionable=mentionable,
        )
        target.roles[role.id] = role
        return role

    def create_role(self, guild: IdLike, name: str, *, above_bot: bool = False, **fields: Any) -> Role:
        """A role made while the bot runs, placed where Discord puts it: just above @everyone, every other
        role moving up one (py-cord's cache assumes exactly that on GUILD_ROLE_CREATE). `above_bot`: then
        dragged above the bot's own role."""
        target = self.guild(id_of(guild))
        for role in target.roles.values():
            if role.id != target.id:
                role.position += 1
        role = self.add_role(target, name, position=1, **fields)
        if above_bot:
            role.position = self._bot_role_position(target) + 1
        return role

    def _bot_role_position(self, guild: Guild) -> int:
        return max((r.position for r in guild.roles.values() if r.bot_id == self.bot_user.id),
                   default=BOT_ROLE_POSITION)

    def _next_position_below_bot(self, guild: Guild) -> int:
        bot_position = self._bot_role_position(guild)
        below = [r.position for r in guild.roles.values() if r.position < bot_position]
        return min(max(below, default=0) + 1, bot_position - 1)

    def add_channel(
        self,
        guild: IdLike,
        name: str,
        *,
        id: int | None = None,
        type: int = GUILD_TEXT,
        parent: IdLike | None = None,
        topic: str | None = None,
        overwrites: Iterable[Overwrite] = (),
        nsfw: bool = False,
    ) -> Channel:
        target = self.guild(id_of(guild))
        channel = Channel(
            self._new_id(id), type, name, guild_id=target.id, position=len(target.channel_ids),
            parent_id=id_of(parent) if parent is not None else None, topic=topic, nsfw=nsfw,
            overwrites=list(overwrites),
        )
        self.channels[channel.id] = channel
        target.channel_ids.append(channel.id)
        return channel

    def remove_channel(self, channel: IdLike) -> Channel:
        """Delete a guild channel; its messages go with it (routes then answer Unknown Channel)."""
        target = self.channel(id_of(channel))
        if target.guild_id is None:
            raise SandboxError(f"{target.name} is not a guild channel")
        self.guild(target.guild_id).channel_ids.remove(target.id)
        del self.channels[target.id]
        return target

    def add_member(
        self,
        guild: IdLike,
        user: IdLike,
        *,
        roles: Iterable[IdLike] = (),
        nick: str | None = None,
        joined_at: datetime | None = None,
    ) -> Member:
        target = self.guild(id_of(guild))
        user_id = self.user(id_of(user)).id
        role_ids = [id_of(role) for role in roles]
        for role_id in role_ids:
            self.role(target.id, role_id)
        member = Member(target.id, user_id, roles=role_ids, nick=nick,
                        joined_at=joined_at or self.now())
        target.members[user_id] = member
        return member

    def dm_channel(self, user: IdLike) -> Channel:
        """The DM channel between the bot and a user, created on first use (as Discord does)."""
        user_id = self.user(id_of(user)).id
        channel_id = self._dm_channels.get(user_id)
        if channel_id is None:
            channel = Channel(self.snowflakes.next(), DM, None, recipient_ids=[user_id])
            self.channels[channel.id] = channel
            self._dm_channels[user_id] = channel.id
            return channel
        return self.channels[channel_id]

    def add_message(
        self,
        channel: Channel,
        author_id: int,
        content: str = "",
        *,
        at: datetime | None = None,
        **fields: Any,
    ) -> Message:
        message = Message(
            self.snowflakes.next(at), channel.id, channel.guild_id, author_id, content, **fields
        )
        self.messages[message.id] = message
        if not message.ephemeral:
            channel.last_message_id = max(channel.last_message_id or 0, message.id)
        return message

    def new_attachment(self, channel_id: int, filename: str, data: bytes, content_type: str,
                       description: str | None, url_root: str) -> Attachment:
        attachment_id = self.snowflakes.next()
        url = f"{url_root}/attachments/{channel_id}/{attachment_id}/{filename}"
        attachment = Attachment(attachment_id, filename, data, content_type, description, url)
        self.attachments[attachment_id] = attachment
        return attachment

    # ---- lookup ---------------------------------------------------------------------------

    def user(self, user_id: int) -> User:
        try:
            return self.users[user_id]
        except KeyError:
            raise unknown("User") from None

    def guild(self, guild_id: int) -> Guild:
        try:
            return self.guilds[guild_id]
        except KeyError:
            raise unknown("Guild") from None

    def bot_guild(self, guild_id: int) -> Guild:
        """A guild the bot may act in: it exists and the bot is a member (outages don't stop REST)."""
        guild = self.guild(guild_id)
        if self.bot_user.id not in guild.members:
            raise unknown("Guild")
        return guild

    def member(self, guild_id: int, user_id: int) -> Member:
        try:
            return self.guild(guild_id).members[user_id]
        except KeyError:
            raise unknown("Member") from None

    def bot_member(self, guild: Guild) -> Member:
        return guild.members[self.bot_user.id]

    def role(self, guild_id: int, role_id: int) -> Role:
        try:
            return self.guild(guild_id).roles[role_id]
        except KeyError:
            raise unknown("Role") from None

    def channel(self, channel_id: int) -> Channel:
        try:
            return self.channels[channel_id]
        except KeyError:
            raise unknown("Channel") from None

    def message(self, channel_id: int, message_id: int) -> Message:
        """A message as the channel routes find it: an ephemeral one is reached only through its
        interaction's webhook, so here it is unknown, as on Discord."""
        message = self.messages.get(message_id)
        if message is None or message.channel_id != channel_id or message.deleted or message.ephemeral:
            raise unknown("Message")
        return message

    def guild_channels(self, guild: Guild) -> list[Channel]:
        return [self.channels[channel_id] for channel_id in guild.channel_ids]

    def channel_messages(self, channel_id: int, *, include_ephemeral: bool = False) -> list[Message]:
        """Messages of a channel, oldest first, without deleted ones."""
        return sorted(
            (m for m in self.messages.values()
             if m.channel_id == channel_id and not m.deleted and (include_ephemeral or not m.ephemeral)),
            key=lambda m: m.id,
        )

    def bot_guilds(self) -> list[Guild]:
        return [g for g in self.guilds.values() if self.bot_user.id in g.members]

    def commands_for(self, guild_id: int | None) -> list[RegisteredCommand]:
        return sorted(
            (c for c in self.commands.values() if c.guild_id == guild_id), key=lambda c: c.id
        )
