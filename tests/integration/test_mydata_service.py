"""`/mydata` services as the composition root wires them: an export includes XP still buffered."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

import malabot.member_data as member_data_module
import malabot.privacy as privacy_module
from malabot.app import Services, build_services, stop_services
from malabot.features.audit.member_data import audit_member_data
from malabot.features.mydata.repository import erasures, erasures_in_file, newer_erasures
from malabot.member_data import MemberData
from malabot.privacy import without_repeats
from malabot.settings import Settings

GUILD, ALICE, CHANNEL = 111_111_111_111_111_111, 1001, 5
BOB, ADMIN = 1002, 1
VERIFIED_ROLE, REVIEW_CHANNEL = 222_222_222_222_222_222, 333_333_333_333_333_333


async def test_an_export_includes_chat_xp_not_yet_written_to_the_file(tmp_path: Path) -> None:
    services = build_services(Settings(tenants_dir=tmp_path / "tenants", _env_file=None))  # type: ignore[call-arg]
    await services.tenants.start()  # the XP service is not started: nothing flushes on its own
    try:
        award = await services.xp.record_message(GUILD, ALICE, CHANNEL, (), is_bot=False)
        assert award is not None
        async with services.tenants.reading(GUILD) as conn:
            assert await conn.execute_fetchall("SELECT * FROM xp") == [], "still only in memory"
        exported = json.loads((await services.mydata.export(GUILD, ALICE)).content)
        [row] = exported["tables"]["xp"]
        assert (row["user_id"], row["messages"]) == (ALICE, 1) and 15 <= row["xp"] <= 25
    finally:
        await stop_services(services)


async def test_an_export_reads_one_snapshot_of_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write committed while the export reads (another process on the file, e.g. the tenants CLI)
    is in the export whole or not at all: the handlers all read the file as it was when it began."""
    services = build_services(Settings(tenants_dir=tmp_path / "tenants", _env_file=None))  # type: ignore[call-arg]
    await services.tenants.start()
    try:
        await services.tenants.ensure(GUILD)
        first = services.member_data.handlers[0]
        assert first.name == "audit", "reads audit_log before the XP handler reads xp"
        read_first = first.export

        async def then_another_process_writes(conn: Any, user_id: int) -> Any:
            rows = await read_first(conn, user_id)
            other = sqlite3.connect(services.tenants.paths.live(GUILD), isolation_level=None)
            try:  # one transaction over two handlers' tables
                other.execute("BEGIN IMMEDIATE")
                other.execute("INSERT INTO audit_log (at, category, action, target_id) "
                              "VALUES ('2026-12-07T10:00:00+00:00', 'xp', 'edit', ?)", (user_id,))
                other.execute("INSERT INTO xp (user_id, xp) VALUES (?, 500)", (user_id,))
                other.execute("COMMIT")
            finally:
                other.close()
            return rows

        monkeypatch.setattr(first, "export", then_another_process_writes)
        tables = json.loads((await services.mydata.export(GUILD, ALICE)).content)["tables"]
        assert (tables.get("audit_log", []), tables.get("xp", [])) == ([], []), "half of a transaction"
        async with services.tenants.reading(GUILD) as conn:
            assert await conn.execute_fetchall("SELECT user_id, xp FROM xp") == [(ALICE, 500)], "it was written"
    finally:
        await stop_services(services)


def test_erasures_of_a_file_without_the_table_are_none_but_an_unreadable_file_is_an_error(tmp_path: Path) -> None:
    old = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(old)
    conn.execute("CREATE TABLE xp (user_id INTEGER)")
    conn.close()
    assert erasures_in_file(old) == {}
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"not a database" * 300)
    with pytest.raises(sqlite3.DatabaseError):
        erasures_in_file(garbage)


def test_only_erasures_the_restored_file_does_not_know_are_applied_again() -> None:
    previous = {1: "2026-12-01T10:00:00+00:00", 2: "2026-12-05T10:00:00+00:00", 3: "2026-11-01T00:00:00+00:00"}
    restored = {1: "2026-12-01T10:00:00+00:00", 2: "2026-11-20T10:00:00+00:00"}
    assert newer_erasures(previous, restored) == {2: "2026-12-05T10:00:00+00:00", 3: "2026-11-01T00:00:00+00:00"}


async def exported_tables(services: Services) -> dict[str, object]:
    tables: dict[str, object] = json.loads((await services.mydata.export(GUILD, ALICE)).content)["tables"]
    return tables


async def test_a_purge_that_fails_part_way_erases_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    services = build_services(Settings(tenants_dir=tmp_path / "tenants", _env_file=None))  # type: ignore[call-arg]
    await services.tenants.start()
    try:
        await services.xp_admin.add(GUILD, 1, ALICE, 500)
        await services.checkins.check_in(GUILD, ALICE)
        await services.birthdays.set(GUILD, ALICE, 4, 12, 1990)
        before = await exported_tables(services)
        assert before["xp"] and before["checkins"] and before["birthdays"]
        last = services.member_data.handlers[-1]

        async def fails(conn: object, user_id: int) -> int:  # after every other handler has deleted
            raise sqlite3.OperationalError("disk I/O error")

        monkeypatch.setattr(last, "purge", fails)
        for erase in (lambda: services.member_data.purge(GUILD, ALICE), lambda: services.mydata.delete(GUILD, ALICE)):
            with pytest.raises(sqlite3.OperationalError):
                await erase()
            # One transaction: the handlers that ran first are rolled back with it, no erasure is recorded.
            assert await exported_tables(services) == before
    finally:
        await stop_services(services)


async def test_a_row_found_twice_is_exported_once_in_the_order_first_found(tmp_path: Path) -> None:
    services = build_services(Settings(tenants_dir=tmp_path / "tenants", _env_file=None))  # type: ignore[call-arg]
    await services.tenants.start()
    try:
        await services.xp_admin.add(GUILD, ALICE, BOB, 10)    # audit row 1: alice is the actor
        await services.xp_admin.add(GUILD, ADMIN, ALICE, 10)  # audit row 2: alice is the target
        await services.xp_admin.add(GUILD, ALICE, ALICE, 10)  # audit row 3: both, so found by both columns
        # The audit handler twice: each row is also found by two handlers.
        registry = MemberData(services.tenants, [audit_member_data(), audit_member_data()])
        exported = await registry.export(GUILD, ALICE)
        # By target first (rows 2 and 3), then by actor (row 1; row 3 again, dropped).
        assert [row["id"] for row in exported["audit_log"]] == [2, 3, 1]
    finally:
        await stop_services(services)


async def test_repeated_rows_are_dropped_once_per_table_and_not_on_the_event_loop(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A busy moderator's export is tens of thousands of rows. Dropping the repeats (a few µs a row) ran
    on the event loop, twice for the tables of moderation, audit and verification: every server and
    the gateway's heartbeat stood still for half a second."""
    services = build_services(Settings(tenants_dir=tmp_path / "tenants", _env_file=None))  # type: ignore[call-arg]
    await services.tenants.start()
    try:
        await services.xp_admin.add(GUILD, ALICE, BOB, 10)    # alice is the actor
        await services.xp_admin.add(GUILD, ALICE, ALICE, 10)  # the actor and the target: found twice
        await services.moderation.record_warn(GUILD, BOB, ALICE, "spam")  # alice is the moderator
        loop_thread = threading.get_ident()
        calls: list[tuple[bool, int]] = []

        def recorded(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
            rows = list(rows)
            calls.append((threading.get_ident() == loop_thread, len(rows)))
            return without_repeats(rows)

        monkeypatch.setattr(privacy_module, "without_repeats", recorded)
        monkeypatch.setattr(member_data_module, "without_repeats", recorded)
        tables = await exported_tables(services)
        assert [row["id"] for row in tables["audit_log"]] == [1, 2]  # type: ignore[index]  # row 2 once
        assert [row["moderator_id"] for row in tables["mod_cases"]] == [ALICE]  # type: ignore[index]
        assert not [rows for on_loop, rows in calls if on_loop], "repeats were dropped on the event loop"
        assert len(calls) == len(tables), "repeats are dropped once per table"
    finally:
        await stop_services(services)


async def test_a_reviewer_who_leaves_is_removed_from_the_requests_they_answered(tmp_path: Path) -> None:
    services = build_services(Settings(tenants_dir=tmp_path / "tenants", _env_file=None))  # type: ignore[call-arg]
    await services.tenants.start()
    try:
        await services.guild_settings.update(GUILD, ADMIN, verified_role_id=VERIFIED_ROLE,
                                             verify_review_channel_id=REVIEW_CHANNEL)
        await services.verification.request(GUILD, ALICE)
        await services.verification.review(GUILD, ALICE, BOB, approve=True)
        await services.member_data.member_left(GUILD, BOB)  # the moderator who answered leaves
        request = await services.verification.status(GUILD, ALICE)
        assert request is not None and request.status == "verified"
        assert request.reviewer_id is None
    finally:
        await stop_services(services)


async def test_two_restores_of_a_backup_from_before_an_erasure_both_erase_again(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A restore that erases a member again keeps the record of the erasure, so the next restore of
    the same old backup erases them too. Each says how many it erased again, and how many rows."""
    caplog.set_level(logging.INFO, logger="malabot.features.mydata.service")
    services = build_services(Settings(tenants_dir=tmp_path / "tenants", _env_file=None))  # type: ignore[call-arg]
    await services.tenants.start()
    try:
        await services.xp_admin.set(GUILD, ADMIN, ALICE, 500)  # her XP row, and the audit row about it
        before = await services.tenants.backup(GUILD, tmp_path / "before.sqlite3")
        assert (await services.mydata.delete(GUILD, ALICE)).total == 2
        for _ in range(2):
            await services.tenants.restore(GUILD, before)
            async with services.tenants.reading(GUILD) as conn:
                assert await conn.execute_fetchall("SELECT * FROM xp WHERE user_id = ?", (ALICE,)) == []
                assert ALICE in await erasures(conn), "the erasure record survives the restore"
        assert [record.getMessage() for record in caplog.records if "erased again" in record.getMessage()] == [
            f"guild {GUILD}: the restored data is erased again for 1 member(s) who had asked (2 rows)"] * 2
    finally:
        await stop_services(services)
