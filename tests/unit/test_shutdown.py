"""How a stop treats py-cord's handlers still running (runtime.finish_handlers)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from malabot.runtime import finish_handlers


async def test_a_stop_cancels_the_start_up_sweep_at_once_and_lets_a_command_finish(
        caplog: pytest.LogCaptureFixture) -> None:
    """on_ready's sweep is done again at the next start: the stop neither waits out the grace for it
    nor warns about it, while a command that is about to answer still gets to."""
    sweep = asyncio.create_task(asyncio.Event().wait(), name="pycord: on_ready")
    command = asyncio.create_task(asyncio.sleep(0.2, result="answered"), name="pycord: on_application_command")
    await asyncio.sleep(0)

    with caplog.at_level(logging.WARNING):
        await asyncio.wait_for(finish_handlers(within=60), timeout=10)

    assert sweep.cancelled()
    assert command.result() == "answered"
    assert caplog.records == []


async def test_a_handler_still_running_after_the_grace_is_cancelled_with_a_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    stuck = asyncio.create_task(asyncio.Event().wait(), name="pycord: on_message")
    await asyncio.sleep(0)

    with caplog.at_level(logging.WARNING):
        await finish_handlers(within=0.1)

    assert stuck.cancelled()
    assert [record.getMessage() for record in caplog.records] == [
        "shutting down: cancelling 1 event handler(s) still running after 0.1 s"]
