"""Admin-written message templates: `{name}` placeholders filled from a fixed set of plain strings.

A template is text typed by a server admin, so it must never reach Python objects: no attribute or
index access (`{member.__class__}`, `{member[0]}`), no conversions (`{member!r}`), no format specs
(`{member:>99999}` would build a huge string). The template is parsed with `string.Formatter.parse`
and the output is assembled piece by piece; `str.format` is never called on it.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from malabot.errors import UserInputError

# Discord refuses message content longer than this (400, code 50035).
MESSAGE_LIMIT = 2000


@dataclass(frozen=True)
class _Piece:
    literal: str
    placeholder: str | None


def _allowed_list(allowed: Iterable[str]) -> str:
    return ", ".join("{" + name + "}" for name in allowed) or "none"


def _parse(template: str, allowed: Iterable[str]) -> list[_Piece]:
    """Split a template into literal text and placeholder names, refusing anything but `{name}`."""
    allowed = tuple(allowed)
    names = set(allowed)
    hint = f"Allowed placeholders: {_allowed_list(allowed)}."
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        raise UserInputError(
            f"The template has an unmatched {{ or }}; write {{{{ or }}}} for a literal brace. {hint}"
        ) from None
    pieces = []
    for literal, field, spec, conversion in parsed:
        if field is None:
            pieces.append(_Piece(literal, None))
            continue
        shown = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        if field == "" or field.isdigit():
            raise UserInputError(f"The template has an unnamed placeholder {shown}. {hint}")
        if conversion or spec:
            raise UserInputError(f"The placeholder {shown} may not have a ! or : part. {hint}")
        if field not in names:
            # Covers attribute and index access too: "member.name" and "member[0]" are not names.
            raise UserInputError(f"Unknown placeholder {shown}. {hint}")
        pieces.append(_Piece(literal, field))
    return pieces


def placeholders(template: str, allowed: Iterable[str]) -> list[str]:
    """The placeholder names a template uses, in order; raises UserInputError if it is not acceptable."""
    return [piece.placeholder for piece in _parse(template, allowed) if piece.placeholder is not None]


def values_for(names: Sequence[str], **values: str) -> dict[str, str]:
    """A renderer's values, one for each placeholder in `names`, in that order, for `render`.

    `names` is the setting's list in guild_settings.TEMPLATE_PLACEHOLDERS, which /config validates
    with. A name there that the renderer has no value for would let /config accept a template that no
    message can be built from, so the mismatch fails every render (a programming error, not the admin's).
    """
    if set(names) != set(values):
        raise ValueError(f"placeholders {sorted(names)} do not match the values {sorted(values)}")
    return {name: values[name] for name in names}


def render(template: str, allowed: Mapping[str, str]) -> str:
    """Fill the template with the given values; `{{` and `}}` stand for literal braces. A result longer
    than one Discord message is cut to fit (a template within its length limit can still grow past it,
    e.g. `{server}` written many times): the message is posted shortened rather than refused.

    Raises UserInputError (listing the allowed placeholders) for any placeholder not in `allowed`.
    """
    parts = []
    for piece in _parse(template, allowed):
        parts.append(piece.literal)
        if piece.placeholder is not None:
            parts.append(allowed[piece.placeholder])
    return within_one_message("".join(parts))


def within_one_message(text: str) -> str:
    """`text`, cut with an ellipsis if Discord would refuse it as one message's content."""
    return text if len(text) <= MESSAGE_LIMIT else text[:MESSAGE_LIMIT - 1] + "…"
