"""What button handlers share: ephemeral answers and the error explanations slash commands get.

py-cord routes slash command errors to the bot's error handler, but a failing button callback only
reaches a log; `explained_errors` gives components the same behaviour: domain errors become the
user's ephemeral sentence, a file held elsewhere past the bot's wait gets the same "busy" answer, and
anything else is logged with the guild and answered with an apology.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import discord

from malabot.bot import explain_failure
from malabot.errors import MalabotError
from malabot.templates import within_one_message

log = logging.getLogger(__name__)


async def answer_interaction(interaction: discord.Interaction, content: str, **kwargs: Any) -> None:
    """An ephemeral answer, or an ephemeral follow-up when the interaction was already answered."""
    if interaction.response.is_done():
        await interaction.followup.send(content, ephemeral=True, **kwargs)
    else:
        await interaction.response.send_message(content, ephemeral=True, **kwargs)


@contextlib.asynccontextmanager
async def explained_errors(interaction: discord.Interaction, what: str) -> AsyncIterator[None]:
    """Run a component handler; tell the user about any failure instead of leaving the button spinning."""
    try:
        yield
    except MalabotError as error:
        await _tell(interaction, error.message)
    except Exception as error:
        await _tell(interaction, explain_failure(error, what, interaction.guild_id))


async def _tell(interaction: discord.Interaction, message: str) -> None:
    try:  # cut to fit, as for slash commands: Discord refuses a longer answer
        await answer_interaction(interaction, within_one_message(message))
    except discord.HTTPException:
        log.warning("could not tell the user about an error in guild %s", interaction.guild_id)
