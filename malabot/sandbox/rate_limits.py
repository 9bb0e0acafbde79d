"""429 answers a test asks for: a route that is rate limited once, or N times, as Discord's may be.

py-cord handles a 429 itself (it sleeps `retry_after` and sends the request again, up to five tries in
all), so a bot call through a rate limit succeeds late; what the test sees is the bot carrying on.
"""

from __future__ import annotations

import math
import time
from typing import Any

from aiohttp import web

from malabot.sandbox.holds import RequestTest
from malabot.sandbox.http_io import json_response

# Discord's answers come through Google's load balancer; py-cord takes a 429 without this header for a
# Cloudflare ban and gives up instead of retrying.
VIA = "1.1 google"


class RateLimit:
    """The next `times` requests that `matches` accepts get a 429 telling the bot to retry after
    `retry_after` seconds (for every route at once when `is_global`)."""

    def __init__(self, matches: RequestTest, *, times: int, retry_after: float, is_global: bool) -> None:
        self.matches = matches
        self.left = times
        self.retry_after = retry_after
        self.is_global = is_global
        self.hits = 0  # 429s answered so far

    def answer(self) -> web.Response:
        self.left -= 1
        self.hits += 1
        body: dict[str, Any] = {"message": "You are being rate limited.", "retry_after": self.retry_after,
                                "global": self.is_global}
        response = json_response(body, 429)
        response.headers.update({
            "Via": VIA,
            "Retry-After": str(math.ceil(self.retry_after)),
            "X-RateLimit-Scope": "global" if self.is_global else "user",
        })
        if self.is_global:
            response.headers["X-RateLimit-Global"] = "true"
        else:
            response.headers.update({
                "X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": f"{time.time() + self.retry_after:.3f}",
                "X-RateLimit-Reset-After": f"{self.retry_after:.3f}",
                "X-RateLimit-Bucket": "sandbox",
            })
        return response


class RateLimits:
    def __init__(self) -> None:
        self._limits: list[RateLimit] = []

    def add(self, limit: RateLimit) -> RateLimit:
        self._limits.append(limit)
        return limit

    def answer_for(self, method: str, path: str, body: Any) -> web.Response | None:
        """The 429 for this request while a rate limit matching it has some left; else None."""
        for limit in self._limits:
            if limit.left > 0 and limit.matches(method, path, body):
                return limit.answer()
        return None
