"""The range of a Discord id, as every check of one (settings, level roles, legacy rows) uses it."""

from __future__ import annotations

import pytest

from malabot.snowflakes import MAX_SNOWFLAKE, is_snowflake, snowflake_from_text


@pytest.mark.parametrize("number, expected", [
    (-1, False), (0, False), (1, True), (MAX_SNOWFLAKE, True), (MAX_SNOWFLAKE + 1, False), (2**64, False),
])
def test_an_id_is_more_than_zero_and_within_64_signed_bits(number: int, expected: bool) -> None:
    assert is_snowflake(number) is expected


def test_text_spells_an_id_only_within_that_range() -> None:
    assert snowflake_from_text(str(MAX_SNOWFLAKE)) == MAX_SNOWFLAKE
    assert snowflake_from_text(str(MAX_SNOWFLAKE + 1)) is None
    assert snowflake_from_text("0") is None
