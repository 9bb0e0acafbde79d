"""Domain errors. Each carries the sentence a user or operator sees; no traceback reaches them."""

from __future__ import annotations

import unicodedata


class MalabotError(Exception):
    """Base of every error the bot or the CLI explains to a person in one line."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidGuildId(MalabotError):
    """Something that is not a Discord guild id was used where one is needed."""


class TenantError(MalabotError):
    """A tenant file cannot be opened, migrated, restored or archived."""


class TenantArchived(TenantError):
    """The bot was removed from the guild and its file archived: nothing recreates it but the bot being
    added back (or a restore). Work that meets it has nothing left to do there."""

    def __init__(self, guild_id: int) -> None:
        super().__init__(f"guild {guild_id} was archived (the bot left it); its file is not recreated")


class ReplacedDataUnreadable(TenantError):
    """A restore refused because the data it would replace cannot be read (a damaged file): who erased
    their data there since the backup cannot be known, so the restored data could bring them back."""


class MigrationError(TenantError):
    """The migrations folder or a tenant's migration history is not acceptable."""


class RestoreRefused(TenantError):
    """A file offered for restore is not a valid MalaBoT file for this guild."""


class TenantsLocked(MalabotError):
    """Another process (a running bot) holds the tenants folder."""


class NotInGuild(MalabotError):
    """A server-only command was used in a direct message."""

    def __init__(self) -> None:
        super().__init__("This command only works in a server.")


class NotAMember(MalabotError):
    """A command or button used in a server the bot is not in (its commands can stay there without it)."""

    def __init__(self) -> None:
        super().__init__("I am not a member of this server (only my commands are here), so I keep no data "
                         "for it. An admin can invite me to use them.")


class UserInputError(MalabotError):
    """A slash command option or setting value was not acceptable; the text says what was wrong."""


class PermissionRefused(MalabotError):
    """The member (or the bot) lacks what the action needs."""


def quoted(text: str, limit: int = 40) -> str:
    """What a user typed, shortened for an answer that quotes it back: Discord accepts 6,000 characters
    in an option but delivers no answer longer than 2,000, so a long bad value would get no answer."""
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


# What can split a line or spoof how the rest of it reads: control characters (C0, C1), the line and
# paragraph separators, and the bidi marks, embeddings, overrides and isolates. Also lone surrogates:
# the bytes of a file name that is not UTF-8 (os.fsdecode), which a UTF-8 stream cannot write at all
# (a strict stdout raises). Other format characters stay as they are: ZWNJ and ZWJ are parts of Persian
# or Indic words and of composed emoji, the soft hyphen of names pasted from documents; escaped, the
# path printed would not be the folder's.
_UNREADABLE_CATEGORIES = frozenset({"Cc", "Zl", "Zp", "Cs"})
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _unreadable(char: str) -> bool:
    return char in _BIDI_CONTROLS or unicodedata.category(char) in _UNREADABLE_CATEGORIES


def undecodable_byte(char: str) -> int | None:
    """The byte of a file name that is not UTF-8 which `char` stands for (os.fsdecode's surrogate
    escape: b"\\xff" is "\\udcff"), or None for any other character."""
    return ord(char) - 0xDC00 if "\udc80" <= char <= "\udcff" else None


def _escaped(char: str) -> str:
    byte = undecodable_byte(char)
    if byte is not None:  # written as the byte the name holds, as a shell's $'\xff' names it
        return f"\\x{byte:02x}"
    return char.encode("unicode_escape").decode("ascii")


def unprintable_character(text: str) -> str | None:
    """The first character of `text` that `one_line` escapes, or None when the text prints as itself."""
    return next((char for char in text if _unreadable(char)), None)


def one_line(text: str) -> str:
    """`text` as one readable line for the CLI's stderr: such characters (a newline in a file name
    given on the command line) are written escaped (`\\n`, `\\x1b`, `\\u202e`), so a path can neither
    split the line nor print a second one of its choosing; a byte of a name that is not UTF-8 as
    `\\xff`, so the line can be written at all."""
    return "".join(_escaped(char) if _unreadable(char) else char for char in text)


def os_reason(error: OSError, named: object = None) -> str:
    """Why a file operation failed, in words for an error line: the system's reason and the path it
    met ("Permission denied: /srv/out"), without Python's errno number and quoting. The path is left
    out when it is `named`, the one the sentence already names."""
    reason = error.strerror or str(error) or type(error).__name__
    met = [str(name) for name in (error.filename, error.filename2) if name is not None]
    if not met or met == [str(named)]:
        return reason
    return f"{reason}: {' -> '.join(met)}"
