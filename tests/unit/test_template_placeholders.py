"""One placeholder list per message template: what /config accepts is exactly what the message renders.

guild_settings.TEMPLATE_PLACEHOLDERS is the list /config (and every settings load) validates with; each
feature's renderer must fill every name on it, or an admin could store a template that no later
level-up, birthday or welcome can be built from.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from malabot.features.birthdays.rules import render_announcement
from malabot.features.welcome.rules import TEMPLATE_SETTINGS, render_welcome
from malabot.features.xp.rules import render_levelup
from malabot.guild_settings import TEMPLATE_PLACEHOLDERS, GuildSettings

# The production renderer of each template setting, with sample values.
RENDERERS: dict[str, Callable[[str], str]] = {
    "levelup_template": lambda template: render_levelup(template, member="<@5>", level=12, server="Mala"),
    "birthday_template": lambda template: render_announcement(template, 5, 30),
    **{setting: (lambda template, kind=kind: render_welcome(template, kind=kind, member="<@5>", server="Mala",
                                                             member_count=42))
       for kind, setting in TEMPLATE_SETTINGS.items()},
}


def test_every_template_setting_has_a_list_and_a_renderer() -> None:
    templates = {name for name in GuildSettings.model_fields if name.endswith("_template")}
    assert set(TEMPLATE_PLACEHOLDERS) == templates
    assert set(RENDERERS) == templates


@pytest.mark.parametrize("setting", sorted(TEMPLATE_PLACEHOLDERS))
def test_every_placeholder_config_accepts_is_filled(setting: str) -> None:
    template = " ".join("{" + name + "}" for name in TEMPLATE_PLACEHOLDERS[setting])
    assert getattr(GuildSettings().changed(**{setting: template}), setting) == template   # /config takes it
    text = RENDERERS[setting](template)                                                    # so it must render
    assert "{" not in text and "}" not in text


@pytest.mark.parametrize("setting", sorted(TEMPLATE_PLACEHOLDERS))
def test_a_renderer_out_of_step_with_the_settings_list_fails_loudly(setting: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # A placeholder added to the list /config validates with, but not to the renderer: no template of
    # this setting may render any more, not even one without the new name, so the drift cannot go unseen.
    monkeypatch.setitem(TEMPLATE_PLACEHOLDERS, setting, (*TEMPLATE_PLACEHOLDERS[setting], "xp"))
    with pytest.raises(ValueError, match="do not match"):
        RENDERERS[setting]("plain text")
