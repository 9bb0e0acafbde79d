"""The world the XP and check-in e2e tests share: level roles, a no-XP channel and role, a bot member.

`Place` wraps a running World with what these tests add, and small readers of the tenant file.
`settled(world)` waits until the bot has finished handling every event and interaction so far
(listeners and command callbacks run as their own tasks after the sandbox saw the answer).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from malabot.sandbox import Channel, FakeDiscord, Message, Role, User
from malabot.sandbox.payloads import message_payload
from tests.e2e.data_dump import all_rows
from tests.e2e.world import World, make_world, settled

EPHEMERAL = 64
EXTRA_MEMBERS = 11  # with admin, alice, bob and carol: 15 members, two leaderboard pages

@dataclass
class Place:
    world: World
    level_roles: list[Role]      # three roles below the bot's, for levels 1, 2 and 3
    overlord: Role               # a role above the bot's top role
    muted: Role                  # the no-XP role
    spam: Channel                # the no-XP channel
    levels: Channel              # a channel for level-up messages
    carol: User                  # a member with the muted role
    robot: User                  # another bot, a member of the server
    extras: list[User]

    @property
    def file(self) -> Path:
        return self.world.tenant_file(self.world.guild)

    def xp_rows(self) -> dict[int, int]:
        """user id -> XP as stored, after the XP service flushed its buffer."""
        return {int(row[0]): int(row[1]) for row in all_rows(self.file)["xp"]}  # type: ignore[call-overload]

    async def stored_xp(self) -> dict[int, int]:
        await self.world.live.xp.flush_all()
        return self.xp_rows()

    def audit(self) -> list[tuple[str, int | None, int | None, dict[str, Any]]]:
        """(action, actor, target, details) of the XP audit rows, oldest first."""
        rows = sorted(all_rows(self.file)["audit_log"], key=lambda row: row[0])  # type: ignore[arg-type, return-value]
        return [(str(row[3]), row[4], row[5], json.loads(str(row[7])))  # type: ignore[misc]
                for row in rows if row[2] == "xp"]

    def roles_of(self, user: User) -> set[int]:
        member = self.world.server.member(self.world.guild, user)
        assert member is not None
        return set(member.roles) & {role.id for role in self.level_roles}

    def bot_messages(self, channel: Channel | None = None) -> list[Message]:
        where = channel if channel is not None else self.world.general
        return self.world.server.messages_in(where, author=self.world.server.bot_user)

    async def configure(self, **values: Any) -> None:
        await self.world.live.guild_settings.update(self.world.guild.id, self.world.admin.id, **values)

    async def chat(self, user: User, channel: Channel | None = None, text: str = "hello") -> Message:
        message = await self.world.server.send_message(channel or self.world.general, user, text)
        await settled(self.world)
        return message

    async def webhook_message(self, channel: Channel, text: str = "from a webhook") -> None:
        """A message posted by a webhook: its author is no member and not flagged as a bot."""
        hook_author = self.world.server.add_user("Captain Hook")
        await self.raw_message(channel, hook_author, text, webhook_id=hook_author.id)

    async def raw_message(self, channel: Channel, author: User, text: str = "", **fields: Any) -> None:
        """MESSAGE_CREATE of a message `send_message` does not make (webhook, system message...)."""
        server = self.world.server
        message = server.world.add_message(channel, author.id, text, **fields)
        await server.dispatch("MESSAGE_CREATE", message_payload(server.world, message), guild_id=channel.guild_id)
        await settled(self.world)

    async def give_level_roles(self) -> None:
        """Level 1, 2 and 3 give the three level roles, through the admin's commands."""
        for level, role in enumerate(self.level_roles, start=1):
            reply = await self.world.command(self.world.admin, "levelrole add", {"level": level, "role": role})
            assert reply.ephemeral and f"level {level}" in reply.content, reply.content


async def make_place(server: FakeDiscord, tmp_path: Path, *, quick: bool = False) -> AsyncIterator[Place]:
    made: dict[str, Any] = {}

    def prepare(world: World) -> None:
        made["level_roles"] = [server.add_role(world.guild, name) for name in ("Chatter", "Regular", "Veteran")]
        made["overlord"] = server.add_role(world.guild, "Overlord", above_bot=True)
        made["muted"] = server.add_role(world.guild, "Muted")
        made["spam"] = server.add_channel(world.guild, "spam")
        made["levels"] = server.add_channel(world.guild, "levels")
        made["carol"] = server.add_user("carol")
        server.add_member(world.guild, made["carol"], roles=[made["muted"]])
        made["robot"] = server.add_user("robot", bot=True)
        server.add_member(world.guild, made["robot"])
        made["extras"] = [server.add_user(f"member{number:02d}") for number in range(EXTRA_MEMBERS)]
        for extra in made["extras"]:
            server.add_member(world.guild, extra)

    async for world in make_world(server, tmp_path, prepare=prepare, quick=quick):
        yield Place(world=world, **made)
