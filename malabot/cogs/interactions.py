"""What button handlers share: ephemeral answers and the error explanations slash commands get.

py-cord routes slash command errors to the bot's error handler, but a failing button callback only
reaches a log; `explained_errors` gives components the same behaviour: domain errors become the
user's ephemeral sentence, a file held elsewhere past the bot's wait gets the same "busy" answer, and
anything else is logged with the guild and answered with an apology; a handler whose own answer Discord
did not take is answered ANSWER_LOST, as a command is (its work may be done).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import discord

from malabot.bot import explain_failure
from malabot.cogs.unreachable import DISCORD_UNREACHABLE
from malabot.commands import ANSWER_LOST
from malabot.errors import MalabotError
from malabot.templates import within_one_message

log = logging.getLogger(__name__)


class AnswerLost(Exception):
    """Discord did not take a button handler's answer (an error past py-cord's retries, no connection)."""


async def answer_interaction(interaction: discord.Interaction, content: str, **kwargs: Any) -> None:
    """An ephemeral answer, or an ephemeral follow-up when the interaction was already answered;
    AnswerLost when Discord does not take it."""
    try:
        if interaction.response.is_done():
            await interaction.followup.send(content, ephemeral=True, **kwargs)
        else:
            await interaction.response.send_message(content, ephemeral=True, **kwargs)
    except (discord.HTTPException, *DISCORD_UNREACHABLE) as error:
        raise AnswerLost() from error


@contextlib.asynccontextmanager
async def explained_errors(interaction: discord.Interaction, what: str) -> AsyncIterator[None]:
    """Run a component handler; tell the user about any failure instead of leaving the button spinning."""
    try:
        yield
    except AnswerLost as lost:
        log.warning("%s in guild %s: Discord did not take its answer", what, interaction.guild_id,
                    exc_info=lost.__cause__)
        await _tell(interaction, ANSWER_LOST)
    except MalabotError as error:
        await _tell(interaction, error.message)
    except Exception as error:
        await _tell(interaction, explain_failure(error, what, interaction.guild_id))


async def _tell(interaction: discord.Interaction, message: str) -> None:
    try:  # cut to fit, as for slash commands: Discord refuses a longer answer
        await answer_interaction(interaction, within_one_message(message))
    except AnswerLost:
        log.warning("could not tell the user about an error in guild %s", interaction.guild_id)
