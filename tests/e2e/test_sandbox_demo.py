"""`malabot sandbox`: the scripted day runs on the real bot and leaves real files; interactive input works."""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import sqlite3
import sys
from pathlib import Path

import discord
import pytest

from malabot.errors import MalabotError
from malabot.sandbox.demo import parse_command_line, play
from malabot.tenancy.migrations import MigrationSet
from malabot.tenancy.opening import create_tenant_file
from malabot.tenancy.paths import TenantPaths


async def test_scripted_day_and_interactive_lines(tmp_path: Path) -> None:
    tenants = tmp_path / "tenants"
    typed = io.StringIO("/as chloe\n/rank\nhello from chloe\n/birthday show\n/rank member:@ana\n"
                        "/xp add member:ana amount:five\n/quit\n")
    out = io.StringIO()
    await play(tenants, typed, out)
    transcript = out.getvalue()

    for expected in ("The real bot connected as MalaBot to 2 servers: Mala Café, Old Club",
                     "GG @ana, you reached level 1!",
                     "Checked in for",
                     "You already checked in today.",
                     "Happy birthday @chloe! 🎂",
                     "purged ben's data in Mala Café: 0 rows left",
                     "archived Old Club's file to"):
        assert expected in transcript, expected
    assert transcript.count("cannot use") == 1 and "Sorry, something went wrong" not in transcript  # the 'five' below
    assert "     chloe │ /rank" in transcript
    assert "**chloe** — level" in transcript
    assert "**ana** — level" in transcript, "a member named in an option is that member"
    assert "cannot use /xp add: /xp option 'amount' cannot take 'five'" in transcript

    live = sorted(tenants.glob("*.sqlite3"))
    assert len(live) == 1, "Old Club was archived, Mala Café stays"
    assert len(list((tenants / "archive").glob("*.sqlite3"))) == 1
    with sqlite3.connect(live[0]) as conn:
        assert conn.execute("SELECT COUNT(*) FROM xp").fetchone()[0] == 2  # ana and chloe; ben left
        assert conn.execute("SELECT COUNT(*) FROM birthday_celebrations").fetchone()[0] == 1


async def test_the_members_the_readme_offers_at_the_prompt_can_use_commands(tmp_path: Path) -> None:
    """A member the README names after `/as` must still be on the server when the prompt appears
    (ben leaves during the scripted day), and the admin it names can use an admin command."""
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    offered = re.findall(r"`/as ([a-z_]+)`", readme)
    assert "mala_admin" in offered, "the README names the member who can try the admin commands"
    typed = "".join(f"/as {name}\n/rank\n" for name in offered) + "/as mala_admin\n/config show\n/quit\n"
    out = io.StringIO()
    await play(tmp_path / "tenants", io.StringIO(typed), out)
    after_prompt = out.getvalue().split("`/as NAME` switches member", 1)[1]
    assert "cannot use" not in after_prompt and "no member of" not in after_prompt, after_prompt
    for name in offered:  # as Discord gets it: `mala\_admin` shows as typed, not as italics
        assert f"**{discord.utils.escape_markdown(name)}** — level" in after_prompt, name
    assert "`warn_thresholds`" in after_prompt, "mala_admin can use /config show"


async def test_the_prompt_offers_only_members_still_on_the_server(tmp_path: Path) -> None:
    out = io.StringIO()
    await play(tmp_path / "tenants", io.StringIO("/as ben\n/as nobody\n/quit\n"), out)
    after_prompt = out.getvalue().split("`/as NAME` switches member", 1)[1]
    offer = "try: ana, chloe, mala_admin"
    assert f"no member of Mala Café called 'ben'; {offer}" in after_prompt, "ben left during the scripted day"
    assert f"no member of Mala Café called 'nobody'; {offer}" in after_prompt
    assert "now speaking as" not in after_prompt


async def test_a_second_run_replays_the_day_afresh_in_the_same_folder(tmp_path: Path) -> None:
    tenants = tmp_path / "tenants"
    await play(tenants, None, io.StringIO())
    out = io.StringIO()
    await play(tenants, None, out)
    transcript = out.getvalue()
    assert "(the 2 files of an earlier run replaced)" in transcript
    assert "Checked in for" in transcript and "Happy birthday @chloe! 🎂" in transcript
    assert len(list(tenants.glob("*.sqlite3"))) == 1
    assert len(list((tenants / "archive").glob("*.sqlite3"))) == 1


async def test_a_folder_with_real_servers_files_is_refused_and_left_alone(tmp_path: Path) -> None:
    paths = TenantPaths(tmp_path / "tenants")
    real = 111_111_111_111_111_111
    create_tenant_file(paths, real, MigrationSet.load())
    before = paths.live(real).read_bytes()
    with pytest.raises(MalabotError, match="holds the files of 1 servers that are not the sandbox's"):
        await play(paths.root, None, io.StringIO())
    assert paths.live(real).read_bytes() == before
    assert not paths.archive_dir.exists()


async def read_until(stream: asyncio.StreamReader, text: bytes, within: float = 60) -> None:
    """Read `stream` up to and including the first `text` (the demo's transcript is flushed line by line)."""
    await asyncio.wait_for(stream.readuntil(text), timeout=within)


async def test_ctrl_c_at_the_interactive_prompt_ends_the_demo_without_waiting_for_enter(tmp_path: Path) -> None:
    tenants = tmp_path / "tenants"
    env = {key: value for key, value in os.environ.items() if not key.startswith("MALABOT_")}
    env["PYTHONPATH"] = str(Path.cwd())
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "malabot", "sandbox", "--interactive", "--tenants-dir", str(tenants),
        cwd=tmp_path, env=env, limit=1 << 20,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        # as from a terminal: a suite run as a background job passes SIGINT on ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    try:
        await read_until(process.stdout, b"`/quit` ends.")
        process.stdin.write(b"/rank\n")  # typed lines still reach the bot
        await process.stdin.drain()
        await read_until(process.stdout, b"**ana** \xe2\x80\x94 level")
        await asyncio.sleep(1)  # the demo is back at its prompt, waiting for the next line
        process.send_signal(signal.SIGINT)  # Ctrl-C at the prompt; stdin stays open, as a terminal's does
        await asyncio.wait_for(process.wait(), timeout=20)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 130
    assert (await process.stderr.read()).decode().strip().splitlines()[-1] == "malabot: interrupted"
    assert (tenants / ".malabot.lock").read_text() == "", "the demo released the tenants folder on its way out"


async def test_typed_booleans_channels_and_roles_are_read_as_typed_or_refused_readably(tmp_path: Path) -> None:
    """`post:false` is false (it was taken as true: the welcome test then posted), and `#general` or
    `@Regulars` name a channel or role as `@ana` names a member, never with Python's error text."""
    typed = ("/as mala_admin\n/welcome test post:false\n/welcome test post:maybe\n/welcome test post:1\n"
             "/verify setup channel:#general role:@Regulars\n/verify setup channel:#nope role:@Regulars\n"
             "/verify setup channel:#general role:@nobody\n/quit\n")
    out = io.StringIO()
    await play(tmp_path / "tenants", io.StringIO(typed), out)
    after = out.getvalue().split("now speaking as mala_admin", 1)[1]
    assert "Sent for testing" not in after and "**Welcome** (off, no channel set)" in after
    for refused in ("option 'post' cannot take 'maybe' (option type 5): type true or false",
                    "option 'post' cannot take 1 (option type 5): type true or false",
                    "option 'channel' cannot take '#nope' (option type 7): no channel in Mala Café called #nope",
                    "option 'role' cannot take '@nobody' (option type 8): no role in Mala Café called @nobody"):
        assert refused in after, after
    assert after.count("cannot use") == 4, after  # /verify setup #general @Regulars reached the bot
    assert "object has no attribute" not in after


def test_command_lines_parse_into_name_and_options() -> None:
    assert parse_command_line("/birthday set month:5 day:17") == ("birthday set", {"month": 5, "day": 17})
    assert parse_command_line('/config set setting:timezone value:"Europe/Paris"') == (
        "config set", {"setting": "timezone", "value": "Europe/Paris"})
