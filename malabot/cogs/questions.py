"""Questions asked with buttons (`/xp reset all`, `/mydata delete`) that still get an answer when stale.

A question's view lives in py-cord's memory only. After a restart, or once its time is up and closing
it failed, a press reaches no handler and Discord shows "This interaction failed". So each button of a
question gets a custom_id naming the bot run that asked and the deadline, and the listener here answers
the presses no live view takes: the question has expired, nothing changed, ask again.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import TYPE_CHECKING

import discord

from malabot.cogs.interactions import answer_interaction

if TYPE_CHECKING:
    from malabot.bot import MalaBot

log = logging.getLogger(__name__)

PREFIX = "malabot:question:"
EXPIRED = ("This question has expired (the bot restarted or the time to answer ran out): nothing was "
           "changed. Run the command again if you still want to.")
# A live view closes itself at its own timeout; the listener waits a little longer, so one press is
# never answered twice.
GRACE_SECONDS = 5


def question_custom_id(run: str, deadline: int, button: int) -> str:
    return f"{PREFIX}{run}:{deadline}:{button}"


def is_stale(custom_id: str, run: str, now: float) -> bool:
    """True for a question button that no live view of run `run` answers at `now`."""
    if not custom_id.startswith(PREFIX):
        return False
    asked_by, _, rest = custom_id.removeprefix(PREFIX).partition(":")
    deadline, _, _button = rest.partition(":")
    if not deadline.isdigit():
        return False  # not one of ours after all
    return asked_by != run or now > int(deadline) + GRACE_SECONDS


class Questions:
    """Stamps the buttons of the questions this bot run asks."""

    def __init__(self) -> None:
        self.run = secrets.token_hex(4)  # a fresh run after every restart

    def stamp(self, view: discord.ui.View) -> None:
        """Give each button of `view` an id that names this run and the view's deadline."""
        deadline = int(time.time() + (view.timeout or 0)) + 1
        for number, item in enumerate(view.children):
            if isinstance(item, discord.ui.Button):
                item.custom_id = question_custom_id(self.run, deadline, number)


class StaleQuestionsCog(discord.Cog, name="StaleQuestions"):
    def __init__(self, bot: MalaBot) -> None:
        self.questions = bot.questions

    @discord.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        if interaction.type is not discord.InteractionType.component or not interaction.data:
            return
        if not is_stale(str(interaction.data.get("custom_id", "")), self.questions.run, time.time()):
            return
        try:
            await interaction.response.edit_message(content=EXPIRED, view=None)
        except discord.HTTPException:
            log.info("could not close a stale question in guild %s", interaction.guild_id)
            await answer_interaction(interaction, EXPIRED)
