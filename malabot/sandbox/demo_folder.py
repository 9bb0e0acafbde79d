"""The tenants folder the sandbox plays in: never a real server's files, a fresh day on every run.

The demo's bot treats every server file in its folder as one of its servers: those of servers it is
not in look removed while it was offline, and the start archives them (and the birthday pass would
celebrate their members). So a folder holding real servers' files is refused, and the demo's own
servers have ids no real server can have, which lets a run recognise and replace an earlier run's files.
"""

from __future__ import annotations

import shutil

from malabot.errors import MalabotError
from malabot.tenancy.opening import remove_database_files
from malabot.tenancy.paths import TenantPaths

# Below any id Discord ever gave (a snowflake's time part counts from 2015; these are its first
# millisecond), so never a real server's.
CAFE_ID = 1001
CLUB_ID = 1002
DEMO_GUILD_IDS = (CAFE_ID, CLUB_ID)


def refuse_real_servers(paths: TenantPaths) -> None:
    """Refuse a folder holding files of servers that are not the demo's."""
    others = [guild_id for guild_id in paths.live_guild_ids() if guild_id not in DEMO_GUILD_IDS]
    if others:
        raise MalabotError(
            f"{paths.root} holds the files of {len(others):,} servers that are not the sandbox's (e.g. "
            f"{others[0]}); the demo bot would take them for servers that removed it and archive them. Give "
            "the sandbox a folder of its own: malabot sandbox --tenants-dir sandbox-tenants")


def remove_earlier_run(paths: TenantPaths) -> int:
    """Remove the demo servers' files of an earlier run (live, archived, backed up); how many."""
    removed = 0
    for guild_id in DEMO_GUILD_IDS:
        for path in [paths.live(guild_id), *paths.archives_of(guild_id)]:
            if path.exists():
                remove_database_files(path)
                removed += 1
        backups = paths.backups_dir / str(guild_id)
        if backups.is_dir():
            shutil.rmtree(backups)
            removed += 1
    return removed
