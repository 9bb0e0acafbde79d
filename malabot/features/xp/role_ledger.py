"""Level roles the bot just gave or took that Discord's member cache may not show yet.

After a role change, Discord answers the request first and tells the gateway later; until then py-cord
still shows the member's old roles. A second level change of the same member meanwhile (two quick
`/xp set`, a chat level-up right after an admin edit) would work from those old roles: in `replace`
mode it gives the new role without taking the one just given. So the level-role sync of one member
runs one at a time, and reads the cached roles through this ledger.

A change counts until a member update from the gateway shows it: from then on the cache is right
about that role, so a moderator who takes the role off by hand later is seen. A change the cache
already shows when it is recorded (the update came before Discord's answer) is not recorded at all.
An update that does not show a change yet keeps it: it may be one Discord sent before the bot's.

A change counts for `keep_seconds` at most, so the ledger holds only the last few seconds of changes:
members are kept in the order of their latest change and the expired ones are dropped from the front
whenever the ledger is used; a member who leaves is forgotten at once.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable

from malabot.keyed_locks import KeyedLocks

# Longer than the gateway takes to confirm a change; after it the cache is trusted again even if no
# confirmation came (a missed event must not hide a role change an admin made by hand for long).
UNCONFIRMED_SECONDS = 10.0

_Member = tuple[int, int]  # (guild id, user id)


class RoleLedger:
    def __init__(self, keep_seconds: float = UNCONFIRMED_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._keep_seconds = keep_seconds
        self._clock = clock
        self._syncs: KeyedLocks[_Member] = KeyedLocks()
        # Per member: role id -> (True: given, False: taken; clock time of the change). Members in the
        # order of their latest change, oldest first, so expired ones are dropped from the front.
        self._unconfirmed: OrderedDict[_Member, dict[int, tuple[bool, float]]] = OrderedDict()

    @contextlib.asynccontextmanager
    async def syncing(self, guild_id: int, user_id: int) -> AsyncIterator[None]:
        """Exclusive use of the member's level roles: read them, decide, change them."""
        async with self._syncs.holding((guild_id, user_id)):
            yield

    async def syncs_finished(self, guild_id: int) -> None:
        """Return once the syncs of this server's members that run or wait now are over (not those
        that start later): a sync that read a member's level before an XP reset may still be giving
        the role of that level."""
        for key in [key for key in self._syncs.in_use() if key[0] == guild_id]:
            async with self.syncing(*key):
                pass

    def roles_now(self, guild_id: int, user_id: int, cached: Iterable[int]) -> set[int]:
        """The member's roles: the cached ones with the bot's unconfirmed changes applied. A change
        the cache already shows, or an old one, is forgotten."""
        roles = set(cached)
        too_old = self._forget_expired()
        changes = self._unconfirmed.get((guild_id, user_id))
        if not changes:
            return roles
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

    def changed(self, guild_id: int, user_id: int, given: Iterable[int], taken: Iterable[int], *,
                cached: Iterable[int]) -> None:
        """The bot gave and took these roles (Discord accepted the requests). `cached` is the member's
        roles in the cache now: the gateway's update may have come before Discord's answer."""
        self._forget_expired()
        now, given_ids, taken_ids, shown = self._clock(), set(given), set(taken), set(cached)
        key = (guild_id, user_id)
        changes = self._unconfirmed.get(key, {})
        # The bot's latest word on a role overtakes an older one. While that older one is unconfirmed
        # the cache is behind it, so what the cache shows of the role says nothing: keep the new word.
        overtaken = {role_id for role_id in given_ids | taken_ids if changes.pop(role_id, None) is not None}
        # Otherwise only what the cache does not show yet needs remembering.
        news = ({role_id: (True, now) for role_id in given_ids if role_id not in shown or role_id in overtaken}
                | {role_id: (False, now) for role_id in taken_ids if role_id in shown or role_id in overtaken})
        changes.update(news)
        if news:
            self._unconfirmed[key] = changes
            self._unconfirmed.move_to_end(key)  # its latest change is now the newest
        elif not changes:
            self._unconfirmed.pop(key, None)

    def given_unconfirmed(self, guild_id: int, role_id: int) -> list[int]:
        """The members the bot gave this role to and the cache does not show holding it yet, as far as
        the ledger knows: the users among `role.members` from py-cord are not all who hold it."""
        too_old = self._forget_expired()
        return [user_id for (guild, user_id), changes in self._unconfirmed.items()
                if guild == guild_id and (change := changes.get(role_id)) is not None
                and change[0] and change[1] >= too_old]

    def member_updated(self, guild_id: int, user_id: int, roles: Iterable[int]) -> None:
        """The gateway's member update, with the member's roles on Discord: the changes it shows are
        confirmed and forgotten. One it does not show yet is kept (the update may predate it)."""
        self._forget_expired()
        key = (guild_id, user_id)
        changes = self._unconfirmed.get(key)
        if not changes:
            return
        shown = set(roles)
        for role_id, (given, _) in list(changes.items()):
            if (role_id in shown) == given:
                del changes[role_id]
        if not changes:
            del self._unconfirmed[key]

    def member_left(self, guild_id: int, user_id: int) -> None:
        """Forget the member's changes: a member who comes back has none of their old roles."""
        self._unconfirmed.pop((guild_id, user_id), None)

    def _forget_expired(self) -> float:
        """Drop members whose latest change is too old to count; returns the cut-off time. Only the
        front is looked at (members are in the order of their latest change), so a call costs as
        many steps as it drops, plus one."""
        too_old = self._clock() - self._keep_seconds
        while self._unconfirmed:
            key, changes = next(iter(self._unconfirmed.items()))
            if max((at for _, at in changes.values()), default=-math.inf) >= too_old:
                break
            del self._unconfirmed[key]
        return too_old
