"""Meta-tests over every registered slash command: described, and admin-only on both sides.

Discord's `default_member_permissions` only hides a command in the client; a member can still send the
interaction. So every command with it must also carry the runtime check (on itself or its group).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import discord
import pytest

from malabot.app import build_bot, build_services, stop_services
from malabot.bot import MalaBot
from malabot.features.moderation.rules import BOT_PERMISSIONS, PERMISSION_LABELS
from malabot.settings import Settings

NAME = re.compile(r"^[-_a-z0-9]{1,32}$")


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[MalaBot]:
    services = build_services(Settings(tenants_dir=tmp_path))
    built = build_bot(services)
    assert isinstance(built, MalaBot)
    yield built
    await built.close()
    await stop_services(services)


def leaf_commands(bot: MalaBot) -> list[discord.SlashCommand]:
    """Every slash command as it will be synced (before the bot connects they are still pending)."""
    found: list[discord.SlashCommand] = []
    for command in bot.pending_application_commands:
        if isinstance(command, discord.SlashCommandGroup):
            found += [sub for sub in command.walk_commands() if isinstance(sub, discord.SlashCommand)]
        elif isinstance(command, discord.SlashCommand):
            found.append(command)
    return found


def lineage(command: discord.ApplicationCommand) -> list[discord.ApplicationCommand]:
    """The command and its groups; py-cord runs each level's checks as the interaction goes down."""
    levels = [command]
    while levels[-1].parent is not None:
        levels.append(levels[-1].parent)
    return levels


def top_level(command: discord.ApplicationCommand) -> discord.ApplicationCommand:
    return lineage(command)[-1]


async def test_every_command_is_described_and_validly_named(bot: MalaBot) -> None:
    commands = leaf_commands(bot)
    assert len(commands) > 30
    for command in commands:
        assert NAME.match(command.name), command.qualified_name
        assert command.description and command.description != "No description provided", command.qualified_name
        for option in command.options:
            assert NAME.match(option.name), f"{command.qualified_name} {option.name}"
            assert option.description and option.description != "No description provided", \
                f"/{command.qualified_name} option {option.name}"


async def test_commands_hidden_by_permission_are_also_checked_at_run_time(bot: MalaBot) -> None:
    unchecked = []
    for command in leaf_commands(bot):
        root = top_level(command)
        if root.default_member_permissions is None and command.default_member_permissions is None:
            continue
        if not any(level.checks for level in lineage(command)):
            unchecked.append(command.qualified_name)
    assert not unchecked, f"hidden from members but not checked when run: {unchecked}"


# What the bot itself needs besides its moderation actions' permissions: posting (cogs/posting.py) and
# handing out roles (cogs/granting.py), with their labels in Discord's UI.
POSTING_AND_ROLES = {"view_channel": "View Channels", "send_messages": "Send Messages",
                     "embed_links": "Embed Links", "manage_roles": "Manage Roles"}


def test_the_readme_says_which_permissions_to_invite_the_bot_with() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Running it for real", 1)[1].split("\n## ", 1)[0]
    needed = {name for names in BOT_PERMISSIONS.values() for name in names} | set(POSTING_AND_ROLES)
    labels = {**PERMISSION_LABELS, **POSTING_AND_ROLES}
    missing = [labels[name] for name in sorted(needed) if f"**{labels[name]}**" not in section]
    assert missing == [], f"README's invite does not name {missing}"
    [invite] = re.findall(r"oauth2/authorize\?\S*?scope=bot\+applications\.commands&permissions=(\d+)", section)
    assert int(invite) == discord.Permissions(**dict.fromkeys(needed, True)).value


# Every cog of malabot/cogs, by the name py-cord keys it under (it refuses a second one of a name).
COGS = {"BackupCog", "Birthdays", "CheckinCog", "ConfigCog", "Lifecycle", "Moderation", "MyData", "StaleQuestions",
        "ScreeningCog", "Utility", "VerificationCog", "WelcomeCog", "XpAdminCog", "XpCog"}


async def test_the_bot_loads_every_cog(bot: MalaBot) -> None:
    assert set(bot.cogs) == COGS


# The README's "who" column, as the permission Discord is told to hide the command behind.
WHO = {"everyone": None, "Manage Server": "manage_guild", "Manage Roles": "manage_roles",
       "Timeout Members": "moderate_members", "Kick Members": "kick_members", "Ban Members": "ban_members",
       "Manage Messages": "manage_messages"}


async def test_the_readme_names_the_permission_each_command_needs(bot: MalaBot) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    roots = {command.name: command for command in bot.pending_application_commands}
    checked = set()
    for row in re.findall(r"^\| (`/.+?) \| (.+?) \|", readme, flags=re.MULTILINE):
        commands, who = row
        if who == "server owner":  # /backup list|restore: an owner check under a Manage Server group
            continue
        for name in re.findall(r"`/([a-z]+)", commands):
            granted = roots[name].default_member_permissions
            wanted = WHO[who]
            shown = None if granted is None else sorted(flag for flag, value in granted if value)
            assert shown == (None if wanted is None else [wanted]), f"/{name}: README says {who}"
            checked.add(name)
    assert len(checked) >= 20
