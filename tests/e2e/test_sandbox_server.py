"""The sandbox server against the real py-cord client: a plain `discord.Bot`, no MalaBot code.

Each test starts a fresh server and bot (about 0.1 s), acts as Discord users through the
`FakeDiscord` API and checks what the bot saw and what it sent.
"""

import asyncio
import io
import json
import socket
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import discord
import pytest

from malabot.sandbox import (
    ALL_PERMISSIONS,
    FakeDiscord,
    Guild,
    Overwrite,
    Permission,
    RealNetworkForbidden,
    Role,
    SandboxError,
    User,
    running_bot,
    sandbox_client_options,
)
from malabot.sandbox.errors import ApiError
from malabot.sandbox.messaging import check_content
from tests.e2e.data_dump import eventually

MEMBERS_AND_CONTENT = discord.Intents.default() | discord.Intents(members=True, message_content=True)
NOT_ADMIN = ALL_PERMISSIONS & ~Permission.ADMINISTRATOR  # channel overwrites apply to the bot


class DemoBot(discord.Bot):
    """A plain py-cord bot with a handful of commands and listeners that record what they saw."""

    def __init__(self, **options: Any) -> None:
        options.setdefault("intents", MEMBERS_AND_CONTENT)
        super().__init__(**sandbox_client_options(), **options)
        self.seen: dict[str, list[Any]] = defaultdict(list)
        self.errors: list[BaseException] = []  # anything that went wrong inside the bot
        self._add_commands()
        for event in ("member_remove", "raw_member_remove", "guild_remove", "guild_unavailable",
                      "guild_available", "guild_join", "message", "resumed", "member_update", "member_ban"):
            self.add_listener(self._recorder(event), f"on_{event}")
        self.add_listener(self._welcome, "on_member_join")

    async def _welcome(self, member: discord.Member) -> None:
        await member.guild.system_channel.send(f"Welcome {member.mention}!")

    async def on_application_command_error(self, context: discord.ApplicationContext,
                                           exception: discord.DiscordException) -> None:
        self.errors.append(exception)

    async def on_error(self, event_method: str, *args: Any, **kwargs: Any) -> None:
        self.errors.append(RuntimeError(f"error in {event_method}"))

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """py-cord sleeps 5 s before every IDENTIFY but the first (Discord's identify rate limit)."""

    def _recorder(self, event: str) -> Any:
        async def record(*args: Any) -> None:
            self.seen[event].append(args[0] if len(args) == 1 else args)

        return record

    def _add_commands(self) -> None:
        @self.slash_command(name="secret", description="Answers only to you")
        async def secret(ctx: discord.ApplicationContext) -> None:
            await ctx.respond("only you can see this", ephemeral=True)

        @self.slash_command(name="slow", description="Thinks first")
        async def slow(ctx: discord.ApplicationContext) -> None:
            await ctx.defer(ephemeral=True)
            await ctx.followup.send("done thinking")  # not ephemeral itself: the deferral decides

        @self.slash_command(name="rethink", description="Thinks one way, answers the other")
        async def rethink(ctx: discord.ApplicationContext,
                          private: discord.Option(bool, "answer privately")) -> None:  # type: ignore[valid-type]
            await ctx.defer(ephemeral=not private)
            await ctx.interaction.delete_original_response()  # the "thinking..." placeholder goes
            await ctx.followup.send("thought it over", ephemeral=private)

        @self.slash_command(name="whois", description="About a member")
        async def whois(ctx: discord.ApplicationContext,
                        member: discord.Option(discord.Member, "who")) -> None:  # type: ignore[valid-type]
            await ctx.respond(f"{member.display_name}: top role {member.top_role.name}")

        @self.slash_command(name="report", description="Sends a file")
        async def report(ctx: discord.ApplicationContext) -> None:
            embed = discord.Embed(title="Weekly report", description="see the attachment")
            csv = discord.File(io.BytesIO(b"name,xp\nalice,10\n"), "report.csv")
            await ctx.respond(embed=embed, file=csv)

        @self.slash_command(name="upload", description="Sends a file of the size asked, over the limit or not")
        async def upload(ctx: discord.ApplicationContext,
                         over: discord.Option(int, "bytes over the stated limit")) -> None:  # type: ignore[valid-type]
            size = ctx.interaction.attachment_size_limit + over
            try:
                await ctx.respond(file=discord.File(io.BytesIO(b"x" * size), "big.bin"))
            except discord.HTTPException as error:
                await ctx.respond(f"refused: {error.status} {error.code}")

        @self.slash_command(name="measure", description="Reads an uploaded file")
        async def measure(ctx: discord.ApplicationContext,
                          upload: discord.Option(discord.Attachment, "a file")) -> None:  # type: ignore[valid-type]
            data = await upload.read()
            await ctx.respond(f"{upload.filename}: {len(data)} bytes")

        @self.slash_command(name="vote", description="A button")
        async def vote(ctx: discord.ApplicationContext) -> None:
            await ctx.respond("Vote now", view=VoteView())

        @self.slash_command(name="feedback", description="Opens a form")
        async def feedback(ctx: discord.ApplicationContext) -> None:
            await ctx.send_modal(FeedbackModal(title="Feedback"))

        @self.slash_command(name="where", description="Where and who am I")
        async def where(ctx: discord.ApplicationContext) -> None:
            interaction = ctx.interaction
            permissions = interaction.permissions
            await ctx.respond(
                f"context={interaction.context.name} guild={ctx.guild_id} locale={interaction.locale} "
                f"manage_messages={permissions.manage_messages} manage_roles={permissions.manage_roles} "
                f"admin={permissions.administrator} "
                f"bot_admin={interaction.app_permissions.administrator}"
            )

        @self.slash_command(name="steps", description="Several messages")
        async def steps(ctx: discord.ApplicationContext) -> None:
            await ctx.respond("step 1")
            await ctx.followup.send("step 2", ephemeral=True)
            await ctx.edit(content="step 1 (edited)")

        @self.slash_command(name="later", description="A slow button")
        async def later(ctx: discord.ApplicationContext) -> None:
            await ctx.respond("Press it", view=LaterView())

        xp = self.create_group("xp", "Experience points")

        @xp.command(name="give", description="Give XP")
        async def give(ctx: discord.ApplicationContext,
                       amount: discord.Option(int, "how much", min_value=1),  # type: ignore[valid-type]
                       role: discord.Option(discord.Role, "to whom"),  # type: ignore[valid-type]
                       where: discord.Option(discord.TextChannel, "announce in")) -> None:  # type: ignore[valid-type]
            await ctx.respond(f"{amount} XP to {role.name}, announced in #{where.name}")

        async def colours(actx: discord.AutocompleteContext) -> list[str]:
            return [c for c in ("red", "green", "blue") if c.startswith(actx.value)]

        @self.slash_command(name="paint", description="Autocompleted")
        async def paint(ctx: discord.ApplicationContext,
                        colour: discord.Option(str, "a colour", autocomplete=colours)) -> None:  # type: ignore[valid-type]
            await ctx.respond(f"painted {colour}")

        @self.slash_command(name="pick", description="A select menu")
        async def pick(ctx: discord.ApplicationContext) -> None:
            await ctx.respond("Pick a colour", view=PickView())


class VoteView(discord.ui.View):
    @discord.ui.button(label="Yes", style=discord.ButtonStyle.green)
    async def yes(self, button: discord.ui.Button, interaction: discord.Interaction) -> None:
        await interaction.response.edit_message(content=f"{interaction.user.name} voted yes", view=None)


class LaterView(discord.ui.View):
    @discord.ui.button(label="Later")
    async def later(self, button: discord.ui.Button, interaction: discord.Interaction) -> None:
        await interaction.response.defer()  # deferred update (type 6), edited afterwards
        await interaction.edit_original_response(content="updated later")


class PickView(discord.ui.View):
    @discord.ui.select(placeholder="Colour", options=[discord.SelectOption(label=c) for c in ("red", "blue")])
    async def colour(self, select: discord.ui.Select, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"you picked {select.values[0]}", ephemeral=True)


class FeedbackModal(discord.ui.Modal):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(discord.ui.InputText(label="Your feedback", custom_id="text"), **kwargs)

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"thanks for: {self.children[0].value}", ephemeral=True)


@dataclass
class World:
    guild: Guild
    channel: int
    member_role: Role
    alice: User
    bob: User


@pytest.fixture
def world(discord_server: FakeDiscord) -> World:
    guild = discord_server.add_guild("Demo")
    member_role = discord_server.add_role(guild, "Member", permissions=Permission.MANAGE_MESSAGES)
    alice = discord_server.add_user("alice", global_name="Alice")
    bob = discord_server.add_user("bob")
    discord_server.add_member(guild, alice, roles=[member_role])
    discord_server.add_member(guild, bob)
    assert guild.system_channel_id is not None
    return World(guild, guild.system_channel_id, member_role, alice, bob)


@pytest.fixture
async def launch(start_bot: Any) -> AsyncIterator[Callable[..., Awaitable[DemoBot]]]:
    """Start DemoBots; at the end, fail the test if any of them hit an error inside."""
    launched: list[DemoBot] = []

    async def launch_bot(**options: Any) -> DemoBot:
        started: DemoBot = await start_bot(DemoBot(**options))
        launched.append(started)
        return started

    yield launch_bot
    assert [error for b in launched for error in b.errors] == []


@pytest.fixture
async def bot(launch: Callable[..., Awaitable[DemoBot]], world: World) -> DemoBot:
    return await launch()


# ---- startup -----------------------------------------------------------------------------------


async def test_startup_logs_in_connects_and_syncs_commands(discord_server: FakeDiscord, bot: DemoBot,
                                                           world: World) -> None:
    app = discord_server.application_id
    assert [r.path for r in discord_server.requests_to("GET", "/users/@me")] == ["/users/@me"]
    assert discord_server.requests_to("GET", "/gateway")
    synced = discord_server.requests_to("PUT", f"/applications/{app}/commands")
    assert len(synced) == 1
    assert {c["name"] for c in synced[0].json} == {c.name for c in discord_server.commands()}
    assert "whois" in {c.name for c in discord_server.commands()}

    identify = next(f for f in discord_server.gateway_frames if f.op == 2)
    assert identify.data["intents"] == MEMBERS_AND_CONTENT.value
    cached = bot.get_guild(world.guild.id)
    assert cached is not None and cached.get_member(world.alice.id) is not None
    assert cached.me.top_role.name == bot.user.name  # the bot's managed role came with GUILD_CREATE


async def test_json_answers_carry_exactly_application_json(discord_server: FakeDiscord) -> None:
    async with aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bot {discord_server.token}"}
        async with session.get(discord_server.api_base_url + "/users/@me", headers=headers) as answer:
            assert answer.headers["Content-Type"] == "application/json"
            assert (await answer.json())["id"] == str(discord_server.bot_user.id)
        async with session.get(discord_server.api_base_url + "/users/@me") as anonymous:
            assert anonymous.status == 401


async def test_wrong_token_is_refused_at_login(discord_server: FakeDiscord) -> None:
    client = discord.Bot(**sandbox_client_options())
    with pytest.raises(SandboxError, match="LoginFailure"):
        async with running_bot(discord_server, client, token="MTIz.wrong.token"):
            pass
    assert discord_server.requests_to("GET", "/users/@me")[0].status == 401


# ---- interactions --------------------------------------------------------------------------------


async def test_ephemeral_reply(discord_server: FakeDiscord, bot: DemoBot, world: World) -> None:
    reply = await discord_server.invoke_command(world.guild, world.channel, world.alice, "secret")

    assert reply.content == "only you can see this"
    assert reply.ephemeral and reply.flags & 64
    assert discord_server.messages_in(world.channel) == []  # ephemeral answers are not channel history
    callback = discord_server.requests_to("POST", f"/interactions/{reply.id}/*/callback")[0]
    assert callback.json["type"] == 4


async def test_an_ephemeral_answer_is_unknown_to_the_channel_routes(discord_server: FakeDiscord, bot: DemoBot,
                                                                   world: World) -> None:
    # On Discord only the interaction's webhook reaches it: the channel routes answer 10008.
    reply = await discord_server.invoke_command(world.guild, world.channel, world.alice, "secret")
    channel = bot.get_channel(world.channel)
    partial = channel.get_partial_message(reply.message.id)
    for call in (lambda: channel.fetch_message(partial.id), partial.delete, lambda: partial.edit(content="x")):
        with pytest.raises(discord.NotFound) as unknown:
            await call()
        assert unknown.value.code == 10008
    await channel.delete_messages([partial, discord.Object(reply.id)])  # unknown ids are skipped there
    assert not reply.message.deleted and reply.content == "only you can see this"
    hook = f"{discord_server.api_base_url}/webhooks/{discord_server.application_id}/{reply.token}/messages"
    async with aiohttp.ClientSession() as session, session.get(f"{hook}/@original") as original:
        assert original.status == 200 and (await original.json())["id"] == str(reply.message.id)


async def test_an_interaction_first_answered_after_the_deadline_is_unknown(discord_server: FakeDiscord,
                                                                          start_bot: Any, world: World) -> None:
    # Discord allows 3 s for the first answer, then drops the interaction: 404 Unknown interaction.
    assert discord_server.answer_deadline == 3.0
    discord_server.answer_deadline = 0.3   # the same rule, sooner, so the test stays quick
    bot = discord.Bot(**sandbox_client_options())
    outcome: list[object] = []

    @bot.slash_command(name="sleepy", description="Answers after a while")
    async def sleepy(ctx: discord.ApplicationContext, seconds: discord.Option(float, "how long")) -> None:  # type: ignore[valid-type]
        await asyncio.sleep(seconds)
        try:
            await ctx.respond("late" if seconds else "at once")
            outcome.append("accepted")
        except discord.NotFound as error:
            outcome.append(error.code)
            with pytest.raises(discord.NotFound) as no_followup:   # nor may it follow up
                await ctx.followup.send("still there?")
            outcome.append(no_followup.value.code)

    await start_bot(bot)
    quick = await discord_server.invoke_command(world.guild, world.channel, world.alice, "sleepy", {"seconds": 0})
    assert quick.content == "at once"
    with pytest.raises(SandboxError, match=r"first answered sleepy 0\.[5-9]\d s after .*10062"):
        await discord_server.invoke_command(world.guild, world.channel, world.alice, "sleepy", {"seconds": 0.5})
    await eventually(lambda: len(outcome) == 3, what="the bot to hear Discord's answers")
    assert outcome == ["accepted", 10062, 10015]
    assert discord_server.messages_in(world.channel, author=discord_server.bot_user)[-1].content == "at once"

    discord_server.answer_deadline = None   # no limit at all
    slow = await discord_server.invoke_command(world.guild, world.channel, world.alice, "sleepy", {"seconds": 0.5})
    assert slow.content == "late"


async def test_a_held_request_is_handled_only_once_released(discord_server: FakeDiscord, bot: DemoBot,
                                                             world: World) -> None:
    channel = bot.get_channel(world.channel)
    assert isinstance(channel, discord.TextChannel)

    def message_post(method: str, path: str, body: Any) -> bool:
        return method == "POST" and path == f"/channels/{world.channel}/messages"

    async with discord_server.holding_requests(message_post) as slow:
        sending = asyncio.create_task(channel.send("hello"))
        await slow.arrived(within=5)
        assert discord_server.messages_in(world.channel) == [] and not sending.done()
        slow.release()
        sent = await sending
    assert [message.id for message in discord_server.messages_in(world.channel)] == [sent.id]


async def test_deferred_reply_is_completed_by_the_followup(discord_server: FakeDiscord, bot: DemoBot,
                                                           world: World) -> None:
    reply = await discord_server.invoke_command(world.guild, world.channel, world.bob, "slow")

    assert reply.deferred and reply.callback_type == 5
    assert reply.content == "done thinking"
    assert reply.ephemeral  # as on Discord: the deferral's flag wins over the follow-up's
    assert len(reply.messages) == 1 and reply.followups == []


@pytest.mark.parametrize("private", [True, False])
async def test_a_followup_after_the_deferral_was_deleted_has_its_own_visibility(
        discord_server: FakeDiscord, bot: DemoBot, world: World, private: bool) -> None:
    # On Discord only the follow-up that replaces a "thinking..." placeholder takes the deferral's
    # flag; once the placeholder is deleted, the next follow-up is a new message with its own.
    reply = await discord_server.invoke_command(world.guild, world.channel, world.bob, "rethink",
                                                {"private": private})

    assert reply.callback_type == 5 and reply.original is not None and reply.original.deleted
    assert [(m.content, m.ephemeral) for m in reply.messages] == [("thought it over", private)]
    assert reply.followups == reply.messages


async def test_user_option_resolves_the_member(discord_server: FakeDiscord,
                                               bot: DemoBot, world: World) -> None:
    reply = await discord_server.invoke_command(world.guild, world.channel, world.bob, "whois",
                                                options={"member": world.alice})

    assert reply.content == "Alice: top role Member"
    assert not reply.ephemeral
    # A public answer is channel history and reached the bot as MESSAGE_CREATE too.
    assert [m.id for m in discord_server.messages_in(world.channel)] == [reply.message.id]
    assert reply.message.id in [m.id for m in bot.seen["message"]]


async def test_file_and_embed_reply(discord_server: FakeDiscord, bot: DemoBot, world: World) -> None:
    reply = await discord_server.invoke_command(world.guild, world.channel, world.alice, "report")

    assert reply.embeds[0]["title"] == "Weekly report"
    assert [(f.filename, f.data) for f in reply.files] == [("report.csv", b"name,xp\nalice,10\n")]
    callback = discord_server.requests_to("POST", "/interactions/*/callback")[-1]
    assert [f.filename for f in callback.files] == ["report.csv"]  # sent as multipart


async def test_an_upload_over_the_stated_limit_is_refused(discord_server: FakeDiscord, bot: DemoBot,
                                                          world: World) -> None:
    limit = 10 * 2**20  # what interactions state as attachment_size_limit (an unboosted server)
    at_limit = await discord_server.invoke_command(world.guild, world.channel, world.alice, "upload", {"over": 0})
    assert len(at_limit.files[0].data) == limit
    over = await discord_server.invoke_command(world.guild, world.channel, world.alice, "upload", {"over": 1})
    assert over.content == "refused: 413 40005" and over.files == []
    channel = bot.get_channel(world.channel)
    with pytest.raises(discord.HTTPException) as too_large:
        await channel.send(file=discord.File(io.BytesIO(b"x" * (limit + 1)), "big.bin"))
    assert (too_large.value.status, too_large.value.code) == (413, 40005)
    with pytest.raises(discord.HTTPException) as body_too_large:   # over what the server reads at all
        await channel.send(file=discord.File(io.BytesIO(b"x" * 26 * 2**20), "huge.bin"))
    assert (body_too_large.value.status, body_too_large.value.code) == (413, 40005)
    posted = discord_server.messages_in(world.channel, author=discord_server.bot_user)
    assert [m.id for m in posted] == [at_limit.message.id, over.message.id], "the refused ones left nothing"


async def test_attachment_option_is_downloadable_by_the_bot(discord_server: FakeDiscord, bot: DemoBot,
                                                            world: World) -> None:
    reply = await discord_server.invoke_command(world.guild, world.channel, world.alice, "measure",
                                                options={"upload": ("notes.txt", b"12345")})
    assert reply.content == "notes.txt: 5 bytes"


async def test_button_press_updates_the_message(discord_server: FakeDiscord,
                                                bot: DemoBot, world: World) -> None:
    vote = await discord_server.invoke_command(world.guild, world.channel, world.alice, "vote")
    assert [b["label"] for b in vote.message.buttons()] == ["Yes"]

    pressed = await discord_server.press_button(vote.message, world.bob, label="Yes")

    assert pressed.callback_type == 7
    assert discord_server.message(vote.message.id).content == "bob voted yes"
    assert discord_server.message(vote.message.id).components == []


async def test_modal_round_trip(discord_server: FakeDiscord, bot: DemoBot, world: World) -> None:
    opened = await discord_server.invoke_command(world.guild, world.channel, world.alice, "feedback")
    assert opened.callback_type == 9 and opened.modal is not None

    submitted = await discord_server.submit_modal(opened, {"Your feedback": "more quests"})

    assert submitted.content == "thanks for: more quests"


async def test_unknown_command_names_what_is_registered(discord_server: FakeDiscord, bot: DemoBot,
                                                        world: World) -> None:
    discord_server.timeout = 0.2
    with pytest.raises(SandboxError, match="registered no command /nope"):
        await discord_server.invoke_command(world.guild, world.channel, world.alice, "nope")


# ---- gateway events --------------------------------------------------------------------------


async def test_member_message_reaches_the_bot(discord_server: FakeDiscord,
                                              bot: DemoBot, world: World) -> None:
    sent = await discord_server.send_message(world.channel, world.alice, "hello there")

    seen = [m for m in bot.seen["message"] if m.id == sent.id]
    assert seen and seen[0].content == "hello there" and seen[0].author.id == world.alice.id


async def test_without_message_content_intent_content_is_blank(discord_server: FakeDiscord, launch: Any,
                                                               world: World) -> None:
    plain = await launch(intents=discord.Intents.default() | discord.Intents(members=True))
    sent = await discord_server.send_message(world.channel, world.alice, "secret words")
    mentioning = await discord_server.send_message(world.channel, world.alice, f"<@{plain.user.id}> hi")

    by_id = {m.id: m for m in plain.seen["message"]}
    assert by_id[sent.id].content == ""
    assert by_id[mentioning.id].content.endswith("hi")


async def test_member_remove_for_cached_and_uncached_members(discord_server: FakeDiscord, bot: DemoBot,
                                                             world: World) -> None:
    await discord_server.remove_member(world.guild, world.bob)
    stranger = discord_server.add_user("never-seen")
    await discord_server.remove_member(world.guild, stranger, uncached=True)

    assert [raw.user.id for raw in bot.seen["raw_member_remove"]] == [world.bob.id, stranger.id]
    assert [member.id for member in bot.seen["member_remove"]] == [world.bob.id]  # cached members only
    assert bot.get_guild(world.guild.id).get_member(world.bob.id) is None


# py-cord alone waits 60 s on a member list Discord refused within its window (MalaBot asks again:
# malabot/member_lists.py). Tests about other things that make py-cord ask again at once lift the window.
NO_MEMBER_LIST_WINDOW = 0.0


async def test_outage_is_not_a_removal(discord_server: FakeDiscord, bot: DemoBot, world: World) -> None:
    discord_server.member_list_window = NO_MEMBER_LIST_WINDOW  # the return and the join ask again
    await discord_server.guild_outage(world.guild)
    assert [g.id for g in bot.seen["guild_unavailable"]] == [world.guild.id]
    assert bot.seen["guild_remove"] == []

    await discord_server.end_guild_outage(world.guild)
    assert [g.id for g in bot.seen["guild_available"]][-1] == world.guild.id

    await discord_server.remove_bot_from_guild(world.guild)
    assert [g.id for g in bot.seen["guild_remove"]] == [world.guild.id]
    assert bot.get_guild(world.guild.id) is None

    joined = bot.wait_for("guild_join", timeout=2)  # py-cord reports it once the member list is in
    await discord_server.add_bot_to_guild(world.guild)
    await joined
    assert [g.id for g in bot.seen["guild_join"]] == [world.guild.id]
    assert bot.get_guild(world.guild.id) is not None


async def test_a_server_in_an_outage_sends_nothing_until_it_is_back(discord_server: FakeDiscord, bot: DemoBot,
                                                                    world: World) -> None:
    """As on Discord: what happens in a server during its outage reaches the bot only as the state in
    the GUILD_CREATE that ends it (no member or message events meanwhile)."""
    await discord_server.guild_outage(world.guild)
    await discord_server.remove_member(world.guild, world.bob)
    await discord_server.send_message(world.channel, world.alice, "anyone there?")
    with pytest.raises(SandboxError, match="outage"):
        await discord_server.invoke_command(world.guild, world.channel, world.alice, "secret")
    assert bot.seen["raw_member_remove"] == [] and bot.seen["message"] == []

    await discord_server.end_guild_outage(world.guild)
    assert [g.id for g in bot.seen["guild_available"]][-1] == world.guild.id
    assert bot.get_guild(world.guild.id).member_count == len(discord_server.guild(world.guild).members)
    await discord_server.send_message(world.channel, world.alice, "back")
    assert [m.content for m in bot.seen["message"]] == ["back"]


async def test_resume_replays_missed_events(discord_server: FakeDiscord, bot: DemoBot, world: World) -> None:
    await discord_server.disconnect_bot(resumable=True)
    await discord_server.remove_member(world.guild, world.bob)  # sent while the bot is away
    resumed = bot.wait_for("resumed", timeout=2)
    await resumed
    await discord_server.sync_with_bot()

    assert [f.op for f in discord_server.gateway_frames].count(6) == 1  # RESUME, no second IDENTIFY
    assert [raw.user.id for raw in bot.seen["raw_member_remove"]] == [world.bob.id]


async def test_invalid_session_makes_the_bot_identify_again(discord_server: FakeDiscord,
                                                            bot: DemoBot) -> None:
    discord_server.member_list_window = NO_MEMBER_LIST_WINDOW  # the new session asks again
    ready_again = bot.wait_for("ready", timeout=2)
    await discord_server.disconnect_bot(resumable=False)
    await ready_again
    assert [f.op for f in discord_server.gateway_frames].count(2) == 2


async def test_member_query_gets_chunks_with_the_nonce(discord_server: FakeDiscord, bot: DemoBot,
                                                       world: World) -> None:
    guild = bot.get_guild(world.guild.id)
    found = await guild.query_members(query="ali", limit=5)

    assert [m.id for m in found] == [world.alice.id]
    request = [f for f in discord_server.gateway_frames if f.op == 8][-1]
    assert request.data["nonce"]


async def test_a_second_whole_member_list_within_the_window_gets_rate_limited_instead_of_chunks(
        discord_server: FakeDiscord, launch: Callable[..., Awaitable[DemoBot]], world: World) -> None:
    """Discord answers a guild's whole member list (query "" and limit 0) once per guild per bot every
    30 s; another request meanwhile gets RATE_LIMITED (opcode 8, retry_after, meta) and no chunks."""
    discord_server.member_list_window = 1.0
    other = discord_server.add_guild("Other")
    bot = await launch(enable_debug_events=True, chunk_guilds_at_startup=False)  # the requests are the test's
    dispatched: list[dict[str, Any]] = []

    async def record(raw: str) -> None:
        frame = json.loads(raw)
        if frame.get("op") == 0:
            dispatched.append(frame)

    bot.add_listener(record, "on_socket_raw_receive")

    def of_type(event: str) -> list[dict[str, Any]]:
        return [frame["d"] for frame in dispatched if frame["t"] == event]

    guild = bot.get_guild(world.guild.id)
    await asyncio.wait_for(guild.chunk(), timeout=2)                       # the first: answered
    assert len(of_type("GUILD_MEMBERS_CHUNK")) == 1
    second = asyncio.ensure_future(guild.chunk())
    await eventually(lambda: bool(of_type("RATE_LIMITED")), what="RATE_LIMITED for the second list")
    [refused] = of_type("RATE_LIMITED")
    nonce = [f for f in discord_server.gateway_frames if f.op == 8][-1].data["nonce"]
    assert refused["opcode"] == 8 and 0 < refused["retry_after"] <= 1.0
    assert refused["meta"] == {"guild_id": str(world.guild.id), "nonce": nonce}
    await discord_server.sync_with_bot()
    assert len(of_type("GUILD_MEMBERS_CHUNK")) == 1 and not second.done(), "no chunks for it"
    second.cancel()

    # Not limited by this rule: a query, user ids, another guild's whole list.
    assert [m.id for m in await guild.query_members(query="ali", limit=5)] == [world.alice.id]
    assert [m.id for m in await guild.query_members(user_ids=[world.bob.id])] == [world.bob.id]
    await asyncio.wait_for(bot.get_guild(other.id).chunk(), timeout=2)
    assert len(of_type("RATE_LIMITED")) == 1

    # Per bot, not per session: a new session within the window is refused too; after it, answered.
    ready_again = bot.wait_for("ready", timeout=2)
    await discord_server.disconnect_bot(resumable=False)
    await ready_again
    await bot.ws.request_chunks(world.guild.id, query="", limit=0, nonce="again")
    await eventually(lambda: len(of_type("RATE_LIMITED")) == 2, what="RATE_LIMITED in the new session")
    await asyncio.sleep(of_type("RATE_LIMITED")[-1]["retry_after"])
    await bot.ws.request_chunks(world.guild.id, query="", limit=0, nonce="later")
    await eventually(lambda: any(chunk.get("nonce") == "later" for chunk in of_type("GUILD_MEMBERS_CHUNK")),
                     what="the whole list once the window is over")


async def test_more_than_120_payloads_a_minute_close_the_connection_with_4008(bot: DemoBot, world: World) -> None:
    """As on Discord: py-cord keeps to 110 a minute; payloads sent past its limiter are counted too."""
    socket = bot.ws.socket
    for number in range(121):
        await socket.send_str(json.dumps({"op": 8, "d": {"guild_id": str(world.guild.id), "query": "a",
                                                           "limit": 1, "nonce": f"n{number}"}}))
    await eventually(lambda: socket.close_code is not None, what="Discord closing the connection")
    assert socket.close_code == 4008


@pytest.mark.parametrize("presences", [False, True])
async def test_a_guild_comes_with_its_members_only_to_a_bot_with_the_presences_intent(
        discord_server: FakeDiscord, launch: Callable[..., Awaitable[DemoBot]], world: World,
        presences: bool) -> None:
    """As on Discord, GUILD_CREATE carries a guild's member list only with GUILD_PRESENCES; otherwise
    just the bot's own member, and the bot asks for the list (py-cord does at start)."""
    intents = MEMBERS_AND_CONTENT | discord.Intents(presences=presences)
    bot = await launch(intents=intents, enable_debug_events=True, chunk_guilds_at_startup=False)
    sent: list[dict[str, Any]] = []

    async def record(raw: str) -> None:
        frame = json.loads(raw)
        if frame.get("t") == "GUILD_CREATE":
            sent.append(frame["d"])

    bot.add_listener(record, "on_socket_raw_receive")
    joined = bot.wait_for("guild_join", timeout=2)
    guild = discord_server.add_guild("Newcomers", with_bot=False)
    discord_server.add_member(guild, discord_server.add_user("dana"))
    await discord_server.add_bot_to_guild(guild)
    await joined
    [created] = sent
    everyone = {str(user_id) for user_id in discord_server.guild(guild).members}
    names = {member["user"]["id"] for member in created["members"]}
    assert names == (everyone if presences else {str(discord_server.world.bot_user.id)})
    assert created["member_count"] == len(everyone) == 3  # the owner, dana and the bot
    assert bot.get_guild(guild.id).chunked is presences


async def test_a_large_guild_comes_without_its_members_and_is_reported_once_they_arrive(
        discord_server: FakeDiscord, bot: DemoBot, world: World) -> None:
    """More members than IDENTIFY's large_threshold (py-cord asks for 250): GUILD_CREATE carries only
    the bot; py-cord asks for the member list and reports the join only once it has arrived."""
    big = discord_server.add_guild("Big", with_bot=False)
    for number in range(251):
        discord_server.add_member(big, discord_server.add_user(f"member-{number}"))
    async with discord_server.holding_member_lists(big) as slow:
        await discord_server.add_bot_to_guild(big)
        await slow.arrived(within=5)
        joined = bot.get_guild(big.id)
        assert joined is not None and joined.large and not joined.chunked
        assert [member.id for member in joined.members] == [discord_server.world.bot_user.id]
        assert bot.seen["guild_join"] == [], "py-cord waits for the member list"
        reported = bot.wait_for("guild_join", timeout=5)
        slow.release()
        await reported
    assert joined.chunked and len(joined.members) == 253  # the owner, 251 members and the bot
    small = bot.get_guild(world.guild.id)
    assert small is not None and not small.large and small.chunked, "a small guild still comes whole"


# ---- the bot acting through REST ------------------------------------------------------------------


async def test_moderation_calls_change_the_world(discord_server: FakeDiscord,
                                                 bot: DemoBot, world: World) -> None:
    guild = bot.get_guild(world.guild.id)
    helper = discord_server.add_user("carol")
    discord_server.add_member(world.guild, helper)
    alice, bob = guild.get_member(world.alice.id), guild.get_member(world.bob.id)
    extra = await guild.create_role(name="Helper")

    await bob.add_roles(extra, reason="helps out")
    until = datetime.now(UTC) + timedelta(hours=1)
    await alice.timeout(until, reason="cool down")
    await guild.kick(bob)
    await guild.ban(discord.Object(helper.id), reason="spam")
    await discord_server.sync_with_bot()

    assert discord_server.member(world.guild, world.bob) is None
    assert discord_server.member(world.guild, helper) is None
    assert discord_server.guild(world.guild).bans[helper.id].reason == "spam"
    assert discord_server.member(world.guild, world.alice).communication_disabled_until == until
    role_grant = discord_server.requests_to("PUT", f"/guilds/{world.guild.id}/members/{world.bob.id}/roles/*")
    assert role_grant[0].reason == "helps out"
    # The gateway events kept py-cord's cache right.
    assert guild.get_member(world.alice.id).communication_disabled_until == until
    assert guild.get_member(world.bob.id) is None
    assert guild.get_role(extra.id) is not None


async def test_role_hierarchy_and_permissions_are_enforced(discord_server: FakeDiscord, world: World,
                                                           launch: Any) -> None:
    above = discord_server.add_role(world.guild, "Admins", above_bot=True)
    weak_guild = discord_server.add_guild("No perms", bot_permissions=Permission.VIEW_CHANNEL)
    discord_server.add_member(weak_guild, world.bob)
    bot = await launch()
    guild = bot.get_guild(world.guild.id)

    with pytest.raises(discord.Forbidden) as refused:
        await guild.get_member(world.bob.id).add_roles(guild.get_role(above.id))
    assert refused.value.code == 50013 and refused.value.status == 403
    with pytest.raises(discord.Forbidden):
        await bot.get_guild(weak_guild.id).kick(discord.Object(world.bob.id))
    assert discord_server.member(world.guild, world.bob).roles == []
    assert discord_server.member(weak_guild, world.bob) is not None


async def test_a_timed_out_bot_without_administrator_may_not_moderate(discord_server: FakeDiscord, world: World,
                                                                       launch: Any) -> None:
    # Discord: a timed-out member keeps only View Channel and Read Message History, server-wide too.
    plain = discord_server.add_guild("Plain", bot_permissions=NOT_ADMIN)
    discord_server.add_member(plain, world.bob)
    helper = discord_server.add_role(plain, "Helper")
    discord_server.member(plain, discord_server.bot_user).communication_disabled_until = \
        datetime.now(UTC) + timedelta(hours=1)
    bot = await launch()
    guild = bot.get_guild(plain.id)

    for refused in (guild.get_member(world.bob.id).add_roles(guild.get_role(helper.id)),
                    guild.kick(discord.Object(world.bob.id)), guild.ban(discord.Object(world.bob.id))):
        with pytest.raises(discord.Forbidden):
            await refused
    assert discord_server.member(plain, world.bob).roles == [] and not discord_server.guild(plain).bans


async def test_unknown_ids_answer_discord_error_codes(discord_server: FakeDiscord, bot: DemoBot,
                                                      world: World) -> None:
    guild = bot.get_guild(world.guild.id)
    channel = guild.get_channel(world.channel)
    missing = 123456789012345678
    expectations = [
        (guild.fetch_member(missing), 10007),
        (bot.fetch_channel(missing), 10003),
        (channel.fetch_message(missing), 10008),
        (bot.fetch_user(missing), 10013),
        (guild.fetch_ban(discord.Object(world.alice.id)), 10026),
        (bot.fetch_guild(missing), 10004),
    ]
    for call, code in expectations:
        with pytest.raises(discord.NotFound) as raised:
            await call
        assert raised.value.code == code


async def test_bot_messages_edits_and_bulk_delete(discord_server: FakeDiscord, bot: DemoBot,
                                                  world: World) -> None:
    channel = bot.get_channel(world.channel)
    first = await channel.send("first", embed=discord.Embed(title="t"))
    second = await channel.send("second", file=discord.File(io.BytesIO(b"xyz"), "x.txt"))
    await first.edit(content="first, edited")
    old = await discord_server.send_message(world.channel, world.alice, "ancient",
                                            at=datetime.now(UTC) - timedelta(days=20))

    assert [m.content for m in discord_server.messages_in(world.channel, author=discord_server.bot_user)] == [
        "first, edited", "second"]
    assert discord_server.message(second.id).files[0].data == b"xyz"
    with pytest.raises(discord.HTTPException) as too_old:
        await channel.delete_messages([discord.Object(first.id), discord.Object(old.id)])
    assert too_old.value.code == 50034
    await channel.delete_messages([first, second])
    assert discord_server.messages_in(world.channel) == [discord_server.message(old.id)]
    with pytest.raises(discord.HTTPException) as empty:
        await channel.send("")
    assert empty.value.code == 50006


async def test_embeds_of_a_bot_without_embed_links_are_dropped(discord_server: FakeDiscord, world: World,
                                                               launch: Any) -> None:
    # As on Discord: the message keeps the rest, an embed-only one is empty; DMs and answers to
    # interactions (webhook messages) always show embeds.
    guild = discord_server.add_guild("Plain", bot_permissions=NOT_ADMIN)
    discord_server.add_member(guild, world.alice)
    bot_role = next(role for role in guild.roles.values() if role.bot_id == discord_server.bot_user.id)
    plain = discord_server.add_channel(guild, "plain", overwrites=[
        Overwrite.for_role(bot_role, deny=int(Permission.EMBED_LINKS))])
    bot = await launch()
    channel = bot.get_channel(plain.id)

    sent = await channel.send("text", embed=discord.Embed(title="dropped"))
    assert sent.embeds == [] and discord_server.message(sent.id).embeds == []
    await sent.edit(embed=discord.Embed(title="dropped too"))
    assert discord_server.message(sent.id).embeds == [] and discord_server.message(sent.id).content == "text"
    with pytest.raises(discord.HTTPException) as empty:
        await channel.send(embed=discord.Embed(title="only an embed"))
    assert empty.value.code == 50006

    shown = [await bot.get_channel(guild.system_channel_id).send(embed=discord.Embed(title="shown")),
             await bot.get_user(world.alice.id).send(embed=discord.Embed(title="shown"))]
    assert [[e["title"] for e in discord_server.message(m.id).embeds] for m in shown] == [["shown"], ["shown"]]
    report = await discord_server.invoke_command(guild, plain.id, world.alice, "report")
    assert [e["title"] for e in report.embeds] == ["Weekly report"]


@pytest.mark.parametrize("kind", [1, 2, 3, 4, 5, 21])
async def test_system_messages_discord_never_deletes_are_refused(discord_server: FakeDiscord, bot: DemoBot,
                                                                  world: World, kind: int) -> None:
    channel = bot.get_channel(world.channel)
    system = discord_server.world.add_message(discord_server.channel(world.channel), world.alice.id, "",
                                              type=kind)
    other = await discord_server.send_message(world.channel, world.alice, "deletable")
    with pytest.raises(discord.Forbidden) as alone:
        await channel.delete_messages([discord.Object(system.id)])      # one message: a single DELETE
    with pytest.raises(discord.Forbidden) as together:
        await channel.delete_messages([discord.Object(system.id), discord.Object(other.id)])
    assert alone.value.code == together.value.code == 50021
    assert not system.deleted and not other.deleted, "the whole bulk delete is refused"
    await channel.delete_messages([discord.Object(other.id)])
    assert other.deleted


async def test_dm_channel_is_created_then_used(discord_server: FakeDiscord,
                                               bot: DemoBot, world: World) -> None:
    closed = discord_server.add_user("private", accepts_dms=False)
    discord_server.add_member(world.guild, closed)

    await bot.get_user(world.alice.id).send("welcome!")
    with pytest.raises(discord.Forbidden) as refused:
        await (await bot.fetch_user(closed.id)).send("hello?")

    assert refused.value.code == 50007
    created = discord_server.requests_to("POST", "/users/@me/channels")
    assert created[0].json == {"recipient_id": world.alice.id}
    dm = discord_server.dm_channel(world.alice)
    answer = await discord_server.send_message(dm, world.alice, "thanks")
    assert [m.content for m in discord_server.messages_in(dm)] == ["welcome!", "thanks"]
    seen = [m for m in bot.seen["message"] if m.id == answer.id]
    assert seen and seen[0].guild is None and seen[0].channel.id == dm.id


async def test_a_dm_to_a_user_who_shares_no_server_with_the_bot_is_refused(discord_server: FakeDiscord,
                                                                          bot: DemoBot, world: World) -> None:
    stranger = discord_server.add_user("stranger")          # in no server with the bot
    user = await bot.fetch_user(stranger.id)
    with pytest.raises(discord.Forbidden) as refused:
        await user.send("hello")
    assert refused.value.code == 50007
    assert discord_server.messages_in(discord_server.dm_channel(stranger)) == []
    discord_server.add_member(world.guild, stranger)         # once they share one, it goes through
    await user.send("hello again")
    assert [m.content for m in discord_server.messages_in(discord_server.dm_channel(stranger))] == ["hello again"]


async def test_a_rate_limited_route_answers_429_and_py_cord_retries(discord_server: FakeDiscord, bot: DemoBot,
                                                                   world: World) -> None:
    channel = bot.get_channel(world.channel)
    path = f"/channels/{world.channel}/messages"

    def message_post(method: str, request_path: str, body: Any) -> bool:
        return method == "POST" and request_path == path

    limit = discord_server.rate_limit(message_post, times=2, retry_after=0.1)
    started = asyncio.get_running_loop().time()
    await channel.send("through")
    assert asyncio.get_running_loop().time() - started >= 0.2, "py-cord waited retry_after each time"
    answers = discord_server.requests_to("POST", path)
    assert [r.status for r in answers] == [429, 429, 200] and limit.hits == 2
    assert answers[0].response == {"message": "You are being rate limited.", "retry_after": 0.1, "global": False}
    assert [m.content for m in discord_server.messages_in(world.channel)] == ["through"]

    discord_server.rate_limit(message_post, times=5, retry_after=0.01)   # py-cord tries five times at most
    with pytest.raises(discord.HTTPException) as gave_up:
        await channel.send("never")
    assert gave_up.value.status == 429
    await channel.send("the limit is used up")

    discord_server.rate_limit(lambda *_: True, is_global=True, retry_after=0.01)
    async with aiohttp.ClientSession() as session, session.get(
            discord_server.api_base_url + "/users/@me", headers={"Authorization": f"Bot {discord_server.token}"}
    ) as limited:
        assert limited.status == 429 and (await limited.json())["global"] is True
        assert limited.headers["Via"] and limited.headers["Retry-After"] == "1"
        assert limited.headers["X-RateLimit-Global"] == "true"
    assert [m.content for m in discord_server.messages_in(world.channel)] == ["through", "the limit is used up"]


# ---- the network guard ------------------------------------------------------------------------------


async def test_network_guard_refuses_the_internet() -> None:
    with pytest.raises(RealNetworkForbidden), socket.socket() as raw:
        raw.connect(("93.184.216.34", 80))
    with pytest.raises(RealNetworkForbidden):
        await asyncio.open_connection("93.184.216.34", 80)
    with pytest.raises(RealNetworkForbidden):
        socket.getaddrinfo("discord.com", 443)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(RealNetworkForbidden):
            await session.get("https://discord.com/api/v10/gateway")


async def test_network_guard_allows_loopback(discord_server: FakeDiscord) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", discord_server.port)
    writer.write(b"GET /api/v10/gateway HTTP/1.0\r\n\r\n")
    answer = await reader.read()
    writer.close()
    assert b"401" in answer.split(b"\r\n")[0]
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["code"] == 0


# ---- more interaction shapes ----------------------------------------------------------------------


async def test_member_permissions_follow_roles_and_ownership(discord_server: FakeDiscord, bot: DemoBot,
                                                             world: World) -> None:
    alice = await discord_server.invoke_command(world.guild, world.channel, world.alice, "where")
    bob = await discord_server.invoke_command(world.guild, world.channel, world.bob, "where")
    owner = await discord_server.invoke_command(world.guild, world.channel, world.guild.owner_id, "where")

    assert f"context=guild guild={world.guild.id} locale=en-US" in alice.content
    assert "manage_messages=True manage_roles=False admin=False bot_admin=True" in alice.content
    assert "manage_messages=False manage_roles=False admin=False" in bob.content
    assert "admin=True" in owner.content


async def test_interaction_permissions_are_resolved_in_the_channel(discord_server: FakeDiscord, bot: DemoBot,
                                                                    world: World) -> None:
    # An overwrite that takes Manage Messages from alice's role in this channel, and gives bob the
    # channel's "Manage Permissions" (the Manage Roles bit): the interaction carries both, while
    # the guild's roles (what py-cord's Member.guild_permissions reads) do not change.
    await discord_server.set_overwrite(world.channel, Overwrite.for_role(
        world.member_role, deny=int(Permission.MANAGE_MESSAGES)))
    await discord_server.set_overwrite(world.channel, Overwrite.for_member(
        world.bob, allow=int(Permission.MANAGE_ROLES)))
    alice = await discord_server.invoke_command(world.guild, world.channel, world.alice, "where")
    assert "manage_messages=False" in alice.content
    bob = await discord_server.invoke_command(world.guild, world.channel, world.bob, "where")
    assert "manage_roles=True" in bob.content
    cached = bot.get_channel(world.channel)
    assert cached.overwrites_for(bot.get_guild(world.guild.id).get_member(world.bob.id)).manage_roles
    assert not bot.get_guild(world.guild.id).get_member(world.bob.id).guild_permissions.manage_roles


async def test_command_in_a_dm(discord_server: FakeDiscord, bot: DemoBot, world: World) -> None:
    reply = await discord_server.invoke_command(None, None, world.bob, "where")

    assert "context=bot_dm guild=None" in reply.content
    assert reply.message.channel_id == discord_server.dm_channel(world.bob).id


async def test_guild_commands_are_registered_and_invoked(discord_server: FakeDiscord, launch: Any,
                                                         world: World) -> None:
    await launch(debug_guilds=[world.guild.id])

    reply = await discord_server.invoke_command(world.guild, world.channel, world.alice, "secret")

    assert reply.content == "only you can see this"
    assert "secret" in {c.name for c in discord_server.commands(world.guild)}
    assert discord_server.commands() == []
    assert discord_server.requests_to("PUT", f"/applications/*/guilds/{world.guild.id}/commands")


async def test_followups_and_original_edits(discord_server: FakeDiscord, bot: DemoBot, world: World) -> None:
    reply = await discord_server.invoke_command(world.guild, world.channel, world.alice, "steps")
    first, second = await reply.wait_for_messages(2)
    await discord_server.wait_for_request(method="PATCH", path="/webhooks/*/messages/@original")

    assert (first.content, first.ephemeral) == ("step 1 (edited)", False)
    assert (second.content, second.ephemeral) == ("step 2", True)
    assert first.edited_at is not None
    assert reply.followups == [second]


async def test_deferred_component_update(discord_server: FakeDiscord, bot: DemoBot, world: World) -> None:
    shown = await discord_server.invoke_command(world.guild, world.channel, world.alice, "later")
    pressed = await discord_server.press_button(shown.message, world.bob, label="Later")
    await discord_server.wait_for_request(method="PATCH", path="/webhooks/*/messages/@original")

    assert pressed.callback_type == 6 and pressed.deferred
    assert discord_server.message(shown.message.id).content == "updated later"


async def test_select_menu(discord_server: FakeDiscord, bot: DemoBot, world: World) -> None:
    shown = await discord_server.invoke_command(world.guild, world.channel, world.alice, "pick")

    picked = await discord_server.choose(shown.message, world.bob, ["blue"], placeholder="Colour")

    assert (picked.content, picked.ephemeral) == ("you picked blue", True)
    with pytest.raises(SandboxError, match="offers"):
        await discord_server.choose(shown.message, world.bob, ["green"], placeholder="Colour")


# ---- more of the world ------------------------------------------------------------------------------


async def test_member_join_and_the_bots_welcome(discord_server: FakeDiscord, bot: DemoBot,
                                                world: World) -> None:
    dave = discord_server.add_user("dave")
    mark = len(discord_server.requests)

    await discord_server.member_join(world.guild, dave)
    posted = await discord_server.wait_for_request(method="POST", path=f"/channels/{world.channel}/messages",
                                                   since=mark)

    assert posted.json["content"] == f"Welcome <@{dave.id}>!"
    welcome = discord_server.messages_in(world.channel, author=discord_server.bot_user)[-1]
    assert welcome.mention_ids == [dave.id]
    assert bot.get_guild(world.guild.id).get_member(dave.id) is not None


async def test_membership_screening_pending_then_passed(discord_server: FakeDiscord, bot: DemoBot,
                                                        world: World) -> None:
    dave = discord_server.add_user("dave")
    await discord_server.member_join(world.guild, dave, pending=True)
    assert bot.get_guild(world.guild.id).get_member(dave.id).pending

    await discord_server.update_member(world.guild, dave, pending=False)    # they accepted the rules
    [(before, after)] = bot.seen["member_update"]
    assert before.pending and not after.pending
    assert not discord_server.member(world.guild, dave).pending


@pytest.mark.parametrize("giving", ["add_roles", "edit"])
async def test_a_role_given_to_a_member_in_screening_lets_them_skip_it(discord_server: FakeDiscord, bot: DemoBot,
                                                                       world: World, giving: str) -> None:
    # Discord: a member given any role no longer waits in Membership Screening, and says so.
    dave = discord_server.add_user("dave")
    await discord_server.member_join(world.guild, dave, pending=True)
    guild = bot.get_guild(world.guild.id)
    member, role = guild.get_member(dave.id), guild.get_role(world.member_role.id)
    if giving == "add_roles":
        await member.add_roles(role)
    else:
        await member.edit(roles=[role])
    await discord_server.sync_with_bot()

    assert not discord_server.member(world.guild, dave).pending
    [(before, after)] = bot.seen["member_update"]
    assert before.pending and not after.pending


async def test_held_member_updates_reach_the_bot_after_the_answer_in_order(discord_server: FakeDiscord,
                                                                            bot: DemoBot, world: World) -> None:
    # A gateway running behind the HTTP answers: the role is given on Discord, the cache shows it later.
    guild = bot.get_guild(world.guild.id)
    bob, role = guild.get_member(world.bob.id), guild.get_role(world.member_role.id)

    def member_updates(event: str, payload: dict[str, Any]) -> bool:
        return event == "GUILD_MEMBER_UPDATE"

    async with discord_server.holding_events(member_updates) as lagging:
        await bob.add_roles(role)
        await bob.remove_roles(role)
        await bob.add_roles(role)
        await discord_server.send_message(world.channel, world.alice, "meanwhile")   # other events go on
        assert [message.content for message in bot.seen["message"]] == ["meanwhile"]
        assert world.member_role.id in discord_server.member(world.guild, world.bob).roles
        assert guild.get_member(world.bob.id).get_role(role.id) is None
        assert bot.seen["member_update"] == [] and len(lagging.held) == 3
        await lagging.send(1)                                # the first comes, the others stay behind
        assert len(bot.seen["member_update"]) == 1 and len(lagging.held) == 2
        assert guild.get_member(world.bob.id).get_role(role.id) is not None

    # py-cord updates one cached member in place; each `before` is a copy of the cache at that update.
    held_before = [before.get_role(role.id) is not None for before, _ in bot.seen["member_update"]]
    assert held_before == [False, True, False]
    assert guild.get_member(world.bob.id).get_role(role.id) is not None


async def test_events_the_bot_causes_while_held_ones_go_out_queue_behind_them(discord_server: FakeDiscord,
                                                                                bot: DemoBot, world: World) -> None:
    # One stream in order, as on Discord: the update of a role the bot gives in answer to a held event
    # must not overtake older held updates, whose snapshots would then undo it in the cache.
    guild = bot.get_guild(world.guild.id)
    role = guild.get_role(world.member_role.id)

    async def give_role_on_first_nick(before: discord.Member, after: discord.Member) -> None:
        if after.nick == "first" and before.nick != "first":
            await after.add_roles(role)

    bot.add_listener(give_role_on_first_nick, "on_member_update")
    others = [discord_server.add_user(f"other{number}") for number in range(8)]
    for other in others:
        await discord_server.member_join(world.guild, other)
    async with discord_server.holding_events(lambda event, _: event == "GUILD_MEMBER_UPDATE"):
        await discord_server.update_member(world.guild, world.bob, nick="first")
        for other in others:                                   # a busy server meanwhile
            await discord_server.update_member(world.guild, other, nick="busy")
        await discord_server.update_member(world.guild, world.bob, nick="second")   # no role yet
    await eventually(lambda: world.member_role.id in discord_server.member(world.guild, world.bob).roles,
                     what="the role given on Discord")
    await discord_server.sync_with_bot()
    bob = guild.get_member(world.bob.id)
    assert bob.nick == "second" and bob.get_role(role.id) is not None


async def test_raw_dispatch(discord_server: FakeDiscord, bot: DemoBot, world: World) -> None:
    payload = {"guild_id": str(world.guild.id),
               "user": {"id": "42", "username": "ghost", "discriminator": "0", "avatar": None}}

    delivered = await discord_server.dispatch("GUILD_MEMBER_REMOVE", payload, guild_id=world.guild.id)

    assert delivered == 1
    assert [raw.user.id for raw in bot.seen["raw_member_remove"]] == [42]


async def test_new_roles_go_to_the_bottom_and_the_bot_sees_the_order_the_server_has(
        discord_server: FakeDiscord, bot: DemoBot, world: World) -> None:
    # Discord creates a role just above @everyone and moves every other role up one; py-cord's cache
    # assumes exactly that on GUILD_ROLE_CREATE, so the server's world must do the same.
    guild = bot.get_guild(world.guild.id)
    by_bot = await guild.create_role(name="Made by the bot")
    by_admin = await discord_server.create_role(world.guild, "Made by an admin")
    above = await discord_server.create_role(world.guild, "Above the bot", above_bot=True)
    await discord_server.sync_with_bot()

    in_world = {role.id: role.position for role in discord_server.guild(world.guild).roles.values()}
    assert {role.id: role.position for role in guild.roles} == in_world
    assert (in_world[by_admin.id], in_world[by_bot.id]) == (2, 3), "each new one below the last, moved up by the next"
    assert guild.get_role(above.id) > guild.me.top_role > guild.get_role(by_bot.id)


async def test_roles_members_and_bans_round_trip(discord_server: FakeDiscord, bot: DemoBot,
                                                 world: World) -> None:
    guild = bot.get_guild(world.guild.id)
    role = await guild.create_role(name="Temp", colours=discord.RoleColours(discord.Colour(0x3498DB)))
    await role.edit(name="Renamed")
    bob = guild.get_member(world.bob.id)
    await bob.edit(roles=[role, guild.get_role(world.member_role.id)])
    assert set(discord_server.member(world.guild, world.bob).roles) == {role.id, world.member_role.id}
    await bob.remove_roles(role)
    await role.delete()
    with pytest.raises(discord.NotFound) as gone:
        await role.edit(name="again")
    assert gone.value.code == 10011

    members = [m.id async for m in guild.fetch_members(limit=None)]
    assert world.alice.id in members and world.bob.id in members
    await guild.ban(bob, reason="rude")
    await discord_server.sync_with_bot()
    assert [b.user.id async for b in guild.bans()] == [world.bob.id]
    assert [getattr(m, "id", None) for _, m in bot.seen["member_ban"]] == [world.bob.id]
    await guild.unban(discord.Object(world.bob.id))
    assert discord_server.guild(world.guild).bans == {}

    sent = await discord_server.send_message(world.channel, world.alice, "for the history")
    history = [m.id async for m in guild.get_channel(world.channel).history(limit=5)]
    assert history[0] == sent.id
    assert discord_server.role(world.guild, world.member_role).name == "Member"
    assert discord_server.guild(world.guild).roles.get(role.id) is None


async def test_subcommand_with_role_and_channel_options(discord_server: FakeDiscord, bot: DemoBot,
                                                        world: World) -> None:
    news = await discord_server.create_channel(world.guild, "news")
    assert bot.get_channel(news.id) is not None  # CHANNEL_CREATE reached the bot

    options = {"amount": 5, "role": world.member_role, "where": news}
    reply = await discord_server.invoke_command(world.guild, world.channel, world.alice, "xp give", options)

    assert reply.content == "5 XP to Member, announced in #news"
    with pytest.raises(SandboxError, match="needs a subcommand"):
        await discord_server.invoke_command(world.guild, world.channel, world.alice, "xp")


async def test_autocomplete_then_invoke(discord_server: FakeDiscord, bot: DemoBot, world: World) -> None:
    choices = await discord_server.autocomplete(world.guild, world.channel, world.alice, "paint",
                                                focused="colour", value="gr")

    assert [c["value"] for c in choices] == ["green"]
    reply = await discord_server.invoke_command(world.guild, world.channel, world.alice, "paint",
                                                options={"colour": "green"})
    assert reply.content == "painted green"


@pytest.mark.parametrize(("body", "where"), [
    ({"content": "x", "components": [{"type": 1, "components": [{"type": 2, "custom_id": "c" * 101}]}]},
     "components.0.components.0.custom_id"),
    ({"content": "x", "components": [{"type": 1, "components": [{"type": 2, "label": "l" * 81}]}]},
     "components.0.components.0.label"),
    ({"content": "x", "components": [{"type": 1, "components": []}] * 6}, "components"),
    ({"content": "x", "components": [{"type": 1, "components": [{"type": 2}] * 6}]}, "components.0.components"),
    ({"content": "x", "components": [{"type": 1, "components": [
        {"type": 3, "options": [{"label": "a", "value": "a"}] * 26}]}]}, "components.0.components.0.options"),
    ({"embeds": [{"description": "d", "footer": {"text": "f" * 2049}}]}, "embeds.0"),
])
def test_the_sandbox_refuses_what_discord_refuses_in_a_message(body: dict[str, Any], where: str) -> None:
    with pytest.raises(ApiError) as refused:
        check_content(body)
    assert where in json.dumps(refused.value.body())
