"""The member-data JSON document: header, stable ordering, ids that survive JavaScript readers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from malabot.features.mydata.export import export_document, export_filename, export_json

AT = datetime(2026, 3, 10, 12, 30, 5, tzinfo=UTC)
GUILD, USER = 1_100_000_000_000_000_001, 2_200_000_000_000_000_002


def test_header_and_tables() -> None:
    document = json.loads(export_json(GUILD, USER, AT, {"xp": [{"user_id": USER, "xp": 10}]}))
    assert document == {
        "format": "malabot-member-data",
        "version": 1,
        "guild_id": str(GUILD),
        "user_id": str(USER),
        "generated_at": "2026-03-10T12:30:05+00:00",
        "tables": {"xp": [{"user_id": str(USER), "xp": 10}]},
    }


def test_small_integers_stay_numbers_and_large_ones_become_strings() -> None:
    document = export_document(1, 2, AT, {"t": [{"a": 2**53 - 1, "b": 2**53, "c": None, "d": 1.5,
                                                 "e": True, "f": b"\x01\xff"}]})
    assert (document["guild_id"], document["user_id"]) == (1, 2)
    assert document["tables"]["t"] == [{"a": 2**53 - 1, "b": str(2**53), "c": None, "d": 1.5, "e": True,
                                        "f": "01ff"}]


def test_the_same_rows_in_any_order_give_the_same_bytes() -> None:
    rows_a = [{"id": 10, "note": "b"}, {"id": 2, "note": None}, {"id": 2, "note": "a"}]
    first = export_json(GUILD, USER, AT, {"zeta": rows_a, "alpha": [{"id": 1}], "mid": []})
    second = export_json(GUILD, USER, AT, {"mid": [], "alpha": [{"id": 1}], "zeta": list(reversed(rows_a))})
    assert first == second
    document = json.loads(first)
    assert list(document["tables"]) == ["alpha", "mid", "zeta"]
    assert document["tables"]["zeta"] == [{"id": 2, "note": None}, {"id": 2, "note": "a"},
                                          {"id": 10, "note": "b"}]


def test_columns_keep_their_table_order() -> None:
    document = export_document(1, 2, AT, {"t": [{"z": 1, "a": 2}]})
    assert list(document["tables"]["t"][0]) == ["z", "a"]


def test_generated_at_is_utc_and_must_be_aware() -> None:
    plus_two = AT.astimezone(timezone(timedelta(hours=2)))
    assert export_document(1, 2, plus_two, {})["generated_at"] == "2026-03-10T12:30:05+00:00"
    with pytest.raises(ValueError, match="timezone-aware"):
        export_document(1, 2, datetime(2026, 1, 1), {})


def test_non_ascii_text_is_kept_readable() -> None:
    assert "Grüße 🎂".encode() in export_json(1, 2, AT, {"t": [{"text": "Grüße 🎂"}]})


def test_unexportable_values_are_an_error_not_silently_dropped() -> None:
    with pytest.raises(TypeError, match="object"):
        export_json(1, 2, AT, {"t": [{"x": object()}]})


def test_filename() -> None:
    assert export_filename(GUILD, USER, AT) == f"malabot-data-{GUILD}-{USER}-20260310T123005Z.json"
