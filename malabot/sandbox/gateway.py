"""The gateway websocket (API v10, JSON text frames): sessions, dispatch, resume, member chunks.

A *session* outlives its websocket: when a connection drops, events keep numbering and are kept,
so a RESUME replays what was missed, as on Discord. Events are filtered per session by shard and
intents, and message content is blanked without the MESSAGE_CONTENT intent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from aiohttp import WSMsgType, web

from malabot.sandbox import payloads
from malabot.sandbox.holds import Hold
from malabot.sandbox.recorder import GatewayFrame, RequestLog
from malabot.sandbox.state import Guild, World
from malabot.sandbox.waiting import Waiters

log = logging.getLogger(__name__)

# Opcodes (https://discord.com/developers/docs/topics/opcodes-and-status-codes#gateway).
DISPATCH, HEARTBEAT, IDENTIFY, PRESENCE_UPDATE, VOICE_STATE_UPDATE = 0, 1, 2, 3, 4
RESUME, RECONNECT, REQUEST_GUILD_MEMBERS, INVALID_SESSION, HELLO, HEARTBEAT_ACK = 6, 7, 8, 9, 10, 11

# Close codes py-cord treats as final (bad token, privileged intents) or resumable (anything else, e.g. 4000).
CLOSE_DECODE_ERROR = 4002
CLOSE_AUTHENTICATION_FAILED = 4004
CLOSE_DISALLOWED_INTENTS = 4014
CLOSE_RESUMABLE = 4000
CLOSE_RATE_LIMITED = 4008
# Discord closes a connection that sends more than this many payloads in a minute (py-cord keeps to 110
# besides its heartbeats).
SENDS_PER_MINUTE = 120

GUILDS = 1 << 0
GUILD_MEMBERS = 1 << 1
GUILD_MODERATION = 1 << 2
GUILD_PRESENCES = 1 << 8
GUILD_MESSAGES = 1 << 9
GUILD_MESSAGE_REACTIONS = 1 << 10
DIRECT_MESSAGES = 1 << 12
DIRECT_MESSAGE_REACTIONS = 1 << 13
MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT

_GUILD_EVENT_INTENTS = {
    "GUILD_CREATE": GUILDS, "GUILD_UPDATE": GUILDS, "GUILD_DELETE": GUILDS,
    "GUILD_ROLE_CREATE": GUILDS, "GUILD_ROLE_UPDATE": GUILDS, "GUILD_ROLE_DELETE": GUILDS,
    "CHANNEL_CREATE": GUILDS, "CHANNEL_UPDATE": GUILDS, "CHANNEL_DELETE": GUILDS,
    "GUILD_MEMBER_ADD": GUILD_MEMBERS, "GUILD_MEMBER_UPDATE": GUILD_MEMBERS,
    "GUILD_MEMBER_REMOVE": GUILD_MEMBERS,
    "GUILD_BAN_ADD": GUILD_MODERATION, "GUILD_BAN_REMOVE": GUILD_MODERATION,
}
_MESSAGE_EVENTS = {"MESSAGE_CREATE", "MESSAGE_UPDATE", "MESSAGE_DELETE", "MESSAGE_DELETE_BULK"}
_REACTION_EVENTS = {"MESSAGE_REACTION_ADD", "MESSAGE_REACTION_REMOVE"}
# The one event Discord sends about a guild in an outage: GUILD_DELETE (the outage itself, or a
# removal). Everything else that happens there shows only in the GUILD_CREATE that ends the outage.
_SENT_DURING_OUTAGE = {"GUILD_DELETE"}
CHUNK_SIZE = 1000
# Discord answers one request for a guild's whole member list (query "" and limit 0) per guild per bot
# every 30 s; one more meanwhile gets a RATE_LIMITED dispatch instead of chunks (changelog 2025-08-14).
FULL_MEMBER_LIST_WINDOW = 30.0
# IDENTIFY's large_threshold: Discord's default and the range it accepts.
LARGE_THRESHOLD_DEFAULT, LARGE_THRESHOLD_MIN, LARGE_THRESHOLD_MAX = 50, 50, 250


class GatewayEvent(NamedTuple):
    """One dispatch as `Gateway.dispatch` was asked for it."""

    name: str
    payload: dict[str, Any]
    guild_id: int | None = None
    dm: bool = False


# (event name, payload) -> whether to hold the event back for now
EventTest = Callable[[str, dict[str, Any]], bool]


@dataclass
class EventHold:
    """Gateway events held back: on Discord the gateway's update of a change often comes seconds
    after the HTTP answer to the request that made it."""

    matches: EventTest
    deliver: Callable[[GatewayEvent], Awaitable[object]]
    held: list[GatewayEvent] = field(default_factory=list)  # in the order they happened

    async def send(self, count: int | None = None) -> None:
        """Send the first `count` events held (all by default), in order; later ones stay held."""
        sending = self.held[:count]
        del self.held[:len(sending)]
        for event in sending:
            await self.deliver(event)


def required_intent(event: str, *, in_guild: bool) -> int:
    """The intent a bot needs to receive `event` (0: always delivered, e.g. INTERACTION_CREATE)."""
    if event in _MESSAGE_EVENTS:
        return GUILD_MESSAGES if in_guild else DIRECT_MESSAGES
    if event in _REACTION_EVENTS:
        return GUILD_MESSAGE_REACTIONS if in_guild else DIRECT_MESSAGE_REACTIONS
    return _GUILD_EVENT_INTENTS.get(event, 0)


@dataclass
class Session:
    """An identified gateway session; `connection` is None while the bot is disconnected."""

    id: str
    intents: int
    shard_id: int
    shard_count: int
    connection: web.WebSocketResponse | None = None
    seq: int = 0
    heartbeat_seq: int = -1  # the last sequence number the bot reported in a heartbeat
    history: deque[tuple[int, str]] = field(default_factory=lambda: deque(maxlen=2000))
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Guilds with more members are "large": their GUILD_CREATE carries only some of the members.
    large_threshold: int = LARGE_THRESHOLD_DEFAULT

    def handles_guild(self, guild_id: int) -> bool:
        return (guild_id >> 22) % self.shard_count == self.shard_id


class Gateway:
    """Accepts the bot's websocket connections and pushes events to its sessions."""

    def __init__(self, world: World, log: RequestLog, *, token: str, heartbeat_interval: float) -> None:
        self.world = world
        self.log = log
        self.token = token
        self.heartbeat_interval = heartbeat_interval
        self.url = ""  # ws://127.0.0.1:PORT/gateway, set once the server has a port
        self.sessions: dict[str, Session] = {}
        self.presence: dict[str, Any] | None = None  # the bot's last PRESENCE_UPDATE
        # The privileged intents switched on in the developer portal (Bot page): all of them here;
        # IDENTIFY asking for one that is off is closed with 4014, as on Discord.
        self.enabled_privileged_intents = PRIVILEGED_INTENTS
        self._sockets: set[web.WebSocketResponse] = set()
        self._waiters = Waiters()
        # Member-list requests answered only once the test lets them go, per guild id (a large
        # server's list takes a while); the answers waiting meanwhile.
        self.member_list_holds: dict[int, Hold] = {}
        self._held_answers: set[asyncio.Task[None]] = set()
        # Seconds between two whole-member-list requests for a guild, and when each guild's last
        # one was answered (time.monotonic). Per bot, not per session: a new session does not reset it.
        self.full_member_list_window = FULL_MEMBER_LIST_WINDOW
        self._full_member_list_sent: dict[int, float] = {}
        self.event_holds: list[EventHold] = []

    # ---- what the rest of the sandbox uses -------------------------------------------------

    @property
    def connected_sessions(self) -> list[Session]:
        return [s for s in self.sessions.values() if s.connection is not None]

    async def dispatch(self, event: str, payload: dict[str, Any], *, guild_id: int | None = None,
                       dm: bool = False) -> int:
        """Send an event to every session that should see it; returns how many were sent.

        `guild_id` routes it to the right shard and marks it a guild event for intent checks;
        `dm` marks a direct-message event. Sessions that are disconnected keep it for RESUME.
        Nothing is sent about a guild in an outage but its GUILD_DELETE, as on Discord. An event an
        EventHold matches is kept (nothing sent yet) until the hold sends it.
        """
        for hold in self.event_holds:
            if hold.matches(event, payload):
                hold.held.append(GatewayEvent(event, payload, guild_id, dm))
                return 0
        return await self.deliver(GatewayEvent(event, payload, guild_id, dm))

    async def deliver(self, event: GatewayEvent) -> int:
        """Send an event past any EventHold: what `dispatch` does once no hold keeps it."""
        name, payload, guild_id, dm = event
        if guild_id is not None and name not in _SENT_DURING_OUTAGE and self.in_outage(guild_id):
            return 0
        sent = 0
        for session in list(self.sessions.values()):
            if guild_id is not None and not session.handles_guild(guild_id):
                continue
            needed = required_intent(name, in_guild=guild_id is not None and not dm)
            if needed and not session.intents & needed:
                continue
            await self._send_event(session, name, self._visible_payload(session, name, payload))
            sent += 1
        return sent

    def in_outage(self, guild_id: int) -> bool:
        guild = self.world.guilds.get(guild_id)
        return guild is not None and guild.unavailable

    async def barrier(self, *, within: float) -> None:
        """Return once the bot has parsed every event sent so far.

        py-cord reads frames in order and answers a server HEARTBEAT (op 1) at once with its last
        sequence number, so an answer carrying our latest number means the earlier frames are in.
        """
        targets: list[tuple[Session, int]] = []
        for session in self.connected_sessions:
            async with session.lock:
                if session.heartbeat_seq >= session.seq or session.connection is None:
                    continue
                targets.append((session, session.seq))
                await self._send_raw(session.connection, {"op": HEARTBEAT, "d": None})

        def caught_up() -> bool:
            return all(s.heartbeat_seq >= seq or s.connection is None for s, seq in targets)

        await self._waiters.wait_until(caught_up, within=within, waiting_for="the bot to read its events")

    async def wait_for_session(self, *, within: float) -> Session:
        """The first connected session (the bot has sent IDENTIFY and got READY)."""
        await self._waiters.wait_until(lambda: bool(self.connected_sessions), within=within,
                                       waiting_for="the bot to connect to the gateway")
        return self.connected_sessions[0]

    async def disconnect(self, *, resumable: bool) -> None:
        """Drop every connection: resumable (close 4000, the bot RESUMEs) or not (INVALID_SESSION)."""
        for session in list(self.sessions.values()):
            socket = session.connection
            if socket is None:
                continue
            if resumable:
                await socket.close(code=CLOSE_RESUMABLE)
            else:
                del self.sessions[session.id]
                await self._send_raw(socket, {"op": INVALID_SESSION, "d": False})
            session.connection = None
        self._waiters.notify()

    async def close(self) -> None:
        for socket in list(self._sockets):
            await socket.close(code=1001)
        self.sessions.clear()

    # ---- the websocket ---------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(max_msg_size=0)
        await socket.prepare(request)
        self._sockets.add(socket)
        session: Session | None = None
        sent_at: deque[float] = deque()  # when the bot's last payloads came
        try:
            await self._send_raw(socket, {"op": HELLO, "d": {"heartbeat_interval": self.heartbeat_interval}})
            async for message in socket:
                if message.type is not WSMsgType.TEXT:
                    continue
                if _over_send_limit(sent_at, time.monotonic()):
                    log.warning("closing the bot's connection: more than %d payloads in a minute", SENDS_PER_MINUTE)
                    await socket.close(code=CLOSE_RATE_LIMITED, message=b"You are being rate limited.")
                    break
                try:
                    frame = json.loads(message.data)
                    op, data = frame.get("op"), frame.get("d")
                except (ValueError, AttributeError):
                    await socket.close(code=CLOSE_DECODE_ERROR, message=b"Decode error.")
                    break
                self.log.record_frame(GatewayFrame(op, data))
                session = await self._on_frame(socket, session, op, data)
        finally:
            self._sockets.discard(socket)
            if session is not None and session.connection is socket:
                session.connection = None
            self._waiters.notify()
        return socket

    async def _on_frame(self, socket: web.WebSocketResponse, session: Session | None, op: int,
                        data: Any) -> Session | None:
        if op == HEARTBEAT:
            if session is not None and isinstance(data, int):
                session.heartbeat_seq = max(session.heartbeat_seq, data)
                self._waiters.notify()
            await self._send_raw(socket, {"op": HEARTBEAT_ACK})
        elif op == IDENTIFY:
            return await self._identify(socket, data)
        elif op == RESUME:
            return await self._resume(socket, data)
        elif op == REQUEST_GUILD_MEMBERS and session is not None:
            retry_after = self._full_member_list_retry_after(data)
            if retry_after is not None:
                await self._send_event(session, "RATE_LIMITED", _member_list_rate_limited(data, retry_after))
                return session
            hold = self.member_list_holds.get(int(data["guild_id"]))
            if hold is None:
                await self._send_member_chunks(session, data)
            else:  # answered later; the connection goes on meanwhile (heartbeats, other frames)
                answer = asyncio.create_task(self._send_member_chunks_after(hold, session, data))
                self._held_answers.add(answer)
                answer.add_done_callback(self._held_answers.discard)
        elif op == PRESENCE_UPDATE:
            self.presence = data
        return session

    async def _identify(self, socket: web.WebSocketResponse, data: dict[str, Any]) -> Session | None:
        if data.get("token") != self.token:
            await socket.close(code=CLOSE_AUTHENTICATION_FAILED, message=b"Authentication failed.")
            return None
        if int(data.get("intents", 0)) & PRIVILEGED_INTENTS & ~self.enabled_privileged_intents:
            await socket.close(code=CLOSE_DISALLOWED_INTENTS, message=b"Disallowed intent(s).")
            return None
        shard_id, shard_count = data.get("shard") or (0, 1)
        session = Session(secrets.token_hex(16), int(data.get("intents", 0)), shard_id, shard_count)
        threshold = int(data.get("large_threshold") or LARGE_THRESHOLD_DEFAULT)
        session.large_threshold = min(max(threshold, LARGE_THRESHOLD_MIN), LARGE_THRESHOLD_MAX)
        self.sessions[session.id] = session
        session.connection = socket
        guilds = [g for g in self.world.bot_guilds() if session.handles_guild(g.id)]
        await self._send_event(session, "READY", self._ready_payload(session, guilds))
        for guild in guilds:
            if not guild.unavailable:
                payload = self.guild_create(session, guild, unavailable=False)
                await self._send_event(session, "GUILD_CREATE", payload)
        self._waiters.notify()
        return session

    async def _resume(self, socket: web.WebSocketResponse, data: dict[str, Any]) -> Session | None:
        if data.get("token") != self.token:
            await socket.close(code=CLOSE_AUTHENTICATION_FAILED, message=b"Authentication failed.")
            return None
        session = self.sessions.get(str(data.get("session_id")))
        last_seen = data.get("seq") or 0
        oldest_kept = session.history[0][0] if session and session.history else 1
        if session is None or last_seen + 1 < oldest_kept:
            await self._send_raw(socket, {"op": INVALID_SESSION, "d": False})
            return None
        async with session.lock:
            previous = session.connection
            session.connection = socket
            for seq, frame in session.history:
                if seq > last_seen:
                    await socket.send_str(frame)
        if previous is not None and previous is not socket:
            await previous.close(code=CLOSE_RESUMABLE)
        await self._send_event(session, "RESUMED", {"_trace": ["sandbox"]})
        self._waiters.notify()
        return session

    def _full_member_list_retry_after(self, data: dict[str, Any]) -> float | None:
        """Seconds until this request for a whole member list would be answered (None: now, and the
        window starts again). A query or a list of user ids is not limited by this rule."""
        if data.get("query") or data.get("limit") or data.get("user_ids"):
            return None
        guild_id = int(data["guild_id"])
        now = time.monotonic()
        last = self._full_member_list_sent.get(guild_id)
        if last is not None and now - last < self.full_member_list_window:
            return self.full_member_list_window - (now - last)
        self._full_member_list_sent[guild_id] = now
        return None

    async def _send_member_chunks_after(self, hold: Hold, session: Session, data: dict[str, Any]) -> None:
        # The answer is the server as it was when asked (a leave meanwhile is an event of its own, which
        # may reach the bot before the chunks that still name the member).
        chunks = self._member_chunks(data)
        await hold.hold()
        for payload in chunks:
            await self._send_event(session, "GUILD_MEMBERS_CHUNK", payload)

    async def _send_member_chunks(self, session: Session, data: dict[str, Any]) -> None:
        for payload in self._member_chunks(data):
            await self._send_event(session, "GUILD_MEMBERS_CHUNK", payload)

    def _member_chunks(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        """GUILD_MEMBERS_CHUNK payloads answering a REQUEST_GUILD_MEMBERS, as of now."""
        guild = self.world.guilds.get(int(data["guild_id"]))
        if guild is None:
            return []
        wanted_ids = {int(i) for i in data.get("user_ids") or []}
        members = _matching_members(self.world, guild, str(data.get("query") or ""), wanted_ids)
        limit = int(data.get("limit") or 0)
        if limit:
            members = members[:limit]
        chunks = [members[i:i + CHUNK_SIZE] for i in range(0, len(members), CHUNK_SIZE)] or [[]]
        not_found = sorted(wanted_ids - {m.user_id for m in members})
        answer = []
        for index, chunk in enumerate(chunks):
            payload: dict[str, Any] = {
                "guild_id": str(guild.id),
                "members": [payloads.member_payload(self.world, m) for m in chunk],
                "chunk_index": index,
                "chunk_count": len(chunks),
                "not_found": [str(i) for i in not_found] if index == 0 else [],
            }
            if data.get("presences"):
                payload["presences"] = []
            if data.get("nonce") is not None:
                payload["nonce"] = data["nonce"]  # py-cord waits 5 s per guild without it
            answer.append(payload)
        return answer

    # ---- payloads and sending --------------------------------------------------------------

    def guild_create(self, session: Session, guild: Guild, *, unavailable: bool | None) -> dict[str, Any]:
        return payloads.guild_create_payload(
            self.world, guild, include_members=bool(session.intents & GUILD_PRESENCES), unavailable=unavailable,
            large_threshold=session.large_threshold,
        )

    def _ready_payload(self, session: Session, guilds: Iterable[Guild]) -> dict[str, Any]:
        return {
            "v": 10,
            "user": payloads.current_user_payload(self.world.bot_user),
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.url,
            "shard": [session.shard_id, session.shard_count],
            "application": {"id": str(self.world.application_id), "flags": 0},
            "private_channels": [],
            "presences": [],
            "relationships": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "user_settings": {},
            "_trace": ["sandbox"],
        }

    def _visible_payload(self, session: Session, event: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Without MESSAGE_CONTENT a bot sees content only in DMs, its own messages and mentions."""
        if event not in ("MESSAGE_CREATE", "MESSAGE_UPDATE") or session.intents & MESSAGE_CONTENT:
            return payload
        bot_id = str(self.world.bot_user.id)
        mentioned = any(user.get("id") == bot_id for user in payload.get("mentions", []))
        if "guild_id" not in payload or payload.get("author", {}).get("id") == bot_id or mentioned:
            return payload
        return {**payload, "content": "", "embeds": [], "attachments": [], "components": []}

    async def send_to_session(self, session: Session, event: str, payload: dict[str, Any]) -> None:
        await self._send_event(session, event, payload)

    async def _send_event(self, session: Session, event: str, payload: dict[str, Any]) -> None:
        async with session.lock:
            session.seq += 1
            frame = json.dumps({"op": DISPATCH, "t": event, "s": session.seq, "d": payload})
            session.history.append((session.seq, frame))
            if session.connection is not None and not session.connection.closed:
                try:
                    await session.connection.send_str(frame)
                except (ConnectionResetError, RuntimeError):
                    log.debug("connection of session %s went away; the event waits for RESUME", session.id)

    async def _send_raw(self, socket: web.WebSocketResponse, frame: dict[str, Any]) -> None:
        if not socket.closed:
            try:
                await socket.send_str(json.dumps(frame))
            except (ConnectionResetError, RuntimeError):
                log.debug("gateway connection went away before %s", frame.get("op"))


def _over_send_limit(sent_at: deque[float], now: float) -> bool:
    """Record one payload from the bot; True once more than SENDS_PER_MINUTE came within a minute."""
    sent_at.append(now)
    while sent_at and now - sent_at[0] >= 60:
        sent_at.popleft()
    return len(sent_at) > SENDS_PER_MINUTE


def _member_list_rate_limited(data: dict[str, Any], retry_after: float) -> dict[str, Any]:
    """RATE_LIMITED's payload for a refused REQUEST_GUILD_MEMBERS: the opcode, seconds to wait, and
    which request it was (the nonce only when the request had one)."""
    meta: dict[str, Any] = {"guild_id": str(data["guild_id"])}
    if data.get("nonce") is not None:
        meta["nonce"] = data["nonce"]
    return {"opcode": REQUEST_GUILD_MEMBERS, "retry_after": round(retry_after, 3), "meta": meta}


def _matching_members(world: World, guild: Guild, query: str, wanted_ids: set[int]) -> list[Any]:
    members = list(guild.members.values())
    if wanted_ids:
        return [m for m in members if m.user_id in wanted_ids]
    if not query:
        return members
    needle = query.lower()

    def names(member: Any) -> list[str]:
        user = world.user(member.user_id)
        return [n.lower() for n in (user.username, user.global_name, member.nick) if n]

    return [m for m in members if any(n.startswith(needle) for n in names(m))]
