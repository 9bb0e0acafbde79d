"""Errors: the ones the fake API answers to the bot, and the ones it raises at a test author.

`ApiError` becomes an HTTP response in Discord's JSON error shape, so py-cord raises the same
`Forbidden` / `NotFound` / `HTTPException` it would raise against discord.com. `SandboxError` is for
misuse of the Python API (unknown command name, waiting for a reply that never came).
"""

from __future__ import annotations

from typing import Any

# Discord's JSON error codes for unknown objects (https://discord.com/developers/docs/topics/opcodes-and-status-codes).
UNKNOWN_CODES: dict[str, int] = {
    "Account": 10001,
    "Application": 10002,
    "Channel": 10003,
    "Guild": 10004,
    "Member": 10007,
    "Message": 10008,
    "Role": 10011,
    "Webhook": 10015,
    "User": 10013,
    "Ban": 10026,
    "interaction": 10062,
    "application command": 10063,
}


class ApiError(Exception):
    """An answer in Discord's error shape: HTTP status plus {"code": ..., "message": ...}."""

    def __init__(self, status: int, code: int, message: str, errors: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.errors:
            body["errors"] = self.errors
        return body


def unknown(kind: str) -> ApiError:
    """404 for an id that does not exist, e.g. unknown("Member") -> code 10007 "Unknown Member"."""
    return ApiError(404, UNKNOWN_CODES[kind], f"Unknown {kind}")


def missing_permissions() -> ApiError:
    return ApiError(403, 50013, "Missing Permissions")


def missing_access() -> ApiError:
    return ApiError(403, 50001, "Missing Access")


def unauthorized() -> ApiError:
    return ApiError(401, 0, "401: Unauthorized")


def invalid_form(field: str, problem: str) -> ApiError:
    """400 "Invalid Form Body" naming the field, as Discord does for bad payloads."""
    errors = {field: {"_errors": [{"code": "BASE_TYPE_INVALID", "message": problem}]}}
    return ApiError(400, 50035, "Invalid Form Body", errors)


def already_acknowledged() -> ApiError:
    return ApiError(400, 40060, "Interaction has already been acknowledged.")


def too_large() -> ApiError:
    """An upload over the limit (a file over the stated one, or a request over the whole body's)."""
    return ApiError(413, 40005, "Request entity too large")


def cannot_dm() -> ApiError:
    return ApiError(403, 50007, "Cannot send messages to this user")


class SandboxError(Exception):
    """A test or the demo used the sandbox API in a way that cannot work; the text says why."""


class SandboxTimeout(SandboxError, TimeoutError):
    """The bot did not do what the sandbox waited for within the timeout."""
