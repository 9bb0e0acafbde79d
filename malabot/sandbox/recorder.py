"""The record of everything the bot sent: REST requests (with bodies and files) and gateway frames."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from malabot.sandbox.state import UploadedFile
from malabot.sandbox.waiting import Waiters


@dataclass(frozen=True)
class RecordedRequest:
    """One REST call of the bot, with what the sandbox answered."""

    method: str
    path: str  # relative to the API base, e.g. "/channels/123/messages"
    query: dict[str, str]
    json: Any  # the JSON body, or the decoded `payload_json` of a form; None without a body
    form: dict[str, str]  # form fields other than payload_json and files
    files: tuple[UploadedFile, ...]
    reason: str | None  # the X-Audit-Log-Reason header, decoded
    status: int
    response: Any  # the JSON answered; None for an empty answer

    def matches(self, method: str, path: str) -> bool:
        """Method equal (case-insensitive) and path equal or matching a glob like "/interactions/*"."""
        return self.method == method.upper() and fnmatchcase(self.path, path)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True)
class GatewayFrame:
    """One payload the bot sent over the gateway (IDENTIFY, heartbeats, member requests...)."""

    op: int
    data: Any


class RequestLog:
    """Append-only list of requests, with filters and a way to wait for one."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.gateway_frames: list[GatewayFrame] = []
        self._waiters = Waiters()

    def record(self, request: RecordedRequest) -> None:
        self.requests.append(request)
        self._waiters.notify()

    def record_frame(self, frame: GatewayFrame) -> None:
        self.gateway_frames.append(frame)
        self._waiters.notify()

    def to(self, method: str, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.matches(method, path)]

    def unhandled(self) -> list[RecordedRequest]:
        """Requests to routes the sandbox does not implement (answered 404/405 with code 0)."""
        return [r for r in self.requests if r.status in (404, 405) and (r.response or {}).get("code") == 0]

    async def wait_for(self, predicate: Callable[[RecordedRequest], bool], *, within: float,
                       start: int = 0) -> RecordedRequest:
        """The first request from index `start` on that satisfies `predicate`, waiting if needed."""
        found: list[RecordedRequest] = []

        def seen() -> bool:
            found[:] = [r for r in self.requests[start:] if predicate(r)][:1]
            return bool(found)

        await self._waiters.wait_until(seen, within=within, waiting_for="a matching request from the bot")
        return found[0]
