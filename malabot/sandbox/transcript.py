"""A readable transcript of what happened in the sandbox: who said what, and what the bot did."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TextIO

from malabot.sandbox.server import FakeDiscord
from malabot.sandbox.state import Message

_MENTION = re.compile(r"<(@!?|@&|#)(\d+)>")


class Transcript:
    """Prints every message the bot posts (channels, DMs, ephemeral answers) since the last call."""

    def __init__(self, server: FakeDiscord, out: TextIO) -> None:
        self._server = server
        self._out = out
        self._seen = set(server.world.messages)

    def say(self, line: str = "") -> None:
        print(line, file=self._out, flush=True)

    def action(self, who: str, what: str) -> None:
        self.say(f"  {who:>8} │ {what}")

    def bot_output(self) -> list[Message]:
        """Print what the bot posted since the last call; returns those messages."""
        bot_id = self._server.bot_user.id
        new = sorted((m for m in self._server.world.messages.values()
                      if m.id not in self._seen and m.author_id == bot_id and not m.deleted), key=lambda m: m.id)
        for message in new:
            self._seen.add(message.id)
            where = self._place(message)
            text = self.readable(message.text or "(no text)")
            attachments = ", ".join(f"📎 {a.filename}" for a in message.attachments)
            lines = [line for line in text.splitlines() if line.strip()] or [""]
            prefix = f"{'MalaBoT':>8} │ {where}"
            self.say(f"  {prefix}: {lines[0]}{'  ' + attachments if attachments else ''}")
            for line in lines[1:]:
                self.say(f"  {'':>8} │ {' ' * len(where)}  {line}")
        for message in self._server.world.messages.values():
            self._seen.add(message.id)
        return new

    def readable(self, text: str) -> str:
        return _MENTION.sub(self._name_of_mention, text)

    def _name_of_mention(self, match: re.Match[str]) -> str:
        kind, raw = match.group(1), int(match.group(2))
        lookups: dict[str, Callable[[int], str]] = {
            "#": lambda i: "#" + (self._server.channel(i).name or str(i)),
            "@&": lambda i: "@" + self._role_name(i),
        }
        try:
            return lookups.get(kind, lambda i: "@" + self._server.user(i).username)(raw)
        except Exception:
            return match.group(0)

    def _role_name(self, role_id: int) -> str:
        for guild in self._server.world.guilds.values():
            if role_id in guild.roles:
                return guild.roles[role_id].name
        return str(role_id)

    def _place(self, message: Message) -> str:
        if message.guild_id is None:
            return "DM"
        channel = self._server.channel(message.channel_id)
        place = f"#{channel.name}"
        return f"{place} (only the user sees this)" if message.ephemeral else place
