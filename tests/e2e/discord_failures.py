"""Discord failing below HTTP, as py-cord lets it through: a connection dropped under a request.

The sandbox answers every request it gets; a connection reset is made in py-cord's HTTP client instead.
"""

from __future__ import annotations

import sqlite3
import types
from typing import Any

import aiohttp
import discord
import pytest


def drop_role_changes(monkeypatch: pytest.MonkeyPatch, method: str | None = None) -> None:
    """Every request giving (PUT) or taking (DELETE) a member's role, or only those of `method`, loses
    its connection: py-cord raises aiohttp's error, not an HTTPException."""
    request = discord.http.HTTPClient.request

    async def dropping(self: discord.http.HTTPClient, route: discord.http.Route, **kwargs: Any) -> Any:
        if route.path.endswith("/roles/{role_id}") and method in (None, route.method):
            raise aiohttp.ServerDisconnectedError()
        return await request(self, route, **kwargs)

    monkeypatch.setattr(discord.http.HTTPClient, "request", dropping)


def fail_answers(monkeypatch: pytest.MonkeyPatch, failures: list[Exception | None]) -> None:
    """The next answers to commands (a first response or a follow-up, both py-cord's webhook requests)
    fail with `failures`, in order, without reaching the sandbox; None lets one through."""
    from discord.webhook.async_ import AsyncWebhookAdapter

    request = AsyncWebhookAdapter.request

    async def failing(self: Any, route: Any, *args: Any, **kwargs: Any) -> Any:
        if route.method == "POST" and "/webhooks/" in route.url and failures \
                and (failure := failures.pop(0)) is not None:
            raise failure
        return await request(self, route, *args, **kwargs)

    monkeypatch.setattr(AsyncWebhookAdapter, "request", failing)


def http_error(status: int) -> discord.HTTPException:
    """Discord's answer of `status` (400: the request was malformed, 500: Discord failed)."""
    return discord.HTTPException(types.SimpleNamespace(status=status, reason="Bad Request"),  # type: ignore[arg-type]
                                 {"code": 50035, "message": "Invalid Form Body"})


def busy_file_error() -> sqlite3.OperationalError:
    """What SQLite raises when another program held the server's file past the bot's wait."""
    error = sqlite3.OperationalError("database is locked")
    error.sqlite_errorcode = sqlite3.SQLITE_BUSY  # type: ignore[attr-defined]
    return error


def drop_original_edits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every edit of a button's message (the interaction's original response) loses its connection."""
    from discord.webhook.async_ import AsyncWebhookAdapter

    request = AsyncWebhookAdapter.request

    async def dropping(self: Any, route: Any, *args: Any, **kwargs: Any) -> Any:
        if route.method == "PATCH" and route.url.endswith("/messages/@original"):
            raise aiohttp.ServerDisconnectedError()
        return await request(self, route, *args, **kwargs)

    monkeypatch.setattr(AsyncWebhookAdapter, "request", dropping)
