"""`/config show|set|reset`: every per-server setting, validated, for members with Manage Server."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord

from malabot.cogs.granting import check_may_be_given
from malabot.cogs.posting import check_can_post
from malabot.commands import MESSAGE_LIMIT, admin_group, answer, guild_id_of
from malabot.errors import UserInputError, quoted
from malabot.features.settings.parsing import display_value, id_kind, parse_setting_value, setting_names
from malabot.guild_settings import GIVEN_ROLE_SETTINGS, GuildSettings

if TYPE_CHECKING:
    from malabot.bot import MalaBot

# The longest value `/config set` repeats in full: the sentence around it must fit in one message too.
SHOWN_IN_FULL = MESSAGE_LIMIT - 100

# Settings whose change moves members' levels or roles. Roles are not resynced for everyone at once (a
# big server would mean thousands of role edits against Discord's limits); each member's roles follow
# at their next level change, as with a new `/levelrole`. The admin is told so.
CHANGE_NOTES = {
    "level_curve": "Levels now follow this curve; each member's level roles catch up at their next level change.",
    "level_role_mode": "Each member's level roles follow this mode at their next level change.",
}


def shown_value(name: str, value: Any, *, brief: bool = False) -> str:
    """A setting's value as Discord shows it: texts as typed, not as markdown."""
    return display_value(name, value, brief=brief, literal=discord.utils.escape_markdown)


def changed_text(sentence: str, setting: str) -> str:
    """The answer to a change of `setting`, with what it does to members when that is not obvious."""
    note = CHANGE_NOTES.get(setting)
    return sentence if note is None else f"{sentence} {note}"


async def _setting_choices(ctx: discord.AutocompleteContext) -> list[str]:
    typed = (ctx.value or "").lower()
    return [name for name in setting_names() if typed in name][:25]


def check_references(guild: discord.Guild | None, author: discord.Member | discord.User, name: str,
                     value: object) -> None:
    """Channels and roles named in a setting must exist in this server. A single channel is where the
    bot posts, so it must be a text channel; a list (no-XP channels) takes any channel members chat
    in, but not a category (its channels are not covered by it); the bot must be able to post in a
    single one. A role the bot hands out must be one
    `author` could give themselves."""
    kind = id_kind(name)
    if kind is None or value is None or guild is None:
        return
    many = isinstance(value, tuple)
    for item in value if isinstance(value, tuple) else (value,):  # (mypy narrows on isinstance only)
        assert isinstance(item, int)
        found = guild.get_channel(item) if kind == "channel" else guild.get_role(item)
        if found is None:
            raise UserInputError(f"`{name}`: there is no {kind} with id {item} in this server.")
        if isinstance(found, discord.CategoryChannel):
            raise UserInputError(f"`{name}`: {found.mention} is a category; name its channels instead.")
        if kind == "channel" and not many:
            if not isinstance(found, discord.TextChannel):
                raise UserInputError(f"`{name}`: {found.mention} is not a text channel; I post there, so "
                                     "choose a text channel.")
            check_can_post(guild, found)
        if isinstance(found, discord.Role) and name in GIVEN_ROLE_SETTINGS:
            check_may_be_given(author, found, f"`{name}`")


def settings_summary(settings: GuildSettings) -> str:
    changed = settings.stored_values()
    lines = []
    for name in setting_names():
        marker = "•" if name in changed else "◦"
        lines.append(f"{marker} `{name}`: {shown_value(name, getattr(settings, name), brief=True)}")
    return "\n".join(lines)


class ConfigCog(discord.Cog):
    config = admin_group("config", "Server settings", manage_guild=True)

    def __init__(self, bot: MalaBot) -> None:
        self.bot = bot
        self.settings = bot.services.guild_settings

    @config.command(name="show", description="Show every setting of this server")
    async def show(self, ctx: discord.ApplicationContext) -> None:
        settings = await self.settings.get(guild_id_of(ctx))
        embed = discord.Embed(title="Server settings", description=settings_summary(settings))
        embed.set_footer(text="• changed here  ◦ default  (long values shortened)")
        await answer(ctx, embed=embed, ephemeral=True)

    @config.command(name="set", description="Change one setting")
    @discord.option("setting", str, description="Setting name", autocomplete=_setting_choices)
    @discord.option("value", str, description="New value: a number, on/off, #channel, @role, text, or none")
    async def set_(self, ctx: discord.ApplicationContext, setting: str, value: str) -> None:
        guild_id = guild_id_of(ctx)
        parsed = parse_setting_value(setting, value)
        if isinstance(parsed, list | tuple) and id_kind(setting) is not None:
            parsed = tuple(parsed)
        check_references(ctx.guild, ctx.author, setting, parsed)
        updated = await self.settings.update(guild_id, ctx.author.id, **{setting: parsed})
        shown = shown_value(setting, getattr(updated, setting))
        if len(shown) > SHOWN_IN_FULL:  # a long list: Discord would refuse the answer, the value is stored
            shown = shown_value(setting, getattr(updated, setting), brief=True)
        await answer(ctx, changed_text(f"`{setting}` is now {shown}.", setting), ephemeral=True)

    @config.command(name="reset", description="Put one setting back to its default")
    @discord.option("setting", str, description="Setting name", autocomplete=_setting_choices)
    async def reset(self, ctx: discord.ApplicationContext, setting: str) -> None:
        if setting not in GuildSettings.model_fields:
            raise UserInputError(f"There is no setting called `{quoted(setting)}`.")
        default = GuildSettings.model_fields[setting].get_default(call_default_factory=True)
        updated = await self.settings.update(guild_id_of(ctx), ctx.author.id, **{setting: default})
        shown = shown_value(setting, getattr(updated, setting))
        await answer(ctx, changed_text(f"`{setting}` is back to its default: {shown}.", setting),
                     ephemeral=True)
