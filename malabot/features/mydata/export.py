"""`/mydata export`: a member's rows of one server as a JSON document. Pure: rows in, bytes out.

The document is stable: the same rows give the same bytes whatever order the handlers returned them
in (tables by name, rows by their values, columns in table order). Integers beyond 2**53 - 1 — every
Discord id — are written as strings, as Discord's own data package does, so that JavaScript-based
viewers do not round them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from malabot.tenancy.paths import utc_stamp

FORMAT_NAME = "malabot-member-data"
FORMAT_VERSION = 1
_JS_SAFE_INTEGER = 2**53 - 1


def _json_value(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, float | str):
        return value
    if isinstance(value, int):
        return str(value) if abs(value) > _JS_SAFE_INTEGER else value
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot export a value of type {type(value).__name__}")


def _sort_key(row: Mapping[str, Any]) -> tuple[tuple[int, Any], ...]:
    """Orders rows by their values column by column; None first, then numbers, then text."""
    key: list[tuple[int, Any]] = []
    for value in row.values():
        if value is None:
            key.append((0, 0))
        elif isinstance(value, int | float):
            key.append((1, value))
        else:
            key.append((2, str(value)))
    return tuple(key)


def export_document(guild_id: int, user_id: int, generated_at: datetime,
                    tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    if generated_at.tzinfo is None:
        raise ValueError("generated_at must be timezone-aware")
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "guild_id": _json_value(guild_id),
        "user_id": _json_value(user_id),
        "generated_at": generated_at.astimezone(UTC).isoformat(),
        "tables": {
            table: [{column: _json_value(value) for column, value in row.items()}
                    for row in sorted(tables[table], key=_sort_key)]
            for table in sorted(tables)
        },
    }


def export_json(guild_id: int, user_id: int, generated_at: datetime,
                tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> bytes:
    """The member's data as UTF-8 JSON, indented for a human reader."""
    document = export_document(guild_id, user_id, generated_at, tables)
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def export_filename(guild_id: int, user_id: int, generated_at: datetime) -> str:
    stamp = utc_stamp(generated_at.astimezone(UTC))
    return f"malabot-data-{guild_id}-{user_id}-{stamp}.json"
