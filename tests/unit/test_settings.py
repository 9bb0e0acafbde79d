"""Process settings: MALABOT_* names are a public interface; bad values fail with one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from malabot.settings import Settings, describe_validation_error

VALID_LOOKING_TOKEN = "MTAxMDEwMTAxMDEwMTAxMDEw.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789AB"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("MALABOT_TOKEN", "DISCORD_TOKEN", "MALABOT_TENANTS_DIR", "MALABOT_API_BASE_URL",
                 "MALABOT_OWNER_IDS", "MALABOT_MAX_OPEN_TENANTS", "MALABOT_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env from the checkout


def test_defaults_point_at_discord_and_the_tenants_folder() -> None:
    settings = Settings()
    assert settings.token is None
    assert settings.tenants_dir == Path("tenants")
    assert settings.api_base_url == "https://discord.com/api/v10"
    assert settings.owner_ids == frozenset()
    assert settings.token_problem() == "no Discord token: set MALABOT_TOKEN (or DISCORD_TOKEN)"


def test_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALABOT_TOKEN", VALID_LOOKING_TOKEN)
    monkeypatch.setenv("MALABOT_TENANTS_DIR", "/srv/malabot/tenants")
    monkeypatch.setenv("MALABOT_API_BASE_URL", "http://127.0.0.1:8080/api/v10/")
    monkeypatch.setenv("MALABOT_OWNER_IDS", "123, 456")
    monkeypatch.setenv("MALABOT_MAX_OPEN_TENANTS", "32")
    monkeypatch.setenv("MALABOT_LOG_LEVEL", "debug")
    settings = Settings()
    assert settings.token is not None and settings.token.get_secret_value() == VALID_LOOKING_TOKEN
    assert settings.token_problem() is None
    assert settings.tenants_dir == Path("/srv/malabot/tenants")
    assert settings.api_base_url == "http://127.0.0.1:8080/api/v10"
    assert settings.owner_ids == frozenset({123, 456})
    assert settings.max_open_tenants == 32
    assert settings.log_level == "DEBUG"


def test_discord_token_is_accepted_as_a_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", VALID_LOOKING_TOKEN)
    assert Settings().token_problem() is None


@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_malabot_token_does_not_hide_discord_token(monkeypatch: pytest.MonkeyPatch, blank: str) -> None:
    """As compose's `MALABOT_TOKEN=${MALABOT_TOKEN:-}` leaves it when only DISCORD_TOKEN is set."""
    monkeypatch.setenv("MALABOT_TOKEN", blank)
    monkeypatch.setenv("DISCORD_TOKEN", VALID_LOOKING_TOKEN)
    settings = Settings()
    assert settings.token is not None and settings.token.get_secret_value() == VALID_LOOKING_TOKEN


@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_tenants_folder_is_the_default_not_the_working_folder(monkeypatch: pytest.MonkeyPatch,
                                                                      blank: str) -> None:
    """As compose's `MALABOT_TENANTS_DIR=${TENANTS:-}` leaves it: `tenants/`, not `.` (a new, empty file
    for every server, as if every level had been reset)."""
    monkeypatch.setenv("MALABOT_TENANTS_DIR", blank)
    assert Settings().tenants_dir == Path("tenants")


@pytest.mark.parametrize("name", ["TOKEN", "token", "Token"])
def test_a_bare_token_variable_is_not_the_bot_token(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Often another service's secret (a JWT has a bot token's shape): it must never reach Discord."""
    other = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjaS1ib3QiLCJpYXQiOjE3MDB9.c2lnbmF0dXJlLW9mLWFub3RoZXI"
    monkeypatch.setenv(name, other)
    assert Settings().token_problem() == "no Discord token: set MALABOT_TOKEN (or DISCORD_TOKEN)"
    monkeypatch.setenv("DISCORD_TOKEN", VALID_LOOKING_TOKEN)
    settings = Settings()
    assert settings.token is not None and settings.token.get_secret_value() == VALID_LOOKING_TOKEN


def test_a_token_line_in_dotenv_is_not_the_bot_token(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"token={VALID_LOOKING_TOKEN}\nMALABOT_DISCORD_TOKEN={VALID_LOOKING_TOKEN}\n")
    assert Settings().token is None


def test_the_token_can_be_given_in_code(monkeypatch: pytest.MonkeyPatch) -> None:
    """As the sandbox gives its own; it wins over the environment's."""
    monkeypatch.setenv("MALABOT_TOKEN", "from the environment")
    settings = Settings(token=VALID_LOOKING_TOKEN)
    assert settings.token is not None and settings.token.get_secret_value() == VALID_LOOKING_TOKEN


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("MALABOT_MAX_OPEN_TENANTS=7\nMALABOT_OWNER_IDS=[9]\n")
    settings = Settings()
    assert settings.max_open_tenants == 7
    assert settings.owner_ids == frozenset({9})


def test_malformed_token_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALABOT_TOKEN", "not a token")
    assert Settings().token_problem() == "MALABOT_TOKEN does not look like a Discord bot token"


def test_a_malformed_token_is_named_by_the_variable_it_came_from(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "not a token")
    assert Settings().token_problem() == "DISCORD_TOKEN does not look like a Discord bot token"
    monkeypatch.setenv("MALABOT_TOKEN", "not one either")  # MALABOT_TOKEN wins when both are set
    assert Settings().token_problem() == "MALABOT_TOKEN does not look like a Discord bot token"


@pytest.mark.parametrize(("name", "value", "fragment"), [
    ("MALABOT_MAX_OPEN_TENANTS", "0", "MALABOT_MAX_OPEN_TENANTS"),
    ("MALABOT_ARCHIVE_RETENTION_DAYS", "1000000000",
     "MALABOT_ARCHIVE_RETENTION_DAYS: Input should be less than or equal to 36500"),
    ("MALABOT_API_BASE_URL", "discord.com", "MALABOT_API_BASE_URL: Value error, must be an http(s) URL"),
    ("MALABOT_API_BASE_URL", "http://127.0.0.1:99999/api/v10", "URL such as https://discord.com/api/v10 (Port out"),
    ("MALABOT_API_BASE_URL", "http://127.0.0.1:0/api/v10", "URL such as https://discord.com/api/v10 (port 0"),
    ("MALABOT_API_BASE_URL", "http://:8080/api/v10", "URL such as https://discord.com/api/v10 (Invalid URL: host"),
    ("MALABOT_OWNER_IDS", "me,you", "MALABOT_OWNER_IDS"),
    ("MALABOT_LOG_LEVEL", "loud", "MALABOT_LOG_LEVEL"),
])
def test_invalid_values_give_one_readable_line(monkeypatch: pytest.MonkeyPatch, name: str, value: str,
                                               fragment: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    line = describe_validation_error(caught.value)
    assert "\n" not in line
    assert line.startswith("invalid settings: ")
    assert fragment in line
