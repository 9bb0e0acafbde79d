"""Welcome and goodbye: messages on join and leave, an optional DM and auto-role, and `/welcome test`.

Configured with `/config set`: `welcome_enabled`, `welcome_channel_id`, `welcome_template`,
`welcome_dm_enabled`, `welcome_dm_template`, `goodbye_enabled`, `goodbye_channel_id`,
`goodbye_template`, `autorole_id`. Templates may use {member}, {server} and {member_count}.
The auto-role waits for a member in Membership Screening to accept the rules (the welcome does not):
Discord lets a member who is given a role skip the screening. Such a member is remembered in the
server's file until then (one who joined unheard, while the bot was offline, from the next start),
so a screening passed while the bot was offline still gets the role.
Bots are not members to greet: they get no welcome, DM, auto-role or goodbye (a DM to a bot always
fails, and their roles are for admins to pick).
What cannot be done as configured (a deleted channel, refused DMs, a role above the bot's) is logged
with the server's id; `/welcome test` shows it to the admins, and what they can fix (all but a member's
closed DMs) goes to the mod-log channel too, once a day (admin_notices.py).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import discord

from malabot.cogs.granting import why_bot_cannot_give
from malabot.cogs.members import UNKNOWN_MEMBER
from malabot.cogs.posting import NO_PINGS, pinging_only, plain_name, why_cannot_post
from malabot.commands import admin_group, answer, defer, guild_id_of
from malabot.errors import UserInputError, quoted
from malabot.features.welcome.rules import (
    ChannelMessage,
    JoinPlan,
    LeavePlan,
    autorole_to_give,
    marks_unverified,
)
from malabot.guild_settings import GuildSettings

if TYPE_CHECKING:
    from malabot.bot import MalaBot

log = logging.getLogger(__name__)

# Discord refuses an embed whose description is longer than this.
EMBED_DESCRIPTION_LIMIT = 4096
# Discord's code for a refused DM: the user closed their DMs, or shares no server with the bot.
CANNOT_SEND_TO_USER = 50007
# Discord's code for a role that was deleted (a 404 on giving it).
UNKNOWN_ROLE = 10011

# A welcome pings the joining member alone (pinging_only), whatever the template says; a goodbye nobody.


def member_count(guild: discord.Guild) -> int:
    return guild.member_count if guild.member_count is not None else len(guild.members)


async def post(guild: discord.Guild, message: ChannelMessage, pings: discord.AllowedMentions) -> str | None:
    """Send to the configured channel; returns what went wrong, if anything."""
    channel = guild.get_channel(message.channel_id)
    if not isinstance(channel, discord.abc.Messageable):
        return f"channel {message.channel_id} is not a text channel of this server"
    try:
        await channel.send(message.text, allowed_mentions=pings)
    except discord.HTTPException as error:
        return f"cannot post in #{getattr(channel, 'name', channel.id)}: {error.text or error.status}"
    return None


async def send_dm(member: discord.Member | discord.User, text: str, pings: discord.AllowedMentions) -> str | None:
    try:
        await member.send(text, allowed_mentions=pings)
    except discord.HTTPException as error:
        if error.code == CANNOT_SEND_TO_USER:  # Discord does not say which of the two it was
            return f"cannot DM {member}: Discord refuses DMs to them (DMs closed, or no server shared with me)"
        return f"cannot DM {member}: {error.text or error.status}"
    return None


async def give_autorole(member: discord.Member, role_id: int, reason: str = "auto-role on join") -> str | None:
    role = member.guild.get_role(role_id)
    if role is None:
        return f"the auto-role {role_id} no longer exists"
    try:
        await member.add_roles(role, reason=reason)
    except discord.HTTPException as error:
        if error.code == UNKNOWN_MEMBER:  # nothing for an admin to fix: they left before it arrived
            log.info("guild %s: member %s left before the auto-role could be given", member.guild.id, member.id)
            return None
        if error.code == UNKNOWN_ROLE:  # deleted since the bot last heard of it
            return f"the auto-role {role_id} no longer exists"
        return f"cannot give the auto-role @{role.name} (it must be below my highest role; I need Manage Roles)"
    return None


async def carry_out_join(member: discord.Member | discord.User, guild: discord.Guild, plan: JoinPlan, *,
                         autorole: bool) -> list[str]:
    """Give the auto-role and post as planned; returns the problems met (plan's own included), all
    of which an admin can fix. The DM is `send_welcome_dm`'s: a member's closed DMs are nobody's to fix."""
    problems = list(plan.problems)
    pings = pinging_only(member.id)
    # The role first: it is often what opens the server to the newcomer. Each step fails alone.
    if autorole and isinstance(member, discord.Member):
        role_id = autorole_to_give(plan.autorole_id, [role.id for role in member.roles],
                                   pending=member.pending)
        if role_id is not None:
            problems.append(await give_autorole(member, role_id) or "")
    if plan.channel_message is not None:
        problems.append(await post(guild, plan.channel_message, pings) or "")
    return [problem for problem in problems if problem]


async def send_welcome_dm(member: discord.Member | discord.User, plan: JoinPlan) -> list[str]:
    """The welcome DM, when the server sends one; returns the problem met, if any."""
    if plan.dm_text is None:
        return []
    problem = await send_dm(member, plan.dm_text, pinging_only(member.id))
    return [problem] if problem else []


async def carry_out_leave(guild: discord.Guild, plan: LeavePlan) -> list[str]:
    problems = list(plan.problems)
    if plan.channel_message is not None:
        problems.append(await post(guild, plan.channel_message, NO_PINGS) or "")
    return [problem for problem in problems if problem]


def channel_problem(guild: discord.Guild, channel_id: int | None) -> str | None:
    """Why a message could not be posted in a configured channel, checked without posting."""
    if channel_id is None:
        return None
    channel = guild.get_channel(channel_id)
    if not isinstance(channel, discord.abc.GuildChannel) or not isinstance(channel, discord.abc.Messageable):
        return f"channel {channel_id} is not a text channel of this server"
    return why_cannot_post(guild, channel)


def autorole_problem(guild: discord.Guild, role_id: int | None) -> str | None:
    """Why the auto-role could not be given, checked without giving it."""
    if role_id is None:
        return None
    role = guild.get_role(role_id)
    if role is None:
        return f"the auto-role {role_id} no longer exists"
    return why_bot_cannot_give(role, "the auto-role")  # what /config set says when it is chosen


def _where(channel_id: int | None) -> str:
    return f"in <#{channel_id}>" if channel_id is not None else "no channel set"


def preview_text(settings: GuildSettings, previews: dict[str, str]) -> str:
    """The admins' overview: each message as it would be sent now, whether it is on, and where."""
    def state(enabled: bool) -> str:
        return "on" if enabled else "off"

    autorole = f"<@&{settings.autorole_id}>" if settings.autorole_id is not None else "none"
    return "\n\n".join([
        f"**Welcome** ({state(settings.welcome_enabled)}, {_where(settings.welcome_channel_id)}):\n"
        f"{previews['welcome']}",
        f"**Welcome DM** ({state(settings.welcome_dm_enabled)}):\n{previews['welcome_dm']}",
        f"**Goodbye** ({state(settings.goodbye_enabled)}, {_where(settings.goodbye_channel_id)}):\n"
        f"{previews['goodbye']}",
        f"**Auto-role**: {autorole}",
    ])


def fair_shares(lengths: Sequence[int], room: int) -> list[int]:
    """How long each text of these `lengths` may be for all to take at most `room`: the short ones
    whole, the others an equal share of what the short ones leave."""
    shares = [0] * len(lengths)
    shortest_first = sorted(range(len(lengths)), key=lambda index: lengths[index])
    for waiting, index in enumerate(shortest_first):
        shares[index] = min(lengths[index], room // (len(lengths) - waiting))
        room -= shares[index]
    return shares


def fitted_overview(settings: GuildSettings, previews: dict[str, str], after: str,
                    limit: int = EMBED_DESCRIPTION_LIMIT) -> str:
    """preview_text and then `after` (what was sent, the problems) within `limit`: `after` whole, the
    previews each shortened on its own, with a "…" that shows it, to what is left."""
    text = preview_text(settings, previews) + after
    if len(text) <= limit:
        return text
    room = limit - len(preview_text(settings, dict.fromkeys(previews, ""))) - len(after)
    shares = fair_shares([len(preview) for preview in previews.values()], room)
    shortened = {kind: quoted(preview, max(share, 1))
                 for (kind, preview), share in zip(previews.items(), shares, strict=True)}
    # Only problems longer than any Discord embed holds would still be cut here.
    return (preview_text(settings, shortened) + after)[:limit]


class WelcomeCog(discord.Cog):
    welcome = admin_group("welcome", "Welcome and goodbye messages", manage_guild=True)

    def __init__(self, bot: MalaBot) -> None:
        self.bot = bot
        self.service = bot.services.welcome
        self.settings = bot.services.guild_settings

    @discord.Cog.listener()
    async def on_member_join(self, member: discord.Member) -> None:
        if member.bot:
            return
        guild = member.guild
        plan = await self.service.on_join(guild.id, member=member.mention, server=guild.name,
                                          member_count=member_count(guild))
        await self.bot.admin_notices.tell(guild, await carry_out_join(member, guild, plan, autorole=True),
                                          about="A welcome")
        for problem in await send_welcome_dm(member, plan):  # nobody's to fix: for the log only
            log.warning("guild %s: welcome of member %s: %s", guild.id, member.id, problem)
        if member.pending and plan.autorole_id is not None:
            # Remembered in the file: the update that ends their screening is lost if the bot is
            # offline or the server out just then, and on_member_list_complete catches up.
            await self.service.autorole_waits(guild.id, [member.id])

    @discord.Cog.listener()
    async def on_member_passed_screening(self, member: discord.Member) -> None:
        # The auto-role a member in Membership Screening did not get at join: now they accepted the
        # rules. Only this one event gives it, so later updates never do.
        await self.autorole_after_screening(member)

    @discord.Cog.listener()
    async def on_member_list_complete(self, guild: discord.Guild) -> None:
        # After a start or an outage (see cogs/lifecycle.py): members remembered at join who accepted
        # the rules meanwhile sent no update the bot heard. Those who left are purged with their data.
        for user_id in await self.service.autorole_waiting(guild.id):
            member = guild.get_member(user_id)
            if member is not None and not member.pending:
                await self.autorole_after_screening(member)
        # Who joined unheard and is still reading the rules is owed the role from now on too.
        autorole_id = (await self.settings.get(guild.id)).autorole_id
        screening = [member.id for member in guild.members
                     if member.pending and not member.bot and autorole_id is not None
                     and member.get_role(autorole_id) is None]
        if screening:
            await self.service.autorole_waits(guild.id, screening)

    async def autorole_after_screening(self, member: discord.Member) -> None:
        """Give the auto-role to a member who passed Membership Screening, unless they hold it (or it is
        the unverified role and they verified meanwhile); then it no longer waits for them (a role that
        cannot be given is logged, not tried again)."""
        async with self.bot.member_role_changes.holding((member.guild.id, member.id)):  # not as they verify
            await self._autorole_after_screening(member)

    async def _autorole_after_screening(self, member: discord.Member) -> None:
        settings = await self.settings.get(member.guild.id)
        held = [role.id for role in member.roles]
        verified = marks_unverified(settings.autorole_id, settings.unverified_role_id) \
            and await self._verified(member.guild.id, member.id, held, settings)
        role_id = autorole_to_give(settings.autorole_id, held, pending=member.pending, verified=verified,
                                   unverified_role_id=settings.unverified_role_id)
        if role_id is not None:
            problem = await give_autorole(member, role_id, reason="auto-role after membership screening")
            if problem:
                await self.bot.admin_notices.tell(member.guild, [problem], about="The auto-role")
        await self.service.autorole_done(member.guild.id, member.id)

    async def _verified(self, guild_id: int, user_id: int, held: list[int], settings: GuildSettings) -> bool:
        """Whether the member holds the verified role or verified through the bot (the roles an event
        carries may be from before they pressed Verify)."""
        if settings.verified_role_id is not None and settings.verified_role_id in held:
            return True
        request = await self.bot.services.verification.status(guild_id, user_id)
        return request is not None and request.status == "verified"

    @discord.Cog.listener()
    async def on_raw_member_remove(self, payload: discord.RawMemberRemoveEvent) -> None:
        # The raw event: members the bot never had in its cache get their goodbye too.
        guild = self.bot.get_guild(payload.guild_id)
        if guild is None or payload.user.bot:  # the bot itself included
            return
        plan = await self.service.on_leave(guild.id, member=plain_name(payload.user), server=guild.name,
                                           member_count=member_count(guild))
        await self.bot.admin_notices.tell(guild, await carry_out_leave(guild, plan), about="A goodbye")

    @welcome.command(name="test", description="Preview the welcome, DM and goodbye messages with you as the member")
    @discord.option("post", bool, description="Also send them where they would go (the DM comes to you)",
                    default=False)
    async def test(self, ctx: discord.ApplicationContext, post: bool) -> None:
        guild_id = guild_id_of(ctx)
        guild = ctx.guild
        if guild is None:
            raise UserInputError("I cannot see this server yet; please try again in a moment.")
        me, count = ctx.author, member_count(guild)
        settings = await self.settings.get(guild_id)
        join = await self.service.on_join(guild_id, member=me.mention, server=guild.name, member_count=count)
        leave = await self.service.on_leave(guild_id, member=plain_name(me), server=guild.name,
                                            member_count=count)
        previews = {kind: await self.service.preview(guild_id, kind, member=me.mention if kind != "goodbye"
                                                     else plain_name(me), server=guild.name, member_count=count)
                    for kind in ("welcome", "welcome_dm", "goodbye")}
        after = ""
        if post:
            # Up to four calls to Discord follow (two posts, opening the DM and sending it): answer
            # within Discord's 3 s first.
            await defer(ctx, ephemeral=True)
            problems = (await carry_out_join(me, guild, join, autorole=False) + await send_welcome_dm(me, join)
                        + await carry_out_leave(guild, leave))
            sent = [what for what, planned in (("welcome", join.channel_message), ("DM", join.dm_text),
                                              ("goodbye", leave.channel_message)) if planned is not None]
            after += "\n\n**Sent for testing**: " + (", ".join(sent) if sent else "nothing, all are off") + "."
        else:
            checks = [channel_problem(guild, m.channel_id) for m in (join.channel_message, leave.channel_message)
                      if m is not None]
            checks.append(autorole_problem(guild, join.autorole_id))
            problems = list(join.problems + leave.problems) + [c for c in checks if c]
        if problems:
            after += "\n\n**Problems**:\n" + "\n".join(f"• {problem}" for problem in problems)
        embed = discord.Embed(title="Welcome and goodbye", description=fitted_overview(settings, previews, after))
        await answer(ctx, embed=embed, ephemeral=True, allowed_mentions=NO_PINGS)
