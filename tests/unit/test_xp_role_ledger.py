"""RoleLedger: the bot's own level-role changes count until Discord's member cache shows them."""

from __future__ import annotations

import asyncio

from manual_clock import ManualClock

from malabot.features.xp.role_ledger import RoleLedger

GUILD, ALICE, BOB = 1, 10, 11
CHATTER, REGULAR, OTHER = 100, 200, 300



def test_changes_not_yet_in_the_cache_count_and_only_for_that_member() -> None:
    ledger = RoleLedger(clock=ManualClock())
    ledger.changed(GUILD, ALICE, given=[REGULAR], taken=[CHATTER])
    assert ledger.roles_now(GUILD, ALICE, [CHATTER, OTHER]) == {REGULAR, OTHER}
    assert ledger.roles_now(GUILD, BOB, [CHATTER]) == {CHATTER}
    assert ledger.roles_now(2, ALICE, [CHATTER]) == {CHATTER}


def test_a_change_the_cache_shows_is_forgotten_so_a_later_one_by_hand_counts() -> None:
    ledger = RoleLedger(clock=ManualClock())
    ledger.changed(GUILD, ALICE, given=[REGULAR], taken=[])
    assert ledger.roles_now(GUILD, ALICE, [REGULAR]) == {REGULAR}  # the gateway confirmed it
    assert ledger.roles_now(GUILD, ALICE, []) == set()              # then an admin took it by hand


def test_an_unconfirmed_change_counts_only_for_a_while() -> None:
    clock = ManualClock()
    ledger = RoleLedger(keep_seconds=10, clock=clock)
    ledger.changed(GUILD, ALICE, given=[REGULAR], taken=[])
    clock.now = 10
    assert ledger.roles_now(GUILD, ALICE, []) == {REGULAR}
    clock.now = 10.5
    assert ledger.roles_now(GUILD, ALICE, []) == set()


async def test_syncs_of_one_member_run_one_at_a_time_and_others_do_not_wait() -> None:
    ledger = RoleLedger()
    order: list[str] = []
    first_inside, release = asyncio.Event(), asyncio.Event()

    async def sync(user_id: int, name: str, hold: bool = False) -> None:
        async with ledger.syncing(GUILD, user_id):
            order.append(f"{name} in")
            if hold:
                first_inside.set()
                await release.wait()
            order.append(f"{name} out")

    first = asyncio.create_task(sync(ALICE, "alice 1", hold=True))
    await first_inside.wait()
    second = asyncio.create_task(sync(ALICE, "alice 2"))
    await sync(BOB, "bob")
    release.set()
    await asyncio.gather(first, second)
    assert order == ["alice 1 in", "bob in", "bob out", "alice 1 out", "alice 2 in", "alice 2 out"]
    assert ledger._locks == {}, "no lock is kept for members nobody syncs"
