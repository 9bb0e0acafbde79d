"""What a level change does on Discord: the level-up announcement and the member's level roles.

Any cog that grants or edits XP calls `apply` with the LevelChange the XP service returned:

    outcome = await levelups.apply(bot.services, guild, change, channel_id=where_it_happened)

It posts the level-up message when the member went up (if the server has it on: in the configured
channel, else in `channel_id`; no post when neither is known) and brings the member's level roles in
line with their level as it is then (not the change's, which a later edit may have overtaken) in the
server's stack/replace mode, both ways, so roles follow XP down after an
admin edit too. A member still in Membership Screening is given none (Discord lets a member given any
role skip the rules): `sync_roles` gives them once they pass it. Discord refusals (a role above the
bot's top role, a deleted role or channel, a missing permission) never raise: each becomes a one-line
`problems` entry for the caller to show an admin (`problems_text` for an ephemeral follow-up) or to
tell through `bot.admin_notices` when nobody is waiting (chat, check-ins, birthdays).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import discord

from malabot.bot import explain_failure
from malabot.cogs.granting import why_bot_cannot_give
from malabot.cogs.members import member_if_found
from malabot.cogs.own_timeout import own_timeout
from malabot.cogs.posting import pinging_only
from malabot.cogs.unreachable import DISCORD_UNREACHABLE
from malabot.commands import fit_lines
from malabot.errors import TenantArchived
from malabot.features.xp.models import LevelChange
from malabot.member_list_loading import MEMBER_LIST_WAIT_SECONDS
from malabot.member_lists import complete_member_list

if TYPE_CHECKING:
    from malabot.app import Services

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LevelUpOutcome:
    announced_in: int | None = None          # the channel the level-up message went to
    roles_added: tuple[int, ...] = ()
    roles_removed: tuple[int, ...] = ()
    problems: tuple[str, ...] = ()           # one line each, written for a server admin


async def apply(services: Services, guild: discord.Guild, change: LevelChange, *,
                channel_id: int | None = None) -> LevelUpOutcome:
    """Announce a level-up and sync the member's level roles; never raises for Discord refusals."""
    problems: list[str] = []
    announced_in = await _announce(services, guild, change, channel_id, problems)
    added, removed = await _sync_member(services, guild, change.user_id, problems)
    return LevelUpOutcome(announced_in=announced_in, roles_added=added, roles_removed=removed,
                          problems=tuple(problems))


async def after_stored_work(work: Awaitable[LevelUpOutcome], guild: discord.Guild, *, failed: str) -> LevelUpOutcome:
    """Level roles after work that is stored (a check-in, an admin's edit, an erasure, a reset): a
    failure of their own (the server's file, not Discord) is logged and becomes the problem `failed`
    (its `{reason}` filled in), never an error of the command, which would tell the member to try
    again what is done."""
    try:
        return await work
    except TenantArchived:  # the bot was removed meanwhile: nobody to tell
        raise
    except Exception as error:
        reason = explain_failure(error, "level roles after stored work", guild.id,
                                 busy="the server's file stayed busy", otherwise="an error, logged")
        return LevelUpOutcome(problems=(failed.format(reason=reason),))


async def apply_after_stored_work(services: Services, guild: discord.Guild, change: LevelChange, *,
                                  channel_id: int | None = None) -> LevelUpOutcome:
    """`apply`, after a stored check-in or admin edit (see after_stored_work)."""
    return await after_stored_work(apply(services, guild, change, channel_id=channel_id), guild,
                                   failed=f"The level-up of <@{change.user_id}> could not finish ({{reason}}); "
                                          "their level roles follow at their next level change.")


async def sync_roles(services: Services, guild: discord.Guild, user_id: int) -> LevelUpOutcome:
    """Bring a member's level roles in line with their level, without an announcement: for a member
    who just passed Membership Screening, whose level roles waited for it, or whose XP was erased."""
    problems: list[str] = []
    added, removed = await _sync_member(services, guild, user_id, problems)
    return LevelUpOutcome(roles_added=added, roles_removed=removed, problems=tuple(problems))


def problems_text(outcome: LevelUpOutcome) -> str | None:
    """The problems as one message for an admin, or None when everything went through."""
    if not outcome.problems:
        return None
    return fit_lines([f"⚠️ {problem}" for problem in outcome.problems],
                     "… and {count} more problems with level roles.")


def why_not_assignable(role: discord.Role) -> str | None:
    """Why the bot could not give or take `role` as a level role, in one sentence; None when it can."""
    return why_bot_cannot_give(role, "a level role")


async def remove_all_level_roles(services: Services, guild: discord.Guild) -> LevelUpOutcome:
    """After every member's XP went back to 0: take every level role from everyone who has one."""
    problems: list[str] = []
    removed: list[int] = []
    if not await complete_member_list(guild, within=MEMBER_LIST_WAIT_SECONDS):
        problems.append("This server's member list did not load in time: level roles were taken only from "
                        "the members the bot has seen since it started.")
    # A sync that read a level before the reset may be giving its role right now: its change is
    # then in the ledger (or the cache) for _holders to see.
    await services.role_ledger.syncs_finished(guild.id)
    for level_role in await services.xp.level_roles(guild.id):
        role = guild.get_role(level_role.role_id)
        if role is None or not (holders := _holders(services, guild, role)):
            continue
        if (reason := why_not_assignable(role)) is not None:
            problems.append(f"Level {level_role.level}: {reason}")
            continue
        for member in holders:
            # Like a level-role sync, one at a time and remembered: a sync of the member right after
            # (an admin edit, a chat level-up) may come before the gateway shows the removal.
            async with services.role_ledger.syncing(guild.id, member.id):
                if await _change_roles(member, [], [role], "XP reset: level roles follow XP", problems):
                    services.role_ledger.changed(guild.id, member.id, given=(), taken=[role.id],
                                                 cached=_role_ids(member))
                    removed.append(role.id)
    return LevelUpOutcome(roles_removed=tuple(dict.fromkeys(removed)), problems=tuple(problems))


async def sync_everyones_roles(services: Services, guild: discord.Guild) -> LevelUpOutcome:
    """After the XP behind every level was replaced (a restore): bring the level roles in line for
    everyone who holds one and everyone whose level calls for one."""
    level_roles = await services.xp.level_roles(guild.id)
    if not level_roles:
        return LevelUpOutcome()
    problems: list[str] = []
    if not await complete_member_list(guild, within=MEMBER_LIST_WAIT_SECONDS):
        problems.append("This server's member list did not load in time: level roles were checked only for "
                        "the members the bot has seen since it started.")
    user_ids = set(await services.xp.members_at_level(guild.id, min(role.level for role in level_roles)))
    for level_role in level_roles:
        if (role := guild.get_role(level_role.role_id)) is not None:
            user_ids.update(member.id for member in _holders(services, guild, role))
    level_of = {level_role.role_id: level_role.level for level_role in level_roles}
    added: list[int] = []
    removed: list[int] = []
    for user_id in sorted(user_ids):
        given, taken = await _sync_member(services, guild, user_id, problems, level_of)
        added += given
        removed += taken
    return LevelUpOutcome(roles_added=tuple(added), roles_removed=tuple(removed),
                          problems=tuple(dict.fromkeys(problems)))


def _holders(services: Services, guild: discord.Guild, role: discord.Role) -> list[discord.Member]:
    """Who holds the role: the cache's holders and those the bot gave it to seconds ago, which the
    gateway has not shown yet."""
    holders = {member.id: member for member in role.members}
    for user_id in services.role_ledger.given_unconfirmed(guild.id, role.id):
        if user_id not in holders and (member := guild.get_member(user_id)) is not None:
            holders[user_id] = member
    return list(holders.values())


# -- the announcement ----------------------------------------------------------------------------

async def _announce(services: Services, guild: discord.Guild, change: LevelChange, channel_id: int | None,
                    problems: list[str]) -> int | None:
    if not change.leveled_up:
        return None
    announcement = await services.xp.levelup_announcement(
        guild.id, change, member_mention=f"<@{change.user_id}>", server_name=guild.name,
        message_channel_id=channel_id or 0)  # 0: no origin; only a configured channel can be used
    if announcement is None or not announcement.channel_id:
        return None
    channel = guild.get_channel_or_thread(announcement.channel_id)
    if not isinstance(channel, discord.abc.Messageable):
        problems.append(f"The level-up channel (id {announcement.channel_id}) no longer exists; "
                        "set another with `/config set levelup_channel_id`.")
        return None
    try:
        # The admin's template may name anyone, a role or @everyone: only the member is pinged.
        await channel.send(announcement.text, allowed_mentions=pinging_only(change.user_id))
    except discord.Forbidden:
        problems.append(f"I may not post level-up messages in <#{announcement.channel_id}>"
                        + (f": {timed_out}" if (timed_out := own_timeout(guild)) is not None else "."))
        return None
    except discord.HTTPException as error:
        problems.append(f"Posting the level-up message in <#{announcement.channel_id}> failed ({error.status}).")
        return None
    except DISCORD_UNREACHABLE:
        problems.append(f"Posting the level-up message in <#{announcement.channel_id}> failed: I could not "
                        "reach Discord (it may have been posted).")
        return None
    return announcement.channel_id


# -- level roles ---------------------------------------------------------------------------------

async def _sync_member(services: Services, guild: discord.Guild, user_id: int, problems: list[str],
                       level_of: dict[int, int] | None = None) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """`level_of` (role id → level): the server's level roles, when the caller read them already."""
    if level_of is None:
        level_of = {level_role.role_id: level_role.level for level_role in await services.xp.level_roles(guild.id)}
    if not level_of:  # no level roles: nothing to sync, and no member to look up
        return (), ()
    async with services.role_ledger.syncing(guild.id, user_id):
        member = await member_if_found(guild, user_id, for_what="level roles")
        if member is None:
            return (), ()
        # The level now, not the change's: an admin edit or another award may have landed
        # since (while the level-up was posted, or while this waited for the member's turn).
        level = await services.xp.member_level(guild.id, user_id)
        return await _sync_level_roles(services, guild, member, level, level_of, problems)


async def _sync_level_roles(services: Services, guild: discord.Guild, member: discord.Member, level: int,
                            level_of: dict[int, int], problems: list[str]
                            ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    unusable = _unusable_roles(guild, level_of)
    ledger = services.role_ledger
    current = ledger.roles_now(guild.id, member.id, _role_ids(member))
    changes = await services.xp.role_changes(guild.id, current, level, unusable)
    if changes.empty:
        return (), ()
    # A role given to a member in Membership Screening lets them skip the rules: theirs wait until
    # they pass it (see `sync_roles`). Taking one away is harmless.
    to_add = [] if member.pending else _usable_roles(guild, changes.to_add, level_of, unusable, problems)
    if member.pending and changes.to_add:  # else the admin who edited their XP would wonder where they are
        problems.append(f"{member.mention} is still in Membership Screening: their level roles wait until "
                        "they accept the server's rules.")
    to_remove = _usable_roles(guild, changes.to_remove, level_of, unusable, problems)
    if not to_add and not to_remove:
        return (), ()
    done = await _change_roles(member, to_add, to_remove, f"Level roles follow XP (level {level})", problems)
    if not done:
        return (), ()
    added, removed = tuple(role.id for role in to_add), tuple(role.id for role in to_remove)
    ledger.changed(guild.id, member.id, added, removed, cached=_role_ids(member))
    return added, removed


def _role_ids(member: discord.Member) -> list[int]:
    """The member's roles as py-cord's cache has them (the gateway's updates so far)."""
    return [role.id for role in member.roles]


def _unusable_roles(guild: discord.Guild, level_of: dict[int, int]) -> dict[int, str]:
    """Level roles the bot cannot give or take, each with why, for an admin."""
    unusable = {}
    for role_id, level in level_of.items():
        role = guild.get_role(role_id)
        if role is None:
            unusable[role_id] = (f"Level {level}: the role (id {role_id}) no longer exists; "
                                 f"remove it with `/levelrole remove`.")
        elif (reason := why_not_assignable(role)) is not None:
            unusable[role_id] = f"Level {level}: {reason}"
    return unusable


def _usable_roles(guild: discord.Guild, role_ids: Iterable[int], level_of: dict[int, int],
                  unusable: dict[int, str], problems: list[str]) -> list[discord.Role]:
    usable = []
    for role_id in sorted(role_ids, key=lambda found: level_of.get(found, 0)):
        role = guild.get_role(role_id)
        if role_id in unusable:
            problems.append(unusable[role_id])
        elif role is not None:
            usable.append(role)
    return usable


async def _change_roles(member: discord.Member, to_add: list[discord.Role], to_remove: list[discord.Role],
                        reason: str, problems: list[str]) -> bool:
    try:
        if to_add:
            await member.add_roles(*to_add, reason=reason)
        if to_remove:
            await member.remove_roles(*to_remove, reason=reason)
    except discord.Forbidden:
        names = ", ".join(role.mention for role in [*to_add, *to_remove])
        why = own_timeout(member.guild) or "check my role's place and the Manage Roles permission."
        problems.append(f"Discord refused to change {names} for {member.mention}; {why}")
        return False
    except discord.HTTPException as error:
        problems.append(f"Changing level roles of {member.mention} failed ({error.status}).")
        return False
    except DISCORD_UNREACHABLE:  # below HTTP: the change may or may not have happened
        problems.append(f"Changing level roles of {member.mention} failed: I could not reach Discord (the "
                        "change may have happened).")
        return False
    return True
