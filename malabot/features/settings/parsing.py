"""Turning what an admin types in `/config set setting value` into a settings value, and back.

Pure functions over GuildSettings' fields, so every setting (present and future) is settable the
same way: numbers, on/off, names, `#channel`/`@role` mentions or ids, lists of them, `none` to clear.
"""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Callable
from typing import Any, Literal

from malabot.errors import UserInputError, quoted
from malabot.guild_settings import GuildSettings
from malabot.snowflakes import snowflake_from_text

_MENTION = re.compile(r"^<(?:#|@&)([0-9]+)>$|^([0-9]+)$")  # [0-9]: \d takes any script's digits
_TRUE = {"on", "true", "yes", "enable", "enabled", "1"}
_FALSE = {"off", "false", "no", "disable", "disabled", "0"}
_CLEAR = {"none", "off", "clear", "-", "not set"}


def setting_names() -> list[str]:
    return list(GuildSettings.model_fields)


def id_kind(name: str) -> Literal["channel", "role"] | None:
    """Which kind of Discord object a setting refers to, judged by its name."""
    if name.endswith(("_channel_id", "_channel_ids")):
        return "channel"
    if name.endswith(("_role_id", "_role_ids")) or name == "autorole_id":
        return "role"
    return None


def parse_setting_value(name: str, text: str) -> Any:
    """The typed value for `name`; raises UserInputError saying what was expected."""
    field = GuildSettings.model_fields.get(name)
    if field is None:
        raise UserInputError(f"There is no setting called `{quoted(name)}`. Use `/config show` to see them all.")
    text = text.strip()
    annotation = field.annotation
    optional = _is_optional(annotation)
    inner = _without_none(annotation)
    if optional and text.lower() in _CLEAR:
        return None
    origin = typing.get_origin(inner)
    if inner is bool:
        return _parse_bool(name, text)
    if origin is Literal:
        choices = [str(choice) for choice in typing.get_args(inner)]
        if text.lower() not in choices:
            raise UserInputError(f"`{name}` must be one of: {', '.join(choices)}.")
        return text.lower()
    if inner is int and id_kind(name) is not None:
        return _parse_id(name, text)
    if inner is int:
        try:
            return int(text)
        except ValueError:
            raise UserInputError(f"`{name}` must be a whole number, not `{quoted(text)}`.") from None
    if origin is tuple and text.lower() in _CLEAR:  # any list, ids or warn_thresholds' JSON
        return ()
    if origin is tuple and typing.get_args(inner)[:1] == (int,):
        return tuple(_parse_id(name, part) for part in re.split(r"[\s,]+", text) if part)
    if origin is tuple:
        try:
            return json.loads(text)
        # ValueError: not JSON (JSONDecodeError), or a number of more digits than Python converts;
        # RecursionError: "[[[[…" deeper than the decoder goes.
        except (ValueError, RecursionError):
            raise UserInputError(f"`{name}` takes a JSON list, e.g. {_example(name)}.") from None
    if text.lower() in _CLEAR:  # a text setting kept as "off" or "none" would be posted as the message
        raise UserInputError(f"`{name}` cannot be cleared; `/config reset {name}` puts back its default.")
    return text


SHOWN_IDS = 5          # of a list of channels or roles, in the /config show summary
SHOWN_CHARACTERS = 80  # of a text (templates), in the summary


def display_value(name: str, value: Any, *, brief: bool = False, literal: Callable[[str], str] = str) -> str:
    """How `/config` shows a value: mentions for channels and roles, on/off for toggles. `brief`
    (the summary of every setting, which must fit one embed): long lists and texts are shortened.
    `literal` makes a text show as typed where it is read (Discord renders markdown: the underscores of
    `America/Port_of_Spain` would turn "of" italic)."""
    kind = id_kind(name)
    if value is None:
        return "none" if kind is None else "not set"
    if isinstance(value, bool):
        return "on" if value else "off"
    if kind is not None:
        ids = value if isinstance(value, tuple) else (value,)
        if not ids:
            return "none"
        prefix = "<#" if kind == "channel" else "<@&"
        shown = ids[:SHOWN_IDS] if brief else ids
        more = f" and {len(ids) - len(shown)} more" if len(shown) < len(ids) else ""
        return " ".join(f"{prefix}{item}>" for item in shown) + more
    if isinstance(value, tuple):
        text = json.dumps([item.model_dump() if hasattr(item, "model_dump") else item for item in value]) \
            if value else "none"
    else:
        text = str(value)
    if brief and len(text) > SHOWN_CHARACTERS:
        return f"{literal(text[:SHOWN_CHARACTERS - 1])}… ({len(text):,} characters)"
    return literal(text)


def _parse_bool(name: str, text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise UserInputError(f"`{name}` is on or off, not `{quoted(text)}`.")


def _parse_id(name: str, text: str) -> int:
    match = _MENTION.match(text.strip())
    number = snowflake_from_text(match.group(1) or match.group(2)) if match else None
    if number is None:
        what = "a #channel" if id_kind(name) == "channel" else "a @role"
        raise UserInputError(f"`{name}` needs {what} (mention or id), not `{quoted(text)}`.")
    return number


def _is_optional(annotation: Any) -> bool:
    return type(None) in typing.get_args(annotation) and _is_union(annotation)


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _without_none(annotation: Any) -> Any:
    if not _is_union(annotation):
        return annotation
    remaining = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    return remaining[0] if len(remaining) == 1 else annotation


def _example(name: str) -> str:
    if name == "warn_thresholds":
        return '[{"count": 3, "days": 7, "action": "timeout", "timeout_minutes": 60}]'
    return "[]"
