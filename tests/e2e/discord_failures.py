"""Discord failing below HTTP, as py-cord lets it through: a connection dropped under a request.

The sandbox answers every request it gets; a connection reset is made in py-cord's HTTP client instead.
"""

from __future__ import annotations

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
