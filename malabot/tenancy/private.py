"""Member data at rest is readable only by the bot's account.

Every file MalaBoT writes into the tenants folder holds a server's member data (or says who holds the
lock on it), so it is made private when it is created, never loosened first and tightened later. A
database file is created empty with mode 0600 before SQLite opens it: SQLite gives its -wal and -shm
the database's own mode. The process umask is left alone (it is process-wide state, and the bot's
other files are not member data). Folders MalaBoT creates are 0700; a folder that is already there is
the operator's and keeps its mode.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from malabot.tenancy.paths import sidecars

PRIVATE_FILE_MODE = 0o600
PRIVATE_FOLDER_MODE = 0o700


def make_private_folder(folder: Path) -> None:
    """`folder` with any missing parents, each one created here private; existing ones are left as they are.

    A file in the way raises NotADirectoryError naming that file, not the folder wanted.
    (`Path.mkdir(parents=True, mode=...)` would give the parents the umask's mode.)"""
    missing = []
    for place in (folder, *folder.parents):
        if place.exists():
            if not place.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, "a file is in the way", str(place))
            break
        missing.append(place)
    for place in reversed(missing):
        # The umask can only take bits away: the folder is never looser than 0700.
        place.mkdir(mode=PRIVATE_FOLDER_MODE, exist_ok=True)


def create_private_file(path: Path) -> None:
    """An empty private file at `path` unless a file is there already (then it is left as it is), for
    SQLite or a copy to write into."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE_MODE))


def make_database_private(database: Path) -> None:
    """Make a closed database file MalaBoT keeps a copy of (an archive, a before-restore copy) and its
    -wal/-shm private, whatever mode it had (a file made by an older version)."""
    for path in (database, *sidecars(database)):
        if path.exists():
            os.chmod(path, PRIVATE_FILE_MODE)
