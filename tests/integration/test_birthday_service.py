"""The birthday commands' service on real tenant files: set, remove, show, list, upcoming, privacy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from malabot.clock import MovableClock
from malabot.errors import UserInputError
from malabot.features.birthdays.service import BirthdayService
from malabot.features.settings.service import SettingsService
from malabot.tenancy.manager import TenantManager

GUILD = 111_111_111_111_111_111
OTHER_GUILD = 222_222_222_222_222_222
ALICE, BOB, CAROL = 1001, 1002, 1003


@pytest.fixture
async def tenants(tmp_path: Path) -> AsyncIterator[TenantManager]:
    folder = tmp_path / "tenants"
    folder.mkdir()
    manager = TenantManager(folder)
    await manager.start()
    yield manager
    await manager.close_all()


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock(datetime(2026, 6, 15, 12, 0, tzinfo=UTC))


@pytest.fixture
def settings(tenants: TenantManager) -> SettingsService:
    return SettingsService(tenants)


@pytest.fixture
def service(tenants: TenantManager, settings: SettingsService, clock: MovableClock) -> BirthdayService:
    return BirthdayService(tenants, settings, clock=clock, page_size=10)


def everyone(user_id: int) -> bool:
    return True


# --- set, show, remove -----------------------------------------------------------------------------

async def test_set_then_show_own_birthday_with_year_and_age(service: BirthdayService) -> None:
    view = await service.set(GUILD, ALICE, 6, 20, 1990)
    assert (view.month, view.day, view.year) == (6, 20, 1990)
    assert view.next_date == date(2026, 6, 20)
    assert view.days_until == 5
    assert view.turning == 36
    assert view.date_text == "June 20, 1990"
    assert await service.show(GUILD, ALICE) == view


async def test_others_never_see_the_year_or_the_age(service: BirthdayService) -> None:
    await service.set(GUILD, ALICE, 6, 20, 1990)
    seen_by_bob = await service.show(GUILD, BOB, ALICE)
    assert (seen_by_bob.month, seen_by_bob.day) == (6, 20)
    assert seen_by_bob.year is None
    assert seen_by_bob.turning is None
    assert seen_by_bob.date_text == "June 20"
    page = await service.list_page(GUILD, BOB, is_member=everyone)
    assert [entry.year for entry in page.entries] == [None]
    soon = await service.upcoming(GUILD, BOB, is_member=everyone)
    assert [(entry.user_id, entry.year, entry.turning) for entry in soon] == [(ALICE, None, None)]


async def test_set_replaces_and_can_drop_the_year(service: BirthdayService) -> None:
    await service.set(GUILD, ALICE, 6, 20, 1990)
    view = await service.set(GUILD, ALICE, 2, 29)
    assert (view.month, view.day, view.year, view.turning) == (2, 29, None, None)
    assert view.next_date == date(2027, 2, 28)  # 2027 has no February 29
    assert (await service.show(GUILD, ALICE)).year is None


async def test_birthdays_belong_to_one_server(service: BirthdayService) -> None:
    await service.set(GUILD, ALICE, 6, 20)
    with pytest.raises(UserInputError, match="not set your birthday"):
        await service.show(OTHER_GUILD, ALICE)


async def test_remove_deletes_and_a_second_remove_says_there_was_nothing(service: BirthdayService) -> None:
    await service.set(GUILD, ALICE, 6, 20)
    await service.remove(GUILD, ALICE)
    with pytest.raises(UserInputError, match="not set your birthday"):
        await service.show(GUILD, ALICE)
    with pytest.raises(UserInputError, match="nothing to remove"):
        await service.remove(GUILD, ALICE)


async def test_show_of_someone_without_a_birthday_names_them(service: BirthdayService) -> None:
    with pytest.raises(UserInputError, match=f"<@{BOB}> has not shared a birthday"):
        await service.show(GUILD, ALICE, BOB)


@pytest.mark.parametrize(("month", "day", "year", "words"), [
    (2, 30, None, "February has no day 30"),
    (13, 1, None, "no month 13"),
    (2, 29, 2023, "not a leap year"),
    (1, 1, 2027, "in the future"),
    (1, 1, 1899, "from 1900"),
])
async def test_bad_dates_are_refused_and_the_stored_birthday_is_kept(
        service: BirthdayService, month: int, day: int, year: int | None, words: str) -> None:
    await service.set(GUILD, ALICE, 6, 20, 1990)
    with pytest.raises(UserInputError, match=words):
        await service.set(GUILD, ALICE, month, day, year)
    kept = await service.show(GUILD, ALICE)
    assert (kept.month, kept.day, kept.year) == (6, 20, 1990)


async def test_feb_29_is_accepted_with_a_leap_year(service: BirthdayService) -> None:
    view = await service.set(GUILD, ALICE, 2, 29, 2000)
    assert view.turning == 27  # celebrated on Feb 28, 2027
    assert view.next_date == date(2027, 2, 28)


async def test_today_and_the_future_year_check_follow_the_server_timezone(
        service: BirthdayService, settings: SettingsService, clock: MovableClock) -> None:
    clock.now = datetime(2026, 6, 15, 23, 30, tzinfo=UTC)   # June 16, 11:30 in Auckland
    await settings.update(GUILD, None, timezone="Pacific/Auckland")
    assert await service.today(GUILD) == date(2026, 6, 16)
    assert (await service.set(GUILD, ALICE, 6, 16, 2026)).days_until == 0
    with pytest.raises(UserInputError, match="in the future"):
        await service.set(OTHER_GUILD, ALICE, 6, 16, 2026)  # still June 15 in UTC


# --- list ------------------------------------------------------------------------------------------

async def test_list_is_paged_in_calendar_order_and_shows_current_members_only(
        service: BirthdayService) -> None:
    for offset in range(25):
        await service.set(GUILD, 5000 + offset, 1 + offset // 3, 1 + offset % 3)
    await service.set(GUILD, 9999, 1, 1)  # has left the server
    members = set(range(5000, 5025))

    def is_member(user_id: int) -> bool:
        return user_id in members

    first = await service.list_page(GUILD, ALICE, is_member=is_member)
    assert (first.page, first.pages, first.total, len(first.entries)) == (1, 3, 25, 10)
    last = await service.list_page(GUILD, ALICE, 3, is_member=is_member)
    assert len(last.entries) == 5
    pages = [first, await service.list_page(GUILD, ALICE, 2, is_member=is_member), last]
    shown = [entry.user_id for page in pages for entry in page.entries]
    assert shown == sorted(members)  # set in calendar order, so calendar order is id order here
    assert 9999 not in shown
    with pytest.raises(UserInputError, match="only 3 pages"):
        await service.list_page(GUILD, ALICE, 4, is_member=is_member)
    with pytest.raises(UserInputError, match="only 3 pages"):
        await service.list_page(GUILD, ALICE, 0, is_member=is_member)


async def test_an_empty_list_is_one_empty_page(service: BirthdayService) -> None:
    page = await service.list_page(GUILD, ALICE, is_member=everyone)
    assert (page.entries, page.page, page.pages, page.total) == ((), 1, 1, 0)


# --- upcoming --------------------------------------------------------------------------------------

async def test_upcoming_defaults_to_seven_days_from_today_soonest_first(service: BirthdayService) -> None:
    await service.set(GUILD, ALICE, 6, 22)      # in 7 days
    await service.set(GUILD, BOB, 6, 15, 2000)  # today
    await service.set(GUILD, CAROL, 6, 23)      # in 8 days
    await service.set(GUILD, 4004, 6, 14)       # yesterday
    soon = await service.upcoming(GUILD, BOB, is_member=everyone)
    assert [(entry.user_id, entry.days_until) for entry in soon] == [(BOB, 0), (ALICE, 7)]
    assert soon[0].is_today and soon[0].turning == 26
    longer = await service.upcoming(GUILD, BOB, 8, is_member=everyone)
    assert [entry.user_id for entry in longer] == [BOB, ALICE, CAROL]


async def test_upcoming_skips_departed_members_and_refuses_silly_ranges(service: BirthdayService) -> None:
    await service.set(GUILD, ALICE, 6, 16)
    assert await service.upcoming(GUILD, BOB, is_member=lambda user_id: user_id != ALICE) == ()
    for days in (0, 400):
        with pytest.raises(UserInputError, match="between 1 and 365"):
            await service.upcoming(GUILD, BOB, days, is_member=everyone)
