"""`malabot sandbox`: the scripted day runs on the real bot and leaves real files; interactive input works."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

from malabot.sandbox.demo import parse_command_line, play


async def test_scripted_day_and_interactive_lines(tmp_path: Path) -> None:
    tenants = tmp_path / "tenants"
    typed = io.StringIO("/as chloe\n/rank\nhello from chloe\n/birthday show\n/quit\n")
    out = io.StringIO()
    await play(tenants, typed, out)
    transcript = out.getvalue()

    for expected in ("The real bot connected as MalaBot to 2 servers: Mala Café, Old Club",
                     "GG @ana, you reached level 1!",
                     "Checked in for",
                     "You already checked in today.",
                     "Happy birthday @chloe! 🎂",
                     "purged ben's data in Mala Café: 0 rows left",
                     "archived Old Club's file to"):
        assert expected in transcript, expected
    assert "cannot use" not in transcript and "Sorry, something went wrong" not in transcript
    assert "     chloe │ /rank" in transcript
    assert "**chloe** — level" in transcript

    live = sorted(tenants.glob("*.sqlite3"))
    assert len(live) == 1, "Old Club was archived, Mala Café stays"
    assert len(list((tenants / "archive").glob("*.sqlite3"))) == 1
    with sqlite3.connect(live[0]) as conn:
        assert conn.execute("SELECT COUNT(*) FROM xp").fetchone()[0] == 2  # ana and chloe; ben left
        assert conn.execute("SELECT COUNT(*) FROM birthday_celebrations").fetchone()[0] == 1


def test_command_lines_parse_into_name_and_options() -> None:
    assert parse_command_line("/birthday set month:5 day:17") == ("birthday set", {"month": 5, "day": 17})
    assert parse_command_line('/config set setting:timezone value:"Europe/Paris"') == (
        "config set", {"setting": "timezone", "value": "Europe/Paris"})
