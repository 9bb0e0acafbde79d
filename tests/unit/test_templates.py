"""The safe template renderer: named placeholders only, never attribute, index, spec or conversion."""

from __future__ import annotations

import pytest

from malabot import templates
from malabot.errors import UserInputError

VALUES = {"member": "<@1>", "server": "Mala", "member_count": "42"}


def test_render_fills_named_placeholders_and_keeps_literal_braces() -> None:
    text = templates.render("Hi {member}, welcome to {server} ({member_count}) {{not a field}}", VALUES)
    assert text == "Hi <@1>, welcome to Mala (42) {not a field}"


def test_render_without_placeholders_and_repeated_placeholders() -> None:
    assert templates.render("plain", VALUES) == "plain"
    assert templates.render("{member}{member}", VALUES) == "<@1><@1>"


def test_values_are_not_reinterpreted() -> None:
    assert templates.render("{member}", {"member": "{server}"}) == "{server}"


@pytest.mark.parametrize("template", ["{member.__class__}", "{member[0]}", "{member.__init__.__globals__}"])
def test_attribute_and_index_access_are_refused(template: str) -> None:
    with pytest.raises(UserInputError, match=r"Unknown placeholder .*Allowed placeholders: \{member\}, "
                                             r"\{server\}, \{member_count\}\."):
        templates.render(template, VALUES)


@pytest.mark.parametrize("template", ["{member!r}", "{member:>100000}", "{member:{server}}"])
def test_conversions_and_format_specs_are_refused(template: str) -> None:
    with pytest.raises(UserInputError, match="may not have a ! or : part"):
        templates.render(template, VALUES)


@pytest.mark.parametrize("template", ["{}", "{0}", "{:>3}"])
def test_unnamed_placeholders_are_refused(template: str) -> None:
    with pytest.raises(UserInputError, match="unnamed placeholder"):
        templates.render(template, VALUES)


def test_unknown_placeholder_names_the_offender_and_the_allowed_ones() -> None:
    with pytest.raises(UserInputError) as caught:
        templates.render("Hello {user}", VALUES)
    assert caught.value.message == ("Unknown placeholder {user}. "
                                    "Allowed placeholders: {member}, {server}, {member_count}.")


@pytest.mark.parametrize("template", ["{member", "member}", "{member}}"])
def test_unbalanced_braces_are_refused(template: str) -> None:
    with pytest.raises(UserInputError, match="unmatched"):
        templates.render(template, VALUES)


def test_placeholders() -> None:
    assert templates.placeholders("{server}!", VALUES) == ["server"]
    assert templates.placeholders("{member} {server} {member}", ["member", "server"]) == [
        "member", "server", "member"]
    with pytest.raises(UserInputError, match="Allowed placeholders: none"):
        templates.placeholders("{member}", [])


def test_values_for_are_ordered_like_the_names_and_must_match_them() -> None:
    assert list(templates.values_for(("member", "server"), server="S", member="M")) == ["member", "server"]
    with pytest.raises(ValueError, match="do not match"):
        templates.values_for(("member", "server", "xp"), member="M", server="S")
    with pytest.raises(ValueError, match="do not match"):
        templates.values_for(("member",), member="M", server="S")


def test_a_filled_template_longer_than_one_message_is_cut_to_fit() -> None:
    template = "{server} " * 180                      # 1,620 characters, within the setting's limit
    filled = templates.render(template, {"server": "A server name of fifty characters, give or take.."})
    assert len(filled) == templates.MESSAGE_LIMIT
    assert filled.startswith("A server name of fifty") and filled.endswith("…")


def test_a_filled_template_of_exactly_one_message_is_kept_whole() -> None:
    filled = templates.render("x" * 1990 + "{level}", {"level": "1234567890"})
    assert filled == "x" * 1990 + "1234567890"
