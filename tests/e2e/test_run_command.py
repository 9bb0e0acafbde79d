"""`malabot run` as operators use it: a separate process, its settings from the environment."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from malabot.sandbox import FakeDiscord, Guild
from malabot.sandbox.gateway import GUILD_MEMBERS, PRIVILEGED_INTENTS
from malabot.tenancy.migrations import MigrationSet
from malabot.tenancy.opening import create_tenant_file
from malabot.tenancy.paths import TenantPaths
from tests.e2e.data_dump import all_rows, eventually

VALID_LOOKING_TOKEN = "MTAxMDEwMTAxMDEwMTAxMDEw.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789AB"
# Another service's credential: a JWT is three base64url parts, so it has a bot token's shape.
OTHER_SERVICES_JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJjaS1ib3QiLCJpYXQiOjE3MDAwMDB9."
                      "c2lnbmF0dXJlLW9mLWFub3RoZXItc2VydmljZS14eXo")


def bot_environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    # Settings' names match in any case, so a developer's `malabot_token` or `Discord_Token` goes too.
    env = {key: value for key, value in os.environ.items()
           if not key.upper().startswith("MALABOT_") and key.upper() != "DISCORD_TOKEN"}
    env.update({"MALABOT_TENANTS_DIR": str(tmp_path / "tenants"), "PYTHONPATH": str(Path.cwd())}, **extra)
    return env


async def run_malabot(env: dict[str, str], cwd: Path, *,
                      open_files: tuple[int, int] | None = None) -> asyncio.subprocess.Process:
    """`open_files`: the (soft, hard) limit of open files the process starts with (`ulimit -n`)."""
    def limit_open_files() -> None:
        if open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, open_files)

    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "malabot", "run", env=env, cwd=cwd, preexec_fn=limit_open_files,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def refusal(env: dict[str, str], cwd: Path) -> list[str]:
    """What `malabot run` says on stderr when it refuses to run (it must exit with 1)."""
    process = await run_malabot(env, cwd)
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 1, stderr.decode()
    return stderr.decode().strip().splitlines()


async def test_without_a_token_it_says_so_in_one_line(tmp_path: Path) -> None:
    process = await run_malabot(bot_environment(tmp_path), tmp_path)
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 1
    assert stderr.decode().strip() == (
        "malabot: no Discord token: set MALABOT_TOKEN (or DISCORD_TOKEN); `malabot sandbox` runs offline without one")


async def test_a_malformed_token_is_refused_before_connecting(tmp_path: Path) -> None:
    process = await run_malabot(bot_environment(tmp_path, MALABOT_TOKEN="hunter2"), tmp_path)
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 1
    assert stderr.decode().strip().splitlines() == [
        "malabot: MALABOT_TOKEN does not look like a Discord bot token; `malabot sandbox` runs offline without one"]


@pytest.mark.parametrize("malabot_token", [None, ""])  # unset, or blank as compose leaves it
async def test_a_malformed_discord_token_is_refused_under_its_own_name(tmp_path: Path,
                                                                       malabot_token: str | None) -> None:
    env = bot_environment(tmp_path, DISCORD_TOKEN="hunter2")
    if malabot_token is not None:
        env["MALABOT_TOKEN"] = malabot_token
    assert await refusal(env, tmp_path) == [
        "malabot: DISCORD_TOKEN does not look like a Discord bot token; `malabot sandbox` runs offline without one"]


async def test_a_dotenv_that_is_not_utf8_is_refused_in_one_line(tmp_path: Path) -> None:
    """Saved in Windows-1252, say: one accented letter in a comment."""
    (tmp_path / ".env").write_bytes(b"MALABOT_LOG_LEVEL=INFO\n# caf\xe9 server\n")
    assert await refusal(bot_environment(tmp_path), tmp_path) == [
        "malabot: cannot read .env: it is not UTF-8 text (byte 0xe9 at position 28, on line 2)"]


async def test_a_pool_larger_than_the_open_file_limit_allows_is_refused_in_one_line(tmp_path: Path) -> None:
    env = bot_environment(tmp_path, MALABOT_TOKEN=VALID_LOOKING_TOKEN, MALABOT_MAX_OPEN_TENANTS="256")
    process = await run_malabot(env, tmp_path, open_files=(300, 300))
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 1
    assert stderr.decode().strip().splitlines() == [
        "malabot: MALABOT_MAX_OPEN_TENANTS=256 needs about 832 open files, but this process may open at most "
        "300 (ulimit -Hn); set it to 78 or less, or raise the limit"]
    assert not (tmp_path / "tenants").exists()  # refused before touching anything


async def test_the_open_file_limit_is_raised_to_what_the_pool_needs(discord_server: FakeDiscord,
                                                                     tmp_path: Path) -> None:
    """Each open tenant holds 3 files: a pool of 1,024 needs more than a default soft limit of 1,024."""
    guild = discord_server.add_guild("Ops")
    env = bot_environment(tmp_path, MALABOT_TOKEN=discord_server.token, MALABOT_MAX_OPEN_TENANTS="1024",
                          MALABOT_API_BASE_URL=discord_server.api_base_url, MALABOT_LOG_LEVEL="WARNING")
    process = await run_malabot(env, tmp_path, open_files=(1024, 8192))
    try:
        tenant = tmp_path / "tenants" / f"{guild.id}.sqlite3"
        await eventually(tenant.exists, within=30, what="the bot to connect and create the server's file")
        limits = Path(f"/proc/{process.pid}/limits").read_text()
        assert [line.split()[3:5] for line in limits.splitlines() if line.startswith("Max open files")] == \
            [["3136", "8192"]]
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, stderr.decode()


@contextlib.asynccontextmanager
async def web_site(status: int, body: str, content_type: str) -> AsyncIterator[str]:
    """A web server on 127.0.0.1 that answers every path alike; its root URL."""
    async def page(request: web.Request) -> web.Response:
        return web.Response(status=status, text=body, content_type=content_type)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def not_the_api() -> AsyncIterator[str]:
    """A web server that is not Discord's API, e.g. discord.com without /api/v10: 404 HTML pages."""
    async with web_site(404, "<html><body>Not Found</body></html>", "text/html") as url:
        yield url


async def test_a_rest_base_that_is_not_the_api_is_one_line(not_the_api: str, tmp_path: Path) -> None:
    env = bot_environment(tmp_path, MALABOT_TOKEN=VALID_LOOKING_TOKEN, MALABOT_API_BASE_URL=not_the_api,
                          MALABOT_LOG_LEVEL="ERROR")
    assert await refusal(env, tmp_path) == [
        f"malabot: Discord at {not_the_api} answered 404 Not Found; check MALABOT_API_BASE_URL "
        "(the REST base with its version, e.g. https://discord.com/api/v10)"]


@pytest.fixture(params=[("<html><body>Welcome</body></html>", "text/html"), ('{"status": "ok"}', "application/json")],
                ids=["a page", "other JSON"])
async def answers_200_but_not_the_api(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A site that answers every path with 200 (a dashboard, a captive portal): not Discord's API."""
    async with web_site(200, *request.param) as url:
        yield f"{url}/api/v10"


async def test_a_site_answering_200_that_is_not_the_api_is_one_line(answers_200_but_not_the_api: str,
                                                                   tmp_path: Path) -> None:
    env = bot_environment(tmp_path, MALABOT_TOKEN=VALID_LOOKING_TOKEN, MALABOT_API_BASE_URL=answers_200_but_not_the_api,
                          MALABOT_LOG_LEVEL="ERROR")
    [line] = await refusal(env, tmp_path)
    assert line.startswith(f"malabot: the server at {answers_200_but_not_the_api} did not answer like Discord's API (")
    assert line.endswith("check MALABOT_API_BASE_URL (the REST base with its version, e.g. https://discord.com/api/v10)")


@pytest.fixture
async def hangs_up() -> AsyncIterator[str]:
    """A server that reads each request and closes the connection without an answer."""
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")  # the whole request: closing with unread bytes is a reset
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    try:
        yield f"http://{host}:{port}/api/v10"
    finally:
        server.close()
        await server.wait_closed()


async def test_a_server_that_hangs_up_is_one_line(hangs_up: str, tmp_path: Path) -> None:
    env = bot_environment(tmp_path, MALABOT_TOKEN=VALID_LOOKING_TOKEN, MALABOT_API_BASE_URL=hangs_up,
                          MALABOT_LOG_LEVEL="ERROR")
    assert await refusal(env, tmp_path) == [f"malabot: cannot reach Discord at {hangs_up}: Server disconnected"]


async def test_a_refused_server_members_intent_says_where_to_enable_it(discord_server: FakeDiscord,
                                                                     tmp_path: Path) -> None:
    """The intent is off in the developer portal: Discord closes the gateway with 4014."""
    discord_server.gateway.enabled_privileged_intents = PRIVILEGED_INTENTS & ~GUILD_MEMBERS
    env = bot_environment(tmp_path, MALABOT_TOKEN=discord_server.token,
                          MALABOT_API_BASE_URL=discord_server.api_base_url, MALABOT_LOG_LEVEL="ERROR")
    assert await refusal(env, tmp_path) == [
        "malabot: Discord refused the Server Members intent; enable it for the bot in the Discord developer "
        "portal (Bot page, Privileged Gateway Intents)"]


async def test_a_bare_token_variable_does_not_replace_discord_token(discord_server: FakeDiscord,
                                                                    tmp_path: Path) -> None:
    """A shell, container or CI job often has an unrelated TOKEN (a JWT has the bot token's shape);
    the bot logs in with DISCORD_TOKEN and sends that other secret nowhere."""
    guild = discord_server.add_guild("Ops")
    env = bot_environment(tmp_path, DISCORD_TOKEN=discord_server.token, TOKEN=OTHER_SERVICES_JWT,
                          MALABOT_API_BASE_URL=discord_server.api_base_url, MALABOT_LOG_LEVEL="ERROR")
    tenant = tmp_path / "tenants" / f"{guild.id}.sqlite3"
    process = await run_malabot(env, tmp_path)
    try:
        await eventually(lambda: tenant.exists() or process.returncode is not None,
                         within=30, what="the bot to connect (or to stop)")
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, stderr.decode()
    assert [r.status for r in discord_server.requests if r.path == "/users/@me"] == [200]


async def test_serves_until_sigterm_then_shuts_down_cleanly(discord_server: FakeDiscord, tmp_path: Path) -> None:
    guild = discord_server.add_guild("Ops")
    env = bot_environment(tmp_path, MALABOT_TOKEN=discord_server.token,
                          MALABOT_API_BASE_URL=discord_server.api_base_url, MALABOT_LOG_LEVEL="WARNING")
    tenant = tmp_path / "tenants" / f"{guild.id}.sqlite3"
    tenant.parent.mkdir()
    crashed = [tenant.parent / name for name in (f".{guild.id}.create-1a2b3c4d.tmp",
                                                 f".{guild.id}.create-1a2b3c4d.tmp-wal",
                                                 f".{guild.id}.restore-5e6f7a8b.tmp")]
    for leftover in crashed:  # what a crash in the middle of creating or restoring leaves
        leftover.write_bytes(b"half a file")
    unrelated = tenant.parent / ".notes.tmp"
    unrelated.write_text("an operator's own file")
    backups = tenant.parent / "backups"
    two_hours_ago = time.time() - 2 * 3600
    crashed_backups = [backups / str(guild_id) / f".{guild_id}-20260101T000000Z.sqlite3.tmp{sidecar}"
                       for guild_id in (guild.id, 42) for sidecar in ("", "-wal")]
    kept_backups = [backups / str(guild.id) / f".{guild.id}-20260102T000000Z.sqlite3.tmp",  # in progress
                    backups / "mine" / ".42-20260101T000000Z.sqlite3.tmp",  # an operator's folder
                    backups / "42" / ".notes.tmp"]
    for path in crashed_backups + kept_backups:  # what a backup killed while writing leaves
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a copy of the members' data")
        if path != kept_backups[0]:
            os.utime(path, (two_hours_ago, two_hours_ago))
    cut_short = tenant.parent / ".downloads" / "copy-1a2b3c" / f"malabot-{guild.id}-20260101T000000Z.sqlite3"
    cut_short.parent.mkdir(parents=True)
    cut_short.write_bytes(b"a /backup create copy killed on its way to Discord")
    process = await run_malabot(env, tmp_path)
    try:
        await eventually(tenant.exists, within=30, what="the bot to connect and create the server's file")
        await eventually(lambda: bool(discord_server.commands()), within=10, what="command sync")
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, stderr.decode()
    assert "Traceback" not in stderr.decode()
    # Every connection was closed: SQLite removes the -wal file when the last one closes.
    assert not Path(f"{tenant}-wal").exists()
    assert not any(leftover.exists() for leftover in crashed), "crash leftovers are cleaned at start"
    assert unrelated.exists(), "files not named like MalaBoT's staging are left alone"
    assert not any(path.exists() for path in crashed_backups), "so are a crashed backup's, in every guild's folder"
    assert all(path.exists() for path in kept_backups), "a backup in progress and others' files stay"
    assert not cut_short.parent.parent.exists(), "and a download copy cut short, with its folder"


async def test_sigterm_while_the_start_up_work_runs_ends_it_quietly(discord_server: FakeDiscord,
                                                                      tmp_path: Path) -> None:
    """At start the bot opens every server's file and checks each for members who left while it was
    offline. A SIGTERM meanwhile ends that work quietly: files closing are no server's failure."""
    guilds = [discord_server.add_guild(f"Server {n}") for n in range(150)]
    env = bot_environment(tmp_path, MALABOT_TOKEN=discord_server.token,
                          MALABOT_API_BASE_URL=discord_server.api_base_url, MALABOT_LOG_LEVEL="WARNING")
    files = [tmp_path / "tenants" / f"{guild.id}.sqlite3" for guild in guilds]
    process = await run_malabot(env, tmp_path)
    try:
        # on_ready opens every server's file, archives those gone, then purges departed members.
        await eventually(lambda: any(f.exists() for f in files), within=30, what="the first server's file")
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, stderr.decode()
    logged = [line for line in stderr.decode().splitlines() if "voice will NOT be supported" not in line]
    assert logged == []
    assert not any(Path(f"{f}-wal").exists() for f in files)


async def serving(discord_server: FakeDiscord, tmp_path: Path, guild: Guild
                  ) -> tuple[asyncio.subprocess.Process, Path]:
    """`malabot run` against the sandbox, once it has made `guild`'s file and synced its commands;
    the process and that file."""
    env = bot_environment(tmp_path, MALABOT_TOKEN=discord_server.token,
                          MALABOT_API_BASE_URL=discord_server.api_base_url, MALABOT_LOG_LEVEL="WARNING")
    tenant = tmp_path / "tenants" / f"{guild.id}.sqlite3"
    process = await run_malabot(env, tmp_path)
    try:
        await eventually(tenant.exists, within=30, what="the bot to connect and create the server's file")
        await eventually(lambda: bool(discord_server.commands()), within=10, what="command sync")
    except BaseException:
        process.kill()
        await process.wait()
        raise
    return process, tenant


async def test_ctrl_c_shuts_malabot_run_down_cleanly(discord_server: FakeDiscord, tmp_path: Path) -> None:
    process, tenant = await serving(discord_server, tmp_path, discord_server.add_guild("Ops"))
    process.send_signal(signal.SIGINT)  # the operator presses Ctrl-C
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, stderr.decode()[-2000:]
    assert "Traceback" not in stderr.decode()
    assert not Path(f"{tenant}-wal").exists(), "every tenant file was closed"


@pytest.mark.parametrize("second", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl-C again", "SIGTERM"])
async def test_a_second_signal_during_the_shutdown_does_not_cut_the_flush_short(
        discord_server: FakeDiscord, tmp_path: Path, second: signal.Signals) -> None:
    guild, ana = discord_server.add_guild("Ops"), discord_server.add_user("ana")
    discord_server.add_member(guild, ana)
    channel = discord_server.channel(guild.system_channel_id)
    process, tenant = await serving(discord_server, tmp_path, guild)
    try:
        # A command Discord is slow to take the answer of: a handler still running at the shutdown.
        async with discord_server.holding_requests(lambda method, path, body: "/callback" in path) as slow:
            asking = asyncio.ensure_future(discord_server.invoke_command(guild, channel, ana, "rank"))
            await slow.arrived(within=10)
            await discord_server.send_message(channel, ana, "hello everyone")   # XP in the buffer
            process.send_signal(signal.SIGINT)
            await asyncio.sleep(0.3)
            process.send_signal(second)                    # impatient, or the container's runtime
            _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
        asking.cancel()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()[-2000:]
    assert "already shutting down" in stderr.decode() and "Traceback" not in stderr.decode()
    assert not Path(f"{tenant}-wal").exists(), "every tenant file was closed"
    assert [row[0] for row in all_rows(tenant)["xp"]] == [ana.id], "the buffered XP was written"


async def test_a_level_up_under_way_at_sigterm_gets_its_post_and_its_role(discord_server: FakeDiscord,
                                                                         tmp_path: Path) -> None:
    guild, ana = discord_server.add_guild("Ops"), discord_server.add_user("ana")
    discord_server.add_member(guild, ana)
    channel = discord_server.channel(guild.system_channel_id)
    level_1 = discord_server.add_role(guild, "Level 1")
    paths = TenantPaths(tmp_path / "tenants")
    create_tenant_file(paths, guild.id, MigrationSet.load())
    with closing(sqlite3.connect(paths.live(guild.id))) as conn, conn:
        conn.execute("INSERT INTO xp (user_id, xp, messages) VALUES (?, 95, 6)", (ana.id,))  # 5 XP to level 1
        conn.execute("INSERT INTO level_roles (level, role_id) VALUES (1, ?)", (level_1.id,))
    env = bot_environment(tmp_path, MALABOT_TOKEN=discord_server.token,
                          MALABOT_API_BASE_URL=discord_server.api_base_url, MALABOT_LOG_LEVEL="WARNING")
    process = await run_malabot(env, tmp_path)
    try:
        await eventually(lambda: bool(discord_server.commands()), within=30, what="command sync")
        await eventually(lambda: discord_server.gateway.connected_sessions != [], within=10, what="the gateway")
        await discord_server.sync_with_bot()

        def posts(method: str, path: str, body: Any) -> bool:
            return method == "POST" and path == f"/channels/{channel.id}/messages"

        async with discord_server.holding_requests(posts) as slow:
            await discord_server.send_message(channel, ana, "hello")
            await slow.arrived(within=10)                  # the level-up is being posted
            process.send_signal(signal.SIGTERM)
            await asyncio.sleep(1.0)                       # Discord answers within the 5 s grace
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0 and "Traceback" not in stderr.decode(), stderr.decode()[-2000:]
    assert level_1.id in discord_server.member(guild, ana).roles


async def test_xp_that_cannot_be_written_at_the_stop_is_named_and_fails_the_exit(discord_server: FakeDiscord,
                                                                                tmp_path: Path) -> None:
    guild, ana = discord_server.add_guild("Ops"), discord_server.add_user("ana")
    discord_server.add_member(guild, ana)
    process, tenant = await serving(discord_server, tmp_path, guild)
    try:
        with closing(sqlite3.connect(tenant, timeout=10)) as conn, conn:   # the disk fills up, say
            conn.execute("CREATE TRIGGER disk_full BEFORE INSERT ON xp "
                         "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
        await discord_server.send_message(discord_server.channel(guild.system_channel_id), ana, "hello")
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    said = stderr.decode().strip().splitlines()
    assert process.returncode == 1
    assert said[-1] == ("malabot: chat XP of 1 server(s) could not be written before the stop and is lost; "
                        "the log names them and why")
    assert any(f"XP that could not be written is lost at this stop: guild {guild.id}: " in line for line in said)
    assert stderr.decode().count("Traceback") == 1, "the file's refusal is shown once in full, then in one line"
