"""`malabot sandbox`: the real bot against the local Discord-compatible server, with a scripted day.

No token and no network: the sandbox server runs on 127.0.0.1, the real MalaBot (py-cord client,
services, tenant files) connects to it, members chat and use commands, and a transcript shows what
the bot said and did. The tenant files stay in the tenants folder for a look afterwards; the next
run starts the day afresh (malabot.sandbox.demo_folder), and a folder with real servers' files is refused.
"""

from __future__ import annotations

import asyncio
import codecs
import os
import shlex
import sys
from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack, aclosing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from malabot.app import Services, build_bot, build_services, start_services, stop_services, tenants_lock
from malabot.bot import MalaBot
from malabot.clock import MovableClock
from malabot.cogs.birthdays import BirthdaysCog
from malabot.errors import MalabotError
from malabot.runtime import load_settings
from malabot.sandbox.demo_folder import CAFE_ID, CLUB_ID, refuse_real_servers, remove_earlier_run
from malabot.sandbox.errors import SandboxError
from malabot.sandbox.harness import running_bot, sandbox_client_options
from malabot.sandbox.netguard import loopback_only
from malabot.sandbox.server import FakeDiscord
from malabot.sandbox.state import Channel, Guild, User
from malabot.sandbox.transcript import Transcript
from malabot.tenancy.paths import TenantPaths


@dataclass
class DemoWorld:
    server: FakeDiscord
    cafe: Guild
    club: Guild
    general: Channel
    club_general: Channel
    admin: User
    members: dict[str, User]


def build_world(server: FakeDiscord) -> DemoWorld:
    admin = server.add_user("mala_admin")
    cafe = server.add_guild("Mala Café", owner=admin, id=CAFE_ID)
    club = server.add_guild("Old Club", owner=admin, id=CLUB_ID)
    server.add_role(cafe, "Regulars", permissions=0)
    members = {name: server.add_user(name) for name in ("ana", "ben", "chloe")}
    for user in members.values():
        server.add_member(cafe, user)
    server.add_member(club, members["ben"])
    return DemoWorld(server, cafe, club, system_channel(server, cafe), system_channel(server, club), admin, members)


def system_channel(server: FakeDiscord, guild: Guild) -> Channel:
    assert guild.system_channel_id is not None, "sandbox guilds are made with a #general channel"
    return server.channel(guild.system_channel_id)


class Demo:
    def __init__(self, world: DemoWorld, services: Services, bot: MalaBot, clock: MovableClock,
                 transcript: Transcript) -> None:
        self.world = world
        self.services = services
        self.bot = bot
        self.clock = clock
        self.out = transcript

    def user(self, name: str) -> User:
        return self.world.admin if name == self.world.admin.username else self.world.members[name]

    async def chat(self, name: str, text: str, channel: Channel | None = None) -> None:
        place = channel or self.world.general
        self.out.action(name, f"#{place.name}: {text}")
        await self.world.server.send_message(place, self.user(name), text)
        await self.settle()

    async def command(self, name: str, command: str, options: dict[str, Any] | None = None,
                      guild: Guild | None = None) -> None:
        where = guild or self.world.cafe
        shown = " ".join([f"/{command}", *(f"{key}:{value}" for key, value in (options or {}).items())])
        self.out.action(name, shown)
        channel = self.world.general if where is self.world.cafe else self.world.club_general
        try:
            await self.world.server.invoke_command(where, channel, self.user(name), command, options)
        except SandboxError as error:
            self.out.say(f"  {'sandbox':>8} │ cannot use /{command}: {error}")
        await self.settle()

    async def settle(self) -> None:
        """Let the bot finish what the last event started, then print what it did."""
        await self.services.xp.flush_all()
        await asyncio.sleep(0.05)
        self.out.bot_output()

    def scene(self, title: str) -> None:
        self.out.say()
        self.out.say(f"── {self.clock.now:%H:%M} UTC · {title} " + "─" * max(0, 60 - len(title)))


async def scripted_day(demo: Demo) -> None:
    world, clock = demo.world, demo.clock
    demo.scene("the admin sets the server up")
    await demo.command("mala_admin", "config set", {"setting": "birthday_channel_id",
                                                    "value": f"<#{world.general.id}>"})
    await demo.command("mala_admin", "config set", {"setting": "timezone", "value": "UTC"})

    demo.scene("members chat and level up")
    # Seven minutes of chat, one message each per minute: even at the lowest roll (15 XP) that is level 1.
    chatter = [
        ("good morning ☕", "morning!", "hi all"),
        ("anyone up for a game tonight?", "sure", "count me in"),
        ("the new co-op one?", "yes, that one", "I'll bring snacks 🍿"),
        ("8 pm?", "works for me", "same"),
        ("I'll set up the lobby", "thanks ana", "🙌"),
        ("did anyone finish the puzzle?", "not yet", "almost!"),
        ("see you tonight", "see you", "bye for now"),
    ]
    for minute in chatter:
        for name, line in zip(("ana", "ben", "chloe"), minute, strict=True):
            await demo.chat(name, line)
        clock.advance(timedelta(seconds=61))  # past the XP cooldown
    await demo.command("ana", "rank")
    await demo.command("ben", "leaderboard")

    demo.scene("daily check-ins")
    await demo.command("ana", "checkin")
    await demo.command("ben", "checkin")
    await demo.command("ana", "checkin")
    await demo.command("ana", "streak")

    demo.scene("birthdays")
    today = clock.now.date()
    await demo.command("chloe", "birthday set", {"month": today.month, "day": today.day, "year": 2000})
    await demo.command("ben", "birthday set", {"month": 2, "day": 29})
    await demo.command("ana", "birthday upcoming", {"days": 30})
    clock.now = clock.now.replace(hour=9, minute=0, second=5)
    demo.scene("the birthday pass")
    await run_birthday_pass(demo)

    demo.scene("a member leaves; the bot leaves a server")
    ben_rows = await demo.services.mydata.export(world.cafe.id, world.members["ben"].id)
    demo.out.action("ben", f"leaves Mala Café (the bot holds {ben_rows.row_count} rows about him there)")
    await world.server.remove_member(world.cafe, world.members["ben"])
    await asyncio.sleep(0.1)
    left = await demo.services.mydata.export(world.cafe.id, world.members["ben"].id)
    demo.out.say(f"  {'MalaBoT':>8} │ purged ben's data in Mala Café: {left.row_count} rows left; "
                 "Old Club untouched")
    demo.out.action("Old Club", "removes the bot")
    await world.server.remove_bot_from_guild(world.club)
    await asyncio.sleep(0.1)
    archives = demo.services.tenants.paths.archives_of(world.club.id)
    demo.out.say(f"  {'MalaBoT':>8} │ archived Old Club's file to "
                 f"{archives[-1] if archives else '(nothing archived)'}")


async def run_birthday_pass(demo: Demo) -> None:
    """The scheduler runs this every quarter hour; the demo runs it once, now."""
    birthdays = demo.bot.get_cog("Birthdays")
    assert isinstance(birthdays, BirthdaysCog)
    await birthdays.run_birthday_pass()
    await demo.settle()


async def interactive(demo: Demo, source: TextIO) -> None:
    """Read chat lines and /commands from `source` as the demo member `ana`, until EOF or `/quit`."""
    demo.out.say()
    demo.out.say("Type a chat line, or a slash command like `/rank` or `/birthday set month:5 day:17`. "
                 "`/as NAME` switches member; `/quit` ends.")
    speaker = "ana"
    async with aclosing(typed_lines(source)) as lines:
        async for typed in lines:
            line = typed.strip()
            if line == "/quit":
                return
            if not line:
                continue
            if line.startswith("/as "):
                name = line.removeprefix("/as ").strip()
                speakers = still_in_the_cafe(demo)
                if name in speakers:
                    speaker = name
                    demo.out.say(f"  now speaking as {speaker}")
                else:
                    demo.out.say(f"  no member of {demo.world.cafe.name} called {name!r}; try: {', '.join(speakers)}")
                continue
            if line.startswith("/"):
                try:
                    command, options = parse_command_line(line)
                except ValueError as error:
                    demo.out.say(f"  {error}")
                    continue
                await demo.command(speaker, command, options)
            else:
                demo.clock.advance(timedelta(seconds=61))
                await demo.chat(speaker, line)


def still_in_the_cafe(demo: Demo) -> list[str]:
    """Who may speak at the prompt: the demo's members still in the café (the scripted day makes one
    leave), and its admin."""
    names = [name for name, user in demo.world.members.items()
             if demo.world.server.member(demo.world.cafe, user) is not None]
    return [*names, demo.world.admin.username]


async def typed_lines(source: TextIO) -> AsyncGenerator[str, None]:
    """The lines of `source` as they come.

    A terminal or a pipe is watched by the event loop, not read in a worker thread: asyncio.run waits
    for its threads when it ends, so one blocked in readline() kept Ctrl-C from ending the demo (and
    freeing the tenants folder) until Enter was pressed. What the loop cannot watch (text in memory,
    a regular file, /dev/null) never keeps a read waiting, and is read as it is."""
    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue[bytes] = asyncio.Queue()
    try:
        fd = source.fileno()

        def readable() -> None:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # a terminal that went away: the end of the input
                chunk = b""
            if not chunk:
                loop.remove_reader(fd)
            chunks.put_nowait(chunk)

        loop.add_reader(fd, readable)
    except (OSError, ValueError):  # no descriptor, or one epoll refuses
        for line in source:
            yield line
        return
    decoder = codecs.getincrementaldecoder(source.encoding or "utf-8")(errors="replace")
    pending = ""
    try:
        while True:
            chunk = await chunks.get()
            pending += decoder.decode(chunk, final=not chunk)
            *lines, pending = pending.split("\n")
            for line in lines:
                yield line + "\n"
            if not chunk:
                if pending:
                    yield pending
                return
    finally:
        loop.remove_reader(fd)


def parse_command_line(line: str) -> tuple[str, dict[str, Any]]:
    """`/birthday set month:5 day:17` → ("birthday set", {"month": 5, "day": 17})."""
    words = shlex.split(line.lstrip("/"))
    path = [word for word in words if ":" not in word]
    if not path:
        raise ValueError("a command starts with its name, e.g. /rank")
    options: dict[str, Any] = {}
    for word in words:
        if ":" in word:
            key, _, value = word.partition(":")
            options[key] = int(value) if value.lstrip("-").isdigit() else value
    return " ".join(path), options


async def play(tenants_dir: Path, interactive_input: TextIO | None, out: TextIO) -> None:
    start = datetime.now(UTC).replace(hour=8, minute=30, second=0, microsecond=0)
    clock = MovableClock(start)
    async with AsyncExitStack() as stack:
        server = FakeDiscord()
        await server.start()
        stack.push_async_callback(server.stop)
        world = build_world(server)
        settings = load_settings(tenants_dir=tenants_dir, api_base_url=server.api_base_url, token=server.token)
        stack.enter_context(tenants_lock(settings, "malabot sandbox"))
        paths = TenantPaths(tenants_dir)
        refuse_real_servers(paths)
        earlier = remove_earlier_run(paths)
        services = build_services(settings, clock=clock, monotonic=clock.monotonic)
        await start_services(services)
        stack.push_async_callback(stop_services, services)
        bot = build_bot(services, **sandbox_client_options())
        assert isinstance(bot, MalaBot)
        transcript = Transcript(server, out)
        fresh = f" (the {earlier} files of an earlier run replaced)" if earlier else ""
        transcript.say(f"MalaBoT sandbox: a local Discord-compatible server on {server.url_root}, "
                       f"tenant files in {tenants_dir}/{fresh}")
        await stack.enter_async_context(running_bot(server, bot))
        await asyncio.wait_for(bot.guilds_opened.wait(), timeout=10)
        transcript.say(f"The real bot connected as {bot.user} to {len(bot.guilds)} servers: "
                       + ", ".join(g.name for g in bot.guilds))
        demo = Demo(world, services, bot, clock, transcript)
        await scripted_day(demo)
        if interactive_input is not None:
            await interactive(demo, interactive_input)


def list_tenant_files(tenants_dir: Path, out: TextIO) -> None:
    files = sorted(tenants_dir.glob("*.sqlite3"))
    out.write("\nTenant files left for you to look at:\n")
    for path in files:
        out.write(f"  {path}  ({path.stat().st_size:,} bytes)\n")
    for path in sorted((tenants_dir / "archive").glob("*.sqlite3")):
        out.write(f"  {path}  (archived)\n")


def run_demo(*, tenants_dir: str | None, interactive: bool) -> int:
    settings = load_settings(**({"tenants_dir": tenants_dir} if tenants_dir else {}))
    folder = Path(settings.tenants_dir)
    with loopback_only():
        try:
            asyncio.run(play(folder, sys.stdin if interactive else None, sys.stdout))
            list_tenant_files(folder, sys.stdout)
        except SandboxError as error:
            raise MalabotError(f"sandbox: {error}") from None
    return 0
