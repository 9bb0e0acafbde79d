"""Discord ids (snowflakes) written as text: typed in a slash command, carried in a button's custom_id,
part of a file name, or stored by the old bot."""

from __future__ import annotations

MAX_SNOWFLAKE = 2**63 - 1  # Discord ids are positive signed 64-bit integers
DISCORD_EPOCH_MS = 1_420_070_400_000  # 2015-01-01T00:00:00Z, the zero of Discord's snowflakes
_MAX_DIGITS = len(str(MAX_SNOWFLAKE))


def is_snowflake(number: int) -> bool:
    """Whether `number` can be a Discord id: more than 0 and within 64 signed bits."""
    return 0 < number <= MAX_SNOWFLAKE


def snowflake_from_text(text: str) -> int | None:
    """The id that `text` spells in the digits 0-9 alone, or None (also for 0 and past 64 bits).

    str.isdigit() alone is not enough: it accepts superscripts like '²', which int() refuses, and
    full-width digits, which int() reads as ordinary ones."""
    if not (text.isascii() and text.isdigit()) or len(text) > _MAX_DIGITS:
        return None
    number = int(text)
    return number if is_snowflake(number) else None
