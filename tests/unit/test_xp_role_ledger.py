"""RoleLedger: the bot's own level-role changes count until Discord's member cache shows them."""

from __future__ import annotations

import asyncio

from manual_clock import ManualClock

from malabot.features.xp.role_ledger import RoleLedger

GUILD, ALICE, BOB = 1, 10, 11
CHATTER, REGULAR, OTHER = 100, 200, 300



def test_changes_not_yet_in_the_cache_count_and_only_for_that_member() -> None:
    ledger = RoleLedger(clock=ManualClock())
    ledger.changed(GUILD, ALICE, given=[REGULAR], taken=[CHATTER], cached=[CHATTER, OTHER])
    assert ledger.roles_now(GUILD, ALICE, [CHATTER, OTHER]) == {REGULAR, OTHER}
    assert ledger.roles_now(GUILD, BOB, [CHATTER]) == {CHATTER}
    assert ledger.roles_now(2, ALICE, [CHATTER]) == {CHATTER}


def test_a_change_the_cache_shows_is_forgotten_so_a_later_one_by_hand_counts() -> None:
    ledger = RoleLedger(clock=ManualClock())
    ledger.changed(GUILD, ALICE, given=[REGULAR], taken=[], cached=[])
    assert ledger.roles_now(GUILD, ALICE, [REGULAR]) == {REGULAR}  # the gateway confirmed it
    assert ledger.roles_now(GUILD, ALICE, []) == set()              # then an admin took it by hand


def test_a_member_update_that_shows_a_change_ends_it_so_a_later_hand_removal_counts() -> None:
    ledger = RoleLedger(clock=ManualClock())
    ledger.changed(GUILD, ALICE, given=[CHATTER, REGULAR], taken=[], cached=[])
    ledger.member_updated(GUILD, ALICE, [CHATTER, REGULAR])         # the gateway confirmed both
    assert ledger.roles_now(GUILD, ALICE, []) == set()              # a moderator took them off since
    assert not ledger._unconfirmed


def test_a_take_overtaking_an_unconfirmed_give_counts_after_the_give_is_confirmed() -> None:
    ledger = RoleLedger(clock=ManualClock())
    ledger.changed(GUILD, ALICE, given=[REGULAR], taken=[], cached=[])   # Discord answered, gateway behind
    ledger.changed(GUILD, ALICE, given=[], taken=[REGULAR], cached=[])   # taken again, gateway still behind
    ledger.member_updated(GUILD, ALICE, [REGULAR])                       # the update of the give comes
    assert ledger.roles_now(GUILD, ALICE, [REGULAR]) == set()            # Discord has no Regular


def test_a_give_overtaking_an_unconfirmed_take_counts_after_the_take_is_confirmed() -> None:
    ledger = RoleLedger(clock=ManualClock())
    ledger.changed(GUILD, ALICE, given=[], taken=[REGULAR], cached=[REGULAR])
    ledger.changed(GUILD, ALICE, given=[REGULAR], taken=[], cached=[REGULAR])   # given back at once
    ledger.member_updated(GUILD, ALICE, [])                                     # the update of the take
    assert ledger.roles_now(GUILD, ALICE, []) == {REGULAR}                      # Discord has Regular again


def test_a_member_update_that_does_not_show_a_change_yet_keeps_it() -> None:
    # Replace mode: Regular given, then Chatter taken; the update of the first request comes alone.
    ledger = RoleLedger(clock=ManualClock())
    ledger.changed(GUILD, ALICE, given=[REGULAR], taken=[CHATTER], cached=[CHATTER])
    ledger.member_updated(GUILD, ALICE, [CHATTER, REGULAR])
    assert ledger.roles_now(GUILD, ALICE, [CHATTER, REGULAR]) == {REGULAR}
    ledger.member_updated(GUILD, BOB, [])                           # another member: nothing to do
    assert ledger.roles_now(GUILD, ALICE, [CHATTER, REGULAR]) == {REGULAR}


def test_a_change_the_cache_shows_when_recorded_is_not_kept() -> None:
    # The gateway's update came before Discord's answer: the cache is right already, and stays
    # right when a moderator takes the role off afterwards.
    ledger = RoleLedger(clock=ManualClock())
    ledger.changed(GUILD, ALICE, given=[REGULAR], taken=[CHATTER], cached=[REGULAR])
    assert not ledger._unconfirmed
    assert ledger.roles_now(GUILD, ALICE, []) == set()


def test_the_latest_change_of_a_role_counts_even_when_the_cache_already_shows_it() -> None:
    ledger = RoleLedger(clock=ManualClock())
    ledger.changed(GUILD, ALICE, given=[REGULAR], taken=[], cached=[])
    ledger.changed(GUILD, ALICE, given=[], taken=[REGULAR], cached=[])   # the bot took it back
    assert ledger.roles_now(GUILD, ALICE, []) == set()


def test_an_unconfirmed_change_counts_only_for_a_while() -> None:
    clock = ManualClock()
    ledger = RoleLedger(keep_seconds=10, clock=clock)
    ledger.changed(GUILD, ALICE, given=[REGULAR], taken=[], cached=[])
    clock.now = 10
    assert ledger.roles_now(GUILD, ALICE, []) == {REGULAR}
    clock.now = 10.5
    assert ledger.roles_now(GUILD, ALICE, []) == set()


def test_expired_changes_are_dropped_whenever_the_ledger_is_used() -> None:
    clock = ManualClock()
    ledger = RoleLedger(keep_seconds=10, clock=clock)
    for user_id in range(1, 10_001):                     # 10,000 members get a level role
        ledger.changed(GUILD, 1000 + user_id, given=[CHATTER], taken=[], cached=[])
        clock.now += 0.01
    clock.now += 30 * 24 * 3600                          # a month later, nobody has levelled again
    ledger.changed(GUILD, ALICE, given=[REGULAR], taken=[], cached=[])
    assert list(ledger._unconfirmed) == [(GUILD, ALICE)]
    clock.now += 11
    assert ledger.roles_now(GUILD, BOB, []) == set()
    assert not ledger._unconfirmed


def test_a_member_changed_again_counts_from_the_latest_change() -> None:
    clock = ManualClock()
    ledger = RoleLedger(keep_seconds=10, clock=clock)
    ledger.changed(GUILD, ALICE, given=[CHATTER], taken=[], cached=[])
    clock.now = 5
    ledger.changed(GUILD, BOB, given=[CHATTER], taken=[], cached=[])
    clock.now = 8
    ledger.changed(GUILD, ALICE, given=[REGULAR], taken=[], cached=[])
    clock.now = 16                                       # Bob's change is too old, Alice's latest is not
    assert ledger.roles_now(GUILD, 12, []) == set()
    assert list(ledger._unconfirmed) == [(GUILD, ALICE)]
    assert ledger.roles_now(GUILD, ALICE, []) == {REGULAR}


def test_a_member_who_left_is_forgotten() -> None:
    ledger = RoleLedger(clock=ManualClock())
    ledger.changed(GUILD, ALICE, given=[REGULAR], taken=[], cached=[])
    ledger.changed(GUILD, BOB, given=[REGULAR], taken=[], cached=[])
    ledger.member_left(GUILD, ALICE)
    ledger.member_left(GUILD, 12)                        # nothing remembered: nothing to do
    assert ledger.roles_now(GUILD, ALICE, []) == set()
    assert ledger.roles_now(GUILD, BOB, []) == {REGULAR}


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
    assert ledger._syncs.in_use() == [], "no lock is kept for members nobody syncs"


def test_who_was_given_a_role_lately_lists_gives_the_cache_does_not_show_yet() -> None:
    clock = ManualClock()
    ledger = RoleLedger(keep_seconds=10, clock=clock)
    ledger.changed(GUILD, ALICE, given=[CHATTER], taken=[], cached=[])
    ledger.changed(GUILD, 12, given=[CHATTER], taken=[], cached=[])
    ledger.changed(GUILD, BOB, given=[], taken=[CHATTER], cached=[CHATTER])   # taken: holds it no more
    ledger.changed(2, 13, given=[CHATTER], taken=[], cached=[])               # another server
    clock.now = 6
    ledger.changed(GUILD, 14, given=[REGULAR], taken=[], cached=[])
    ledger.member_updated(GUILD, 12, [CHATTER])                               # the gateway showed it
    assert ledger.given_unconfirmed(GUILD, CHATTER) == [ALICE]
    assert ledger.given_unconfirmed(GUILD, REGULAR) == [14]
    clock.now = 10.5
    assert ledger.given_unconfirmed(GUILD, CHATTER) == []                     # too old to count
    assert ledger.given_unconfirmed(GUILD, REGULAR) == [14]


async def test_waiting_for_a_servers_syncs_waits_for_those_running_now_only() -> None:
    ledger = RoleLedger()
    inside, release, other_release = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def sync(guild_id: int, user_id: int, until: asyncio.Event) -> None:
        async with ledger.syncing(guild_id, user_id):
            inside.set()
            await until.wait()

    running = asyncio.create_task(sync(GUILD, ALICE, release))
    elsewhere = asyncio.create_task(sync(2, BOB, other_release))   # another server's: not waited for
    await inside.wait()
    waiting = asyncio.create_task(ledger.syncs_finished(GUILD))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    release.set()
    await asyncio.wait_for(waiting, timeout=1)
    assert running.done() and not elsewhere.done()
    other_release.set()
    await elsewhere
