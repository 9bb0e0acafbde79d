"""The sandbox refuses command registrations that Discord refuses, options and choices at any depth
included: a command the bot registers wrongly must fail its tests, not only production."""

from __future__ import annotations

from typing import Any

import pytest

from malabot.sandbox.errors import ApiError
from malabot.sandbox.routes.commands import validate_command


def option(name: str, kind: int = 3, **extra: Any) -> dict[str, Any]:
    return {"name": name, "description": f"The {name}", "type": kind, **extra}


def command(*options: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": "demo", "description": "A demo", "type": 1, "options": list(options), **extra}


def refused_field(payload: dict[str, Any]) -> str:
    with pytest.raises(ApiError) as refused:
        validate_command(payload)
    assert (refused.value.status, refused.value.code) == (400, 50035)
    assert refused.value.errors is not None
    [field] = refused.value.errors
    return field


def test_a_well_formed_command_with_groups_subcommands_and_choices_passes() -> None:
    payload = command(option("xp", 2, options=[
        option("give", 1, options=[option("member", 6, required=True),
                                   option("amount", 4, required=True),
                                   option("kind", choices=[{"name": "Chat", "value": "chat"}])])]))
    assert validate_command(payload) is payload


@pytest.mark.parametrize(("payload", "field"), [
    (command(option("Member")), "options.0.name"),
    (command(option("member", description="")), "options.0.description"),
    (command(option("a"), option("b", required=True)), "options.1.required"),
    (command(option("sub", 1), option("plain")), "options"),
    (command(option("same"), option("same")), "options"),
    (command(option("pick", choices=[{"name": f"c{i}", "value": i} for i in range(26)])), "options.0.choices"),
    (command(option("pick", choices=[{"name": "x" * 101, "value": "x"}])), "options.0.choices.0"),
    (command(option("pick", autocomplete=True, choices=[{"name": "x", "value": "x"}])), "options.0.autocomplete"),
    (command(option("group", 2, options=[option("sub", 1, options=[option("Bad")])])),
     "options.0.options.0.options.0.name"),
], ids=["upper-case option", "no description", "required after optional", "subcommands mixed with options",
        "duplicate names", "26 choices", "long choice name", "choices with autocomplete", "deep option name"])
def test_a_broken_option_at_any_depth_refuses_the_command(payload: dict[str, Any], field: str) -> None:
    assert refused_field(payload) == field


def test_a_command_over_the_combined_size_is_refused() -> None:
    options = [option(f"option{i}", description="d" * 100,
                      choices=[{"name": "n" * 20, "value": "v" * 20} for _ in range(3)]) for i in range(25)]
    assert refused_field(command(*options)) == "options"
