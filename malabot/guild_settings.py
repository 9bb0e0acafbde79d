"""Per-server settings: one validated pydantic model, stored key by key as JSON in the tenant file.

Only values an admin changed are stored; everything else takes the default below, so a new default
reaches every server that never touched it.
"""

from __future__ import annotations

from collections.abc import Collection
from functools import cache
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from malabot import templates
from malabot.errors import UserInputError, quoted
from malabot.features.verification.rules import check_distinct_roles
from malabot.snowflakes import is_snowflake

LevelCurveName = Literal["standard", "basic", "gradual", "custom"]
LevelRoleMode = Literal["stack", "replace"]
ThresholdAction = Literal["timeout", "kick", "ban"]

Snowflake = int  # a Discord id; validated positive by the fields that hold one

# The error type of a rule between two settings: its sentence names both, so it is shown as it is.
BETWEEN_SETTINGS = "between_settings"

# The settings naming a role the bot gives members (no_xp_role_ids only filters, it is never given).
# Levels give and take their roles too, so none of these may be a level role.
GIVEN_ROLE_SETTINGS = ("verified_role_id", "unverified_role_id", "birthday_role_id", "autorole_id")

# Given-role settings that must not name one role, as (a setting, the other, why); checked when one of
# them changes (check_roles_kept_apart), not when settings load: a pair an older bot stored keeps working.
# verified_role_id and unverified_role_id are kept apart on their field (check_distinct_roles).
# The autorole may be the unverified role: giving "Unverified" on joining is a common way to verify.
ROLES_KEPT_APART = (
    ("birthday_role_id", "verified_role_id", "a birthday would verify the member for the day"),
    ("birthday_role_id", "unverified_role_id", "a birthday would mark the member unverified for the day"),
    ("birthday_role_id", "autorole_id", "every member gets the autorole on joining, so it marks no birthday"),
    ("autorole_id", "verified_role_id", "every member who joins would be verified without verifying"),
)

# Which placeholders each message template may use: the one list per template. Settings are checked
# against it whenever they are built (/config, every load) and so is the legacy split; each renderer
# fills exactly these names (templates.values_for), so what is accepted is what renders.
TEMPLATE_PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "levelup_template": ("member", "level", "server"),
    "birthday_template": ("member", "age"),
    "welcome_template": ("member", "server", "member_count"),
    "welcome_dm_template": ("member", "server", "member_count"),
    "goodbye_template": ("member", "server", "member_count"),
}


def between_settings(sentence: str, *dropped: str) -> PydanticCustomError:
    """A broken rule between settings. Pydantic reports a model-wide rule without a field, so the error
    names the settings a stored copy that breaks it loses (`dropped`); the others still load."""
    return PydanticCustomError(BETWEEN_SETTINGS, sentence, {"dropped": dropped})


def settings_at_fault(error: ValidationError) -> set[str]:
    """The settings a validation error is about: a field's own problem names its field, a broken rule
    between settings those it says to drop."""
    names: set[str] = set()
    for item in error.errors():
        if item.get("loc"):
            names.add(str(item["loc"][0]))
        else:
            names.update(item.get("ctx", {}).get("dropped", ()))
    return names


class WarnThreshold(BaseModel):
    """N warnings within D days → an automatic action."""

    # A misspelt key (typed as JSON in /config set) is refused, not dropped for its default.
    model_config = ConfigDict(frozen=True, extra="forbid")

    count: int = Field(ge=1, le=100)
    days: int = Field(ge=1, le=365)
    action: ThresholdAction
    timeout_minutes: int | None = Field(default=None, ge=1, le=28 * 24 * 60)


# Files of the tz database that are not places: the host's own zone and tzcode's internals.
NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


@cache
def known_timezones() -> frozenset[str]:
    """The IANA zone names, read once: available_timezones() walks the tz database on every call
    (milliseconds), and settings are validated for every tenant the bot loads."""
    return frozenset(available_timezones()) - NOT_ZONES


@cache
def _zones_by_folded_name() -> dict[str, str]:
    return {name.casefold(): name for name in known_timezones() | {"UTC"}}


def canonical_timezone(typed: str) -> str | None:
    """The IANA name an admin meant, whatever the case they typed it in (`europe/berlin`, `utc`), or
    None when there is no such zone."""
    return _zones_by_folded_name().get(typed.strip().casefold())


class GuildSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_assignment=True)

    # General
    timezone: str = "UTC"

    # XP and levels
    xp_enabled: bool = True
    xp_min: int = Field(default=15, ge=0, le=10_000)
    xp_max: int = Field(default=25, ge=0, le=10_000)
    xp_cooldown_seconds: int = Field(default=60, ge=0, le=86_400)
    level_curve: LevelCurveName = "standard"
    no_xp_channel_ids: tuple[Snowflake, ...] = ()
    no_xp_role_ids: tuple[Snowflake, ...] = ()
    levelup_enabled: bool = True
    levelup_channel_id: Snowflake | None = None  # None: the channel the member chatted in
    levelup_template: str = Field(default="GG {member}, you reached level {level}!", min_length=1,
                                  max_length=1500)
    level_role_mode: LevelRoleMode = "stack"

    # Daily check-ins
    checkin_base_xp: int = Field(default=50, ge=0, le=100_000)
    checkin_streak_bonus_xp: int = Field(default=10, ge=0, le=100_000)
    checkin_bonus_cap_days: int = Field(default=7, ge=0, le=365)

    # Birthdays
    birthday_channel_id: Snowflake | None = None
    birthday_hour: int = Field(default=9, ge=0, le=23)
    birthday_template: str = Field(default="Happy birthday {member}! 🎂", min_length=1, max_length=1500)
    birthday_role_id: Snowflake | None = None
    birthday_xp: int = Field(default=100, ge=0, le=100_000)

    # Moderation
    mod_log_channel_id: Snowflake | None = None
    warn_thresholds: tuple[WarnThreshold, ...] = ()

    # Verification
    verified_role_id: Snowflake | None = None
    unverified_role_id: Snowflake | None = None
    verify_min_account_age_days: int = Field(default=0, ge=0, le=3650)
    verify_review_channel_id: Snowflake | None = None  # set: requests go to manual review

    # Welcome and goodbye
    welcome_enabled: bool = False
    welcome_channel_id: Snowflake | None = None
    welcome_template: str = Field(default="Welcome to {server}, {member}! You are member #{member_count}.",
                                  min_length=1, max_length=1500)
    welcome_dm_enabled: bool = False
    welcome_dm_template: str = Field(default="Welcome to {server}, {member}!", min_length=1, max_length=1500)
    goodbye_enabled: bool = False
    goodbye_channel_id: Snowflake | None = None
    goodbye_template: str = Field(default="{member} left {server}.", min_length=1, max_length=1500)
    autorole_id: Snowflake | None = None

    # Backups
    backup_keep: int = Field(default=7, ge=1, le=60)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        zone = canonical_timezone(value)
        if zone is None:
            raise ValueError(f"unknown timezone {quoted(value)!r}; use an IANA name such as Europe/Berlin")
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {quoted(value)!r}; use an IANA name such as Europe/Berlin") from None
        return zone

    @field_validator(*TEMPLATE_PLACEHOLDERS)
    @classmethod
    def _template_renders(cls, value: str, info: ValidationInfo) -> str:
        try:
            templates.placeholders(value, TEMPLATE_PLACEHOLDERS[str(info.field_name)])
        except UserInputError as error:
            raise ValueError(error.message) from None
        return value

    @field_validator(
        "levelup_channel_id", "birthday_channel_id", "birthday_role_id", "mod_log_channel_id",
        "verified_role_id", "unverified_role_id", "verify_review_channel_id", "welcome_channel_id",
        "goodbye_channel_id", "autorole_id",
    )
    @classmethod
    def _positive_id(cls, value: int | None) -> int | None:
        if value is not None and not is_snowflake(value):
            raise ValueError("must be a Discord id")
        return value

    @field_validator("unverified_role_id")
    @classmethod
    def _not_the_verified_role(cls, value: int | None, info: ValidationInfo) -> int | None:
        # A rule of the settings themselves, so every writer keeps it, and SettingsService.update checks
        # it on the settings as stored, under the tenant's lock: two admins choosing one role as both at
        # once cannot both pass. On this field, so a stored pair that breaks it loses only this role.
        try:
            check_distinct_roles(info.data.get("verified_role_id"), value)
        except UserInputError as error:
            raise PydanticCustomError(BETWEEN_SETTINGS, error.message) from None
        return value

    @field_validator("no_xp_channel_ids", "no_xp_role_ids")
    @classmethod
    def _positive_ids(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not all(is_snowflake(item) for item in value):
            raise ValueError("must be Discord ids")
        return tuple(dict.fromkeys(value))

    @model_validator(mode="after")
    def _xp_range_ordered(self) -> GuildSettings:
        if self.xp_min > self.xp_max:
            raise between_settings(f"`xp_min` ({self.xp_min}) must not exceed `xp_max` ({self.xp_max}).",
                                   "xp_min", "xp_max")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def changed(self, **values: object) -> GuildSettings:
        """A validated copy with some values replaced (raises pydantic.ValidationError when invalid)."""
        return GuildSettings.model_validate({**self.model_dump(), **values})

    def setting_giving(self, role_id: int) -> str | None:
        """The setting that has the bot give `role_id` (GIVEN_ROLE_SETTINGS), if any."""
        return next((name for name in GIVEN_ROLE_SETTINGS if getattr(self, name) == role_id), None)

    def stored_values(self) -> dict[str, object]:
        """Only the values that differ from the defaults, as JSON-ready data."""
        return self.model_dump(mode="json", exclude_defaults=True)


def roles_not_kept_apart(settings: GuildSettings) -> list[tuple[str, str, str]]:
    """The pairs of ROLES_KEPT_APART that name one role in `settings` (as an older bot could store)."""
    return [(name, other, why) for name, other, why in ROLES_KEPT_APART
            if getattr(settings, name) is not None and getattr(settings, name) == getattr(settings, other)]


def check_roles_kept_apart(settings: GuildSettings, changed: Collection[str]) -> None:
    """Refuse `settings` when a setting in `changed` now names the role of one it must differ from
    (ROLES_KEPT_APART); pairs among the settings not changed are left as they were stored."""
    for name, other, why in roles_not_kept_apart(settings):
        if name in changed or other in changed:
            raise UserInputError(f"`{name}` and `{other}` must be different roles: {why}.")
