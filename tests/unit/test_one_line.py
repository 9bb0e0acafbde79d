"""errors.one_line escapes what can split a CLI error line or spoof how it reads, and nothing else."""

from __future__ import annotations

import pytest

from malabot.errors import one_line, unprintable_character


@pytest.mark.parametrize("char", [
    "\n", "\r", "\x1b", "\x7f", "\x85", "\x9b",  # C0 and C1 controls (NEL, CSI)
    "\u2028", "\u2029",  # line and paragraph separators
    "\u200e", "\u200f", "\u061c",  # bidi marks
    "\u202a", "\u202b", "\u202c", "\u202d", "\u202e",  # embeddings and overrides
    "\u2066", "\u2067", "\u2068", "\u2069",  # isolates
])
def test_what_can_split_or_spoof_a_line_is_escaped(char: str) -> None:
    escaped = one_line(f"a{char}b")
    assert escaped == "a" + char.encode("unicode_escape").decode("ascii") + "b"
    assert escaped.isascii()


@pytest.mark.parametrize("text", [
    "\u0646\u0627\u0645\u0647\u200c\u0647\u0627",  # ZWNJ in a Persian word
    "\U0001f468\u200d\U0001f469\u200d\U0001f467",  # ZWJ in a composed emoji
    "Gro\u00dfvater\u00adsachen",  # soft hyphen
    "\u2060word\ufeff",  # word joiner, BOM: format characters that reorder nothing
    "caf\u00e9 \u65e5\u672c",
])
def test_other_text_is_kept_as_given(text: str) -> None:
    assert one_line(text) == text


def test_the_first_character_that_would_be_escaped_is_found() -> None:
    assert unprintable_character("/srv/o\u202ex\ny") == "\u202e"
    assert unprintable_character("/srv/Gro\u00dfvater\u00adsachen/\u200c") is None


def test_a_byte_of_a_name_that_is_not_utf8_is_written_as_that_byte() -> None:
    """os.fsdecode(b"o\\xff") is "o\\udcff": as it is, no UTF-8 stream can write it."""
    assert one_line("o\udcff/\udc80x") == "o\\xff/\\x80x"
    assert unprintable_character("/srv/caf\u00e9/o\udcff") == "\udcff"
