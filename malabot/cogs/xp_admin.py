"""Admin side of XP: `/xp add|remove|set`, `/xp reset member|all`, `/levelrole add|remove|list`.

Every edit goes through XpAdmin, which writes it and its audit row in one transaction. After an XP
edit the member's level roles follow their new level (both ways) and a level-up is announced;
anything Discord refused is told to the admin in an ephemeral follow-up. `/xp reset all` asks first,
with buttons only the admin who asked can use.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord
from discord.ui.item import ViewItem

from malabot.bot import explain_failure
from malabot.cogs import levelups
from malabot.cogs.admin_notices import AdminNotices, tell_admin_else_mod_log
from malabot.cogs.boards import member_target
from malabot.cogs.granting import check_may_be_given
from malabot.cogs.posting import NO_PINGS
from malabot.cogs.unreachable import DISCORD_UNREACHABLE
from malabot.commands import CommandContext, admin_group, answer, fit_lines, guild_id_of
from malabot.errors import MalabotError
from malabot.features.xp.models import LevelChange
from malabot.features.xp.rules import MAX_ROLE_LEVEL, MAX_TOTAL_XP
from malabot.texts import plural

if TYPE_CHECKING:
    from malabot.app import Services
    from malabot.bot import MalaBot

log = logging.getLogger(__name__)

CONFIRM_SECONDS = 120
# The reset is one transaction: when it fails, nobody's XP changed.
RESET_BUSY = ("The server's data is busy right now: nobody's XP was reset. "
              "Please run /xp reset all again in a moment.")
RESET_FAILED = "Sorry, something went wrong on our side: nobody's XP was reset. Please try again later."
MODE_EXPLAINED = {
    "stack": "members keep every level role they reached",
    "replace": "members keep only the role of their highest level",
}


def edit_summary(done: str, change: LevelChange) -> str:
    level = f"level {change.new_level}"
    if change.level_changed:
        level += f" (was {change.old_level})"
    return f"{done}: they now have {change.total_xp:,} XP, {level}."


class XpAdminCog(discord.Cog):
    xp = admin_group("xp", "Edit members' XP (every edit is audited)", manage_guild=True)
    reset = xp.create_subgroup("reset", "Put XP back to 0")
    levelrole = admin_group("levelrole", "Roles members get when they reach a level", manage_roles=True)

    def __init__(self, bot: MalaBot) -> None:
        self.bot = bot
        self.services = bot.services
        self.admin = bot.services.xp_admin

    # -- /xp ----------------------------------------------------------------------------------------

    @xp.command(name="add", description="Give a member XP")
    @discord.option("member", discord.Member, description="Who gets the XP")
    @discord.option("amount", int, description="How much XP to add", min_value=1, max_value=MAX_TOTAL_XP)
    async def add(self, ctx: discord.ApplicationContext, member: discord.Member, amount: int) -> None:
        target = member_target(ctx, member)
        change = await self.admin.add(guild_id_of(ctx), ctx.author.id, target.id, amount)
        await self._after_edit(ctx, change, f"Added {amount:,} XP to {target.mention}")

    @xp.command(name="remove", description="Take XP from a member (never below 0)")
    @discord.option("member", discord.Member, description="Whose XP")
    @discord.option("amount", int, description="How much XP to take", min_value=1, max_value=MAX_TOTAL_XP)
    async def remove(self, ctx: discord.ApplicationContext, member: discord.Member, amount: int) -> None:
        target = member_target(ctx, member)
        change = await self.admin.remove(guild_id_of(ctx), ctx.author.id, target.id, amount)
        await self._after_edit(ctx, change, f"Removed up to {amount:,} XP from {target.mention}")

    @xp.command(name="set", description="Set a member's total XP")
    @discord.option("member", discord.Member, description="Whose XP")
    @discord.option("amount", int, description="Their new total XP", min_value=0, max_value=MAX_TOTAL_XP)
    async def set_(self, ctx: discord.ApplicationContext, member: discord.Member, amount: int) -> None:
        target = member_target(ctx, member)
        change = await self.admin.set(guild_id_of(ctx), ctx.author.id, target.id, amount)
        await self._after_edit(ctx, change, f"Set the XP of {target.mention} to {amount:,}")

    @reset.command(name="member", description="Put one member's XP back to 0")
    @discord.option("member", discord.Member, description="Whose XP")
    async def reset_member(self, ctx: discord.ApplicationContext, member: discord.Member) -> None:
        target = member_target(ctx, member)
        change = await self.admin.reset(guild_id_of(ctx), ctx.author.id, target.id)
        await self._after_edit(ctx, change, f"Reset the XP of {target.mention}")

    @reset.command(name="all", description="Put every member's XP back to 0 (asks first)")
    async def reset_all(self, ctx: discord.ApplicationContext) -> None:
        guild_id_of(ctx)
        view = ConfirmResetAll(self.services, ctx.author.id, self.bot.admin_notices)
        self.bot.questions.stamp(view)
        await answer(ctx, "Reset the XP of **every member** of this server to 0? Level roles are taken "
                          "away too. This cannot be undone.", view=view, ephemeral=True)

    async def _after_edit(self, ctx: discord.ApplicationContext, change: LevelChange, done: str) -> None:
        try:
            await answer(ctx, edit_summary(done, change), ephemeral=True, allowed_mentions=NO_PINGS)
        finally:  # the edit is stored, whether or not Discord took the answer: the roles follow it
            await self._roles_follow(ctx, change)

    async def _roles_follow(self, ctx: discord.ApplicationContext, change: LevelChange) -> None:
        if ctx.guild is None:
            return
        outcome = await levelups.apply_after_stored_work(self.services, ctx.guild, change, channel_id=ctx.channel_id)
        if isinstance(ctx, CommandContext) and ctx.answer_lost:  # the admin's answers do not get through
            await self.bot.admin_notices.tell(ctx.guild, outcome.problems)
        elif (problems := levelups.problems_text(outcome)) is not None:
            await tell_admin_else_mod_log(
                self.bot.admin_notices, ctx.guild,
                lambda: ctx.followup.send(problems, ephemeral=True, allowed_mentions=NO_PINGS), outcome.problems)

    # -- /levelrole ---------------------------------------------------------------------------------

    @levelrole.command(name="add", description="Give a role to members who reach a level")
    @discord.option("level", int, description="The level that gives the role", min_value=1,
                    max_value=MAX_ROLE_LEVEL)
    @discord.option("role", discord.Role, description="The role to give")
    async def levelrole_add(self, ctx: discord.ApplicationContext, level: int, role: discord.Role) -> None:
        guild_id = guild_id_of(ctx)
        check_may_be_given(ctx.author, role, "a level role")
        replaced = await self.admin.add_level_role(guild_id, ctx.author.id, level, role.id)
        mode = (await self.services.guild_settings.get(guild_id)).level_role_mode
        text = f"Members who reach level {level} get {role.mention}."
        if replaced is not None:
            text += f" It replaces <@&{replaced.role_id}> at that level (members who have that role keep it)."
        text += (f" Mode `{mode}`: {MODE_EXPLAINED[mode]}. Members already at level {level} or above "
                 "get it at their next level change.")
        await answer(ctx, text, ephemeral=True, allowed_mentions=NO_PINGS)

    @levelrole.command(name="remove", description="Stop giving the role of a level")
    @discord.option("level", int, description="The level whose role to stop giving", min_value=1,
                    max_value=MAX_ROLE_LEVEL)
    async def levelrole_remove(self, ctx: discord.ApplicationContext, level: int) -> None:
        removed = await self.admin.remove_level_role(guild_id_of(ctx), ctx.author.id, level)
        await answer(ctx, f"Level {level} no longer gives <@&{removed.role_id}>. Members who have it keep it.",
                     ephemeral=True, allowed_mentions=NO_PINGS)

    @levelrole.command(name="list", description="The roles given at each level, and any problem with them")
    async def levelrole_list(self, ctx: discord.ApplicationContext) -> None:
        guild_id = guild_id_of(ctx)
        level_roles = await self.services.xp.level_roles(guild_id)
        mode = (await self.services.guild_settings.get(guild_id)).level_role_mode
        if not level_roles:
            await answer(ctx, "No level roles yet. Add one with `/levelrole add`.", ephemeral=True)
            return
        lines = [f"**Level roles** (mode `{mode}`: {MODE_EXPLAINED[mode]})"]
        for level_role in level_roles:
            role = ctx.guild.get_role(level_role.role_id) if ctx.guild else None
            if role is None:
                status = f"⚠️ the role (id {level_role.role_id}) no longer exists"
            else:
                problem = levelups.why_not_assignable(role)
                status = role.mention + (f" ⚠️ {problem}" if problem else "")
            lines.append(f"• Level {level_role.level}: {status}")
        await answer(ctx, fit_lines(lines, "… and {count} more levels."), ephemeral=True,
                     allowed_mentions=NO_PINGS)


class ConfirmResetAll(discord.ui.View):
    """The question `/xp reset all` asks: reset everyone, or cancel. Answered once, by the admin who asked."""

    def __init__(self, services: Services, admin_id: int, notices: AdminNotices) -> None:
        super().__init__(timeout=CONFIRM_SECONDS, disable_on_timeout=True)
        self.services = services
        self.admin_id = admin_id
        self.notices = notices  # the mod log: for problems the admin's own answer could not carry
        self.answered = False

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user is not None and interaction.user.id == self.admin_id and not self.answered:
            return True
        reason = "This was already answered." if self.answered else "Only the admin who asked can answer this."
        await interaction.response.send_message(reason, ephemeral=True)
        return False

    @discord.ui.button(label="Reset everyone's XP", style=discord.ButtonStyle.danger)
    async def confirm(self, _button: discord.ui.Button[ConfirmResetAll], interaction: discord.Interaction) -> None:
        # Answered now, but the view stays registered while the reset runs: a second press meanwhile
        # is told "This was already answered." by interaction_check instead of failing unanswered.
        self.answered = True
        try:
            await self._reset_everyone(interaction)
        finally:
            self.stop()

    async def _reset_everyone(self, interaction: discord.Interaction) -> None:
        guild = interaction.guild
        if guild is None:
            return
        # Discord wants an answer within 3 s; resetting a big server (or waiting for its file) can take longer.
        await interaction.response.defer()
        try:
            members = await self.services.xp_admin.reset_all(guild.id, self.admin_id)
        except Exception as error:
            # The question is closed with the reason rather than left with buttons that would only
            # say "already answered".
            text = error.message if isinstance(error, MalabotError) else explain_failure(
                error, "/xp reset all", guild.id, busy=RESET_BUSY, otherwise=RESET_FAILED)
            await interaction.edit_original_response(content=text, view=None)
            return
        # Everyone's XP is reset whatever Discord says now: never "try again", and the level roles follow.
        try:
            await interaction.edit_original_response(
                content=f"Done: the XP of {members:,} {plural(members, 'member')} is back to 0.", view=None)
        except (discord.HTTPException, *DISCORD_UNREACHABLE):
            log.warning("guild %s: could not show the admin that everyone's XP is reset", guild.id, exc_info=True)
        outcome = await levelups.after_stored_work(
            levelups.remove_all_level_roles(self.services, guild), guild,
            failed="Taking the level roles after everyone's XP was reset failed ({reason}); each member's "
                   "roles follow at their next level change.")
        if (problems := levelups.problems_text(outcome)) is not None:
            await tell_admin_else_mod_log(
                self.notices, guild,
                lambda: interaction.followup.send(problems, ephemeral=True, allowed_mentions=NO_PINGS),
                outcome.problems)

    async def on_timeout(self) -> None:
        # Once answered the message is the answer (the reset may still be taking roles when the
        # question's time runs out): its buttons must not come back, even disabled.
        if not self.answered:
            await super().on_timeout()

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary)
    async def cancel(self, _button: discord.ui.Button[ConfirmResetAll], interaction: discord.Interaction) -> None:
        self.answered = True
        try:  # registered until answered, as confirm: a second press meanwhile is told it was answered
            await interaction.response.edit_message(content="Cancelled: nobody's XP changed.", view=None)
        finally:
            self.stop()

    async def on_error(self, error: Exception, item: ViewItem[Any],
                       interaction: discord.Interaction) -> None:
        if isinstance(error, MalabotError):
            message = error.message
        else:  # a file another program held past the bot's wait gets the busy answer, as commands do
            message = explain_failure(error, "/xp reset all", interaction.guild_id)
        if interaction.response.is_done():
            await interaction.followup.send(message, ephemeral=True)
        else:
            await interaction.response.send_message(message, ephemeral=True)
