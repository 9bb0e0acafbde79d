"""MalaBot: the py-cord bot. It holds the services built by the composition root and loads the cogs."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import discord

from malabot.cogs.unreachable import DISCORD_UNREACHABLE
from malabot.commands import ANSWER_LOST, CommandContext, RefusedCheck, answer, defer_when_slow, only_in_guilds
from malabot.errors import InvalidGuildId, MalabotError, TenantError, TenantsLocked
from malabot.keyed_locks import KeyedLocks
from malabot.member_list_loading import MemberListLoader
from malabot.member_lists import MemberListRetry
from malabot.templates import within_one_message
from malabot.tenancy.failures import BUSY_ANSWER, is_busy

if TYPE_CHECKING:
    from malabot.app import Services

log = logging.getLogger(__name__)

# Errors about files and processes are for the operator's log, not for a member's eyes.
OPERATOR_ERRORS = (TenantError, TenantsLocked, InvalidGuildId)

APOLOGY = "Sorry, something went wrong on our side. The error was logged; please try again later."


def intents() -> discord.Intents:
    wanted = discord.Intents.default()
    wanted.members = True  # member join/leave events and chunking for leaderboards
    return wanted


class MalaBot(discord.Bot):
    def __init__(self, services: Services, **options: Any) -> None:
        options.setdefault("intents", intents())
        options.setdefault("cache_default_sounds", False)
        # Member lists are loaded after on_ready, server by server (see member_list_loading.py).
        options.setdefault("chunk_guilds_at_startup", False)
        options.setdefault("allowed_mentions", discord.AllowedMentions(everyone=False, roles=False))
        if services.settings.owner_ids:  # else py-cord asks Discord who owns the application
            options.setdefault("owner_ids", set(services.settings.owner_ids))
        super().__init__(**options)
        self.services = services
        # Set once every guild the bot is in has its data file ready (after on_ready).
        self.guilds_opened = asyncio.Event()
        # A member list Discord refused (RATE_LIMITED) is asked for again, not waited for forever.
        self.member_list_retry = MemberListRetry(self)
        self.member_lists = MemberListLoader(self)
        self.add_check(only_in_guilds)
        from malabot.cogs import all_cogs
        from malabot.cogs.admin_notices import AdminNotices
        from malabot.cogs.questions import Questions

        self.questions = Questions()  # stamps confirmation buttons with this run
        # Role changes about one member that decide from their roles run one at a time: a Verify press,
        # a moderator's decision on their request, the auto-role after Membership Screening.
        self.member_role_changes: KeyedLocks[tuple[int, int]] = KeyedLocks()
        self.admin_notices = AdminNotices(services.guild_settings, services.clock)

        for cog in all_cogs(self):
            self.add_cog(cog)

    async def close(self) -> None:
        self.member_list_retry.close()
        self.member_lists.close()
        await super().close()

    async def get_application_context(self, interaction: discord.Interaction,
                                      cls: Any = CommandContext) -> discord.ApplicationContext:
        """Commands run in a CommandContext, which answer() needs to keep an answer's visibility."""
        return await super().get_application_context(interaction, cls=cls)

    async def invoke_application_command(self, ctx: discord.ApplicationContext) -> None:
        """Run a command; one still silent after DEFER_AFTER seconds (waits.defer_after) is deferred, so
        Discord's 3 s deadline does not drop it while it waits (for a server's file held by another program, say)."""
        watchdog = asyncio.create_task(defer_when_slow(ctx, self.services.waits.defer_after), name="defer-when-slow")
        try:
            await super().invoke_application_command(ctx)
        finally:
            watchdog.cancel()

    async def on_error(self, event_method: str, *args: Any, **kwargs: Any) -> None:
        """A listener failed: log it with the guild it was about; the bot carries on."""
        log.exception("listener %s failed in guild %s", event_method, guild_of_event(args))

    async def on_application_command_error(
        self, context: discord.ApplicationContext, exception: discord.DiscordException
    ) -> None:
        await self.explain_error(context, exception)

    async def explain_error(self, ctx: discord.ApplicationContext, exception: BaseException) -> None:
        """Domain errors and refused checks become ephemeral answers; anything else is logged with
        the guild id and answered with a short apology, never a traceback. After an answer Discord
        did not take, the user reads ANSWER_LOST instead: the command may have done its work."""
        error = exception.original if isinstance(exception, discord.ApplicationCommandInvokeError) else exception
        name = ctx.command.qualified_name if ctx.command else "?"
        if isinstance(ctx, CommandContext) and ctx.answer_lost:
            # Discord failing (5xx, 429 past the retries, no connection) is a warning; a refusal of the
            # answer itself (400: too long, say) is the bot's error.
            refused = isinstance(error, discord.HTTPException) and error.status < 500 and error.status != 429
            log.log(logging.ERROR if refused else logging.WARNING, "command /%s in guild %s: Discord did not "
                    "take its answer", name, ctx.guild_id, exc_info=error)
            message = ANSWER_LOST
        elif isinstance(error, MalabotError | RefusedCheck) and not isinstance(error, OPERATOR_ERRORS):
            message = error.message
        elif isinstance(error, discord.CheckFailure):
            message = "You are not allowed to use this command."
        else:
            message = explain_failure(error, f"command /{name}", ctx.guild_id)
        try:  # cut to fit: Discord refuses a longer answer, and the user would be told nothing
            await answer(ctx, within_one_message(message), ephemeral=True)
        except (discord.HTTPException, *DISCORD_UNREACHABLE):
            log.warning("could not tell the user about an error in guild %s", ctx.guild_id)


def explain_failure(error: BaseException, what: str, guild_id: int | None, *, busy: str = BUSY_ANSWER,
                    otherwise: str = APOLOGY) -> str:
    """The user's sentence for an unexpected failure of a command or a component, logged with the guild.

    A file another program held past the bot's wait gets its own answer: it usually lets go, so trying
    again is the useful advice. A handler may word both answers its own way."""
    if is_busy(error):
        log.warning("%s in guild %s: the server's file stayed locked", what, guild_id, exc_info=error)
        return busy
    log.error("%s failed in guild %s", what, guild_id, exc_info=error)
    return otherwise


def guild_of_event(args: tuple[Any, ...]) -> int | None:
    """Best-effort guild id of an event's arguments, for logs."""
    for item in args:
        guild_id = getattr(item, "guild_id", None)
        if guild_id is None and getattr(item, "guild", None) is not None:
            guild_id = item.guild.id
        if guild_id is None and isinstance(item, discord.Guild):
            guild_id = item.id
        if guild_id is not None:
            return int(guild_id)
    return None
