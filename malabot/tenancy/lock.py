"""A process lock on the tenants folder.

A running bot holds it for its whole life. CLI commands that replace or move files (restore, archive,
legacy split) take it too and refuse while a bot has it; read-only commands and backup never take it.
The lock is an advisory `flock` on a file in the folder, released by the OS if the holder dies.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from malabot.errors import TenantsLocked
from malabot.tenancy.failures import failing_as
from malabot.tenancy.private import PRIVATE_FILE_MODE, make_private_folder


class TenantsLock:
    def __init__(self, lock_file: Path, holder: str) -> None:
        self._lock_file = lock_file
        self._holder = holder
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock now or raise TenantsLocked naming who has it."""
        if self._fd is not None:
            return
        with failing_as(f"cannot take the lock {self._lock_file} on the tenants folder", self._lock_file):
            make_private_folder(self._lock_file.parent)
            fd = os.open(self._lock_file, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.read(fd, 200).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise TenantsLocked(
                f"the tenants folder {self._lock_file.parent} is in use by {other}; "
                "stop the bot first") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{self._holder} (pid {os.getpid()})".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __enter__(self) -> TenantsLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.release()
