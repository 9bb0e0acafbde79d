"""/config through the real bot: validated changes are stored, bad values are refused ephemerally."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from malabot.sandbox import ALL_PERMISSIONS, FakeDiscord, Overwrite, Permission
from malabot.sandbox.state import GUILD_CATEGORY, GUILD_VOICE
from tests.e2e.world import World, make_world


@pytest.fixture
async def world(discord_server: FakeDiscord, tmp_path: Path) -> AsyncIterator[World]:
    async for running in make_world(discord_server, tmp_path):
        yield running


async def test_set_show_and_reset_a_setting(world: World) -> None:
    reply = await world.command(world.admin, "config set",
                                {"setting": "birthday_channel_id", "value": f"<#{world.general.id}>"})
    assert reply.ephemeral
    assert reply.content == f"`birthday_channel_id` is now <#{world.general.id}>."
    assert (await world.live.guild_settings.get(world.guild.id)).birthday_channel_id == world.general.id

    shown = await world.command(world.admin, "config show")
    assert shown.ephemeral
    assert f"• `birthday_channel_id`: <#{world.general.id}>" in shown.embeds[0]["description"]

    reset = await world.command(world.admin, "config reset", {"setting": "birthday_channel_id"})
    assert reset.ephemeral
    assert reset.content == "`birthday_channel_id` is back to its default: not set."
    assert (await world.live.guild_settings.get(world.guild.id)).birthday_channel_id is None
    assert await settings_audit(world) == [
        (world.admin.id, {"birthday_channel_id": world.general.id}),
        (world.admin.id, {"birthday_channel_id": None}),
    ], "both changes are on record, with who made them"


async def test_settings_changes_are_stamped_with_the_bots_clock(world: World) -> None:
    world.clock.advance(days=3)
    await world.command(world.admin, "config set", {"setting": "checkin_base_xp", "value": "70"})
    async with world.live.tenants.reading(world.guild.id) as conn:
        stamps = [row[0] for row in await conn.execute_fetchall(
            "SELECT at FROM audit_log WHERE category = 'settings' UNION ALL SELECT updated_at FROM settings")]
    assert stamps == [world.clock().isoformat()] * 2


async def settings_audit(world: World) -> list[tuple[int, dict[str, object]]]:
    """(actor, changed values) of the settings audit rows, oldest first."""
    async with world.live.tenants.reading(world.guild.id) as conn:
        rows = await conn.execute_fetchall(
            "SELECT actor_id, details FROM audit_log WHERE category = 'settings' ORDER BY id")
    return [(actor, json.loads(details)) for actor, details in rows]


@pytest.mark.parametrize(("setting", "value", "answer"), [
    ("timezone", "Mars/Olympus", "timezone: unknown timezone 'Mars/Olympus'; use an IANA name such as Europe/Berlin"),
    ("birthday_hour", "25", "birthday_hour: Input should be less than or equal to 23"),
    ("levelup_channel_id", "<#999>", "`levelup_channel_id`: there is no channel with id 999 in this server."),
    ("xp_enabled", "maybe", "`xp_enabled` is on or off, not `maybe`."),
    ("levelup_template", "{member} hit {lvl}", "levelup_template: Unknown placeholder {lvl}."),
    # A rule between two settings is one plain sentence naming both (the default xp_max is 25).
    ("xp_min", "30", "`xp_min` (30) must not exceed `xp_max` (25)."),
    # A misspelt key would be dropped silently, and the threshold time out for an hour instead.
    ("warn_thresholds", '[{"count": 3, "days": 7, "action": "timeout", "timeout_mins": 30}]',
     "warn_thresholds.0.timeout_mins: Extra inputs are not permitted"),
    # More digits than Python converts to an int (4,300), yet within the 6,000 characters of an option.
    pytest.param("warn_thresholds", '[{"count": 1' + "0" * 4400 + ', "days": 7, "action": "ban"}]',
                 "`warn_thresholds` takes a JSON list, e.g. [", id="warn_thresholds-huge-number"),
    # Not stored as the text "off", which every welcome would then say.
    ("welcome_template", "off", "`welcome_template` cannot be cleared; `/config reset welcome_template` puts "
                                "back its default."),
])
async def test_bad_values_are_refused_and_nothing_is_stored(world: World, setting: str, value: str,
                                                            answer: str) -> None:
    reply = await world.command(world.admin, "config set", {"setting": setting, "value": value})
    assert reply.ephemeral
    assert reply.content.startswith(answer)
    async with world.live.tenants.reading(world.guild.id) as conn, \
            conn.execute("SELECT COUNT(*) FROM settings") as cursor:
        assert (await cursor.fetchone())[0] == 0


async def test_resetting_xp_min_above_a_low_xp_max_is_refused_in_one_plain_sentence(world: World) -> None:
    for setting, value in (("xp_min", "5"), ("xp_max", "10")):
        await world.command(world.admin, "config set", {"setting": setting, "value": value})
    reply = await world.command(world.admin, "config reset", {"setting": "xp_min"})  # the default is 15
    assert reply.ephemeral
    assert reply.content == "`xp_min` (15) must not exceed `xp_max` (10)."
    settings = await world.live.guild_settings.get(world.guild.id)
    assert (settings.xp_min, settings.xp_max) == (5, 10)


@pytest.mark.parametrize(("first", "second", "answer"), [
    ("verified_role_id", "birthday_role_id",
     "`birthday_role_id` and `verified_role_id` must be different roles: a birthday would verify the member "
     "for the day."),
    ("birthday_role_id", "unverified_role_id",
     "`birthday_role_id` and `unverified_role_id` must be different roles: a birthday would mark the member "
     "unverified for the day."),
    ("autorole_id", "birthday_role_id",
     "`birthday_role_id` and `autorole_id` must be different roles: every member gets the autorole on joining, "
     "so it marks no birthday."),
    ("verified_role_id", "autorole_id",
     "`autorole_id` and `verified_role_id` must be different roles: every member who joins would be verified "
     "without verifying."),
    ("autorole_id", "verified_role_id",
     "`autorole_id` and `verified_role_id` must be different roles: every member who joins would be verified "
     "without verifying."),
])
async def test_one_role_for_role_settings_that_work_against_each_other_is_refused(
        world: World, first: str, second: str, answer: str) -> None:
    role = await world.server.create_role(world.guild, "Verified")
    await world.command(world.admin, "config set", {"setting": first, "value": f"<@&{role.id}>"})
    reply = await world.command(world.admin, "config set", {"setting": second, "value": f"<@&{role.id}>"})
    assert reply.ephemeral
    assert reply.content == answer
    settings = await world.live.guild_settings.get(world.guild.id)
    assert (getattr(settings, first), getattr(settings, second)) == (role.id, None)


async def test_roles_an_older_bot_stored_against_the_rules_are_kept_by_an_unrelated_change(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    """The rules between role settings are about changes: a server whose old bot stored one role as both
    auto-role and verified role (and a level role as birthday role) keeps them all, loaded and stored."""
    member = await world.server.create_role(world.guild, "Member")
    party = await world.server.create_role(world.guild, "Party")
    async with world.live.tenants.transaction(world.guild.id) as conn:  # as the old bot left the file
        await conn.executemany("INSERT INTO settings (key, value, updated_at) VALUES (?, ?, 'then')",
                               [("autorole_id", str(member.id)), ("verified_role_id", str(member.id)),
                                ("birthday_role_id", str(party.id))])
        await conn.execute("INSERT INTO level_roles (level, role_id) VALUES (5, ?)", (party.id,))
    await world.restart()  # what the file says, not a cached copy
    settings = await world.live.guild_settings.get(world.guild.id)
    assert (settings.autorole_id, settings.verified_role_id, settings.birthday_role_id) == (
        member.id, member.id, party.id)
    reply = await world.command(world.admin, "config set", {"setting": "xp_max", "value": "30"})
    assert reply.content == "`xp_max` is now 30."
    stored = await stored_settings(world)
    assert {key: stored.get(key) for key in ("autorole_id", "verified_role_id", "birthday_role_id")} == {
        "autorole_id": str(member.id), "verified_role_id": str(member.id), "birthday_role_id": str(party.id)}
    assert not [record for record in caplog.records if "invalid stored settings" in record.getMessage()]


async def test_the_autorole_may_be_the_unverified_role(world: World) -> None:
    """A common way to verify: everyone gets "Unverified" on joining, and verifying takes it away."""
    role = await world.server.create_role(world.guild, "Unverified")
    for setting in ("unverified_role_id", "autorole_id"):
        reply = await world.command(world.admin, "config set", {"setting": setting, "value": f"<@&{role.id}>"})
        assert reply.content == f"`{setting}` is now <@&{role.id}>."


async def test_none_clears_the_warn_thresholds_as_it_clears_a_list_of_channels(world: World) -> None:
    """README: `none` clears an id or a list."""
    rule = '[{"count": 3, "days": 7, "action": "timeout", "timeout_minutes": 60}]'
    await world.command(world.admin, "config set", {"setting": "warn_thresholds", "value": rule})
    await world.command(world.admin, "config set", {"setting": "no_xp_channel_ids", "value": f"<#{world.general.id}>"})
    before = await world.live.guild_settings.get(world.guild.id)
    assert len(before.warn_thresholds) == 1 and before.no_xp_channel_ids == (world.general.id,)
    for setting in ("warn_thresholds", "no_xp_channel_ids"):
        reply = await world.command(world.admin, "config set", {"setting": setting, "value": "none"})
        assert reply.ephemeral and reply.content == f"`{setting}` is now none.", reply.content
    after = await world.live.guild_settings.get(world.guild.id)
    assert (after.warn_thresholds, after.no_xp_channel_ids) == ((), ())


async def test_setting_names_autocomplete(world: World) -> None:
    choices = await world.server.autocomplete(world.guild, world.general, world.admin, "config set",
                                              "setting", "birthday_h")
    assert [choice["value"] for choice in choices] == ["birthday_hour"]


async def stored_settings(world: World) -> dict[str, str]:
    async with world.live.tenants.reading(world.guild.id) as conn:
        return {key: value for key, value in await conn.execute_fetchall("SELECT key, value FROM settings")}


@pytest.mark.parametrize(("typed", "stored"), [("europe/berlin", "Europe/Berlin"), (" etc/utc ", "Etc/UTC"),
                                               ("AMERICA/ARGENTINA/BUENOS_AIRES", "America/Argentina/Buenos_Aires")])
async def test_a_timezone_typed_in_any_case_is_stored_under_its_iana_name(world: World, typed: str,
                                                                          stored: str) -> None:
    reply = await world.command(world.admin, "config set", {"setting": "timezone", "value": typed})
    assert reply.content == f"`timezone` is now {stored.replace('_', chr(92) + '_')}."
    assert await stored_settings(world) == {"timezone": f'"{stored}"'}


async def test_texts_are_shown_as_typed_not_as_markdown(world: World) -> None:
    # Discord renders what the bot sends: unescaped, "Port_of_Spain" would read "Port*of*Spain" in italics.
    zone = await world.command(world.admin, "config set", {"setting": "timezone", "value": "America/Port_of_Spain"})
    assert zone.content == "`timezone` is now America/Port\\_of\\_Spain."
    template = "**Welcome** {member}, read the __rules__ ~~now~~"
    escaped = "\\*\\*Welcome\\*\\* {member}, read the \\_\\_rules\\_\\_ \\~\\~now\\~\\~"
    welcome = await world.command(world.admin, "config set", {"setting": "welcome_template", "value": template})
    assert welcome.content == f"`welcome_template` is now {escaped}."
    summary = (await world.command(world.admin, "config show")).embeds[0]["description"]
    assert "• `timezone`: America/Port\\_of\\_Spain\n" in summary
    assert f"• `welcome_template`: {escaped}\n" in summary
    assert (await world.live.guild_settings.get(world.guild.id)).welcome_template == template, "stored as typed"


async def test_a_channel_the_bot_cannot_post_in_is_refused_for_its_posts_but_not_as_a_no_xp_channel(
        world: World) -> None:
    await world.set_bot_permissions(ALL_PERMISSIONS & ~Permission.ADMINISTRATOR)  # overwrites apply to it
    muted = await world.server.create_channel(world.guild, "muted", overwrites=[
        Overwrite.for_role(world.bot_role(), deny=int(Permission.SEND_MESSAGES))])
    hidden = await world.server.create_channel(world.guild, "hidden", overwrites=[
        Overwrite.for_role(world.bot_role(), deny=int(Permission.VIEW_CHANNEL))])
    for setting, channel in (("welcome_channel_id", muted), ("levelup_channel_id", hidden)):
        reply = await world.command(world.admin, "config set", {"setting": setting, "value": f"<#{channel.id}>"})
        assert reply.ephemeral
        assert reply.content == f"I cannot post in <#{channel.id}>; let me view it and send messages there."
    assert await stored_settings(world) == {}

    reply = await world.command(world.admin, "config set", {"setting": "no_xp_channel_ids",
                                                            "value": f"<#{muted.id}>"})
    assert reply.content == f"`no_xp_channel_ids` is now <#{muted.id}>."


async def test_two_admins_changing_different_settings_at_once_both_keep_their_change(world: World) -> None:
    timezone, base_xp = await asyncio.gather(
        world.command(world.admin, "config set", {"setting": "timezone", "value": "Europe/Berlin"}),
        world.command(world.bob, "config set", {"setting": "checkin_base_xp", "value": "70"}))
    assert timezone.content == "`timezone` is now Europe/Berlin."
    assert base_xp.content == "`checkin_base_xp` is now 70."
    assert await stored_settings(world) == {"timezone": '"Europe/Berlin"', "checkin_base_xp": "70"}
    await world.restart()  # what the file says, not a cached copy
    settings = await world.live.guild_settings.get(world.guild.id)
    assert (settings.timezone, settings.checkin_base_xp) == ("Europe/Berlin", 70)


@pytest.fixture
async def odd_things(discord_server: FakeDiscord, tmp_path: Path) -> AsyncIterator[tuple[World, dict[str, int]]]:
    made: dict[str, int] = {}

    def add_them(world: World) -> None:
        made["category"] = world.server.add_channel(world.guild, "Events", type=GUILD_CATEGORY).id
        made["voice"] = world.server.add_channel(world.guild, "Lounge", type=GUILD_VOICE).id
        made["role elsewhere"] = world.server.add_role(world.other_guild, "Elsewhere mods").id

    async for running in make_world(discord_server, tmp_path, prepare=add_them):
        yield running, made


async def test_references_must_be_of_this_server_and_of_the_right_kind(
        odd_things: tuple[World, dict[str, int]]) -> None:
    world, made = odd_things
    category, voice, elsewhere_role = made["category"], made["voice"], made["role elsewhere"]
    refusals = {
        ("levelup_channel_id", f"<#{world.other_general.id}>"):
            f"`levelup_channel_id`: there is no channel with id {world.other_general.id} in this server.",
        ("birthday_role_id", f"<@&{elsewhere_role}>"):
            f"`birthday_role_id`: there is no role with id {elsewhere_role} in this server.",
        ("no_xp_channel_ids", f"<#{category}>"):
            f"`no_xp_channel_ids`: <#{category}> is a category; name its channels instead.",
        ("welcome_channel_id", f"<#{voice}>"):
            f"`welcome_channel_id`: <#{voice}> is not a text channel; I post there, so choose a text channel.",
        ("timezone", "localtime"): "timezone: unknown timezone 'localtime'",
    }
    for (setting, value), answer in refusals.items():
        reply = await world.command(world.admin, "config set", {"setting": setting, "value": value})
        assert reply.ephemeral and reply.content.startswith(answer), (setting, reply.content)
    assert await stored_settings(world) == {}

    chat_anywhere = await world.command(world.admin, "config set",
                                        {"setting": "no_xp_channel_ids", "value": f"<#{voice}>"})
    assert chat_anywhere.content == f"`no_xp_channel_ids` is now <#{voice}>."


@pytest.mark.parametrize(("command", "options", "answer"), [
    ("config set", {"setting": "timezone", "value": "Mars/" + "x" * 2500},
     "timezone: unknown timezone 'Mars/xxxx"),
    ("config set", {"setting": "xp_enabled", "value": "maybe" * 500}, "`xp_enabled` is on or off, not `maybe"),
    ("config set", {"setting": "xp_min", "value": "lots" * 600}, "`xp_min` must be a whole number, not `lots"),
    ("config set", {"setting": "levelup_channel_id", "value": "#" * 3000}, "`levelup_channel_id` needs a #channel"),
    ("config set", {"setting": "s" * 3000, "value": "1"}, "There is no setting called `sss"),
    ("config reset", {"setting": "s" * 3000}, "There is no setting called `sss"),
])
async def test_a_long_bad_value_is_quoted_shortened_so_the_answer_still_arrives(
        world: World, command: str, options: dict[str, str], answer: str) -> None:
    # Discord takes up to 6,000 characters in an option but delivers no answer over 2,000.
    reply = await world.command(world.admin, command, options)
    assert reply.ephemeral
    assert reply.content.startswith(answer)
    assert len(reply.content) < 300
    assert await stored_settings(world) == {}


async def test_many_bad_entries_are_answered_with_the_first_few_problems_within_one_message(world: World) -> None:
    value = "[" + ",".join(["{}"] * 1500) + "]"  # 4,500 problems: each entry lacks count, days and action
    reply = await world.command(world.admin, "config set", {"setting": "warn_thresholds", "value": value})
    assert reply.ephemeral
    assert reply.content == ("warn_thresholds.0.count: Field required; warn_thresholds.0.days: Field required; "
                             "warn_thresholds.0.action: Field required; … and 4,497 more")
    assert await stored_settings(world) == {}


async def test_an_error_longer_than_one_message_is_cut_so_the_answer_still_arrives(world: World) -> None:
    misspelt = "k" * 2000  # the key is named back in the answer
    value = json.dumps([{"count": 3, "days": 7, "action": "ban", misspelt: 1}])
    reply = await world.command(world.admin, "config set", {"setting": "warn_thresholds", "value": value})
    assert reply.ephemeral
    assert reply.content.startswith("warn_thresholds.0.kkkk")
    assert len(reply.content) == 2000 and reply.content.endswith("…")
    assert await stored_settings(world) == {}


@pytest.fixture
async def many_channels(discord_server: FakeDiscord, tmp_path: Path) -> AsyncIterator[tuple[World, list[int]]]:
    made: list[int] = []

    def add_them(world: World) -> None:
        made.extend(world.server.add_channel(world.guild, f"ticket-{number}").id for number in range(100))

    async for running in make_world(discord_server, tmp_path, prepare=add_them):
        yield running, made


async def test_a_long_list_is_stored_and_the_answer_says_so_within_one_message(
        many_channels: tuple[World, list[int]]) -> None:
    world, channels = many_channels
    value = " ".join(f"<#{channel}>" for channel in channels)  # 2,200 characters as mentions
    reply = await world.command(world.admin, "config set", {"setting": "no_xp_channel_ids", "value": value})
    assert reply.ephemeral
    shown = " ".join(f"<#{channel}>" for channel in channels[:5])
    assert reply.content == f"`no_xp_channel_ids` is now {shown} and 95 more."
    assert (await world.live.guild_settings.get(world.guild.id)).no_xp_channel_ids == tuple(channels)


async def test_a_long_template_is_shown_as_typed_in_the_summary(world: World) -> None:
    template = "**Welcome** {member}, read the __rules__ " + "x" * 100
    await world.command(world.admin, "config set", {"setting": "welcome_template", "value": template})
    summary = (await world.command(world.admin, "config show")).embeds[0]["description"]
    assert "• `welcome_template`: \\*\\*Welcome\\*\\* {member}, read the \\_\\_rules\\_\\_ x" in summary, summary


async def test_a_very_long_template_is_shown_as_typed_when_set(world: World) -> None:
    template = "**Welcome** {member} " + "_x" * 700  # escaped, too long to show in full
    reply = await world.command(world.admin, "config set", {"setting": "welcome_template", "value": template})
    assert reply.content.startswith("`welcome_template` is now \\*\\*Welcome\\*\\* {member} \\_x"), reply.content[:200]
