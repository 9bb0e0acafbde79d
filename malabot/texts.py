"""Small pieces of English the bot's own sentences share: counts with their nouns, page ranges.

Plain functions of plain values; admin-written message templates live in malabot.templates.
"""

from __future__ import annotations


def plural(count: int, noun: str) -> str:
    """The noun as it goes with `count`: "message" for 1, "messages" otherwise (0 included)."""
    return noun if count == 1 else f"{noun}s"


def counted(count: int, noun: str) -> str:
    """"1 message", "2 messages": a count with its noun, the digits not grouped."""
    return f"{count} {plural(count, noun)}"


def only_pages(count: int) -> str:
    """"There is only 1 page", "There are only 3 pages": the start of the answer to a page past the end."""
    verb = "is" if count == 1 else "are"
    return f"There {verb} only {counted(count, 'page')}"
