"""`/mydata export` and `/mydata delete`: a member's own data in the server they ask from.

Export sends the JSON file ephemerally, gzip-compressed when it is over Discord's upload limit (and
answers why not when even that is too large). Delete asks first, with buttons only the asking member
can press; nothing is erased unless they confirm before the buttons time out.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import discord

from malabot.bot import explain_failure
from malabot.cogs import levelups
from malabot.cogs.birthday_effects import DiscordBirthdayEffects
from malabot.cogs.unreachable import DISCORD_UNREACHABLE
from malabot.commands import answer, defer, guild_id_of, upload_limit
from malabot.features.backups.rules import size_text
from malabot.features.mydata.service import DELETE_CONFIRMATION
from malabot.texts import counted, plural

if TYPE_CHECKING:
    from malabot.bot import MalaBot

log = logging.getLogger(__name__)

CONFIRM_LABEL = "Delete my data"
CANCEL_LABEL = "Cancel"
NOT_YOURS = "These buttons belong to whoever asked for the deletion; use /mydata delete yourself."
TIMED_OUT = "No answer in time: nothing was deleted."
CANCELLED = "Cancelled: nothing was deleted."
FAILED = "Sorry, something went wrong on our side: nothing may have been deleted. Please try again later."
# The erase is one transaction: a file that stayed locked erased nothing.
BUSY = "The server's data is busy right now: nothing was deleted. Please run /mydata delete again in a moment."

Erase = Callable[[], Awaitable[int]]  # erases the member's data; how many rows changed
AfterErase = Callable[[], Awaitable[None]]  # what follows on Discord once the member has the answer


class ConfirmDelete(discord.ui.View):
    """Confirm / Cancel under the warning; only `owner_id` may press, and only until `timeout`."""

    def __init__(self, owner_id: int, erase: Erase, *, then: AfterErase, timeout: float) -> None:
        super().__init__(timeout=timeout, disable_on_timeout=False)
        self.owner_id = owner_id
        self.erase = erase
        self.then = then
        self.question: discord.Interaction | None = None  # the interaction whose answer holds the buttons

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user is not None and interaction.user.id == self.owner_id:
            return True
        await interaction.response.send_message(NOT_YOURS, ephemeral=True)
        return False

    @discord.ui.button(label=CONFIRM_LABEL, style=discord.ButtonStyle.danger)
    async def confirm(self, button: discord.ui.Button[ConfirmDelete], interaction: discord.Interaction) -> None:
        self.stop()
        # The erase waits for the server's file (busy for seconds during a backup, say): answer Discord's
        # 3 s deadline first, or the data is erased and the member only sees "This interaction failed".
        await interaction.response.defer()
        changed = await self.erase()
        # The data is gone whatever Discord says now: never answer "nothing may have been deleted".
        try:
            await interaction.edit_original_response(
                content=f"Done: your data in this server is erased ({counted(changed, 'row')} "
                        "changed). Moderation cases about you are kept.", view=None)
        except (discord.HTTPException, *DISCORD_UNREACHABLE):  # the member dismissed the question meanwhile, say
            log.info("guild %s: could not show member %s that their data is erased", interaction.guild_id,
                     self.owner_id)
        try:
            await self.then()
        except (discord.HTTPException, *DISCORD_UNREACHABLE):
            log.warning("guild %s: after erasing member %s's data, Discord refused a follow-up",
                        interaction.guild_id, self.owner_id, exc_info=True)

    @discord.ui.button(label=CANCEL_LABEL, style=discord.ButtonStyle.secondary)
    async def cancel(self, button: discord.ui.Button[ConfirmDelete], interaction: discord.Interaction) -> None:
        self.stop()
        await interaction.response.edit_message(content=CANCELLED, view=None)

    async def on_timeout(self) -> None:
        if self.question is None:
            return
        try:
            await self.question.edit_original_response(content=TIMED_OUT, view=None)
        except discord.HTTPException:
            log.info("could not close an expired /mydata delete question")

    async def on_error(self, error: Exception, item: Any,
                       interaction: discord.Interaction) -> None:
        # The question is closed either way: the view has stopped, so its buttons would answer nothing.
        text = explain_failure(error, "/mydata delete", interaction.guild_id, busy=BUSY, otherwise=FAILED)
        try:
            if interaction.response.is_done():
                await interaction.edit_original_response(content=text, view=None)
            else:
                await interaction.response.edit_message(content=text, view=None)
        except discord.HTTPException:
            log.warning("could not tell the member about a failed deletion in guild %s", interaction.guild_id)


class MyDataCog(discord.Cog, name="MyData"):
    mydata = discord.SlashCommandGroup("mydata", "Your own data in this server",
                                       contexts={discord.InteractionContextType.guild})

    def __init__(self, bot: MalaBot, *, confirm_timeout: float = 60.0) -> None:
        self.bot = bot
        self.service = bot.services.mydata
        self.birthday_effects = DiscordBirthdayEffects(bot)
        # How long the delete buttons stay usable; tests shorten it on the running cog.
        self.confirm_timeout = confirm_timeout

    @mydata.command(name="export", description="Get everything this bot stores about you here, as a JSON file")
    async def export(self, ctx: discord.ApplicationContext) -> None:
        guild_id, limit = guild_id_of(ctx), upload_limit(ctx)
        await defer(ctx, ephemeral=True)
        exported = await self.service.export(guild_id, ctx.author.id, limit)
        rows = exported.row_count
        text = f"Everything this bot stores about you in this server: {rows:,} {plural(rows, 'row')}."
        if exported.compressed:
            text += (f" It is compressed (gzip): as plain JSON it is more than the {size_text(limit)} Discord "
                     "lets me upload here.")
        await answer(ctx, text, file=discord.File(io.BytesIO(exported.content), filename=exported.filename),
                     ephemeral=True)

    @mydata.command(name="delete", description="Erase your data in this server (asks first)")
    async def delete(self, ctx: discord.ApplicationContext) -> None:
        guild_id, user_id = guild_id_of(ctx), ctx.author.id

        # The birthday pass takes a birthday role back by the row the erase deletes: it is taken back
        # here instead, with the level roles, once the member has the answer (Discord calls can be slow).
        birthday_roles: list[int] = []

        async def erase() -> int:
            birthday_roles.extend(await self.bot.services.birthdays.roles_held_by(guild_id, user_id))
            return (await self.service.delete(guild_id, user_id)).total

        async def take_back_roles() -> None:
            # Nothing remembers a birthday role once its row is erased: one not taken back now is the
            # admins' to take off by hand, and they are told so.
            kept = [role_id for role_id in birthday_roles if not await self._took_back(guild_id, user_id, role_id)]
            if (guild := self.bot.get_guild(guild_id)) is None:
                return
            await self.bot.admin_notices.tell(guild, [birthday_role_kept(user_id, role_id) for role_id in kept],
                                              about="Erasing a member's data")
            # Their XP is gone, so is their level: their level roles go as after `/xp reset member`.
            outcome = await levelups.after_stored_work(
                levelups.sync_roles(self.bot.services, guild, user_id), guild,
                failed=f"Taking the level roles of <@{user_id}> after they erased their data failed ({{reason}}); "
                       "an admin can take them off by hand.")
            await self.bot.admin_notices.tell(guild, outcome.problems)

        view = ConfirmDelete(user_id, erase, then=take_back_roles, timeout=self.confirm_timeout)
        self.bot.questions.stamp(view)
        await answer(ctx, DELETE_CONFIRMATION, view=view, ephemeral=True)
        view.question = ctx.interaction

    async def _took_back(self, guild_id: int, user_id: int, role_id: int) -> bool:
        try:
            return await self.birthday_effects.remove_role(guild_id, user_id, role_id)
        except (discord.HTTPException, *DISCORD_UNREACHABLE):  # a 5xx past py-cord's retries, say
            log.warning("guild %s: could not take the birthday role %s back from member %s after their "
                        "erasure", guild_id, role_id, user_id, exc_info=True)
            return False


def birthday_role_kept(user_id: int, role_id: int) -> str:
    return (f"<@{user_id}> erased their data on their birthday, and I could not take the birthday role "
            f"<@&{role_id}> back from them; please take it off by hand.")
