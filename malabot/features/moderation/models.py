"""What moderation works with: cases as stored in the server's file, and the parties of an action."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from malabot.errors import MalabotError

# Every kind of case this bot records. `unwarn` is the case of `/warnings remove`.
CaseAction = Literal["warn", "unwarn", "timeout", "untimeout", "kick", "ban", "unban", "purge"]
CASE_ACTIONS: tuple[CaseAction, ...] = ("warn", "unwarn", "timeout", "untimeout", "kick", "ban", "unban",
                                        "purge")


@dataclass(frozen=True)
class Party:
    """A member as far as the role hierarchy is concerned.

    `top_role_position` is the position of their highest role (0 for @everyone only, which is also what
    a user who is not in the server has) and `top_role_id` its id (@everyone's is the server's id): two
    roles may share a position, and Discord then ranks the older one (smaller id) higher.
    """

    user_id: int
    top_role_position: int
    is_owner: bool = False
    top_role_id: int = 0


@dataclass(frozen=True)
class NewCase:
    """A case about to be recorded; the repository gives it its number."""

    action: str
    created_at: datetime
    target_id: int | None = None
    moderator_id: int | None = None
    reason: str | None = None
    duration_seconds: int | None = None
    channel_id: int | None = None
    message_count: int | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True)
class Case:
    """One numbered moderation case of one server.

    `action` is a plain string because cases carried over from the legacy bot may use other names;
    the bot itself only writes the names in CASE_ACTIONS. `moderator_id` is None once the moderator
    has left the server and had their data erased.
    """

    case_number: int
    action: str
    created_at: datetime
    target_id: int | None = None
    moderator_id: int | None = None
    reason: str | None = None
    duration_seconds: int | None = None
    channel_id: int | None = None
    message_count: int | None = None
    expires_at: datetime | None = None
    removed_at: datetime | None = None
    log_message_id: int | None = None

    @property
    def duration(self) -> timedelta | None:
        return None if self.duration_seconds is None else timedelta(seconds=self.duration_seconds)

    @property
    def is_active_warning(self) -> bool:
        return self.action == "warn" and self.removed_at is None


class CaseNotRecorded(MalabotError):
    """An action already carried out on Discord whose case the server's file could not take.

    `draft` is the case as it would have been recorded (it has no number); `why` says in a few words
    what was wrong with the file."""

    def __init__(self, draft: NewCase, why: str) -> None:
        super().__init__(f"The action was carried out, but its case could not be recorded ({why}).")
        self.draft = draft
        self.why = why
