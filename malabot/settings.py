"""Process settings, read from MALABOT_* environment variables and an optional `.env` file.

The names are a public interface used by operators; keep them. Settings are built once by the
composition root and passed along, never imported as a global.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from yarl import URL

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

# A bot token is three dot-separated base64url parts; this catches pasted garbage early
# without pretending to validate it (only Discord can do that).
_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_\-]{20,}\.[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{20,}$")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MALABOT_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    # Only MALABOT_TOKEN: every alias is also read as an environment name (in any case), and a bare
    # TOKEN variable often holds another service's secret, which would then be sent to Discord.
    token: SecretStr | None = Field(
        default=None,
        validation_alias="MALABOT_TOKEN",
        description="Discord bot token; MALABOT_TOKEN, or DISCORD_TOKEN as a fallback.",
    )
    # Its own field, not a second alias of `token`: an alias present but blank (compose's
    # MALABOT_TOKEN=${MALABOT_TOKEN:-}) would win over it.
    discord_token: SecretStr | None = Field(
        default=None, validation_alias="DISCORD_TOKEN", exclude=True,
        description="DISCORD_TOKEN: the token when MALABOT_TOKEN is unset or blank.",
    )
    tenants_dir: Path = Field(default=Path("tenants"), description="Folder of the per-server files.")
    api_base_url: str = Field(
        default="https://discord.com/api/v10",
        description="REST base of the Discord API, including the version path.",
    )
    owner_ids: Annotated[frozenset[int], NoDecode] = Field(
        default=frozenset(), description="Bot owners' user ids (comma-separated or JSON list)."
    )
    max_open_tenants: int = Field(default=256, ge=1, le=65536)
    tenant_idle_seconds: float = Field(default=300.0, gt=0)
    # At most 100 years: far larger values overflow the date arithmetic at start (a traceback, not a line).
    archive_retention_days: int = Field(default=30, ge=0, le=36500)
    log_level: LogLevel = "INFO"
    # The variable `token` came from, for naming it when the token is refused.
    _token_variable: str = PrivateAttr(default="MALABOT_TOKEN")

    def __init__(self, **values: Any) -> None:
        # `Settings(token=...)` (the sandbox's) still works without `token` becoming an environment name,
        # which populate_by_name would not give: it reads MALABOT_<field> for every aliased field.
        if "token" in values:
            values["MALABOT_TOKEN"] = values.pop("token")
        super().__init__(**values)

    @field_validator("token", "discord_token", mode="before")
    @classmethod
    def _blank_token_is_none(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("tenants_dir", mode="before")
    @classmethod
    def _blank_folder_is_the_default(cls, value: object) -> object:
        # Blank as compose leaves `${VAR:-}`: the default folder, not the working one (Path("") is ".").
        if isinstance(value, str) and not value.strip():
            return cls.model_fields["tenants_dir"].default
        return value

    @model_validator(mode="after")
    def _discord_token_as_fallback(self) -> Self:
        if self.token is None and self.discord_token is not None:
            self.token = self.discord_token
            self._token_variable = "DISCORD_TOKEN"
        return self

    @field_validator("api_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        expected = "must be an http(s) URL such as https://discord.com/api/v10"
        if not re.match(r"^https?://[^/\s]+(/\S*)?$", value):
            raise ValueError(expected)
        try:  # parsed as aiohttp parses it: a bad host or port is refused here, not with a traceback at start
            port = URL(value).port
        except ValueError as error:
            raise ValueError(f"{expected} ({error})") from None
        if port == 0:
            raise ValueError(f"{expected} (port 0 cannot be connected to)")
        return value

    @field_validator("owner_ids", mode="before")
    @classmethod
    def _parse_owner_ids(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip().strip("[]")
            parts = [part.strip() for part in text.split(",") if part.strip()]
            try:
                return frozenset(int(part) for part in parts)
            except ValueError:
                raise ValueError("must be a comma-separated list of user ids") from None
        if isinstance(value, int):
            return frozenset({value})
        return value

    @field_validator("owner_ids")
    @classmethod
    def _positive_ids(cls, value: frozenset[int]) -> frozenset[int]:
        if any(item <= 0 for item in value):
            raise ValueError("user ids are positive integers")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    def token_problem(self) -> str | None:
        """Why the token cannot be used to log in, or None when it looks usable."""
        if self.token is None:
            return "no Discord token: set MALABOT_TOKEN (or DISCORD_TOKEN)"
        if not _TOKEN_SHAPE.match(self.token.get_secret_value().strip()):
            return f"{self._token_variable} does not look like a Discord bot token"
        return None


def describe_validation_error(error: Exception) -> str:
    """One readable line from a pydantic ValidationError about settings."""
    errors = getattr(error, "errors", None)
    if not callable(errors):
        return str(error)
    parts = []
    for item in errors():
        location = ".".join(str(part) for part in item.get("loc", ())) or "settings"
        parts.append(f"MALABOT_{location.upper()}: {item.get('msg', 'invalid')}")
    return "invalid settings: " + "; ".join(parts)


def describe_undecodable_env(error: UnicodeDecodeError) -> str:
    """One readable line about a `.env` saved in another encoding (Windows-1252, Latin-1 ...)."""
    line = error.object[:error.start].count(b"\n") + 1
    return (f"cannot read .env: it is not UTF-8 text "
            f"(byte 0x{error.object[error.start]:02x} at position {error.start}, on line {line})")
