"""Errors below HTTP that py-cord lets through (a connection reset, a timeout): Discord was not
reached, or its answer was lost. A step that must not turn a finished action into "try again"
catches these beside discord.HTTPException."""

from __future__ import annotations

import aiohttp

DISCORD_UNREACHABLE = (aiohttp.ClientConnectionError, OSError, TimeoutError)
