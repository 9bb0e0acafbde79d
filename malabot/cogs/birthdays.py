"""`/birthday set|remove|show|list|upcoming`, and the birthday pass of this bot.

Commands call BirthdayService and render its views. The birth year (and the age) only ever appears in
ephemeral answers to the member themself; public answers show month and day and ping nobody.

The pass is added to the scheduler once every guild has its file (bot.guilds_opened): it runs at
once (catching up on a pass missed while the bot was down) and then every quarter hour. Members it
cannot see yet (their server's member list is still loading) are left for later, and each server's
pass runs again once its list is in. `run_birthday_pass()` runs one now, exactly as the scheduler would.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING

import discord
from apscheduler.jobstores.base import JobLookupError

from malabot.cogs import levelups
from malabot.cogs.birthday_effects import DiscordBirthdayEffects
from malabot.cogs.boards import server_members
from malabot.cogs.posting import NO_PINGS
from malabot.commands import answer, answers_publicly, fit_lines, guild_id_of
from malabot.errors import TenantArchived
from malabot.features.birthdays.announcer import PassReport, build_birthday_pass
from malabot.features.birthdays.rules import announces_age, format_day, mention
from malabot.features.birthdays.service import DEFAULT_UPCOMING_DAYS
from malabot.features.birthdays.views import BirthdayPage, BirthdayView
from malabot.features.xp.models import LevelChange
from malabot.scheduling import BIRTHDAY_PASS, add_job, birthday_pass_job

if TYPE_CHECKING:
    from malabot.bot import MalaBot

log = logging.getLogger(__name__)

# The name of a task running the pass for one server now: a shutdown lets it finish, as a handler.
BIRTHDAY_PASS_NOW = "birthday-pass-now"

# ---- rendering: views in, message text out -------------------------------------------------------

def long_date(day: date) -> str:
    return f"{format_day(day.month, day.day)}, {day.year}"


def when(view: BirthdayView) -> str:
    if view.days_until == 0:
        return "today"
    if view.days_until == 1:
        return "tomorrow"
    return f"in {view.days_until} days"


def own_birthday_text(view: BirthdayView, *, saved: bool = False, age_announced: bool = False) -> str:
    """The member's own birthday, year and age included: only ever sent ephemerally. `age_announced`:
    the server's birthday message shows ages, so the year is not private and the member is told."""
    lead = "Saved: your birthday is" if saved else "Your birthday is"
    if view.already_celebrated:
        next_time = f"already celebrated this year; next celebrated on {long_date(view.next_date)}"
    else:
        next_time = f"next celebrated {when(view)} ({long_date(view.next_date)})"
    if view.turning is not None:
        next_time += f", when you turn {view.turning}"
    text = f"{lead} {view.date_text}; {next_time}."
    if view.year is not None and age_announced:
        text += (" This server's birthday message shows your age; to keep your birth year to yourself, "
                 "set your birthday again without `year`.")
    elif view.year is not None:
        text += " Only you can see your birth year."
    return text


def public_birthday_text(view: BirthdayView) -> str:
    next_time = "already celebrated this year" if view.already_celebrated else when(view)
    return f"{mention(view.user_id)}'s birthday is {format_day(view.month, view.day)} ({next_time})."


def list_text(page: BirthdayPage) -> str:
    if page.total == 0:
        return "Nobody here has shared a birthday yet. Add yours with `/birthday set`."
    # Month and day only, even in the viewer's own line: this message is public.
    lines = [f"**Birthdays** ({page.total})"]
    lines += [f"• {format_day(entry.month, entry.day)}: {mention(entry.user_id)}" for entry in page.entries]
    footer = f"Page {page.page} of {page.pages}"
    if page.page < page.pages:
        footer += f" · next: `/birthday list page:{page.page + 1}`"
    lines.append(footer)
    return "\n".join(lines)


def upcoming_text(views: tuple[BirthdayView, ...], days: int) -> str:
    # Today counts too: "the next 7 days" runs from today through a week from today.
    if not views:
        return "No birthdays today or tomorrow." if days == 1 else f"No birthdays in the next {days} days."
    lines = ["**Birthdays today and tomorrow**" if days == 1 else f"**Birthdays in the next {days} days**"]
    lines += [f"• {format_day(view.next_date.month, view.next_date.day)} ({when(view)}): "
              f"{mention(view.user_id)}" for view in views]
    return fit_lines(lines, "… and {count} more; ask for fewer days to see them.")


# ---- the cog ------------------------------------------------------------------------------------

class BirthdaysCog(discord.Cog, name="Birthdays"):
    birthday = discord.SlashCommandGroup("birthday", "Members' birthdays",
                                         contexts={discord.InteractionContextType.guild})

    def __init__(self, bot: MalaBot) -> None:
        self.bot = bot
        self.services = bot.services
        self.birthdays = bot.services.birthdays
        self.effects = DiscordBirthdayEffects(bot)
        self.birthday_pass = build_birthday_pass(
            self.services.tenants, self.services.guild_settings, self.birthdays, self.effects,
            self.services.xp, clock=self.services.clock)
        # Set once the first scheduled pass (the catch-up at start) has finished.
        self.caught_up = asyncio.Event()
        self._celebrations: set[asyncio.Task[None]] = set()

    # -- the pass --

    async def run_birthday_pass(self) -> PassReport:
        """One pass now, at the services' clock: what the scheduled job runs."""
        report = await self.birthday_pass.run()
        await self._level_ups(report.level_changes)
        return report

    async def scheduled_pass(self) -> PassReport | None:
        """The scheduler's job. A stop lets a pass under way finish within its grace (runtime.py); one
        still running after it is cancelled, which is the end of a run, not an error. The next start
        catches up; a celebration it claimed but did not show stays unshown (at most once, never twice)."""
        try:
            return await self.run_birthday_pass()
        except asyncio.CancelledError:
            log.info("birthday pass interrupted by shutdown")
            return None
        finally:
            self.caught_up.set()

    def _run_pass_now(self, guild_id: int, why: str = "a birthday set for today") -> None:
        """The pass for one server now, not awaited: for a birthday just set to today (the next pass
        would miss it in the server's last quarter hour of the day), or for members the last pass could
        not see yet (their server's member list came after it)."""
        async def celebrate() -> None:
            try:
                report = await self.birthday_pass.run_for(guild_id)
                await self._level_ups(report.level_changes)
            except Exception:
                log.exception("guild %s: the birthday pass for %s failed", guild_id, why)

        task = asyncio.create_task(celebrate(), name=BIRTHDAY_PASS_NOW)
        self._celebrations.add(task)
        task.add_done_callback(self._celebrations.discard)

    async def _level_ups(self, changes: list[LevelChange]) -> None:
        """Birthday XP can level a member up: the level-up message (in the server's level-up channel,
        else beside the birthday announcement) and the level roles, as for any other XP."""
        for change in changes:
            guild = self.bot.get_guild(change.guild_id)
            if not change.leveled_up or guild is None:
                continue
            try:
                settings = await self.services.guild_settings.get(guild.id)
                outcome = await levelups.apply(self.services, guild, change,
                                               channel_id=settings.birthday_channel_id)
            except Exception:
                log.exception("guild %s: level-up after birthday XP of member %s failed",
                              guild.id, change.user_id)
                continue
            await self.bot.admin_notices.tell(guild, outcome.problems)

    @discord.Cog.listener()
    async def on_ready(self) -> None:
        # After a reconnect this replaces the job with an identical one (and one harmless extra pass).
        await self.bot.guilds_opened.wait()
        job = dataclasses.replace(birthday_pass_job(self.birthday_pass), run=self.scheduled_pass)
        add_job(self.services.scheduler, job)

    @discord.Cog.listener()
    async def on_member_list_complete(self, guild: discord.Guild) -> None:
        # After a start the member lists come server by server, after the first pass: a birthday of a
        # member it could not see is celebrated now, not at the next quarter hour.
        if self.bot.guilds_opened.is_set():
            self._run_pass_now(guild.id, why="members whose list just came in")

    @discord.Cog.listener()
    async def on_member_passed_screening(self, member: discord.Member) -> None:
        # The birthday role waits for a member in Membership Screening (see the pass): on the day of
        # their celebration they get it once they accept the rules.
        with contextlib.suppress(TenantArchived):  # the bot left the server meanwhile: nothing owed
            await self.birthday_pass.role_after_screening(member.guild.id, member.id)

    def cog_unload(self) -> None:
        with contextlib.suppress(JobLookupError):
            self.services.scheduler.remove_job(BIRTHDAY_PASS)

    async def _announces_age(self, guild_id: int) -> bool:
        return announces_age((await self.services.guild_settings.get(guild_id)).birthday_template)

    def _is_member(self, guild: discord.Guild | None) -> Callable[[int], bool]:
        """Who counts in lists: the server's members, or everyone with a birthday while its member
        list is not complete (after a start), as on the leaderboards."""
        members = server_members(guild)
        return members if members is not None else lambda user_id: True

    # -- commands --

    @birthday.command(name="set", description="Save your birthday; the year is optional and only shown to you")
    @discord.option("month", int, description="Month, 1 (January) to 12 (December)")
    @discord.option("day", int, description="Day of the month")
    @discord.option("year", int, description="Birth year (optional; private unless the server's birthday "
                                             "message shows ages)", required=False, default=None)
    async def set_(self, ctx: discord.ApplicationContext, month: int, day: int, year: int | None) -> None:
        guild_id = guild_id_of(ctx)
        view = await self.birthdays.set(guild_id, ctx.author.id, month, day, year)
        # Started before the answer (it runs on its own): an answer Discord does not take must not keep
        # today's celebration away. Else the pass would find nothing to do.
        if view.is_today and not view.celebrated_this_year:
            self._run_pass_now(guild_id)
        text = own_birthday_text(view, saved=True, age_announced=await self._announces_age(guild_id))
        await answer(ctx, text, ephemeral=True)

    @birthday.command(name="remove", description="Forget your birthday on this server")
    async def remove(self, ctx: discord.ApplicationContext) -> None:
        await self.birthdays.remove(guild_id_of(ctx), ctx.author.id)
        await answer(ctx, "Your birthday was removed from this server.", ephemeral=True)

    @birthday.command(name="show", description="Show your birthday, or another member's")
    @discord.option("member", discord.Member, description="Whose birthday (default: yours)",
                    required=False, default=None)
    async def show(self, ctx: discord.ApplicationContext, member: discord.Member | None) -> None:
        member_id = member.id if member is not None else ctx.author.id
        view = await self.birthdays.show(guild_id_of(ctx), ctx.author.id, member_id)
        if member_id == ctx.author.id:
            age_announced = await self._announces_age(guild_id_of(ctx))
            await answer(ctx, own_birthday_text(view, age_announced=age_announced), ephemeral=True)
        else:
            await answer(ctx, public_birthday_text(view), allowed_mentions=NO_PINGS)

    @birthday.command(name="list", description="Birthdays of this server's members, in calendar order")
    @discord.option("page", int, description="Page number", required=False, default=1)
    @answers_publicly
    async def list_(self, ctx: discord.ApplicationContext, page: int) -> None:
        guild_id = guild_id_of(ctx)
        found = await self.birthdays.list_page(guild_id, ctx.author.id, page, is_member=self._is_member(ctx.guild))
        await answer(ctx, list_text(found), allowed_mentions=NO_PINGS)

    @birthday.command(name="upcoming", description="Birthdays coming up soon")
    @discord.option("days", int, description=f"How many days ahead (default {DEFAULT_UPCOMING_DAYS})",
                    required=False, default=DEFAULT_UPCOMING_DAYS)
    @answers_publicly
    async def upcoming(self, ctx: discord.ApplicationContext, days: int) -> None:
        guild_id = guild_id_of(ctx)
        found = await self.birthdays.upcoming(guild_id, ctx.author.id, days, is_member=self._is_member(ctx.guild))
        await answer(ctx, upcoming_text(found, days), allowed_mentions=NO_PINGS)
