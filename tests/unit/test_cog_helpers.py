"""Plain helpers of the cogs: review buttons' ids, /help paging, 403 sentences, answers that fit a message,
the scope each permission is checked in, when an answer must not take a deferral's visibility, the
/welcome test overview fitted to one embed, the channel whose no-XP setting a message follows."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import discord
import pytest

from malabot.cogs.moderation_checks import discord_refusal
from malabot.cogs.utility import help_pages
from malabot.cogs.verification import parse_review_custom_id, review_custom_id
from malabot.cogs.welcome import fair_shares, fitted_overview
from malabot.cogs.xp import xp_channel_id
from malabot.commands import CommandContext, fit_lines, scoped_permissions, upload_limit
from malabot.guild_settings import GuildSettings


def test_review_buttons_carry_the_action_and_the_member() -> None:
    assert parse_review_custom_id(review_custom_id("approve", 42)) == (True, 42)
    assert parse_review_custom_id(review_custom_id("deny", 42)) == (False, 42)


@pytest.mark.parametrize("custom_id", [
    "malabot:verify", "malabot:review:maybe:42", "malabot:review:approve:", "malabot:review:approve:0",
    "malabot:review:approve:²", "malabot:review:deny:１２",  # digits other than 0-9
])
def test_other_custom_ids_are_not_review_buttons(custom_id: str) -> None:
    assert parse_review_custom_id(custom_id) is None


def test_help_pages_keep_lines_whole_and_in_order() -> None:
    lines = [f"line {n:02d} " + "x" * 20 for n in range(10)]  # 28 characters each
    pages = help_pages(lines, limit=60)
    assert [page.splitlines() for page in pages] == [lines[i:i + 2] for i in range(0, 10, 2)]
    assert all(len(page) <= 60 for page in pages)


def test_help_pages_edge_cases() -> None:
    assert help_pages([], limit=50) == [""]
    assert help_pages(["y" * 80, "short"], limit=50) == ["y" * 50, "short"]


def test_discord_refusal_sentences() -> None:
    assert discord_refusal("ban", 7) == ("Discord refused to let me ban <@7>: my top role must be above theirs "
                                         "and I need the Ban Members permission.")
    assert discord_refusal("purge") == ("Discord refused to let me delete messages here: I need the Manage "
                                        "Messages and Read Message History permissions in this channel.")
    assert discord_refusal("purge", timed_out_until=datetime(2027, 1, 1, tzinfo=UTC)) == (
        "Discord refused to let me delete messages here: I am timed out until <t:1798761600:f>, and a timed-out "
        "member may do nothing but read. A moderator can end my timeout.")


def test_fit_lines_keeps_what_fits_whole_and_counts_the_rest() -> None:
    lines = ["header"] + [f"line {n}" for n in range(10)]  # "line n": 6 characters
    assert fit_lines(lines, "+{count}", limit=1000) == "\n".join(lines)
    fitted = fit_lines(lines, "… {count} more", limit=30)
    assert fitted == "header\nline 0\nline 1\n… 8 more"
    assert len(fitted) <= 30
    exact = "\n".join(lines[:3] + ["… 8 more"])
    assert fit_lines(lines, "… {count} more", limit=len(exact)) == exact


def test_fit_lines_keeps_a_text_that_fits_exactly_whole() -> None:
    lines = ["a" * 999, "b" * 1000]  # 999 + newline + 1000 = 2000
    assert fit_lines(lines, "… and {count} more", limit=2000) == "\n".join(lines)


def test_fair_shares_keep_short_texts_whole_and_split_the_rest_evenly() -> None:
    assert fair_shares([10, 500, 900], 1000) == [10, 495, 495]
    assert fair_shares([10, 20, 30], 1000) == [10, 20, 30]
    assert sum(fair_shares([700, 700, 700], 1000)) <= 1000


def test_the_welcome_overview_shortens_only_the_long_previews_and_keeps_the_problems_whole() -> None:
    previews = {"welcome": "Hi there", "welcome_dm": "d" * 3000, "goodbye": "g" * 3000}
    problems = "\n\n**Problems**:\n• the auto-role 5 no longer exists"
    text = fitted_overview(GuildSettings(), previews, problems)
    assert len(text) == 4096
    assert text.endswith(problems)
    welcome, dm, goodbye = (section.split(":\n", 1)[1] for section in text.split("\n\n")[:3])
    assert welcome == "Hi there", "a short preview stays whole"
    assert dm == "d" * (len(dm) - 1) + "…" and goodbye == "g" * (len(goodbye) - 1) + "…"
    assert abs(len(dm) - len(goodbye)) <= 1, "the long previews share the room evenly"


def test_the_upload_limit_discord_states_wins_over_the_servers_tier() -> None:
    # A boosted server, or a limit Discord raised: the interaction says so, the tier table does not.
    ctx: Any = SimpleNamespace(interaction=SimpleNamespace(attachment_size_limit=25 * 1024 * 1024),
                               guild=SimpleNamespace(filesize_limit=10 * 1024 * 1024))
    assert upload_limit(ctx) == 25 * 1024 * 1024


def test_a_channels_manage_permissions_is_not_the_servers_manage_roles() -> None:
    # In a channel overwrite the Manage Roles bit means "Manage Permissions" of that channel.
    granted = scoped_permissions(discord.Permissions.none(), discord.Permissions(manage_roles=True, kick_members=True),
                                 timed_out=False)
    assert not granted.manage_roles and not granted.kick_members
    kept = scoped_permissions(discord.Permissions(manage_roles=True, manage_guild=True), discord.Permissions.none(),
                              timed_out=False)
    assert kept.manage_roles and kept.manage_guild


def test_manage_messages_counts_in_the_channel() -> None:
    server_only = scoped_permissions(discord.Permissions(manage_messages=True), discord.Permissions.none(),
                                     timed_out=False)
    assert not server_only.manage_messages
    channel_only = scoped_permissions(discord.Permissions.none(), discord.Permissions(manage_messages=True),
                                      timed_out=False)
    assert channel_only.manage_messages


def test_administrators_have_everything_and_a_timeout_leaves_only_reading() -> None:
    admin = scoped_permissions(discord.Permissions(administrator=True), discord.Permissions.none(), timed_out=True)
    assert admin == discord.Permissions.all()
    muted = scoped_permissions(discord.Permissions(kick_members=True, view_channel=True),
                               discord.Permissions.none(), timed_out=True)
    assert muted == discord.Permissions(view_channel=True)


def context_answered_with(**callback: bool) -> CommandContext:
    interaction: Any = SimpleNamespace(_state=None, callback=discord.InteractionCallback(callback)
                                       if callback else None)
    return CommandContext(bot=None, interaction=interaction)  # type: ignore[arg-type]


def test_only_a_waiting_placeholder_of_the_other_visibility_is_in_an_answers_way() -> None:
    public_thinking = context_answered_with(response_message_loading=True, response_message_ephemeral=False)
    assert public_thinking.thinking_shows_otherwise(ephemeral=True)
    assert not public_thinking.thinking_shows_otherwise(ephemeral=False)
    private_thinking = context_answered_with(response_message_loading=True, response_message_ephemeral=True)
    assert private_thinking.thinking_shows_otherwise(ephemeral=False)
    assert not private_thinking.thinking_shows_otherwise(ephemeral=True)

    public_thinking.followed_up = True  # the placeholder has its answer: a later one is a message of its own
    assert not public_thinking.thinking_shows_otherwise(ephemeral=True)
    answered_at_once = context_answered_with(response_message_loading=False, response_message_ephemeral=False)
    assert not answered_at_once.thinking_shows_otherwise(ephemeral=True)
    assert not context_answered_with().thinking_shows_otherwise(ephemeral=True)  # not answered yet


def thread_in(parent_id: int, thread_id: int) -> discord.Thread:
    """A thread with only the ids xp_channel_id reads (the sandbox has no threads)."""
    thread = discord.Thread.__new__(discord.Thread)
    thread.id, thread.parent_id = thread_id, parent_id
    return thread


def test_threads_and_forum_posts_follow_their_parent_channels_no_xp_setting() -> None:
    text_channel, forum = 10, 20
    assert xp_channel_id(SimpleNamespace(id=text_channel)) == text_channel
    assert xp_channel_id(thread_in(parent_id=text_channel, thread_id=11)) == text_channel
    assert xp_channel_id(thread_in(parent_id=forum, thread_id=21)) == forum   # a forum post is a thread
