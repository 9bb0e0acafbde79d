"""cases_embed: the cases of /warnings list cut from the oldest end to fit one embed, in one pass."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from malabot.cogs.moderation import cases_embed
from malabot.features.moderation.models import Case
from malabot.features.moderation.rules import render_case_text

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
EMBED_DESCRIPTION_MAX = 4096


def quadratic_description(header: str, cases: list[Case]) -> str:
    """The description as cases_embed made it before, re-joining the lines after every cut: the
    reference the one-pass version must match."""
    lines = [render_case_text(case) for case in cases]
    body = "\n".join(lines)
    dropped = 0
    while lines and len(header) + len(body) + 40 > EMBED_DESCRIPTION_MAX:
        lines.pop(0)
        dropped += 1
        body = "\n".join(lines)
    if dropped:
        header += f" ({dropped} older not shown)"
    return f"{header}\n{body}" if body else header


def warnings(count: int, reason_length: int) -> list[Case]:
    """`count` warnings whose reasons vary in length around `reason_length`, oldest first."""
    return [Case(case_number=n, action="warn", created_at=NOW + timedelta(minutes=n), target_id=20,
                 moderator_id=10, reason="r" * (reason_length + n % 7) if reason_length else None)
            for n in range(1, count + 1)]


@pytest.mark.parametrize("count", [0, 1, 5, 14, 15, 16, 25, 60, 400])
@pytest.mark.parametrize("reason_length", [0, 40, 195])
@pytest.mark.parametrize("header", ["The latest cases, newest last:", "h" * 3000, "h" * 4100])
def test_the_description_is_unchanged(count: int, reason_length: int, header: str) -> None:
    cases = warnings(count, reason_length)
    description = cases_embed("Cases", header, cases).description
    assert description == quadratic_description(header, cases)


def test_lines_that_fill_the_room_exactly_are_all_shown() -> None:
    cases = warnings(10, 100)
    body = "\n".join(render_case_text(case) for case in cases)
    header = "h" * (EMBED_DESCRIPTION_MAX - 40 - len(body))
    assert cases_embed("Cases", header, cases).description == f"{header}\n{body}"
    one_more = cases_embed("Cases", header + "h", cases).description
    assert one_more == quadratic_description(header + "h", cases)
    assert one_more.startswith(f"{header}h (1 older not shown)\n#2 Warning")
