"""A leave's purge that meets a file it cannot write (another process holds its write lock past the
busy timeout; a full disk fails the DELETE the same way) is owed: tried again on a timer until it
works, logged once, tried once more and then dropped when the member rejoins, dropped with an archive."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from malabot.departures import MemberPresence
from malabot.features.checkins.member_data import checkin_member_data
from malabot.features.checkins.service import CheckinService
from malabot.features.settings.service import SettingsService
from malabot.features.xp.member_data import xp_member_data
from malabot.features.xp.service import XpService
from malabot.member_data import MemberData, PurgedMembers
from malabot.tenancy.manager import TenantManager
from tests.e2e.data_dump import eventually, rows_mentioning

GUILD = 111_111_111_111_111_111
CHECKED_IN = {"checkins": 1, "checkin_days": 1, "xp": 1}  # a check-in's rows (it earns XP)
ALICE, BOB, CAROL = 200_000_000_000_000_001, 200_000_000_000_000_002, 200_000_000_000_000_003
RETRY_SECONDS = 0.05


@dataclass
class Server:
    tenants: TenantManager
    checkins: CheckinService
    member_data: MemberData
    failing_commits: list[int]  # guild ids whose next commit fails (a disk error at COMMIT, say)

    @property
    def path(self) -> Path:
        return self.tenants.paths.live(GUILD)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    # A short busy timeout: a locked file fails the purge at once rather than after 5 s.
    tenants = TenantManager(tmp_path / "tenants", busy_timeout_ms=100)
    await tenants.start()
    settings = SettingsService(tenants)
    xp = XpService(tenants, settings)
    member_data = MemberData(tenants, [xp_member_data(), checkin_member_data()], forget_hooks=[xp.forget_member],
                             owed_retry_seconds=RETRY_SECONDS)
    failing: list[int] = []

    async def fail_once(guild_id: int, _conn: aiosqlite.Connection) -> None:
        if guild_id in failing:
            failing.remove(guild_id)
            raise OSError("disk I/O error")

    tenants.add_before_commit(fail_once)  # after MemberData's own: runs once a purge has marked
    await tenants.ensure(GUILD)
    running = Server(tenants, CheckinService(tenants, settings, xp), member_data, failing)
    for user_id in (ALICE, BOB):
        await running.checkins.check_in(GUILD, user_id)
    yield running
    await tenants.close_all()


@contextlib.contextmanager
def locked_by_another_process(path: Path) -> Iterator[None]:
    """What an operator's `sqlite3` session holding a write does to the bot."""
    outsider = sqlite3.connect(path, isolation_level=None)
    outsider.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        outsider.execute("ROLLBACK")
        outsider.close()


def warnings_from_member_data(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records
            if record.name == "malabot.member_data" and record.levelno >= logging.WARNING]


async def test_a_failed_leave_purge_is_retried_until_the_file_is_writable_and_logged_once(
        server: Server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="malabot.member_data")
    with locked_by_another_process(server.path):
        assert await server.member_data.member_left(GUILD, BOB) is None
        await asyncio.sleep(RETRY_SECONDS * 8)  # several retries meet the lock too
        assert rows_mentioning(server.path, BOB), "nothing could be purged while the file was locked"
    await eventually(lambda: not rows_mentioning(server.path, BOB), what="the owed purge once the file is free")
    assert rows_mentioning(server.path, ALICE) == CHECKED_IN
    # The done line follows the purge's commit and its WAL wipe, so it may come a moment after the rows go.
    done = f"guild {GUILD}: owed purge of 1 member(s) who left done: 1 had data, {sum(CHECKED_IN.values())} rows purged"
    await eventually(lambda: any(record.getMessage() == done for record in caplog.records),
                     what="the owed purge reported done")
    assert len(warnings_from_member_data(caplog)) == 1, warnings_from_member_data(caplog)


async def test_members_leaving_while_the_file_is_locked_are_all_purged_and_reported_once(
        server: Server, caplog: pytest.LogCaptureFixture) -> None:
    with locked_by_another_process(server.path):
        assert await server.member_data.member_left(GUILD, BOB) is None
        assert await server.member_data.member_left(GUILD, ALICE) is None
    await eventually(lambda: not rows_mentioning(server.path, BOB) and not rows_mentioning(server.path, ALICE),
                     what="both owed purges")
    assert len(warnings_from_member_data(caplog)) == 1, warnings_from_member_data(caplog)


async def test_a_member_who_rejoins_while_their_purge_is_owed_is_purged_then_and_keeps_what_they_do_again(
        server: Server) -> None:
    with locked_by_another_process(server.path):
        await server.member_data.member_left(GUILD, BOB)
    await server.member_data.member_joined(GUILD, BOB)  # before the first retry
    assert rows_mentioning(server.path, BOB) == {}, "the rows from before the leave are purged at the rejoin"
    await server.checkins.check_in(GUILD, BOB)
    await asyncio.sleep(RETRY_SECONDS * 4)  # past the retry the leave had scheduled
    assert rows_mentioning(server.path, BOB) == CHECKED_IN


async def test_a_rejoin_whose_owed_purge_fails_again_drops_it_so_nothing_later_purges_them(
        server: Server, caplog: pytest.LogCaptureFixture) -> None:
    with locked_by_another_process(server.path):
        await server.member_data.member_left(GUILD, BOB)
        await server.member_data.member_joined(GUILD, BOB)
    assert any("rejoined before the purge owed" in message for message in warnings_from_member_data(caplog))
    await asyncio.sleep(RETRY_SECONDS * 4)  # a retry now would delete whatever they do from now on
    assert rows_mentioning(server.path, BOB) == CHECKED_IN


async def test_an_owed_purge_is_dropped_when_the_server_is_archived(
        server: Server, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    with locked_by_another_process(server.path):
        await server.member_data.member_left(GUILD, BOB)
    archived = await server.tenants.archive(GUILD)
    assert archived is not None
    tries: list[Sequence[int]] = []
    purge_many = server.member_data.purge_many

    async def counted(guild_id: int, user_ids: Sequence[int], **kwargs: Any) -> PurgedMembers:
        tries.append(user_ids)
        return await purge_many(guild_id, user_ids, **kwargs)

    monkeypatch.setattr(server.member_data, "purge_many", counted)
    await asyncio.sleep(RETRY_SECONDS * 8)  # several retry periods
    assert tries == [], "the archived server's owed purge is still retried"
    assert rows_mentioning(archived, BOB), "the archive keeps the file as it was"
    assert not server.tenants.exists(GUILD), "no retry brought the file back"
    assert [record for record in caplog.records if record.name == "malabot.member_data"
            and record.levelno >= logging.WARNING][1:] == []


async def test_discord_is_not_asked_who_is_gone_while_the_file_cannot_take_the_purge(server: Server) -> None:
    # In a big server whose member list is not complete, each question is one request to Discord.
    asked: list[int] = []

    async def presence(guild_id: int, user_ids: Sequence[int]) -> MemberPresence:
        asked.extend(user_ids)
        return MemberPresence(gone=frozenset(user_ids))

    server.member_data.check_membership_with(presence)
    with locked_by_another_process(server.path):
        for user_id in (ALICE, BOB):
            assert await server.member_data.member_left(GUILD, user_id) is None
        await asyncio.sleep(RETRY_SECONDS * 40)  # several retry rounds, all meeting the lock
        assert asked == [], "Discord was asked about every owed member each round, for nothing"
    await eventually(lambda: not rows_mentioning(server.path, ALICE) and not rows_mentioning(server.path, BOB),
                     within=10, what="both owed purges once the file is free")
    assert sorted(asked) == [ALICE, BOB], "each asked about once, when the purge could be written"


SLOW_RETRY_SECONDS = 1.0  # the other purge comes first, well before the retry


async def purge_of_who_is_no_longer_here(member_data: MemberData) -> int:
    """The purge at a server's return from an outage (or after a restore) of who left meanwhile."""
    return len((await member_data.purge_absent(GUILD, lambda user_id: user_id != BOB)).user_ids)


async def leave_heard_after_an_unheard_rejoin(member_data: MemberData) -> int:
    report = await member_data.member_left(GUILD, BOB)
    assert report is not None
    return 1 if report.total else 0


@pytest.mark.parametrize("other_purge", [purge_of_who_is_no_longer_here, leave_heard_after_an_unheard_rejoin])
async def test_a_member_another_purge_got_first_is_not_purged_and_reported_again_by_the_owed_purge(
        server: Server, caplog: pytest.LogCaptureFixture,
        other_purge: Callable[[MemberData], Awaitable[int]]) -> None:
    """Bob's leave purge met a locked file and is owed; another purge of him works before its retry.
    The retry used to purge him again and report him once more ("owed purge of 1 member(s) who left
    done, 0 rows purged"): two members purged, for one."""
    caplog.set_level(logging.INFO, logger="malabot.member_data")
    member_data = MemberData(server.tenants, [xp_member_data(), checkin_member_data()],
                             owed_retry_seconds=SLOW_RETRY_SECONDS)
    with locked_by_another_process(server.path):
        assert await member_data.member_left(GUILD, BOB) is None
    assert await other_purge(member_data) == 1
    assert rows_mentioning(server.path, BOB) == {}
    await asyncio.sleep(SLOW_RETRY_SECONDS * 2.5)  # past the retry the failed leave scheduled
    assert [record.getMessage() for record in caplog.records if "owed purge" in record.getMessage()] == []


# -- which purge a departed member's rows are left to ---------------------------------------------
# Until their own purge commits, their rows are its to delete and count; after it, each commit deletes
# again what is written about them late. A purge that fails takes back only the marks it set itself.

async def nothing(_conn: aiosqlite.Connection) -> None:
    """A purge's extra write (as /mydata delete records the erasure): it makes the purge's commit run
    the before-commit hooks."""


@contextlib.contextmanager
def failing_at_begin(server: Server) -> Iterator[None]:
    """The purge fails before it marks anyone: the file is locked."""
    with locked_by_another_process(server.path), pytest.raises(sqlite3.OperationalError, match="locked"):
        yield


@contextlib.contextmanager
def failing_at_commit(server: Server) -> Iterator[None]:
    """The purge fails after it marked who it purges: a disk error at COMMIT."""
    server.failing_commits.append(GUILD)
    with pytest.raises(OSError):
        yield


@pytest.mark.parametrize("failing", [failing_at_begin, failing_at_commit])
async def test_a_failed_later_purge_leaves_a_member_their_leave_purged_purged(
        server: Server, failing: Callable[[Server], contextlib.AbstractContextManager[None]]) -> None:
    """Bob's leave purge commits; a second purge of him (his /mydata delete confirm, delivered just
    after the leave) fails. It may take back only the marks it set itself: a late /checkin of his must
    still leave no rows."""
    report = await server.member_data.member_left(GUILD, BOB)
    assert report is not None and report.total > 0 and rows_mentioning(server.path, BOB) == {}
    with failing(server):
        await server.member_data.purge(GUILD, BOB, also=nothing)
    await server.checkins.check_in(GUILD, BOB)
    assert rows_mentioning(server.path, BOB) == {}, "a late write kept the rows of a member purged already"


async def test_a_purge_that_fails_at_its_commit_leaves_the_rows_to_the_owed_purge_which_counts_them(
        server: Server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="malabot.member_data")
    member_data = MemberData(server.tenants, [xp_member_data(), checkin_member_data()],
                             owed_retry_seconds=SLOW_RETRY_SECONDS)  # the retry comes after the steps below
    with locked_by_another_process(server.path):
        assert await member_data.member_left(GUILD, BOB) is None  # owed
    server.failing_commits.append(GUILD)
    with pytest.raises(OSError):
        await member_data.purge(GUILD, BOB, also=nothing)  # marks him, then its commit fails
    await server.checkins.check_in(GUILD, CAROL)  # another commit: not a purge of bob's rows
    assert rows_mentioning(server.path, BOB) != {}, "bob's rows are the owed purge's to delete and count"

    def owed_purge_lines() -> list[str]:
        return [record.getMessage() for record in caplog.records if "owed purge" in record.getMessage()]

    await eventually(lambda: bool(owed_purge_lines()), what="the owed purge")
    assert rows_mentioning(server.path, BOB) == {}
    assert owed_purge_lines() == [f"guild {GUILD}: owed purge of 1 member(s) who left done: 1 had data, 3 rows purged"]


# -- when an owed purge runs, and when it does not ------------------------------------------------

async def test_a_join_with_no_purge_owed_keeps_the_members_rows(server: Server) -> None:
    # They left and came back while the bot was offline: their join is no reason to purge them.
    await server.member_data.member_joined(GUILD, BOB)
    assert rows_mentioning(server.path, BOB) == CHECKED_IN, "a join with no owed purge purged the member"


async def test_a_second_run_of_failed_purges_is_retried_after_the_first_run_ended(server: Server) -> None:
    with locked_by_another_process(server.path):
        assert await server.member_data.member_left(GUILD, BOB) is None
    await eventually(lambda: not rows_mentioning(server.path, BOB), what="the first owed purge")
    retrying = server.member_data._retrying
    await eventually(lambda: retrying is not None and retrying.done(), what="the first retry timer to end")
    with locked_by_another_process(server.path):
        assert await server.member_data.member_left(GUILD, ALICE) is None
    await eventually(lambda: not rows_mentioning(server.path, ALICE),
                     what="the second owed purge, not kept until a restart")


async def bobs_owed_purge_asked_about(
        server: Server, presence: Callable[[int, Sequence[int]], Awaitable[MemberPresence]], asked: list[Any], *,
        then_periods: int) -> None:
    """Bob's leave purge meets a locked file and is owed; its retry asks `presence` who is gone (`asked`
    grows with each question). Returns `then_periods` retry periods after the first question."""
    server.member_data.check_membership_with(presence)
    with locked_by_another_process(server.path):
        assert await server.member_data.member_left(GUILD, BOB) is None
    await eventually(lambda: bool(asked), what="the retry to ask who is gone")
    await asyncio.sleep(RETRY_SECONDS * then_periods)


async def test_a_failed_membership_check_purges_nobody_until_discord_answers(server: Server) -> None:
    answers: list[str] = []
    discord_up = False

    async def presence(guild_id: int, user_ids: Sequence[int]) -> MemberPresence:
        answers.append("gone" if discord_up else "failed")
        if not discord_up:
            raise TimeoutError("Discord unreachable")
        return MemberPresence(gone=frozenset(user_ids))

    await bobs_owed_purge_asked_about(server, presence, answers, then_periods=2)
    assert rows_mentioning(server.path, BOB) == CHECKED_IN, "purged although nobody knew whether bob is back"
    discord_up = True
    await eventually(lambda: not rows_mentioning(server.path, BOB), what="the purge once Discord answers")


async def test_a_rejoin_heard_while_the_retry_asks_who_is_gone_keeps_what_they_do_after(server: Server) -> None:
    asked: list[int] = []

    async def presence(guild_id: int, user_ids: Sequence[int]) -> MemberPresence:
        asked.extend(user_ids)
        # While Discord is asked (one fetch per member in a big server), bob's rejoin arrives and he checks in.
        await server.member_data.member_joined(GUILD, BOB)
        await server.checkins.check_in(GUILD, BOB)
        return MemberPresence(gone=frozenset(user_ids))  # Discord's answer from before his rejoin

    await bobs_owed_purge_asked_about(server, presence, asked, then_periods=4)
    assert rows_mentioning(server.path, BOB) == CHECKED_IN, "the check-in bob made after rejoining was purged"


async def test_a_member_a_retry_finds_back_is_asked_about_once_and_no_longer_owed(server: Server) -> None:
    asked: list[int] = []

    async def presence(guild_id: int, user_ids: Sequence[int]) -> MemberPresence:
        asked.extend(user_ids)
        return MemberPresence(present=frozenset(user_ids))  # bob rejoined unheard

    await bobs_owed_purge_asked_about(server, presence, asked, then_periods=20)
    assert asked == [BOB], f"asked about bob {len(asked)} times: his dropped purge is still retried"
    assert rows_mentioning(server.path, BOB) == CHECKED_IN


async def test_a_purge_that_keeps_failing_is_retried_ever_less_often(
        server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    tries: list[int] = []
    writable = server.member_data._writable

    async def counted(guild_id: int) -> None:
        tries.append(guild_id)
        await writable(guild_id)

    monkeypatch.setattr(server.member_data, "_writable", counted)
    with locked_by_another_process(server.path):
        assert await server.member_data.member_left(GUILD, BOB) is None
        await asyncio.sleep(RETRY_SECONDS * 40)  # waits of 0.05, 0.1, 0.2, 0.4, 0.8 s: 5 tries, not 40
    assert len(tries) <= 8, f"{len(tries)} tries in {RETRY_SECONDS * 40} s: the wait does not grow"
    await eventually(lambda: not rows_mentioning(server.path, BOB), within=5.0, what="the owed purge")


async def test_a_shutdown_while_a_purge_is_owed_on_a_locked_file_does_not_wait_for_it(server: Server) -> None:
    with locked_by_another_process(server.path):
        assert await server.member_data.member_left(GUILD, BOB) is None  # owed, retried on a timer
        await asyncio.sleep(RETRY_SECONDS * 4)
        started = asyncio.get_running_loop().time()
        await asyncio.wait_for(server.tenants.close_all(), timeout=5)  # SIGTERM must not hang
        took = asyncio.get_running_loop().time() - started
    assert took < 1.0, f"shutdown waited {took:.1f} s for the owed purge's retry timer"
