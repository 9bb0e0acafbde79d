"""Level roles the bot just gave or took that Discord's member cache may not show yet.

After a role change, Discord answers the request first and tells the gateway later; until then py-cord
still shows the member's old roles. A second level change of the same member meanwhile (two quick
`/xp set`, a chat level-up right after an admin edit) would work from those old roles: in `replace`
mode it gives the new role without taking the one just given. So the level-role sync of one member
runs one at a time, and reads the cached roles through this ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable

# Longer than the gateway takes to confirm a change; after it the cache is trusted again even if no
# confirmation came (a missed event must not hide a role change an admin made by hand for long).
UNCONFIRMED_SECONDS = 10.0

_Member = tuple[int, int]  # (guild id, user id)


class RoleLedger:
    def __init__(self, keep_seconds: float = UNCONFIRMED_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._keep_seconds = keep_seconds
        self._clock = clock
        self._locks: dict[_Member, asyncio.Lock] = {}
        self._users: dict[_Member, int] = {}   # coroutines holding or waiting for each lock
        # Per member: role id -> (True: given, False: taken; clock time of the change).
        self._unconfirmed: dict[_Member, dict[int, tuple[bool, float]]] = {}

    @contextlib.asynccontextmanager
    async def syncing(self, guild_id: int, user_id: int) -> AsyncIterator[None]:
        """Exclusive use of the member's level roles: read them, decide, change them."""
        key = (guild_id, user_id)
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key], self._locks[key]

    def roles_now(self, guild_id: int, user_id: int, cached: Iterable[int]) -> set[int]:
        """The member's roles: the cached ones with the bot's unconfirmed changes applied. A change
        the cache already shows, or an old one, is forgotten."""
        roles = set(cached)
        changes = self._unconfirmed.get((guild_id, user_id))
        if not changes:
            return roles
        too_old = self._clock() - self._keep_seconds
        for role_id, (given, at) in list(changes.items()):
            if (role_id in roles) == given or at < too_old:
                del changes[role_id]
            elif given:
                roles.add(role_id)
            else:
                roles.discard(role_id)
        if not changes:
            del self._unconfirmed[(guild_id, user_id)]
        return roles

    def changed(self, guild_id: int, user_id: int, given: Iterable[int], taken: Iterable[int]) -> None:
        """The bot gave and took these roles (Discord accepted the requests)."""
        now = self._clock()
        changes = self._unconfirmed.setdefault((guild_id, user_id), {})
        changes.update({role_id: (True, now) for role_id in given})
        changes.update({role_id: (False, now) for role_id in taken})
