"""Which question-button presses the stale-question listener answers (the live view answers the rest)."""

from __future__ import annotations

import discord

from malabot.cogs.questions import GRACE_SECONDS, Questions, is_stale, question_custom_id

RUN = "0a1b2c3d"
DEADLINE = 1_800_000_000


def test_a_press_of_this_run_before_the_deadline_is_left_to_the_live_view() -> None:
    assert not is_stale(question_custom_id(RUN, DEADLINE, 0), RUN, DEADLINE - 30)
    assert not is_stale(question_custom_id(RUN, DEADLINE, 1), RUN, DEADLINE + GRACE_SECONDS)


def test_a_press_after_the_deadline_and_grace_is_stale() -> None:
    assert is_stale(question_custom_id(RUN, DEADLINE, 0), RUN, DEADLINE + GRACE_SECONDS + 0.5)


def test_a_press_on_a_question_of_an_earlier_run_is_stale_at_once() -> None:
    assert is_stale(question_custom_id("ffffffff", DEADLINE, 0), RUN, DEADLINE - 60)


def test_other_buttons_are_never_claimed() -> None:
    for custom_id in ("malabot:verify", "malabot:review:approve:42", "5f2b9e0c1d", "malabot:question:x:soon:0", ""):
        assert not is_stale(custom_id, RUN, DEADLINE + 10_000)


async def test_stamping_names_the_run_and_a_deadline_after_the_views_timeout() -> None:
    view = discord.ui.View(timeout=120)
    view.add_item(discord.ui.Button(label="Yes"))
    view.add_item(discord.ui.Button(label="No"))
    questions = Questions()
    questions.stamp(view)
    ids = [item.custom_id for item in view.children if isinstance(item, discord.ui.Button)]
    assert len(set(ids)) == 2
    deadline = int(str(ids[0]).split(":")[3])
    assert not is_stale(str(ids[0]), questions.run, deadline - 1)
    assert is_stale(str(ids[0]), Questions().run, deadline - 1), "another run does not own it"
