"""Enough file descriptors for the pool of open tenant files.

Each open tenant holds three (the file, its `-wal` and its `-shm`), so a pool of 1,024 needs about
3,100: more than the 1,024 that many systems give a process by default. Past the limit SQLite can
only say "unable to open database file", server by server, so before serving the bot raises its own
limit (up to the hard limit the system allows it) or refuses to start, saying what to change.
"""

from __future__ import annotations

import resource

from malabot.errors import MalabotError

FILES_PER_TENANT = 3
# Gateway and HTTP sockets, logs, the tenants lock, and SQLite's brief extra while opening or closing.
OTHER_FILES = 64


def descriptors_needed(max_open_tenants: int) -> int:
    return FILES_PER_TENANT * max_open_tenants + OTHER_FILES


def ensure_descriptors(max_open_tenants: int) -> None:
    """Raise this process's open-file limit to what the pool needs; MalabotError when it cannot."""
    needed = descriptors_needed(max_open_tenants)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        fits = max(1, (hard - OTHER_FILES) // FILES_PER_TENANT)
        raise MalabotError(
            f"MALABOT_MAX_OPEN_TENANTS={max_open_tenants} needs about {needed} open files, but this process "
            f"may open at most {hard} (ulimit -Hn); set it to {fits} or less, or raise the limit")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
