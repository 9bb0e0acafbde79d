"""Cogs: thin Discord adapters over the services. `all_cogs` is the one list the bot loads."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord

if TYPE_CHECKING:
    from malabot.bot import MalaBot


def all_cogs(bot: MalaBot) -> list[discord.Cog]:
    from malabot.cogs.backup import BackupCog
    from malabot.cogs.birthdays import BirthdaysCog
    from malabot.cogs.checkins import CheckinCog
    from malabot.cogs.config import ConfigCog
    from malabot.cogs.lifecycle import Lifecycle
    from malabot.cogs.moderation import ModerationCog
    from malabot.cogs.mydata import MyDataCog
    from malabot.cogs.questions import StaleQuestionsCog
    from malabot.cogs.screening import ScreeningCog
    from malabot.cogs.utility import UtilityCog
    from malabot.cogs.verification import VerificationCog
    from malabot.cogs.welcome import WelcomeCog
    from malabot.cogs.xp import XpCog
    from malabot.cogs.xp_admin import XpAdminCog

    return [Lifecycle(bot), ConfigCog(bot), BirthdaysCog(bot), XpCog(bot), XpAdminCog(bot), CheckinCog(bot),
            ModerationCog(bot), MyDataCog(bot), UtilityCog(bot),
            VerificationCog(bot), WelcomeCog(bot), BackupCog(bot), StaleQuestionsCog(bot), ScreeningCog(bot)]
