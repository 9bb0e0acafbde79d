"""Channels the bot is told to post in: checked when an admin names one, so that a welcome, level-up,
birthday or mod-log post does not fail later where only the log would say so; and whom a post or an
answer may ping."""

from __future__ import annotations

import discord

from malabot.cogs.own_timeout import own_timeout
from malabot.errors import UserInputError

# Answers, lists and mod-log posts show mentions without pinging anyone.
NO_PINGS = discord.AllowedMentions.none()


def why_cannot_post(guild: discord.Guild, channel: discord.abc.GuildChannel) -> str | None:
    """Why the bot could not post in `channel` (it must view it and send messages), or None when it can."""
    granted = channel.permissions_for(guild.me)
    if granted.view_channel and granted.send_messages:
        return None
    if (timed_out := own_timeout(guild)) is not None:
        return f"I cannot post in {channel.mention}: {timed_out}"
    return f"I cannot post in {channel.mention}; let me view it and send messages there."


def may_embed(guild: discord.Guild, channel: discord.abc.Messageable) -> bool:
    """Whether Discord shows the bot's embeds in `channel`: without Embed Links it drops them, so a
    post there needs its text form. DMs always show them."""
    if isinstance(channel, discord.abc.GuildChannel | discord.Thread):
        return channel.permissions_for(guild.me).embed_links
    return True


def check_can_post(guild: discord.Guild, channel: discord.abc.GuildChannel) -> None:
    refusal = why_cannot_post(guild, channel)
    if refusal is not None:
        raise UserInputError(refusal)


def pinging_only(user_id: int) -> discord.AllowedMentions:
    """A post about one member pings that member alone: the admin's template may name anyone, a role
    or @everyone, and those stay plain text."""
    return discord.AllowedMentions(everyone=False, roles=False, replied_user=False,
                                   users=[discord.Object(user_id)])


def plain_name(user: discord.User | discord.Member) -> str:
    """A member's name as text, for a goodbye or an answer naming them: nothing in it acts as markdown,
    a heading or a mention (a name is whatever its owner chose; `<@id>` would render as someone else's
    mention, and zero-width spaces keep it text while the message pings nobody anyway)."""
    text = discord.utils.escape_mentions(discord.utils.escape_markdown(user.display_name))
    return "\\" + text if text.startswith(("#", "-", ">")) else text
