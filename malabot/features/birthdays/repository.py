"""SQL of birthdays: the `birthdays` table and the per-year `birthday_celebrations` ledger.

Every function takes the tenant's connection (celebrations_in_file: a closed file's path); the caller
decides the transaction. Dates are stored as ISO text (YYYY-MM-DD), instants as UTC ISO text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import aiosqlite

from malabot.features.birthdays.rules import Birthday
from malabot.tenancy.carried_rows import Row, insert_rows, rows_in_file


@dataclass(frozen=True)
class PendingRole:
    """A birthday role that was given on a past day and not yet taken back."""

    user_id: int
    year: int
    local_day: date
    role_id: int
    failed_on: date | None = None  # the server's day of the first removal that failed


def _birthday(row: Sequence[object]) -> Birthday:
    month, day, year = row
    assert isinstance(month, int) and isinstance(day, int)
    return Birthday(month, day, year if isinstance(year, int) else None)


async def save_birthday(conn: aiosqlite.Connection, user_id: int, birthday: Birthday, now: datetime) -> None:
    """Insert or replace the member's birthday; `created_at` is when it was last set."""
    await conn.execute(
        """INSERT INTO birthdays (user_id, month, day, year, created_at) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (user_id) DO UPDATE SET
             month = excluded.month, day = excluded.day, year = excluded.year,
             created_at = excluded.created_at""",
        (user_id, birthday.month, birthday.day, birthday.year, now.isoformat()),
    )


async def delete_birthday(conn: aiosqlite.Connection, user_id: int) -> bool:
    cursor = await conn.execute("DELETE FROM birthdays WHERE user_id = ?", (user_id,))
    return cursor.rowcount > 0


async def get_birthday(conn: aiosqlite.Connection, user_id: int) -> Birthday | None:
    rows = list(await conn.execute_fetchall(
        "SELECT month, day, year FROM birthdays WHERE user_id = ?", (user_id,)))
    return _birthday(rows[0]) if rows else None


async def all_birthdays(conn: aiosqlite.Connection) -> list[tuple[int, Birthday]]:
    """Every stored birthday in calendar order (January first), then by member id."""
    rows = await conn.execute_fetchall(
        "SELECT user_id, month, day, year FROM birthdays ORDER BY month, day, user_id")
    return [(row[0], _birthday(row[1:])) for row in rows]


async def celebration_day(conn: aiosqlite.Connection, user_id: int, year: int) -> date | None:
    """The server-local day the member's birthday was celebrated in `year`, if it was."""
    rows = list(await conn.execute_fetchall(
        "SELECT local_day FROM birthday_celebrations WHERE user_id = ? AND year = ?", (user_id, year)))
    return date.fromisoformat(rows[0][0]) if rows else None


async def celebration_days(conn: aiosqlite.Connection, year: int) -> dict[int, date]:
    """The server-local day of each member's celebration in `year`, by member."""
    rows = await conn.execute_fetchall(
        "SELECT user_id, local_day FROM birthday_celebrations WHERE year = ?", (year,))
    return {int(row[0]): date.fromisoformat(row[1]) for row in rows}


async def unclaimed_on(conn: aiosqlite.Connection, dates: Sequence[tuple[int, int]], year: int
                       ) -> list[tuple[int, Birthday]]:
    """Birthdays falling on one of `dates` (month, day) that have no celebration row for `year` yet.

    Uses the birthdays_by_date index and the celebrations primary key: cheap enough to run for every
    tenant in every pass.
    """
    found: list[tuple[int, Birthday]] = []
    for month, day in dates:
        rows = await conn.execute_fetchall(
            """SELECT b.user_id, b.month, b.day, b.year FROM birthdays AS b
               WHERE b.month = ? AND b.day = ?
                 AND NOT EXISTS (SELECT 1 FROM birthday_celebrations AS c
                                 WHERE c.user_id = b.user_id AND c.year = ?)
               ORDER BY b.user_id""",
            (month, day, year),
        )
        found.extend((row[0], _birthday(row[1:])) for row in rows)
    return found


# 5 parameters per member: well below SQLite's bound-parameter limit (32,766).
_CLAIMS_PER_STATEMENT = 1000


async def claim_celebrations(conn: aiosqlite.Connection, user_ids: Sequence[int], year: int, local_day: date,
                             xp_awarded: int, role_id: int | None) -> set[int]:
    """Record each member's celebration for `year`; returns those recorded now (the others had one).

    Run inside the tenant's write transaction before anything visible happens: of two passes (or two
    processes) only the one whose INSERT lands goes on to announce, give the role and award XP.
    `role_id` is the role about to be given, recorded first so that a crash cannot leave it unremoved.
    One statement per 1,000 members (every statement is a round trip to the connection's thread).
    """
    claimed: set[int] = set()
    for start in range(0, len(user_ids), _CLAIMS_PER_STATEMENT):
        chunk = user_ids[start:start + _CLAIMS_PER_STATEMENT]
        rows = ", ".join(["(?, ?, ?, ?, ?)"] * len(chunk))
        parameters = [value for user_id in chunk
                      for value in (user_id, year, local_day.isoformat(), xp_awarded, role_id)]
        returned = await conn.execute_fetchall(
            f"""INSERT INTO birthday_celebrations (user_id, year, local_day, xp_awarded, role_id)
                VALUES {rows} ON CONFLICT (user_id, year) DO NOTHING RETURNING user_id""",
            parameters,
        )
        claimed.update(int(row[0]) for row in returned)
    return claimed


async def mark_announced(conn: aiosqlite.Connection, user_ids: Iterable[int], year: int, at: datetime) -> None:
    await conn.executemany(
        "UPDATE birthday_celebrations SET announced_at = ? WHERE user_id = ? AND year = ?",
        [(at.isoformat(), user_id, year) for user_id in user_ids],
    )


async def forget_roles(conn: aiosqlite.Connection, user_ids: Iterable[int], year: int) -> None:
    """The roles could not be given: there is nothing to take back."""
    await conn.executemany(
        "UPDATE birthday_celebrations SET role_id = NULL WHERE user_id = ? AND year = ?",
        [(user_id, year) for user_id in user_ids])


async def record_role_of_the_day(conn: aiosqlite.Connection, user_id: int, local_day: date,
                                 role_id: int) -> int | None:
    """Record `role_id` as given with the member's celebration of `local_day`, unless one is
    recorded already (or was taken back); returns the celebration's year, None when nothing was
    recorded. Recorded before it is given, as at a claim, so that a crash cannot leave it unremoved."""
    rows = list(await conn.execute_fetchall(
        """UPDATE birthday_celebrations SET role_id = ?
           WHERE user_id = ? AND local_day = ? AND role_id IS NULL AND role_removed_at IS NULL
           RETURNING year""",
        (role_id, user_id, local_day.isoformat())))
    return int(rows[0][0]) if rows else None


async def with_role_recorded(conn: aiosqlite.Connection, user_ids: Sequence[int], year: int) -> set[int]:
    """Those of these members whose celebration of `year` still records a role to take back (a member
    who erased their data since has no row at all)."""
    found: set[int] = set()
    for start in range(0, len(user_ids), _CLAIMS_PER_STATEMENT):
        chunk = user_ids[start:start + _CLAIMS_PER_STATEMENT]
        rows = await conn.execute_fetchall(
            f"""SELECT user_id FROM birthday_celebrations WHERE year = ? AND role_id IS NOT NULL
                AND user_id IN ({', '.join('?' * len(chunk))})""", [year, *chunk])
        found.update(int(row[0]) for row in rows)
    return found


async def pending_roles(conn: aiosqlite.Connection, before: date) -> list[PendingRole]:
    """Roles given on a day before `before` that have not been removed."""
    rows = await conn.execute_fetchall(
        """SELECT user_id, year, local_day, role_id, role_failed_on FROM birthday_celebrations
           WHERE role_id IS NOT NULL AND role_removed_at IS NULL AND local_day < ?
           ORDER BY local_day, user_id""",
        (before.isoformat(),),
    )
    return [PendingRole(row[0], row[1], date.fromisoformat(row[2]), row[3],
                        date.fromisoformat(row[4]) if row[4] is not None else None) for row in rows]


async def roles_held_by(conn: aiosqlite.Connection, user_id: int) -> list[int]:
    """Birthday roles given to the member and not taken back yet."""
    rows = await conn.execute_fetchall(
        "SELECT DISTINCT role_id FROM birthday_celebrations"
        " WHERE user_id = ? AND role_id IS NOT NULL AND role_removed_at IS NULL", (user_id,))
    return [row[0] for row in rows]


async def mark_roles_removed(conn: aiosqlite.Connection, roles: Iterable[PendingRole], at: datetime) -> None:
    await conn.executemany(
        "UPDATE birthday_celebrations SET role_removed_at = ? WHERE user_id = ? AND year = ?",
        [(at.isoformat(), role.user_id, role.year) for role in roles],
    )


async def mark_role_failures(conn: aiosqlite.Connection, roles: Iterable[PendingRole], day: date) -> None:
    """Remember the day removals first failed (a later failure keeps the first day)."""
    await conn.executemany(
        "UPDATE birthday_celebrations SET role_failed_on = coalesce(role_failed_on, ?) WHERE user_id = ? AND year = ?",
        [(day.isoformat(), role.user_id, role.year) for role in roles],
    )


def celebrations_in_file(path: Path) -> list[Row]:
    """Every celebration row of a closed tenant file, by column name."""
    return rows_in_file(path, "birthday_celebrations")


async def add_missing_celebrations(conn: aiosqlite.Connection, rows: Sequence[Row]) -> int:
    """Insert each row (as celebrations_in_file gives them) whose member and year have none here;
    returns how many were added."""
    return await insert_rows(conn, "birthday_celebrations", rows, "ON CONFLICT (user_id, year) DO NOTHING")

