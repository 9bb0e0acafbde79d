"""`FakeDiscord`: a Discord-compatible server on 127.0.0.1 for the real py-cord client.

Build a world (users, guilds, roles, channels, members) with the plain `add_*` methods, start
the server, point the bot at `api_base_url` and `token`, then act as Discord users with the
async methods: they push the gateway events Discord would send and, by default, return once the
bot has read them. Everything the bot sends is recorded in `requests`.

    server = FakeDiscord()
    await server.start()
    guild = server.add_guild("Demo")
    alice = server.add_user("alice"); server.add_member(guild, alice)
    ...  # start the bot (see malabot.sandbox.harness.running_bot)
    reply = await server.invoke_command(guild, guild.system_channel_id, alice, "rank")
    assert reply.ephemeral and "Level" in reply.content
"""

from __future__ import annotations

import base64
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from aiohttp import web

from malabot.sandbox import events
from malabot.sandbox.context import SANDBOX, Sandbox
from malabot.sandbox.errors import SandboxError, SandboxTimeout
from malabot.sandbox.gateway import EventHold, EventTest, Gateway, GatewayEvent, Session
from malabot.sandbox.holds import Hold, RequestTest
from malabot.sandbox.interactions import (
    ANSWER_DEADLINE,
    APPLICATION_COMMAND,
    AUTOCOMPLETE,
    MESSAGE_COMPONENT,
    MODAL_SUBMIT,
    InteractionReply,
    ResolvedBuilder,
    base_payload,
    command_data,
    find_command,
    find_component,
    modal_submit_components,
    new_reply,
)
from malabot.sandbox.payloads import message_payload
from malabot.sandbox.permissions import ALL_PERMISSIONS, DEFAULT_EVERYONE
from malabot.sandbox.rate_limits import RateLimit
from malabot.sandbox.recorder import GatewayFrame, RecordedRequest, RequestLog
from malabot.sandbox.routes import API_PREFIX, MAX_UPLOAD, build_api
from malabot.sandbox.state import (
    GUILD_TEXT,
    Channel,
    Guild,
    IdLike,
    Member,
    Message,
    Overwrite,
    RegisteredCommand,
    Role,
    UploadedFile,
    User,
    World,
    id_of,
)

FileLike = tuple[str, bytes] | UploadedFile


class FakeDiscord:
    """An in-memory Discord: REST under /api/v10 and a gateway websocket, on 127.0.0.1.

    `sync_events` (default True): async actions wait until the bot has parsed the events they
    caused, so the bot's cache is up to date when they return. Each wait is one gateway round
    trip, which py-cord counts against its 110-frames-a-minute budget; a script pushing more
    events than that per minute should turn it off and call `sync_with_bot()` itself.
    """

    def __init__(self, *, bot_name: str = "MalaBot", token: str | None = None,
                 timeout: float = 5.0, heartbeat_interval: float = 41.25, sync_events: bool = True,
                 answer_deadline: float | None = ANSWER_DEADLINE) -> None:
        self.world = World(bot_name=bot_name)
        bot_token = token or _token_for(self.world.bot_user.id)
        self.log = RequestLog()
        self.gateway = Gateway(self.world, self.log, token=bot_token,
                               heartbeat_interval=heartbeat_interval * 1000)
        self._sandbox = Sandbox(self.world, self.log, self.gateway, bot_token)
        self.answer_deadline = answer_deadline
        # How long any wait for the bot lasts before it fails with a SandboxTimeout saying what
        # the bot did not do. One setting for every method; change it on the instance if needed.
        self.timeout = timeout
        self.sync_events = sync_events
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ---- lifecycle ------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> FakeDiscord:
        """Bind (a free port by default) and serve. Returns self."""
        if self._runner is not None:
            raise SandboxError("the server is already running")
        app = web.Application(client_max_size=MAX_UPLOAD)
        app[SANDBOX] = self._sandbox
        app.router.add_get("/gateway", self.gateway.handle)
        app.router.add_get(r"/attachments/{channel_id:\d+}/{attachment_id:\d+}/{filename}", _serve_attachment)
        app.add_subapp(API_PREFIX, build_api(self._sandbox))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._sandbox.url_root = f"http://{host}:{self.port}"
        self.gateway.url = f"ws://{host}:{self.port}/gateway"
        return self

    async def stop(self) -> None:
        if self._runner is None:
            return
        await self.gateway.close()
        await self._runner.cleanup()
        self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def answer_deadline(self) -> float | None:
        """Seconds the bot has to first answer an interaction (3, as on Discord; None: no limit). A later
        answer gets 404 Unknown interaction (10062) and the wait for the reply fails saying so. A test
        may shorten it to check that the bot answers before slow work (e.g. a held request)."""
        return self._sandbox.interactions.deadline

    @answer_deadline.setter
    def answer_deadline(self, seconds: float | None) -> None:
        self._sandbox.interactions.deadline = seconds

    @property
    def member_list_window(self) -> float:
        """Seconds during which a second request for a guild's whole member list (gateway op 8 with
        query "" and limit 0) gets a RATE_LIMITED dispatch instead of chunks: 30, as on Discord. A test
        may shorten it to see the bot ask again after `retry_after` without waiting half a minute."""
        return self.gateway.full_member_list_window

    @member_list_window.setter
    def member_list_window(self, seconds: float) -> None:
        self.gateway.full_member_list_window = seconds

    @property
    def token(self) -> str:
        """The bot token REST and the gateway accept (shaped like a real one, never valid on Discord)."""
        return self._sandbox.token

    @property
    def url_root(self) -> str:
        """http://127.0.0.1:PORT"""
        return self._sandbox.url_root

    @property
    def api_base_url(self) -> str:
        """What the bot sets as `discord.http.Route.API_BASE_URL`: http://127.0.0.1:PORT/api/v10"""
        if not self.port:
            raise SandboxError("start() the server before asking for its URL")
        return self.url_root + API_PREFIX

    @property
    def gateway_url(self) -> str:
        return self.gateway.url

    # ---- building the world (no events: use before the bot connects, or for silent changes) --

    @property
    def bot_user(self) -> User:
        return self.world.bot_user

    @property
    def application_id(self) -> int:
        return self.world.application_id

    @property
    def app_owner(self) -> User:
        """The user `GET /oauth2/applications/@me` names as the application's owner."""
        return self.world.app_owner

    def add_user(self, username: str, *, id: int | None = None, bot: bool = False,
                 global_name: str | None = None, accepts_dms: bool = True) -> User:
        return self.world.add_user(username, id=id, bot=bot, global_name=global_name, accepts_dms=accepts_dms)

    def add_guild(self, name: str = "Sandbox", owner: IdLike | None = None, *, id: int | None = None,
                  with_bot: bool = True, bot_permissions: int = ALL_PERMISSIONS,
                  everyone_permissions: int = DEFAULT_EVERYONE, locale: str = "en-US") -> Guild:
        """A guild with @everyone, a #general text channel (`system_channel_id`), its owner as a
        member (made up when not given) and, unless `with_bot=False`, the bot with its managed role
        at position 50 holding `bot_permissions` (administrator by default)."""
        return self.world.add_guild(name, owner, id=id, with_bot=with_bot, bot_permissions=bot_permissions,
                                    everyone_permissions=everyone_permissions, locale=locale)

    def add_role(self, guild: IdLike, name: str, *, id: int | None = None, permissions: int = 0,
                 position: int | None = None, above_bot: bool = False, color: int = 0, hoist: bool = False,
                 mentionable: bool = False) -> Role:
        """A role below the bot's own role (so the bot can grant it), or above it with `above_bot=True`."""
        return self.world.add_role(guild, name, id=id, permissions=permissions, position=position,
                                   above_bot=above_bot, color=color, hoist=hoist, mentionable=mentionable)

    def add_channel(self, guild: IdLike, name: str, *, id: int | None = None, type: int = GUILD_TEXT,
                    parent: IdLike | None = None, topic: str | None = None,
                    overwrites: Iterable[Overwrite] = (), nsfw: bool = False) -> Channel:
        return self.world.add_channel(guild, name, id=id, type=type, parent=parent, topic=topic,
                                      overwrites=overwrites, nsfw=nsfw)

    def add_member(self, guild: IdLike, user: IdLike, *, roles: Iterable[IdLike] = (),
                   nick: str | None = None, joined_at: datetime | None = None) -> Member:
        """Make a user a member silently (no GUILD_MEMBER_ADD); see `member_join` for a live join."""
        return self.world.add_member(guild, user, roles=roles, nick=nick, joined_at=joined_at)

    def dm_channel(self, user: IdLike) -> Channel:
        """The DM channel between the bot and `user` (created on first use)."""
        return self.world.dm_channel(user)

    # ---- looking at the world -------------------------------------------------------------

    def guild(self, guild: IdLike) -> Guild:
        return self.world.guild(id_of(guild))

    def user(self, user: IdLike) -> User:
        return self.world.user(id_of(user))

    def member(self, guild: IdLike, user: IdLike) -> Member | None:
        """The member as the server knows it now, or None if not (or no longer) a member."""
        return self.world.guild(id_of(guild)).members.get(id_of(user))

    def role(self, guild: IdLike, role: IdLike) -> Role:
        return self.world.role(id_of(guild), id_of(role))

    def channel(self, channel: IdLike) -> Channel:
        return self.world.channel(id_of(channel))

    def message(self, message: IdLike) -> Message:
        """Any message by id, deleted ones included (check `.deleted`)."""
        try:
            return self.world.messages[id_of(message)]
        except KeyError:
            raise SandboxError(f"no message {id_of(message)}") from None

    def messages_in(self, channel: IdLike, *, author: IdLike | None = None,
                    include_ephemeral: bool = False) -> list[Message]:
        """Messages of a channel, oldest first, without deleted (and by default ephemeral) ones."""
        found = self.world.channel_messages(id_of(channel), include_ephemeral=include_ephemeral)
        return [m for m in found if author is None or m.author_id == id_of(author)]

    def commands(self, guild: IdLike | None = None) -> list[RegisteredCommand]:
        """Application commands the bot registered: global ones, or those of one guild."""
        return self.world.commands_for(id_of(guild) if guild is not None else None)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every REST request of the bot so far, in order."""
        return self.log.requests

    @property
    def gateway_frames(self) -> list[GatewayFrame]:
        """Every payload the bot sent over the gateway (IDENTIFY, heartbeats, member requests...)."""
        return self.log.gateway_frames

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        """Requests with that method whose path (after /api/v10) equals `path` or matches it as a glob."""
        return self.log.to(method, path)

    async def wait_for_request(self, predicate: Callable[[RecordedRequest], bool] | None = None, *,
                               method: str | None = None, path: str | None = None,
                               since: int = 0) -> RecordedRequest:
        """The first request (from index `since` of `requests`) matching all the given conditions."""

        def wanted(request: RecordedRequest) -> bool:
            if method is not None and request.method != method.upper():
                return False
            if path is not None and not request.matches(request.method, path):
                return False
            return predicate is None or predicate(request)

        return await self.log.wait_for(wanted, within=self.timeout, start=since)

    @contextlib.asynccontextmanager
    async def holding_requests(self, matches: RequestTest) -> AsyncIterator[Hold]:
        """Hold the bot's requests that `matches(method, path, json)` accepts until `release()` or
        the end of the block (a slow Discord): `await hold.arrived(within)` waits for the first one."""
        hold = self._sandbox.holds.add(matches)
        try:
            yield hold
        finally:
            self._sandbox.holds.remove(hold)

    def rate_limit(self, matches: RequestTest, *, times: int = 1, retry_after: float = 0.05,
                   is_global: bool = False) -> RateLimit:
        """Answer the next `times` requests that `matches(method, path, json)` accepts with Discord's 429
        (retry_after, X-RateLimit-* headers); `.hits` counts them. py-cord waits and retries by itself,
        up to five tries in all: five 429s in a row reach the bot as an HTTPException."""
        return self._sandbox.rate_limits.add(RateLimit(matches, times=times, retry_after=retry_after,
                                                       is_global=is_global))

    @contextlib.asynccontextmanager
    async def holding_member_lists(self, guild: IdLike) -> AsyncIterator[Hold]:
        """Hold the answers to the bot's requests for `guild`'s members (REQUEST_GUILD_MEMBERS, which
        py-cord sends for a large guild before it reports it) until `release()` or the end of the
        block: a large server's member list takes a while. `await hold.arrived(within)` waits for one."""
        guild_id = id_of(guild)
        hold = Hold(lambda *_: True)
        self.gateway.member_list_holds[guild_id] = hold
        try:
            yield hold
        finally:
            del self.gateway.member_list_holds[guild_id]
            hold.release()

    @contextlib.asynccontextmanager
    async def holding_events(self, matches: EventTest) -> AsyncIterator[EventHold]:
        """Hold back the gateway events that `matches(name, payload)` accepts until the end of the
        block, then send them in order (a gateway running behind Discord's HTTP answers, as it often
        does by seconds). Events of other kinds go on meanwhile; `.held` lists those kept, and
        `await hold.send(n)` lets the first n go before the end."""

        async def deliver(event: GatewayEvent) -> None:
            await self.gateway.deliver(event)
            await self._settle()

        hold = EventHold(matches, deliver)
        self.gateway.event_holds.append(hold)
        try:
            yield hold
        finally:
            # Still holding while they go out: what the bot does in answer queues behind the older ones.
            while hold.held:
                await hold.send(1)
            self.gateway.event_holds.remove(hold)

    # ---- the bot's connection ---------------------------------------------------------------

    async def wait_for_bot(self) -> Session:
        """Wait until the bot has identified on the gateway."""
        return await self.gateway.wait_for_session(within=self.timeout)

    async def sync_with_bot(self) -> None:
        """Return once the bot has parsed every gateway event sent so far (its cache is current)."""
        await self.gateway.barrier(within=self.timeout)

    async def disconnect_bot(self, *, resumable: bool = True) -> None:
        """Drop the bot's gateway connection: it RESUMEs (and gets missed events) or re-IDENTIFYs."""
        await self.gateway.disconnect(resumable=resumable)

    async def dispatch(self, event: str, payload: dict[str, Any], *, guild_id: int | None = None) -> int:
        """Push any gateway event as is; returns how many sessions got it."""
        sent = await self.gateway.dispatch(event, payload, guild_id=guild_id)
        await self._settle()
        return sent

    async def _settle(self) -> None:
        if self.sync_events:
            await self.sync_with_bot()

    # ---- acting as Discord users ------------------------------------------------------------

    async def send_message(self, channel: IdLike, author: IdLike, content: str = "", *,
                           embeds: Sequence[dict[str, Any]] = (), files: Sequence[FileLike] = (),
                           reply_to: IdLike | None = None, at: datetime | None = None) -> Message:
        """A message by a member (or, in a DM channel, by the user) -> MESSAGE_CREATE to the bot.

        `at` backdates it (e.g. to test bulk-delete limits); files are (filename, bytes) pairs.
        """
        target = self.world.channel(id_of(channel))
        user = self.world.user(id_of(author))
        if target.guild_id is not None and user.id not in self.world.guild(target.guild_id).members:
            raise SandboxError(f"{user.username} is not a member of the channel's guild")
        if target.guild_id is None and user.id not in target.recipient_ids:
            raise SandboxError(f"{user.username} is not in that DM channel")
        attachments = [
            self.world.new_attachment(target.id, f.filename, f.data, f.content_type, None, self.url_root)
            for f in map(_as_upload, files)
        ]
        message = self.world.add_message(
            target, user.id, content, at=at, embeds=[dict(e) for e in embeds], attachments=attachments,
            reference_id=id_of(reply_to) if reply_to is not None else None, type=19 if reply_to else 0,
        )
        await events.message_created(self._sandbox, message)
        await self._settle()
        return message

    async def delete_message(self, message: IdLike) -> None:
        """A user (or moderator) deletes a message -> MESSAGE_DELETE."""
        target = self.message(message)
        target.deleted = True
        await events.message_deleted(self._sandbox, target)
        await self._settle()

    async def add_reaction(self, message: IdLike, user: IdLike, emoji: str) -> None:
        """A user reacts with a unicode emoji -> MESSAGE_REACTION_ADD."""
        target = self.message(message)
        user_id = self.world.user(id_of(user)).id
        target.reactions.setdefault(emoji, set()).add(user_id)
        await events.reaction_added(self._sandbox, target, user_id, emoji)
        await self._settle()

    async def member_join(self, guild: IdLike, user: IdLike, *, roles: Iterable[IdLike] = (),
                          nick: str | None = None, pending: bool = False) -> Member:
        """A user joins a guild -> GUILD_MEMBER_ADD.

        `pending=True`: the server has Membership Screening and they have not accepted its rules yet;
        `update_member(..., pending=False)` is them accepting.
        """
        member = self.world.add_member(guild, user, roles=roles, nick=nick)
        member.pending = pending
        await events.member_added(self._sandbox, member)
        await self._settle()
        return member

    async def update_member(self, guild: IdLike, user: IdLike, *, roles: Iterable[IdLike] | None = None,
                            nick: str | None = None, timed_out_until: datetime | None = None,
                            pending: bool | None = None) -> Member:
        """Someone else (a moderator, another bot) changes a member, or they pass Membership Screening
        (pending=False) -> GUILD_MEMBER_UPDATE.

        Only the arguments given change; pass roles=[] to clear roles.
        """
        member = self.world.member(id_of(guild), id_of(user))
        if roles is not None:
            member.roles = [self.world.role(member.guild_id, id_of(r)).id for r in roles]
        if nick is not None:
            member.nick = nick or None
        if timed_out_until is not None:
            member.communication_disabled_until = timed_out_until
        if pending is not None:
            member.pending = pending
        await events.member_updated(self._sandbox, member)
        await self._settle()
        return member

    async def create_role(self, guild: IdLike, name: str, *, permissions: int = 0, above_bot: bool = False,
                          color: int = 0, hoist: bool = False, mentionable: bool = False) -> Role:
        """Someone creates a role while the bot runs -> GUILD_ROLE_CREATE (add_role is silent)."""
        role = self.world.create_role(guild, name, permissions=permissions, above_bot=above_bot, color=color,
                                      hoist=hoist, mentionable=mentionable)
        await events.role_created(self._sandbox, role)
        await self._settle()
        return role

    async def create_channel(self, guild: IdLike, name: str, *, type: int = GUILD_TEXT,
                             parent: IdLike | None = None, topic: str | None = None,
                             overwrites: Iterable[Overwrite] = ()) -> Channel:
        """Someone creates a channel while the bot runs -> CHANNEL_CREATE (add_channel is silent)."""
        channel = self.world.add_channel(guild, name, type=type, parent=parent, topic=topic,
                                         overwrites=overwrites)
        await events.channel_event(self._sandbox, "CHANNEL_CREATE", channel)
        await self._settle()
        return channel

    async def delete_channel(self, channel: IdLike) -> Channel:
        """An admin deletes a channel -> CHANNEL_DELETE; the channel and its messages are gone."""
        deleted = self.world.remove_channel(channel)
        await events.channel_event(self._sandbox, "CHANNEL_DELETE", deleted)
        await self._settle()
        return deleted

    async def set_overwrite(self, channel: IdLike, overwrite: Overwrite) -> Channel:
        """Someone edits a channel's permissions for one role or member -> CHANNEL_UPDATE (it replaces
        that role's or member's overwrite, as Discord's PUT /channels/{id}/permissions/{id} does)."""
        target = self.world.channel(id_of(channel))
        target.overwrites = [o for o in target.overwrites if o.id != overwrite.id] + [overwrite]
        await events.channel_event(self._sandbox, "CHANNEL_UPDATE", target)
        await self._settle()
        return target

    async def remove_member(self, guild: IdLike, user: IdLike, *, uncached: bool = False) -> None:
        """A member leaves (or is kicked by someone else) -> GUILD_MEMBER_REMOVE.

        `uncached=True` sends the event for a user who is *not* a member in the server's world,
        i.e. one the bot never received in GUILD_CREATE or a chunk: py-cord then fires only
        `on_raw_member_remove`. An unknown user id is created on the fly for this.
        """
        target = self.world.guild(id_of(guild))
        user_id = id_of(user)
        if uncached:
            if user_id in target.members:
                raise SandboxError("uncached=True is for users the bot never saw as members; "
                                   "this one is a member (use add_user() without add_member())")
            if user_id not in self.world.users:
                self.world.add_user(f"user-{user_id}", id=user_id)
        elif target.members.pop(user_id, None) is None:
            raise SandboxError(f"user {user_id} is not a member of {target.name}; pass uncached=True "
                               "to announce the removal of a member the bot never saw")
        await events.member_removed(self._sandbox, target.id, self.world.user(user_id))
        await self._settle()

    async def remove_bot_from_guild(self, guild: IdLike) -> None:
        """The bot is kicked or the guild deleted -> GUILD_DELETE without `unavailable`."""
        target = self.world.guild(id_of(guild))
        if self.world.bot_user.id not in target.members:
            raise SandboxError(f"the bot is not in {target.name}")
        self.world.remove_bot_member(target)
        await events.guild_deleted(self._sandbox, target.id, unavailable=False)
        await self._settle()

    async def add_bot_to_guild(self, guild: IdLike, *, permissions: int = ALL_PERMISSIONS) -> None:
        """The bot is invited (again) -> GUILD_CREATE without `unavailable` (py-cord: on_guild_join)."""
        target = self.world.guild(id_of(guild))
        if self.world.bot_user.id in target.members:
            raise SandboxError(f"the bot is already in {target.name}")
        self.world.add_bot_member(target, permissions=permissions)
        await events.guild_created(self._sandbox, target, unavailable=None)
        await self._settle()

    async def guild_outage(self, guild: IdLike) -> None:
        """A Discord outage -> GUILD_DELETE with `unavailable: true` (py-cord: on_guild_unavailable).
        Until `end_guild_outage` the bot hears nothing else from the server (its interactions are refused)."""
        target = self.world.guild(id_of(guild))
        target.unavailable = True
        await events.guild_deleted(self._sandbox, target.id, unavailable=True)
        await self._settle()

    async def end_guild_outage(self, guild: IdLike) -> None:
        """The outage ends -> GUILD_CREATE with `unavailable: false` (py-cord: on_guild_available)."""
        target = self.world.guild(id_of(guild))
        target.unavailable = False
        await events.guild_created(self._sandbox, target, unavailable=False)
        await self._settle()

    # ---- interactions -----------------------------------------------------------------------

    async def invoke_command(self, guild: IdLike | None, channel: IdLike | None, user: IdLike, name: str,
                             options: Mapping[str, Any] | None = None, subcommand: str | None = None, *,
                             target: IdLike | None = None, locale: str = "en-US") -> InteractionReply:
        """Use a slash (or context-menu) command the bot registered, and wait for its answer.

        `name` may include the subcommand path ("xp give"), or pass `subcommand="give"` /
        `"group sub"`. Option values: str/int/float/bool, ids or records (users, roles,
        channels), (filename, bytes) for attachments. `guild=None` invokes it in the user's DM
        with the bot (`channel` may then be None). Returns once the bot answered: a message,
        a modal, or - after a "thinking..." deferral - the content that replaced it.
        """
        where, place, invoker = self._interaction_place(guild, channel, user)
        command_name, *path = name.split()
        path += subcommand.split() if subcommand else []
        command = await self._registered_command(command_name, where)
        reply = new_reply(self.world, type=APPLICATION_COMMAND, name=" ".join([command_name, *path]),
                          guild=where, channel=place, user=invoker, within=self.timeout)
        payload = base_payload(self.world, reply, where, place, invoker, locale=locale)
        payload["data"] = command_data(self.world, command, path=path, values=options or {}, guild=where,
                                       channel=place, invoker=invoker, url_root=self.url_root, target=target)
        return await self._send_interaction(reply, payload)

    async def autocomplete(self, guild: IdLike | None, channel: IdLike | None, user: IdLike, name: str,
                           focused: str, value: str, options: Mapping[str, Any] | None = None,
                           subcommand: str | None = None) -> list[dict[str, Any]]:
        """Type `value` into option `focused` of a command; returns the choices the bot offers."""
        where, place, invoker = self._interaction_place(guild, channel, user)
        command_name, *path = name.split()
        path += subcommand.split() if subcommand else []
        command = await self._registered_command(command_name, where)
        reply = new_reply(self.world, type=AUTOCOMPLETE, name=" ".join([command_name, *path]),
                          guild=where, channel=place, user=invoker, within=self.timeout)
        payload = base_payload(self.world, reply, where, place, invoker, locale="en-US")
        values = {**(options or {}), focused: value}
        payload["data"] = command_data(self.world, command, path=path, values=values, guild=where,
                                       channel=place, invoker=invoker, url_root=self.url_root,
                                       focused=focused)
        await self._send_interaction(reply, payload)
        return reply.choices or []

    async def press_button(self, message: IdLike, user: IdLike, *, custom_id: str | None = None,
                           label: str | None = None) -> InteractionReply:
        """Click a button on a message, found by `custom_id` or by its `label`."""
        source = self._live_message(message)
        button = find_component(source, custom_id=custom_id, label=label, component_types=(2,))
        if button.get("disabled"):
            raise SandboxError(f"the button {button.get('label') or button.get('custom_id')!r} is disabled")
        if "custom_id" not in button:
            raise SandboxError("link buttons open a URL; they send no interaction")
        data = {"custom_id": button["custom_id"], "component_type": 2}
        return await self._component_interaction(source, user, data)

    async def choose(self, message: IdLike, user: IdLike, values: Sequence[Any], *,
                     custom_id: str | None = None, placeholder: str | None = None) -> InteractionReply:
        """Pick `values` in a select menu (string values, or ids for user/role/channel selects)."""
        source = self._live_message(message)
        select = find_component(source, custom_id=custom_id, label=placeholder,
                                component_types=(3, 5, 6, 7, 8))
        if not select.get("min_values", 1) <= len(values) <= select.get("max_values", 1):
            raise SandboxError(f"the select takes {select.get('min_values', 1)} to "
                               f"{select.get('max_values', 1)} values, not {len(values)}")
        data: dict[str, Any] = {"custom_id": select["custom_id"], "component_type": select["type"]}
        if select["type"] == 3:
            offered = [o["value"] for o in select.get("options", [])]
            data["values"] = [str(v) for v in values]
            if any(v not in offered for v in data["values"]):
                raise SandboxError(f"the select offers {offered}, not {list(values)}")
        else:
            data["values"] = [str(id_of(v)) for v in values]
            data["resolved"] = self._resolved_for_select(source, select["type"], data["values"],
                                                         self.world.user(id_of(user)))
        return await self._component_interaction(source, user, data)

    async def submit_modal(self, reply: InteractionReply, values: Mapping[str, str]) -> InteractionReply:
        """Fill and submit the modal the bot opened in `reply`; `values` by input custom_id or label."""
        if reply.modal is None:
            raise SandboxError(f"the bot opened no modal in {reply!r}")
        where = self.world.guild(reply.guild_id) if reply.guild_id is not None else None
        place, invoker = self.world.channel(reply.channel_id), self.world.user(reply.user_id)
        submit = new_reply(self.world, type=MODAL_SUBMIT, name=reply.name, guild=where, channel=place,
                           user=invoker, source_message=reply.source_message, within=self.timeout)
        payload = base_payload(self.world, submit, where, place, invoker, locale="en-US")
        payload["data"] = {"custom_id": reply.modal.get("custom_id"),
                           "components": modal_submit_components(reply.modal, values)}
        if reply.source_message is not None:
            payload["message"] = message_payload(self.world, reply.source_message)
        return await self._send_interaction(submit, payload)

    def _live_message(self, message: IdLike) -> Message:
        found = self.message(message)
        if found.deleted:
            raise SandboxError(f"message {found.id} was deleted; its components cannot be used")
        return found

    def _interaction_place(self, guild: IdLike | None, channel: IdLike | None,
                           user: IdLike) -> tuple[Guild | None, Channel, User]:
        invoker = self.world.user(id_of(user))
        if guild is None:
            if channel is None:
                return None, self.world.dm_channel(invoker), invoker
            return None, self.world.channel(id_of(channel)), invoker
        where = self.world.guild(id_of(guild))
        if invoker.id not in where.members:
            raise SandboxError(f"{invoker.username} is not a member of {where.name}")
        if channel is None:
            raise SandboxError("a guild interaction needs a channel")
        place = self.world.channel(id_of(channel))
        if place.guild_id != where.id:
            raise SandboxError(f"channel {place.name} is not in {where.name}")
        return where, place, invoker

    async def _registered_command(self, name: str, guild: Guild | None) -> RegisteredCommand:
        """The command the bot registered under `name`, waiting for its command sync if needed."""
        try:
            await self._sandbox.commands_changed.wait_until(
                lambda: find_command(self.world, name, guild) is not None, within=self.timeout,
                waiting_for=f"the bot to register /{name}")
        except SandboxTimeout:
            known = sorted({c.name for c in self.world.commands.values()})
            raise SandboxError(f"the bot registered no command /{name} (registered: {known})") from None
        command = find_command(self.world, name, guild)
        assert command is not None
        return command

    async def _component_interaction(self, source: Message, user: IdLike,
                                     data: dict[str, Any]) -> InteractionReply:
        where = self.world.guild(source.guild_id) if source.guild_id is not None else None
        place = self.world.channel(source.channel_id)
        invoker = self.world.user(id_of(user))
        reply = new_reply(self.world, type=MESSAGE_COMPONENT, name=None, guild=where, channel=place,
                          user=invoker, source_message=source, within=self.timeout)
        payload = base_payload(self.world, reply, where, place, invoker, locale="en-US")
        payload["data"] = data
        payload["message"] = message_payload(self.world, source)
        return await self._send_interaction(reply, payload)

    def _resolved_for_select(self, source: Message, select_type: int, values: list[str],
                             invoker: User) -> dict[str, Any]:
        where = self.world.guild(source.guild_id) if source.guild_id is not None else None
        resolved = ResolvedBuilder(self.world, where, self.world.channel(source.channel_id), invoker.id)
        for value in map(int, values):
            if select_type == 8:
                resolved.channel_option(self.world.channel(value))
            elif value in self.world.users and select_type in (5, 7):
                resolved.user(value)
            elif where is not None:
                resolved.role(self.world.role(where.id, value))
        return resolved.data

    async def _send_interaction(self, reply: InteractionReply, payload: dict[str, Any]) -> InteractionReply:
        if reply.guild_id is not None and self.gateway.in_outage(reply.guild_id):
            raise SandboxError("the server is in an outage: Discord delivers nothing from it to the bot")
        self._sandbox.interactions.add(reply)
        sent = await self.gateway.dispatch("INTERACTION_CREATE", payload, guild_id=reply.guild_id)
        if not sent:
            raise SandboxError("no bot is connected to the gateway to receive the interaction")
        await reply.wait_until_answered()
        await self._settle()  # e.g. the MESSAGE_CREATE of a public answer has reached the bot
        return reply


async def _serve_attachment(request: web.Request) -> web.Response:
    """Attachment URLs point here, so `Attachment.read()` in the bot works offline."""
    world = request.config_dict[SANDBOX].world
    attachment = world.attachments.get(int(request.match_info["attachment_id"]))
    if attachment is None:
        raise web.HTTPNotFound()
    return web.Response(body=attachment.data, content_type=attachment.content_type)


def _as_upload(file: FileLike) -> UploadedFile:
    if isinstance(file, UploadedFile):
        return file
    filename, data = file
    return UploadedFile("files[0]", filename, data, "application/octet-stream")


def _token_for(bot_id: int) -> str:
    """A token shaped like Discord's (base64 user id . timestamp . hmac), never a real one."""
    user_part = base64.urlsafe_b64encode(str(bot_id).encode()).decode().rstrip("=")
    return f"{user_part}.Sandbx.{secrets.token_urlsafe(27)}"
