"""Moderation commands: warn, warnings, timeout, untimeout, kick, ban, unban, purge.

Every command follows the same steps: refuse early (moderator's and bot's permissions, hierarchy,
option values), carry out the action on Discord, record it as the server's next numbered case, post
that case to the mod-log channel, and tell the moderator, ephemerally. A warning may reach one of the
server's warn thresholds; the bot then applies that action too and records it as its own case.
When the file cannot take the case of an action already carried out, the moderator is told that it
stands and why it has no case, and the mod log still gets it, marked as not recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import discord

from malabot.cogs.members import member_of
from malabot.cogs.moderation_checks import (
    UNKNOWN_MESSAGE,
    TargetLeft,
    audit_reason,
    check_can_time_out,
    check_moderation,
    guild_of,
    mention,
    moderator_command,
    permission_names,
    refusals_explained,
    require_member,
)
from malabot.cogs.modlog import ModLog
from malabot.cogs.posting import NO_PINGS, plain_name
from malabot.cogs.unreachable import DISCORD_UNREACHABLE
from malabot.commands import admin_group, answer, defer
from malabot.errors import PermissionRefused, UserInputError
from malabot.features.moderation.models import Case, CaseNotRecorded, NewCase
from malabot.features.moderation.rules import (
    DELETE_MESSAGE_DAYS_MAX,
    MAX_REASON_LENGTH,
    PURGE_MAX,
    PURGE_MIN,
    Escalation,
    applied_sentence,
    bulk_delete_cutoff,
    check_bot_permissions,
    check_delete_message_days,
    check_purge_count,
    format_duration,
    is_deletable_type,
    longer_timeout,
    normalise_reason,
    parse_duration,
    parse_user_id,
    render_case_text,
    timeout_to_send,
)
from malabot.texts import counted

if TYPE_CHECKING:
    from malabot.bot import MalaBot

log = logging.getLogger(__name__)

# What an action did, in a sentence for the moderator; or made from its case (a timeout's end).
Done = str | Callable[[Case | NewCase], str]

# /purge looks at most this many recent messages to find `count` of one member's.
PURGE_SCAN_LIMIT = 500
# Where /purge works: every channel with a message history (a voice or stage channel's text chat too).
PurgeableChannel = discord.TextChannel | discord.Thread | discord.VoiceChannel | discord.StageChannel
# Messages this close to Discord's 14-day bulk-delete limit are left alone, so none turns too old
# between the scan and the delete request.
PURGE_AGE_MARGIN = timedelta(minutes=5)
_EMBED_DESCRIPTION_MAX = 4096

REASON_OPTION = {"max_length": MAX_REASON_LENGTH}


def cases_embed(title: str, header: str, cases: list[Case]) -> discord.Embed:
    """Cases one per line under a header, newest last, cut from the oldest end to fit one embed."""
    lines = [render_case_text(case) for case in cases]
    room = _EMBED_DESCRIPTION_MAX - len(header) - 40  # 40: the note of how many are not shown, a line break
    # Count back from the newest while the lines fit: one pass, as re-joining after every cut took
    # seconds for a server with thousands of cases.
    first, length = len(lines), -1  # lines[first:] are shown; -1: the oldest of them needs no line break
    while first and length + 1 + len(lines[first - 1]) <= room:
        first -= 1
        length += 1 + len(lines[first])
    body = "\n".join(lines[first:])
    if first:
        header += f" ({first} older not shown)"
    return discord.Embed(title=title, description=f"{header}\n{body}" if body else header)


class ModerationCog(discord.Cog, name="Moderation"):
    # `/warnings` has a `remove` subcommand, and Discord never runs a command that has subcommands by
    # itself: the list is therefore `/warnings list [member]`.
    warnings = admin_group("warnings", "Warnings and moderation cases", moderate_members=True)

    def __init__(self, bot: MalaBot) -> None:
        self.bot = bot
        self.moderation = bot.services.moderation
        self.modlog = ModLog(self.moderation)

    async def _finish(self, ctx: discord.ApplicationContext, guild: discord.Guild, case: Case,
                      sentence: str, *notes: str | None) -> None:
        """Post the case to the mod log, then answer the moderator with what happened."""
        lines = [sentence, *(note for note in notes if note), await self.modlog.post(guild, case)]
        await answer(ctx, "\n".join(line for line in lines if line), ephemeral=True, allowed_mentions=NO_PINGS)

    async def _record_applied(self, guild: discord.Guild, record: Awaitable[Case], done: Done, *,
                              threshold: str | None = None) -> str:
        """Record an action already carried out on Discord and post it to the mod log; what to tell the
        moderator (applied_sentence, and the mod log's note if any). When the file cannot take the case
        the action still stands: the moderator hears so and why, the mod log gets it unnumbered.
        `done` says what was done ("<@1> was kicked."), or makes that from the entry."""
        entry: Case | NewCase
        try:
            entry = await record
            number, why = entry.case_number, None
        except CaseNotRecorded as failed:
            log.error("guild %s: %s carried out on Discord but its case was not recorded (%s)", guild.id,
                      failed.draft.action, failed.why, exc_info=failed.__cause__)
            entry, number, why = failed.draft, None, failed.why
        told = done if isinstance(done, str) else done(entry)
        sentence = applied_sentence(told, number, why, threshold=threshold)
        note = await self.modlog.post(guild, entry)
        return sentence + (f"\n{note}" if note else "")

    async def _applied(self, ctx: discord.ApplicationContext, guild: discord.Guild, record: Awaitable[Case],
                       done: Done) -> None:
        """Record and post an action the moderator's command carried out, then answer them."""
        told = await self._record_applied(guild, record, done)
        await answer(ctx, told, ephemeral=True, allowed_mentions=NO_PINGS)

    # -- warn ------------------------------------------------------------------------------------

    @moderator_command("warn", "Warn a member; the warning is kept as a numbered case", moderate_members=True)
    @discord.option("member", discord.Member, description="Who to warn")
    @discord.option("reason", str, description="Why (shown in the case and the mod log)", **REASON_OPTION)
    async def warn(self, ctx: discord.ApplicationContext, member: discord.Member, reason: str) -> None:
        target = require_member(member)
        guild = check_moderation(ctx, "warn", target)
        await defer(ctx, ephemeral=True)
        outcome = await self.moderation.record_warn(guild.id, target.id, ctx.author.id, reason)
        sentence = (f"Case #{outcome.case.case_number}: warned {mention(target)} "
                    f"({counted(outcome.active_warnings, 'active warning')}).")
        # The warning goes to the mod log before the action it triggers, so the log reads in order.
        logged = await self.modlog.post(guild, outcome.case)
        escalated = None
        if outcome.escalation is not None:
            escalated = await self._escalate(guild, target, outcome.escalation)
        lines = [sentence, logged, escalated]
        await answer(ctx, "\n".join(line for line in lines if line), ephemeral=True, allowed_mentions=NO_PINGS)

    async def _escalate(self, guild: discord.Guild, target: discord.Member, escalation: Escalation) -> str:
        """Apply the threshold a warning reached, record it as the bot's own case; the sentence for it."""
        reached = (f"Warn threshold reached ({counted(escalation.warnings, 'warning')} within "
                   f"{counted(escalation.threshold.days, 'day')})")
        bot_id = guild.me.id
        running = longer_timeout(escalation, target.communication_disabled_until, discord.utils.utcnow())
        if running is not None:
            return (f"{reached}, but {mention(target)} is already timed out for longer "
                    f"(until <t:{int(running.timestamp())}:f>), so that was left as it is.")
        try:
            check_bot_permissions(escalation.action, permission_names(guild.me.guild_permissions))
            async with refusals_explained(escalation.action, target.id, bot=guild.me):
                audit = f"{escalation.reason} (MalaBoT warn threshold)"
                if escalation.action == "timeout":
                    assert escalation.duration is not None
                    check_can_time_out(target)
                    await target.timeout_for(timeout_to_send(escalation.duration), reason=audit)
                elif escalation.action == "kick":
                    await target.kick(reason=audit)
                elif await already_banned(guild, target.id):  # a moderator was quicker: one ban, one case
                    return f"{reached}, but {mention(target)} is already banned, so nothing more was done."
                else:
                    await guild.ban(target, reason=audit)
        except PermissionRefused as refused:
            return f"{reached}, but I could not apply it: {refused.message}"
        except TargetLeft:  # they left (or were removed by someone else) meanwhile
            return f"{reached}, but {mention(target)} is no longer on the server, so nothing more was done."
        except discord.HTTPException as error:  # e.g. a 5xx after py-cord's retries
            # The warning is recorded and posted: failing the command would hide it, and a retry warn twice.
            log.exception("guild %s: the warn threshold's %s of %s failed", guild.id, escalation.action, target.id)
            return f"{reached}, but I could not apply it: Discord failed (HTTP {error.status})."
        except DISCORD_UNREACHABLE:  # its answer may be what was lost: the action may have happened
            log.exception("guild %s: the warn threshold's %s of %s could not reach Discord", guild.id,
                          escalation.action, target.id)
            return f"{reached}, but I could not reach Discord to apply it (its {escalation.action} may have happened)."
        record: Awaitable[Case]
        if escalation.action == "timeout":
            assert escalation.duration is not None
            record = self.moderation.record_timeout(guild.id, target.id, bot_id, escalation.duration,
                                                    escalation.reason)
            done = f"timed out for {format_duration(escalation.duration)}"
        elif escalation.action == "kick":
            record = self.moderation.record_kick(guild.id, target.id, bot_id, escalation.reason)
            done = "kicked"
        else:
            record = self.moderation.record_ban(guild.id, target.id, bot_id, escalation.reason)
            done = "banned"
        return await self._record_applied(guild, record, f"{mention(target)} was {done} automatically.",
                                          threshold=reached)

    # -- warnings ----------------------------------------------------------------------------------

    @warnings.command(name="list", description="A member's cases, or the latest cases of this server")
    @discord.option("member", discord.User, description="Whose cases (left out: the latest of the server)",
                    required=False, default=None)
    async def warnings_list(self, ctx: discord.ApplicationContext,
                            member: discord.Member | discord.User | None) -> None:
        guild = guild_of(ctx)
        if member is None:
            recent = list(reversed(await self.moderation.recent(guild.id)))
            header = "No cases yet." if not recent else f"The latest {counted(len(recent), 'case')}, newest last:"
            embed = cases_embed("Moderation cases", header, recent)
        else:
            history = await self.moderation.history(guild.id, member.id)
            active = sum(1 for case in history if case.is_active_warning)
            header = (f"{mention(member)}: {counted(active, 'active warning')}, "
                      f"{counted(len(history), 'case')} in all.")
            embed = cases_embed(f"Cases of {plain_name(member)}", header, history)
        await answer(ctx, embed=embed, ephemeral=True, allowed_mentions=NO_PINGS)

    @warnings.command(name="remove", description="Withdraw a warning by its case number")
    @discord.option("case", int, description="The warning's case number", min_value=1)
    @discord.option("reason", str, description="Why it is withdrawn", required=False, default=None,
                    **REASON_OPTION)
    async def warnings_remove(self, ctx: discord.ApplicationContext, case: int, reason: str | None) -> None:
        guild = guild_of(ctx)
        warning = await self.moderation.get_case(guild.id, case)
        # From Discord when not cached (the member list may still be loading after a start).
        warned = await member_of(guild, warning.target_id) if warning.target_id is not None else None
        if warned is not None:  # the rules of warning them: not yourself, nobody above you or the bot
            check_moderation(ctx, "warn", warned)
        await defer(ctx, ephemeral=True)  # before the withdrawal is stored: a deferral Discord refuses changes nothing
        removed = await self.moderation.remove_warning(guild.id, case, ctx.author.id, reason)
        await self.modlog.refresh(guild, removed.warning)
        who = mention(removed.warning.target_id) if removed.warning.target_id is not None else "a former member"
        await self._finish(ctx, guild, removed.case,
                           f"Case #{removed.case.case_number}: warning #{case} of {who} withdrawn.")

    # -- timeouts ----------------------------------------------------------------------------------

    @moderator_command("timeout", "Time a member out (they cannot write or speak) for a while",
                       moderate_members=True)
    @discord.option("member", discord.Member, description="Who to time out")
    @discord.option("duration", str, description="How long, e.g. 10m, 2h, 7d (at most 28 days)", max_length=32)
    @discord.option("reason", str, description="Why (shown in the case and the mod log)", **REASON_OPTION)
    async def timeout(self, ctx: discord.ApplicationContext, member: discord.Member, duration: str,
                      reason: str) -> None:
        target = require_member(member)
        length = parse_duration(duration)
        reason = _required_reason(reason)
        guild = check_moderation(ctx, "timeout", target)
        check_can_time_out(target)
        await defer(ctx, ephemeral=True)
        async with refusals_explained("timeout", target.id, bot=guild.me):
            await target.timeout_for(timeout_to_send(length), reason=audit_reason(ctx.author, reason))
        def done(entry: Case | NewCase) -> str:
            assert entry.expires_at is not None
            return (f"{mention(target)} is timed out for {format_duration(length)} "
                    f"(until <t:{int(entry.expires_at.timestamp())}:f>).")

        await self._applied(ctx, guild, self.moderation.record_timeout(guild.id, target.id, ctx.author.id, length,
                                                                       reason), done)

    @moderator_command("untimeout", "End a member's timeout early", moderate_members=True)
    @discord.option("member", discord.Member, description="Whose timeout to end")
    @discord.option("reason", str, description="Why", required=False, default=None, **REASON_OPTION)
    async def untimeout(self, ctx: discord.ApplicationContext, member: discord.Member,
                        reason: str | None) -> None:
        target = require_member(member)
        reason = normalise_reason(reason)
        guild = check_moderation(ctx, "untimeout", target)
        if not target.timed_out:
            raise UserInputError(f"{mention(target)} is not timed out.")
        await defer(ctx, ephemeral=True)
        async with refusals_explained("untimeout", target.id, bot=guild.me):
            await target.remove_timeout(reason=audit_reason(ctx.author, reason))
        await self._applied(ctx, guild, self.moderation.record_untimeout(guild.id, target.id, ctx.author.id, reason),
                            f"{mention(target)}'s timeout has ended.")

    # -- kick, ban, unban --------------------------------------------------------------------------

    @moderator_command("kick", "Remove a member from the server (they can join again)", kick_members=True)
    @discord.option("member", discord.Member, description="Who to kick")
    @discord.option("reason", str, description="Why (shown in the case and the mod log)", **REASON_OPTION)
    async def kick(self, ctx: discord.ApplicationContext, member: discord.Member, reason: str) -> None:
        target = require_member(member)
        reason = _required_reason(reason)
        guild = check_moderation(ctx, "kick", target)
        await defer(ctx, ephemeral=True)
        async with refusals_explained("kick", target.id, bot=guild.me):
            await target.kick(reason=audit_reason(ctx.author, reason))
        await self._applied(ctx, guild, self.moderation.record_kick(guild.id, target.id, ctx.author.id, reason),
                            f"{mention(target)} was kicked.")

    @moderator_command("ban", "Ban a member (or any user) from the server", ban_members=True)
    @discord.option("member", discord.User, description="Who to ban (a member, or any Discord user)")
    @discord.option("reason", str, description="Why (shown in the case and the mod log)", **REASON_OPTION)
    @discord.option("delete_message_days", int, description="Delete their messages of the last 0–7 days",
                    required=False, default=0, min_value=0, max_value=DELETE_MESSAGE_DAYS_MAX)
    async def ban(self, ctx: discord.ApplicationContext, member: discord.Member | discord.User, reason: str,
                  delete_message_days: int) -> None:
        reason = _required_reason(reason)
        check_delete_message_days(delete_message_days)
        guild = check_moderation(ctx, "ban", member)
        await defer(ctx, ephemeral=True)
        # Discord takes a second ban of a banned user without a word: it would be a second case.
        if not isinstance(member, discord.Member) and await already_banned(guild, member.id):
            raise UserInputError(f"{mention(member)} is already banned in this server; nothing was done.")
        async with refusals_explained("ban", member.id, bot=guild.me):
            await guild.ban(member, reason=audit_reason(ctx.author, reason),
                            delete_message_seconds=delete_message_days * 86_400)
        days = counted(delete_message_days, "day")
        deleted = f" Their messages of the last {days} were deleted." if delete_message_days else ""
        await self._applied(ctx, guild, self.moderation.record_ban(guild.id, member.id, ctx.author.id, reason,
                                                                   delete_message_days),
                            f"{mention(member)} was banned.{deleted}")

    @moderator_command("unban", "Lift a ban", ban_members=True)
    @discord.option("user_id", str, description="The banned user's id", max_length=40)
    @discord.option("reason", str, description="Why", required=False, default=None, **REASON_OPTION)
    async def unban(self, ctx: discord.ApplicationContext, user_id: str, reason: str | None) -> None:
        banned = parse_user_id(user_id)
        reason = normalise_reason(reason)
        guild = check_moderation(ctx, "unban", None)
        await defer(ctx, ephemeral=True)
        try:
            async with refusals_explained("unban", banned, bot=guild.me):
                await guild.unban(discord.Object(id=banned), reason=audit_reason(ctx.author, reason))
        except discord.NotFound:
            raise UserInputError(f"{mention(banned)} is not banned in this server.") from None
        await self._applied(ctx, guild, self.moderation.record_unban(guild.id, banned, ctx.author.id, reason),
                            f"{mention(banned)} is no longer banned.")

    # -- purge -------------------------------------------------------------------------------------

    @moderator_command("purge", "Delete recent messages in this channel (newer than 14 days)",
                       manage_messages=True)
    @discord.option("count", int, description="How many messages to delete (1–100)",
                    min_value=PURGE_MIN, max_value=PURGE_MAX)
    @discord.option("member", discord.User, description="Only this member's messages",
                    required=False, default=None)
    @discord.option("reason", str, description="Why", required=False, default=None, **REASON_OPTION)
    async def purge(self, ctx: discord.ApplicationContext, count: int, member: discord.Member | discord.User | None,
                    reason: str | None) -> None:
        check_purge_count(count)
        reason = normalise_reason(reason)
        guild = check_moderation(ctx, "purge", member)
        channel = ctx.channel
        if not isinstance(channel, PurgeableChannel):
            raise UserInputError("Messages can only be purged in a text channel or thread.")
        await defer(ctx, ephemeral=True)
        whose = f" by {mention(member)}" if member is not None else ""
        async with refusals_explained("purge", bot=guild.me):
            recent = await _recent_messages(channel, count, None if member is None else member.id)
            # Short of `count` only among the newest messages looked at: older ones may be there.
            looked = f" among the {PURGE_SCAN_LIMIT} newest messages here" if recent.scan_cut_short else ""
            if not recent.found:
                where = looked or " newer than 14 days here"
                await answer(ctx, f"Nothing to delete: no unpinned messages{whose}{where}.",
                             ephemeral=True, allowed_mentions=NO_PINGS)
                return
            await _delete_messages(channel, recent.found, audit_reason(ctx.author, reason))
        doomed = recent.found
        await self._applied(ctx, guild, self.moderation.record_purge(guild.id, channel.id, ctx.author.id, len(doomed),
                                                                     None if member is None else member.id, reason),
                            f"deleted {counted(len(doomed), 'message')}{whose}{looked}.")


async def already_banned(guild: discord.Guild, user_id: int) -> bool:
    """Whether Discord has a ban of this user in the server; not known (Discord failing): no."""
    try:
        await guild.fetch_ban(discord.Object(id=user_id))
    except discord.NotFound:
        return False
    except (discord.HTTPException, *DISCORD_UNREACHABLE) as error:
        log.warning("guild %s: could not tell whether %s is banned (%s)", guild.id, user_id, error)
        return False
    return True


@dataclass(frozen=True)
class RecentMessages:
    found: list[discord.Message]
    scan_cut_short: bool  # fewer than asked for, and the scan stopped at PURGE_SCAN_LIMIT, not at old ones


async def _recent_messages(channel: PurgeableChannel, count: int, author_id: int | None) -> RecentMessages:
    """Up to `count` of the newest unpinned messages (of one author) young enough for a bulk delete,
    leaving out system messages Discord never deletes."""
    cutoff = bulk_delete_cutoff(discord.utils.utcnow()) + PURGE_AGE_MARGIN
    found: list[discord.Message] = []
    scanned = 0
    async for message in channel.history(limit=PURGE_SCAN_LIMIT):
        scanned += 1
        if message.created_at < cutoff:
            return RecentMessages(found, scan_cut_short=False)  # newest first: every later one is older
        if message.pinned or not is_deletable_type(message.type.value) or \
                (author_id is not None and message.author.id != author_id):
            continue
        found.append(message)
        if len(found) == count:
            break
    return RecentMessages(found, scan_cut_short=len(found) < count and scanned == PURGE_SCAN_LIMIT)


async def _delete_messages(channel: PurgeableChannel,
                           doomed: list[discord.Message], reason: str) -> None:
    """Delete the messages; one deleted by someone else meanwhile counts as deleted. Discord's bulk
    delete passes over such a message, but py-cord deletes a single message with a plain DELETE,
    which Discord answers with 404 Unknown Message."""
    try:
        await channel.delete_messages(doomed, reason=reason)
    except discord.NotFound as error:
        if error.code != UNKNOWN_MESSAGE:
            raise


def _required_reason(reason: str) -> str:
    cleaned = normalise_reason(reason, required=True)
    assert cleaned is not None
    return cleaned
