"""Roles the bot hands out: level roles, the verified and unverified roles, the birthday role and the
autorole. Two rules before one is chosen:

- the bot must be able to give it (not @everyone, not an integration's role, below the bot's own
  highest role, and the bot has Manage Roles);
- the admin choosing it must be allowed to give it themselves, as Discord's own rule for Manage Roles
  says (the permission, and a role below their highest one). Otherwise an admin with only Manage
  Server could have the bot hand them, and everyone, a role they could never give.
"""

from __future__ import annotations

import discord

from malabot.errors import UserInputError


def why_bot_cannot_give(role: discord.Role, what: str) -> str | None:
    """Why the bot could not give or take `role` as `what` ("a level role"), or None when it can."""
    if role.is_default():
        return f"@everyone cannot be {what}; choose a role members do not have yet."
    if role.managed:
        return f"The role {role.mention} is managed by an integration, so nobody can give it by hand."
    me = role.guild.me
    if not me.guild_permissions.manage_roles:
        return f"I need the Manage Roles permission to give {what}."
    if me.top_role <= role:
        return (f"The role {role.mention} is not below my highest role, so I cannot give it; "
                "move my role above it in the server settings.")
    return None


def why_member_cannot_give(member: discord.Member | discord.User, role: discord.Role) -> str | None:
    """Discord's rule for handing out roles, applied to the admin who picks one for the bot to give."""
    guild = role.guild
    if not isinstance(member, discord.Member):
        return "This command only works in a server."
    if guild.owner_id == member.id or member.guild_permissions.administrator:
        return None
    if not member.guild_permissions.manage_roles:
        return "You need the Manage Roles permission to choose a role that I give to members."
    if member.top_role <= role:
        return f"You can only choose a role below your own highest role, and {role.mention} is not."
    return None


def check_may_be_given(member: discord.Member | discord.User, role: discord.Role, what: str) -> None:
    """UserInputError saying what to fix, unless the bot may give `role` as `what` on `member`'s word."""
    refusal = why_bot_cannot_give(role, what) or why_member_cannot_give(member, role)
    if refusal is not None:
        raise UserInputError(refusal)
