"""The in-memory XP buffer: moving pending XP out and back, and forgetting quiet members."""

from __future__ import annotations

from malabot.features.xp.buffer import GuildBuffer, MemberBuffer, TakenXp, awards_from


def award(guild: GuildBuffer, user_id: int, xp: int, at: float, stored: int | None = 0) -> None:
    member = guild.touch(user_id)
    if member.stored_xp is None:
        member.stored_xp = stored
    member.last_award_at = member.last_message_at = at
    member.pending_xp += xp
    member.pending_messages += 1
    guild.dirty.add(user_id)


def test_take_pending_moves_xp_to_the_stored_total_and_give_back_undoes_it() -> None:
    guild = GuildBuffer()
    award(guild, 1, 20, 100.0, stored=50)
    award(guild, 2, 15, 101.0, stored=None)
    taken = guild.take_pending()
    assert sorted(item[:4] for item in taken) == [(1, 20, 1, 100.0), (2, 15, 1, 101.0)]
    assert (guild.members[1].stored_xp, guild.members[1].pending_xp) == (70, 0)
    assert (guild.members[2].stored_xp, guild.members[2].pending_xp) == (None, 0)
    assert not guild.dirty
    guild.give_back(taken)
    assert (guild.members[1].stored_xp, guild.members[1].pending_xp, guild.members[1].pending_messages) == \
        (50, 20, 1)
    assert (guild.members[2].stored_xp, guild.members[2].pending_xp) == (None, 15)
    assert guild.dirty == {1, 2}


def test_give_back_skips_members_forgotten_meanwhile() -> None:
    guild = GuildBuffer()
    award(guild, 1, 20, 100.0)
    taken = guild.take_pending()
    del guild.members[1]
    guild.give_back(taken)
    assert guild.empty


def test_give_back_leaves_alone_a_member_who_left_and_came_back_meanwhile() -> None:
    # What they earned before leaving goes with them; the new entry holds only what they earned since.
    guild = GuildBuffer()
    award(guild, 1, 20, 100.0)
    taken = guild.take_pending()
    del guild.members[1]
    award(guild, 1, 15, 200.0)
    guild.give_back(taken)
    assert (guild.members[1].pending_xp, guild.members[1].pending_messages) == (15, 1)


def test_prune_forgets_quiet_members_with_nothing_pending_oldest_first() -> None:
    guild = GuildBuffer()
    award(guild, 1, 20, 100.0)
    award(guild, 2, 20, 200.0)
    award(guild, 3, 20, 300.0)
    guild.written(guild.take_pending())  # flushed
    award(guild, 1, 20, 350.0)          # active again: moves to the newest end, pending
    guild.prune(now=400.0, keep_seconds=150.0)
    assert list(guild.members) == [3, 1]
    guild.written(guild.take_pending())
    guild.prune(now=1000.0, keep_seconds=150.0)
    assert guild.empty


def test_prune_keeps_a_member_whose_xp_is_being_written_so_a_failed_write_can_give_it_back() -> None:
    guild = GuildBuffer()
    award(guild, 1, 20, 100.0)
    taken = guild.take_pending()
    guild.prune(now=10_000.0, keep_seconds=1.0)          # a round prunes while the write waits
    assert list(guild.members) == [1]
    guild.give_back(taken)                               # the write failed
    assert guild.members[1].pending_xp == 20
    guild.written(guild.take_pending())                  # the next one worked
    guild.prune(now=10_000.0, keep_seconds=1.0)
    assert guild.empty


def test_prune_keeps_members_with_pending_xp() -> None:
    guild = GuildBuffer()
    award(guild, 1, 20, 100.0)
    guild.prune(now=10_000.0, keep_seconds=1.0)
    assert list(guild.members) == [1]


def test_forget_stored_keeps_cooldowns_and_pending() -> None:
    guild = GuildBuffer()
    award(guild, 1, 20, 100.0, stored=70)
    guild.forget_stored()
    member = guild.members[1]
    assert (member.stored_xp, member.pending_xp, member.last_award_at) == (None, 20, 100.0)


def test_awards_carry_the_time_of_the_last_message_in_utc() -> None:
    (award_,) = awards_from([TakenXp(7, 20, 2, 1_781_524_800.0, MemberBuffer())])
    assert (award_.user_id, award_.xp, award_.messages, award_.last_message_at) == \
        (7, 20, 2, "2026-06-15T12:00:00+00:00")
