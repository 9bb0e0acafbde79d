"""An erased member's data is gone from the server's files on disk, not only from its tables: after a
confirmed `/mydata delete`, a leave and a start-up purge, none of their bytes is in the file or its
-wal, right away (a copy of the folder taken then holds none) and in an archive made later.

Run on this machine's SQLite build and on one with SQLite's own default, `secure_delete` off (this
machine's Debian build turns it on): every connection then starts with the pragma off, as there.
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from malabot.sandbox import FakeDiscord
from tests.e2e.data_dump import eventually, rows_mentioning
from tests.e2e.test_mydata import delete_my_data
from tests.e2e.world import World, make_world

ACTIVISION_ID = "BobsSecretGamerTag#4242"  # free text the member typed (carried over by `legacy split`)


@pytest.fixture(params=["this-build", "secure-delete-off-by-default"])
def sqlite_build(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.param == "this-build":
        return
    connect = sqlite3.connect

    def connect_as_built_without_secure_delete(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = connect(*args, **kwargs)
        conn.execute("PRAGMA secure_delete = OFF")
        return conn

    monkeypatch.setattr(sqlite3, "connect", connect_as_built_without_secure_delete)


@pytest.fixture
async def world(sqlite_build: None, discord_server: FakeDiscord, tmp_path: Path) -> AsyncIterator[World]:
    async for running in make_world(discord_server, tmp_path):
        yield running


def on_disk(path: Path) -> bytes:
    """The database and its -wal, as a copy of the folder would hold them."""
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def holds_bob(world: World, path: Path) -> bool:
    data = on_disk(path)
    return ACTIVISION_ID.encode() in data or struct.pack(">q", world.bob.id) in data


async def give_bob_data(world: World, *, in_wal: bool = False) -> None:
    """`in_wal`: the rows stay in the -wal (written while the file is open, as in a busy server);
    else they are in the main file, as after an idle close."""
    bob = world.bob
    await world.command(bob, "birthday set", {"month": 4, "day": 12, "year": 1990})
    await world.command(bob, "checkin")
    async with world.live.tenants.transaction(world.guild.id) as conn:
        await conn.execute("INSERT INTO game_verifications (user_id, activision_id, platform) VALUES (?, ?, 'pc')",
                           (bob.id, ACTIVISION_ID))
    if not in_wal:
        await world.live.tenants.close(world.guild.id)
    assert holds_bob(world, world.tenant_file(world.guild))


@pytest.mark.parametrize("in_wal", [False, True], ids=["in-file", "in-wal"])
async def test_mydata_delete_leaves_none_of_the_members_bytes_on_disk(world: World, in_wal: bool) -> None:
    bob, file = world.bob, world.tenant_file(world.guild)
    await give_bob_data(world, in_wal=in_wal)

    done = await delete_my_data(world, bob)
    assert done.content.startswith("Done: your data in this server is erased (")
    assert set(rows_mentioning(file, bob.id)) == {"member_erasures"}
    assert not holds_bob(world, file), "the erased data is still in the file or its -wal on disk"

    archived = await world.live.tenants.archive(world.guild.id)
    assert archived is not None and not holds_bob(world, archived)


async def test_a_member_who_leaves_leaves_none_of_their_bytes_on_disk(world: World) -> None:
    file = world.tenant_file(world.guild)
    await give_bob_data(world)

    await world.server.remove_member(world.guild, world.bob)
    await eventually(lambda: not holds_bob(world, file), what="bob's bytes to leave the file and its -wal")
    archived = await world.live.tenants.archive(world.guild.id)
    assert archived is not None and not holds_bob(world, archived)


async def test_a_member_who_left_while_the_bot_was_offline_leaves_none_of_their_bytes_on_disk(world: World) -> None:
    file = world.tenant_file(world.guild)
    await give_bob_data(world)

    await world.stop()
    await world.server.remove_member(world.guild, world.bob)  # nobody is listening
    await world.start()
    await eventually(lambda: not rows_mentioning(file, world.bob.id), what="the start-up purge")
    await eventually(lambda: not holds_bob(world, file), what="bob's bytes to leave the file and its -wal")
