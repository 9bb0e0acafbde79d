"""Member data: every feature says which of its rows belong to a member, and how to purge and export them.

When a member leaves a server (or asks with `/mydata delete`), every handler purges that member's rows
in that server's file, all in one transaction. Moderation cases where the member is the target are
kept on purpose: a ban must not erase its own record.

Column rule (see migrations/0001_initial.sql): a column that holds a member's id is named `user_id` or
ends in `_user_id`, `target_id`, `actor_id`, `moderator_id` or `reviewer_id`. A meta-test fails when
such a column is not covered by a handler.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any, Protocol, cast

import aiosqlite

MEMBER_COLUMN = re.compile(r"^(user_id|.*_user_id|.*target_id|.*actor_id|.*moderator_id|.*reviewer_id)$")

Rows = list[dict[str, Any]]


class MemberDataHandler(Protocol):
    """What each feature provides about the member data it stores."""

    name: str
    # Every (table, column) holding a member id that this handler is responsible for,
    # including columns it deliberately keeps (and says why in its docstring).
    covers: frozenset[tuple[str, str]]
    # The columns whose rows a purge deletes or anonymises (those of `covers` it does not keep).
    changes: frozenset[tuple[str, str]]

    async def purge(self, conn: aiosqlite.Connection, user_id: int) -> int:
        """Delete (or anonymise) the member's rows; returns how many rows changed."""
        ...

    async def purge_many(self, conn: aiosqlite.Connection, user_ids: Sequence[int]) -> int:
        """The same for several members at once, one statement per column whatever their number:
        the rows left must be those that purging them one by one leaves. Returns how many rows
        changed (a row that two of them are named in counts once per statement that changed it)."""
        ...

    async def export(self, conn: aiosqlite.Connection, user_id: int) -> dict[str, Rows]:
        """Every row about the member, by table name (repeats allowed: the registry drops them)."""
        ...


async def rows_as_dicts(conn: aiosqlite.Connection, sql: str, params: Sequence[object]) -> Rows:
    """The rows as dicts, made in the connection's thread as they are fetched: a member's export can
    be tens of thousands of rows, and the event loop would stand still while they are built."""
    async with conn.execute(sql, params) as cursor:
        names = [column[0] for column in cursor.description]

        def as_dict(_cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
            return dict(zip(names, row, strict=True))

        cursor.row_factory = as_dict  # type: ignore[assignment]  # aiosqlite types it as a class
        return cast(Rows, await cursor.fetchall())  # dicts, by the factory


class AnonymisingHandler:
    """Handler for rows that must survive a member leaving (records of what others did): the member's
    id in the given columns is replaced by NULL; rows where the member is the subject are deleted
    (`delete_by`), or kept entirely (`keep_by`, e.g. a ban's own case)."""

    def __init__(self, name: str, *, delete_by: Sequence[tuple[str, str]] = (),
                 anonymise: Sequence[tuple[str, str]] = (), keep_by: Sequence[tuple[str, str]] = ()) -> None:
        self.name = name
        self._delete_by = tuple(delete_by)
        self._anonymise = tuple(anonymise)
        self._keep_by = tuple(keep_by)
        self.changes = frozenset(self._delete_by + self._anonymise)
        self.covers = self.changes | frozenset(self._keep_by)

    async def purge(self, conn: aiosqlite.Connection, user_id: int) -> int:
        return await self.purge_many(conn, [user_id])

    async def purge_many(self, conn: aiosqlite.Connection, user_ids: Sequence[int]) -> int:
        # The rows left are those of purging the members one by one: a statement acts on a row only
        # through a column naming one of them, and the statements on one column run in the same order
        # either way (the order across members does not matter: clearing one column never decides
        # whether another column deletes the row).
        if not user_ids:
            return 0
        match, ids = _matching(user_ids)
        changed = 0
        for table, column in self._delete_by:
            cursor = await conn.execute(f"DELETE FROM {table} WHERE {column} {match}", (ids,))
            changed += cursor.rowcount
        for table, column in self._anonymise:
            cursor = await conn.execute(f"UPDATE {table} SET {column} = NULL WHERE {column} {match}", (ids,))
            changed += cursor.rowcount
        return changed

    async def export(self, conn: aiosqlite.Connection, user_id: int) -> dict[str, Rows]:
        # A row naming the member in two columns comes twice: MemberData.export drops repeats, once
        # over every handler's rows and off the event loop.
        exported: dict[str, Rows] = {}
        for table, column in self._delete_by + self._anonymise + self._keep_by:
            rows = await rows_as_dicts(conn, f"SELECT * FROM {table} WHERE {column} = ?", (user_id,))
            exported.setdefault(table, []).extend(rows)
        return exported


class SimpleTableHandler(AnonymisingHandler):
    """Handler for tables whose member rows are simply deleted by one column."""

    def __init__(self, name: str, tables: Sequence[tuple[str, str]]) -> None:
        super().__init__(name, delete_by=tables)


def _matching(user_ids: Sequence[int]) -> tuple[str, object]:
    """The condition on a member column and its one parameter: one id as itself (a leave), several as
    one JSON array, so a purge of thousands is still one statement per column, with text that never
    changes (the pattern of `ids_named_in`)."""
    if len(user_ids) == 1:
        return "= ?", user_ids[0]
    return "IN (SELECT value FROM json_each(?))", json.dumps(list(user_ids))


def without_repeats(rows: Iterable[dict[str, Any]]) -> Rows:
    """Each row once, where it first came: a row that names the member in two columns, or that two
    handlers export, is one row. A set of each row's items keeps this linear: comparing each row with
    every one kept before it took seconds on a member with tens of thousands of rows. Still a few µs
    a row, so MemberData.export runs it in a thread. (SQLite's values are all hashable.)"""
    seen: set[frozenset[tuple[str, Any]]] = set()
    unique: Rows = []
    for row in rows:
        items = frozenset(row.items())  # equal for equal rows, whatever their column order
        if items not in seen:
            seen.add(items)
            unique.append(row)
    return unique


async def ids_named_in(conn: aiosqlite.Connection, columns: Iterable[tuple[str, str]],
                       among: Sequence[int] | None = None) -> set[int]:
    """Every member id found in the given (table, column) pairs; only those of `among` if given."""
    columns = sorted(columns)
    if not columns:
        return set()
    where = "IS NOT NULL" if among is None else "IN wanted"
    sql = " UNION ".join(f"SELECT {column} FROM {table} WHERE {column} {where}" for table, column in columns)
    if among is None:
        return {row[0] for row in await conn.execute_fetchall(sql)}
    # The ids go as one JSON array: one statement however many, with text that never changes.
    wanted = "WITH wanted(id) AS (SELECT value FROM json_each(?)) "
    return {row[0] for row in await conn.execute_fetchall(wanted + sql, (json.dumps(list(among)),))}
