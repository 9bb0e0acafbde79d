"""The parts of one running sandbox, shared by the REST routes, the gateway and `FakeDiscord`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from malabot.sandbox.gateway import Gateway
from malabot.sandbox.holds import Holds
from malabot.sandbox.http_io import ParsedBody
from malabot.sandbox.interactions import InteractionRegistry
from malabot.sandbox.rate_limits import RateLimits
from malabot.sandbox.recorder import RequestLog
from malabot.sandbox.state import World
from malabot.sandbox.waiting import Waiters


@dataclass
class Sandbox:
    world: World
    log: RequestLog
    gateway: Gateway
    token: str
    interactions: InteractionRegistry = field(default_factory=InteractionRegistry)
    url_root: str = ""  # http://127.0.0.1:PORT once bound
    commands_changed: Waiters = field(default_factory=Waiters)
    holds: Holds = field(default_factory=Holds)
    rate_limits: RateLimits = field(default_factory=RateLimits)


SANDBOX = web.AppKey("sandbox", Sandbox)
# Typed request-storage keys (aiohttp >= 3.12 warns about plain strings; older ones lack the class).
_RequestKey: Any = getattr(web, "RequestKey", None)
BODY: Any = _RequestKey("sandbox_body", ParsedBody) if _RequestKey else "sandbox_body"
REASON: Any = _RequestKey("sandbox_reason", str) if _RequestKey else "sandbox_reason"


def sandbox_of(request: web.Request) -> Sandbox:
    return request.config_dict[SANDBOX]


def body_of(request: web.Request) -> ParsedBody:
    body: ParsedBody = request[BODY]
    return body


def snowflake_arg(request: web.Request, name: str) -> int:
    return int(request.match_info[name])


def reason_of(request: web.Request) -> str | None:
    """The audit-log reason the bot gave (X-Audit-Log-Reason), e.g. a ban reason."""
    reason = request.get(REASON)
    return str(reason) if reason else None
