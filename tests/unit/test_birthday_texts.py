"""What the /birthday commands print: the year and age only in the member's own (ephemeral) text."""

from __future__ import annotations

from datetime import date

from malabot.cogs.birthdays import list_text, own_birthday_text, public_birthday_text, upcoming_text
from malabot.features.birthdays.rules import Birthday, announces_age
from malabot.features.birthdays.views import BirthdayPage, view_for

ALICE, BOB = 11, 22
TODAY = date(2026, 11, 25)


def test_own_text_with_and_without_a_year() -> None:
    with_year = view_for(ALICE, ALICE, Birthday(11, 26, 2000), TODAY)
    assert own_birthday_text(with_year) == ("Your birthday is November 26, 2000; next celebrated tomorrow "
                                            "(November 26, 2026), when you turn 26. "
                                            "Only you can see your birth year.")
    no_year = view_for(ALICE, ALICE, Birthday(11, 25), TODAY)
    assert own_birthday_text(no_year, saved=True) == ("Saved: your birthday is November 25; "
                                                      "next celebrated today (November 25, 2026).")


def test_a_birthday_changed_after_this_years_celebration_names_next_years_date() -> None:
    changed = view_for(ALICE, ALICE, Birthday(11, 28, 2000), TODAY, celebrated_on=date(2026, 11, 25))
    assert own_birthday_text(changed, saved=True) == (
        "Saved: your birthday is November 28, 2000; already celebrated this year; next celebrated on "
        "November 28, 2027, when you turn 27. Only you can see your birth year.")
    seen_by_bob = view_for(BOB, ALICE, Birthday(11, 28, 2000), TODAY, celebrated_on=date(2026, 11, 25))
    assert public_birthday_text(seen_by_bob) == f"<@{ALICE}>'s birthday is November 28 (already celebrated this year)."
    # Changed to today after this year's celebration: not today's (and /birthday set starts no pass).
    assert not view_for(ALICE, ALICE, Birthday(11, 25), TODAY, celebrated_on=date(2026, 3, 5)).is_today
    celebrated_today = view_for(ALICE, ALICE, Birthday(11, 25), TODAY, celebrated_on=TODAY)
    assert celebrated_today.is_today and not celebrated_today.already_celebrated
    assert own_birthday_text(celebrated_today) == ("Your birthday is November 25; "
                                                   "next celebrated today (November 25, 2026).")


def test_public_texts_never_show_a_year_even_to_its_owner() -> None:
    own = view_for(ALICE, ALICE, Birthday(2, 29, 2004), TODAY)
    assert public_birthday_text(own) == f"<@{ALICE}>'s birthday is February 29 (in 95 days)."
    page = BirthdayPage(entries=(own,), page=1, pages=1, total=1)
    assert list_text(page) == f"**Birthdays** (1)\n• February 29: <@{ALICE}>\nPage 1 of 1"
    # Feb 29 is celebrated on Feb 28 in 2027: upcoming shows the day it is celebrated.
    assert upcoming_text((own,), 365).splitlines()[1] == f"• February 28 (in 95 days): <@{ALICE}>"
    assert "2004" not in upcoming_text((own,), 365)


def test_upcoming_without_birthdays() -> None:
    assert upcoming_text((), 7) == "No birthdays in the next 7 days."
    assert upcoming_text((), 1) == "No birthdays today or tomorrow."


def test_the_year_is_not_called_private_when_the_servers_message_shows_ages() -> None:
    with_year = view_for(ALICE, ALICE, Birthday(11, 26, 2000), TODAY)
    assert own_birthday_text(with_year, age_announced=True).endswith(
        "This server's birthday message shows your age; to keep your birth year to yourself, "
        "set your birthday again without `year`.")
    no_year = view_for(ALICE, ALICE, Birthday(11, 26), TODAY)
    assert own_birthday_text(no_year, age_announced=True).endswith("(November 26, 2026).")


def test_which_templates_show_ages() -> None:
    assert announces_age("Happy {age}th, {member}!")
    assert not announces_age("Happy birthday {member}! {{age}} stays literal")
    assert not announces_age("{member} is {unknown}"), "an invalid template is replaced by the default"
