"""Verification: `/verify setup channel role` posts a panel whose button gives the verified role.

Optional, with `/config set`: `unverified_role_id` (taken away on verification),
`verify_min_account_age_days`, and `verify_review_channel_id` (requests then wait for a moderator with
Manage Roles to press Approve or Deny there). `/verify reset member` (Manage Roles, as reviewing) forgets
a member's request, a denial say, so they can press Verify again.

Both kinds of buttons survive a restart. The panel's button has one fixed custom_id and a persistent
view registered at start-up; the review buttons carry the member's id in their custom_id
("malabot:review:approve:<user_id>"), which no fixed view can match, so one listener parses them.
A pending request whose message is gone (deleted, or its review channel replaced) is posted again at
the member's next press: no moderator could answer it otherwise.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

import discord

from malabot.cogs.granting import check_may_be_given
from malabot.cogs.interactions import answer_interaction, explained_errors
from malabot.cogs.members import UNKNOWN_MEMBER, fresh_member, member_if_found
from malabot.cogs.posting import NO_PINGS, check_can_post, may_embed
from malabot.cogs.unreachable import DISCORD_UNREACHABLE
from malabot.commands import answer, defer, guild_id_of, member_permissions, permission_check
from malabot.errors import MalabotError, PermissionRefused, UserInputError
from malabot.features.verification.service import OutOfDateReview, ReviewResult, VerificationResult
from malabot.snowflakes import snowflake_from_text

if TYPE_CHECKING:
    from malabot.bot import MalaBot

log = logging.getLogger(__name__)

VERIFY_BUTTON = "malabot:verify"
REVIEW_PREFIX = "malabot:review:"

ReviewAction = Literal["approve", "deny"]


def review_custom_id(action: ReviewAction, user_id: int) -> str:
    return f"{REVIEW_PREFIX}{action}:{user_id}"


def parse_review_custom_id(custom_id: str) -> tuple[bool, int] | None:
    """(approve?, member id) of a review button, or None for any other custom_id."""
    if not custom_id.startswith(REVIEW_PREFIX):
        return None
    action, _, user = custom_id.removeprefix(REVIEW_PREFIX).partition(":")
    user_id = snowflake_from_text(user)
    if action not in ("approve", "deny") or user_id is None:
        return None
    return action == "approve", user_id


async def review_message_gone(guild: discord.Guild, result: VerificationResult) -> bool:
    """Whether a pending request's message is missing from the review channel (deleted, or the channel
    replaced since), so no moderator can answer it. Unknown (no read access, Discord failing): no."""
    if result.review_message_id is None:
        return False  # being posted by another press right now
    channel = guild.get_channel(result.review_channel_id) if result.review_channel_id else None
    if not isinstance(channel, discord.TextChannel):
        return True
    try:
        await channel.fetch_message(result.review_message_id)
    except discord.NotFound:
        return True
    except discord.HTTPException as error:
        log.info("guild %s: could not check the review message %s (%s)", guild.id, result.review_message_id,
                 error.status)
    return False


class VerifyPanel(discord.ui.View):
    """The panel's one button. Registered once with `bot.add_view`, so it answers after a restart."""

    def __init__(self, on_press: Callable[[discord.Interaction], Awaitable[None]]) -> None:
        super().__init__(timeout=None)
        self._on_press = on_press

    @discord.ui.button(label="Verify", style=discord.ButtonStyle.success, custom_id=VERIFY_BUTTON)
    async def verify(self, button: discord.ui.Button[VerifyPanel], interaction: discord.Interaction) -> None:
        await self._on_press(interaction)


def review_buttons(user_id: int) -> discord.ui.View:
    """Approve and Deny for one member's request; not stored in py-cord (the listener handles them)."""
    view = discord.ui.View(timeout=None, store=False)
    view.add_item(discord.ui.Button(label="Approve", style=discord.ButtonStyle.success,
                                    custom_id=review_custom_id("approve", user_id)))
    view.add_item(discord.ui.Button(label="Deny", style=discord.ButtonStyle.danger,
                                    custom_id=review_custom_id("deny", user_id)))
    return view


PANEL_TITLE = "Verification"


def panel_text(guild: discord.Guild) -> str:
    return f"Press **Verify** to get access to {guild.name}."


def panel_message(guild: discord.Guild, channel: discord.TextChannel) -> dict[str, Any]:
    """The panel as an embed where the bot may embed links, else as text (Discord would drop the embed
    and leave members a lone button), as the mod log does."""
    if may_embed(guild, channel):
        return {"embed": discord.Embed(title=PANEL_TITLE, description=panel_text(guild))}
    return {"content": f"**{PANEL_TITLE}**\n{panel_text(guild)}", "allowed_mentions": NO_PINGS}


VERIFIED_ROLE_GONE = "The verified role no longer exists; please ask an admin to run `/verify setup`."
MEMBER_GONE = "The member is no longer on the server."


async def apply_verified_roles(member: discord.Member, verified_role_id: int,
                               unverified_role_id: int | None) -> str | None:
    """Give the verified role and take the unverified one; repeating it changes nothing.

    Without the verified role the member is not verified: that raises. An unverified role the bot
    cannot take away does not undo the verification; it is returned as the problem to tell."""
    guild = member.guild
    verified = guild.get_role(verified_role_id)
    if verified is None:
        raise UserInputError(VERIFIED_ROLE_GONE)
    # Whatever the cache says: it may not show yet a role given or taken a moment ago (an auto-role),
    # and giving a held role or taking one not held changes nothing. Discord refuses both for a role
    # above the bot's, though: that matters only when the change was due.
    try:
        await member.add_roles(verified, reason="verification")
    except discord.Forbidden:
        if await holds_on_discord(member, verified) is not True:
            raise PermissionRefused("I am not allowed to give the verified role (I need Manage Roles and my "
                                    "role above the verification roles); please tell an admin.") from None
    except discord.NotFound as error:  # deleted after the lookup above (Discord knew before py-cord did)
        raise UserInputError(MEMBER_GONE if error.code == UNKNOWN_MEMBER else VERIFIED_ROLE_GONE) from None
    unverified = guild.get_role(unverified_role_id) if unverified_role_id is not None else None
    if unverified is None:
        return None
    try:
        await member.remove_roles(unverified, reason="verification")
    except discord.Forbidden:  # e.g. the role was moved above the bot's after it was configured
        if await holds_on_discord(member, unverified) is False:
            return None
        log.warning("guild %s: could not take the unverified role %s from member %s", guild.id, unverified.id,
                    member.id)
        return (f"I could not take away the unverified role {unverified.mention} (I need Manage Roles and my "
                "role above it); please tell an admin.")
    except discord.NotFound as error:  # a role deleted meanwhile leaves nothing to take away
        if error.code == UNKNOWN_MEMBER:
            raise UserInputError(MEMBER_GONE) from None
    return None


async def holds_on_discord(member: discord.Member, role: discord.Role) -> bool | None:
    """Whether the member holds the role as Discord has it now; None when Discord does not say."""
    try:
        fresh = await fresh_member(member.guild, member.id)
    except (discord.HTTPException, *DISCORD_UNREACHABLE):
        return None
    return fresh is not None and fresh.get_role(role.id) is not None


async def tell_member(member: discord.Member, text: str, guild_id: int) -> None:
    """A courtesy DM; members who closed their DMs simply do not get it."""
    try:
        await member.send(text)
    except (discord.HTTPException, *DISCORD_UNREACHABLE):
        log.info("guild %s: could not DM member %s about their verification", guild_id, member.id)


class VerificationCog(discord.Cog):
    # Discord shows /verify to members with Manage Roles, which all of it needs: `setup` to choose the role
    # it gives (check_may_be_given), `reset` as reviewing requests does. `setup` needs Manage Server too.
    verify = discord.SlashCommandGroup("verify", "Member verification",
                                       default_member_permissions=discord.Permissions(manage_roles=True),
                                       contexts={discord.InteractionContextType.guild})

    def __init__(self, bot: MalaBot) -> None:
        self.bot = bot
        self.service = bot.services.verification
        self.settings = bot.services.guild_settings
        self.panel = VerifyPanel(self.press_verify)
        bot.add_view(self.panel)
        # One press about a member at a time: a double click on a request whose message is gone would
        # otherwise post it twice, each press finding the message gone before the other re-posted it;
        # a second Approve would carry the approval out again before the first had given the roles;
        # and an unverified auto-role given as they verify would stay.
        self._role_changes = bot.member_role_changes

    @verify.command(name="setup", description="Post the verification panel and choose the role it gives",
                    checks=[permission_check(manage_guild=True)])
    @discord.option("channel", discord.TextChannel, description="Where to post the panel")
    @discord.option("role", discord.Role, description="The role verified members get")
    async def setup(self, ctx: discord.ApplicationContext, channel: discord.TextChannel,
                    role: discord.Role) -> None:
        guild_id = guild_id_of(ctx)
        guild = ctx.guild
        if guild is None:
            raise UserInputError("I cannot see this server yet; please try again in a moment.")
        check_may_be_given(ctx.author, role, "the verified role")
        # Every rule /config set applies (other role settings, level roles), before the panel is posted.
        await self.settings.check(guild_id, verified_role_id=role.id)
        check_can_post(guild, channel)
        # Posting is a Discord call (it may wait out a rate limit): answer Discord's 3 s deadline first.
        await defer(ctx, ephemeral=True)
        panel = await channel.send(**panel_message(guild, channel), view=self.panel)
        try:
            await self.settings.update(guild_id, ctx.author.id, verified_role_id=role.id)
        except Exception:  # another admin chose the role for something else meanwhile, or the file is busy
            # A panel left behind gives the old role, and the retry the admin is told to make posts another.
            with contextlib.suppress(discord.HTTPException, *DISCORD_UNREACHABLE):
                await panel.delete()
            raise
        await answer(ctx, f"Posted the verification panel in {channel.mention}; it gives {role.mention}. "
                          "Optional: `/config set` `unverified_role_id`, `verify_min_account_age_days`, "
                          "`verify_review_channel_id` (manual review).", ephemeral=True)

    @verify.command(name="reset", description="Forget a member's verification request (a denial, say) so they "
                                              "can press Verify again",
                    checks=[permission_check(manage_roles=True)])
    @discord.option("member", discord.Member, description="The member whose request to forget")
    async def reset(self, ctx: discord.ApplicationContext, member: discord.Member) -> None:
        guild_id = guild_id_of(ctx)
        forgotten = await self.service.reset(guild_id, member.id, ctx.author.id)
        if forgotten is None:
            raise UserInputError(f"{member.mention} has no verification request to reset.")
        try:
            await answer(ctx, f"{member.mention}'s verification request was reset; they can press Verify again.",
                         ephemeral=True, allowed_mentions=NO_PINGS)
        finally:  # the request is forgotten, whether or not Discord took the answer
            if forgotten.review_message_id is not None:
                await self._take_review_buttons(guild_id, forgotten.review_message_id)

    async def _take_review_buttons(self, guild_id: int, message_id: int) -> None:
        """Best effort: the buttons of a forgotten request's message would answer only "out of date"."""
        try:
            channel_id = (await self.settings.get(guild_id)).verify_review_channel_id
            channel = self.bot.get_channel(channel_id) if channel_id is not None else None
            if not isinstance(channel, discord.TextChannel):
                log.info("guild %s: no review channel to take the buttons of message %s from", guild_id, message_id)
                return
            await channel.get_partial_message(message_id).edit(view=None)
        except (discord.HTTPException, *DISCORD_UNREACHABLE, MalabotError, sqlite3.Error) as error:
            # Deleted, posted in a review channel changed since, or the settings unreadable just now.
            log.warning("guild %s: could not take the buttons of review message %s (%s)", guild_id, message_id,
                        error)

    # -- the panel's button -----------------------------------------------------------------------

    async def press_verify(self, interaction: discord.Interaction) -> None:
        async with explained_errors(interaction, "verify button"):
            guild_id = guild_id_of(interaction)
            member = interaction.user
            if not isinstance(member, discord.Member):
                raise UserInputError("I cannot see you as a member of this server yet; try again in a moment.")
            if member.pending:  # Membership Screening: a role given now would let them skip the rules
                raise UserInputError("Please accept this server's rules first (Discord shows them to you on "
                                     "joining); then press Verify again.")
            # Calls to Discord follow (roles, the review post): answer within its 3 s first.
            await interaction.response.defer(ephemeral=True, invisible=False)
            async with self._role_changes.holding((guild_id, member.id)):
                text = await self._answer_press(guild_id, member)
            await answer_interaction(interaction, text)

    async def _answer_press(self, guild_id: int, member: discord.Member) -> str:
        """Carry out a press of Verify; returns the member's answer."""
        result = await self.service.request(guild_id, member.id)
        if result.gives_role:
            problem = await apply_verified_roles(member, result.verified_role_id, result.unverified_role_id)
            text = "You are verified. Welcome!" if result.outcome == "verified" else "You are already verified."
            return text if problem is None else f"{text} But {problem}"
        if result.outcome == "pending_review":
            await self.send_for_review(member, result)
            return "Your request was sent to the moderators; you will get the role once one approves it."
        if result.review_never_posted or await review_message_gone(member.guild, result):
            await self.send_for_review(member, result)
            return ("Your request was no longer in front of the moderators (its message is gone), so I "
                    "sent it again; you will get the role once one approves it.")
        return "Your request is waiting for a moderator."

    async def send_for_review(self, member: discord.Member, result: VerificationResult) -> None:
        """Post the request with Approve/Deny; if that fails the request is withdrawn so a retry works."""
        guild = member.guild
        channel = guild.get_channel(result.review_channel_id) if result.review_channel_id else None
        try:
            if not isinstance(channel, discord.TextChannel):
                raise UserInputError("The review channel is missing; please tell an admin.")
            created = discord.utils.format_dt(result.account_created_at, "D")
            age = discord.utils.format_dt(result.account_created_at, "R")
            message = await channel.send(
                f"{member.mention} ({member}) asks to be verified. Account created {created} ({age}).",
                view=review_buttons(member.id), allowed_mentions=NO_PINGS)
        except (UserInputError, discord.HTTPException) as error:
            await self.service.withdraw(guild.id, member.id)
            if isinstance(error, UserInputError):
                raise
            raise UserInputError("I could not post your request in the review channel; please tell an admin.") \
                from None
        await self.service.attach_review_message(guild.id, member.id, message.id)

    # -- the moderators' buttons ------------------------------------------------------------------

    @discord.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        if interaction.type is not discord.InteractionType.component or not interaction.data:
            return
        parsed = parse_review_custom_id(str(interaction.data.get("custom_id", "")))
        if parsed is None:
            return
        approve, user_id = parsed
        async with explained_errors(interaction, "review button"):
            await self.review(interaction, user_id, approve=approve)

    async def review(self, interaction: discord.Interaction, user_id: int, *, approve: bool) -> None:
        guild_id = guild_id_of(interaction)
        granted = member_permissions(interaction)  # Manage Roles of the server, not of this channel
        if not (granted.manage_roles or granted.administrator):
            raise PermissionRefused("You need the Manage Roles permission to review verification requests.")
        # The decision waits for the server's file (busy for seconds during a backup, say), then roles
        # and a DM follow: answer within Discord's 3 s first, or the decision is stored but never carried out.
        await interaction.response.defer()
        # One decision per member at a time, with its roles and DM: a double click, or a second moderator,
        # finds the first approval carried out and is told so.
        async with self._role_changes.holding((guild_id, user_id)):
            await self._decide(interaction, guild_id, user_id, approve=approve)

    async def _decide(self, interaction: discord.Interaction, guild_id: int, user_id: int, *, approve: bool) -> None:
        assert interaction.user is not None  # every component interaction has its user
        message_id = interaction.message.id if interaction.message else None
        try:
            result = await self.service.review(guild_id, user_id, interaction.user.id, approve=approve,
                                               message_id=message_id)
        except OutOfDateReview:
            # Its buttons would only say so again; failing to take them changes nothing about the answer.
            with contextlib.suppress(discord.HTTPException, *DISCORD_UNREACHABLE):
                await interaction.edit_original_response(view=None)
            raise
        verdict = "approved" if result.approved else "denied"
        by = f" by <@{result.reviewer_id}>" if result.reviewer_id else ""
        unfinished = approve and not result.decided_now and await self._approval_unfinished(interaction, result)
        if not result.decided_now and not unfinished:  # an ephemeral follow-up: the message stays as it is
            await answer_interaction(interaction, f"This request was already {verdict}{by}.",
                                     allowed_mentions=NO_PINGS)
            return
        try:
            problem = await self._carry_out(interaction, result)
        except discord.HTTPException as error:
            if not result.approved:  # only the denial's DM was at stake
                raise
            # Discord failing (5xx, or 429 beyond py-cord's retries): the approval is stored but the roles
            # are not given. The request keeps its buttons, so pressing Approve again carries it out.
            log.warning("guild %s: Discord failed (%s) while giving %s the roles of an approval", guild_id,
                        error.status, user_id)
            await answer_interaction(interaction, f"Approved, but: Discord did not let me give the roles just "
                                                  f"now (error {error.status}); press Approve again in a moment.")
            return
        original = interaction.message.content if interaction.message else f"<@{user_id}>'s request"
        mark = "✅ Approved" if result.approved else "❌ Denied"
        try:
            await interaction.edit_original_response(content=f"{original}\n{mark}{by}.", view=None,
                                                     allowed_mentions=NO_PINGS)
        except (discord.HTTPException, *DISCORD_UNREACHABLE) as error:  # deleted meanwhile, say: the decision stands
            log.info("guild %s: the review message of %s's request could not show the decision (%s)",
                     guild_id, user_id, error)
        if problem is not None:
            await answer_interaction(interaction, f"Approved, but: {problem}")

    async def _approval_unfinished(self, interaction: discord.Interaction, result: ReviewResult) -> bool:
        """Whether an approval left its member without the verified role, or still with the unverified
        one (Discord failed as they were given or taken). Giving and taking roles twice changes nothing,
        so pressing Approve again simply carries it out."""
        guild = interaction.guild
        if not result.approved or guild is None or result.verified_role_id is None:
            return False
        member = await fresh_member(guild, result.user_id)
        if member is None:
            return False
        lacks_verified = member.get_role(result.verified_role_id) is None
        keeps_unverified = (result.unverified_role_id is not None
                            and member.get_role(result.unverified_role_id) is not None)
        return lacks_verified or keeps_unverified

    async def _carry_out(self, interaction: discord.Interaction, result: ReviewResult) -> str | None:
        """Give the roles of an approval and tell the member; returns what went wrong, if anything."""
        guild = interaction.guild
        if not result.approved:  # nothing to give: a member who has gone needs no answer either
            if guild is not None and (denied := await member_if_found(
                    guild, result.user_id, for_what="the DM of a denial")) is not None:
                await tell_member(denied, f"Your verification request in {guild.name} was denied.", guild.id)
            return None
        # Their roles as Discord has them: the auto-role given a moment ago may not be in the cache yet.
        member = await fresh_member(guild, result.user_id) if guild is not None else None
        if guild is None or member is None:
            return "the member is no longer on the server."
        assert result.verified_role_id is not None  # the service refuses approvals without one
        try:
            problem = await apply_verified_roles(member, result.verified_role_id, result.unverified_role_id)
        except (UserInputError, PermissionRefused) as error:
            return error.message
        await tell_member(member, f"You are verified in {guild.name}. Welcome!", guild.id)
        return problem
