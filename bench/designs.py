"""The report computed three ways: the product's single statement and the two rejected designs.

Each design answers one batch with `Report` values, so their answers can be compared with
each other and with the served app's. All three hold prepared statements on a connection
of their own and rely on the same indexes, the ones the migrations create.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import asyncpg
import msgspec
from asyncpg.prepared_stmt import PreparedStatement

from adapters.reports import REPORT_SQL
from domain.reports import ReportWindow


@dataclass(frozen=True, slots=True)
class Report:
    """One user's report in a shape every design and the HTTP answer can be turned into."""

    user_id: int
    email: str
    unfinished_count: int
    unfinished: tuple[tuple[int, str], ...]
    completed_count: int
    completed: tuple[tuple[int, str, datetime], ...]


class ReportDesign(Protocol):
    async def reports(
        self,
        user_ids: Sequence[int],
        window: ReportWindow,
        max_tasks: int,
    ) -> list[Report]: ...


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class SingleStatement:
    """The product's statement, executed straight through asyncpg."""

    def __init__(self, statement: PreparedStatement[asyncpg.Record]) -> None:
        self._statement = statement

    @classmethod
    async def prepare(cls, connection: asyncpg.Connection) -> SingleStatement:
        return cls(await connection.prepare(REPORT_SQL))

    async def rows(
        self,
        user_ids: Sequence[int],
        window: ReportWindow,
        max_tasks: int,
    ) -> list[asyncpg.Record]:
        return await self._statement.fetch(list(user_ids), window.start, window.end, max_tasks)

    async def reports(
        self,
        user_ids: Sequence[int],
        window: ReportWindow,
        max_tasks: int,
    ) -> list[Report]:
        rows = await self.rows(user_ids, window, max_tasks)
        # Each row is a user's id and the report the statement rendered as JSON.
        reports = []
        for _, document in rows:
            parsed = msgspec.json.decode(document)
            unfinished, completed = parsed["unfinished"], parsed["completed"]
            reports.append(
                Report(
                    user_id=parsed["userId"],
                    email=parsed["email"],
                    unfinished_count=unfinished["count"],
                    unfinished=tuple((task["id"], task["title"]) for task in unfinished["tasks"]),
                    completed_count=completed["count"],
                    completed=tuple(
                        (task["id"], task["title"], _utc(task["completedAt"]))
                        for task in completed["tasks"]
                    ),
                ),
            )
        return reports


# The N+1 design: per user, its row and then four small statements. Each is one of the
# product's correlated subqueries standing alone, so it walks the same index range.
# $1 user id, $2 window start, $3 window end, $4 how many tasks a list shows.
_USER_SQL = "SELECT id, email FROM users WHERE id = $1"

_UNFINISHED_COUNT_SQL = """
SELECT (
    SELECT count(*) FROM tasks
    WHERE user_id = $1 AND completed_at IS NULL AND created_at < $2
) + (
    SELECT count(*) FROM tasks
    WHERE user_id = $1 AND completed_at >= $2 AND created_at < $2
)
"""

_UNFINISHED_TASKS_SQL = """
SELECT id, title
FROM (
    (
        SELECT id, title, created_at FROM tasks
        WHERE user_id = $1 AND completed_at IS NULL AND created_at < $2
        ORDER BY created_at, id
        LIMIT $3
    )
    UNION ALL
    (
        SELECT id, title, created_at FROM tasks
        WHERE user_id = $1 AND completed_at >= $2 AND created_at < $2
        ORDER BY created_at, id
        LIMIT $3
    )
) AS unfinished
ORDER BY created_at, id
LIMIT $3
"""

_COMPLETED_COUNT_SQL = """
SELECT count(*) FROM tasks
WHERE user_id = $1 AND completed_at >= $2 AND completed_at < $3 AND created_at < $3
"""

_COMPLETED_TASKS_SQL = """
SELECT id, title, completed_at FROM tasks
WHERE user_id = $1 AND completed_at >= $2 AND completed_at < $3 AND created_at < $3
ORDER BY completed_at DESC, id DESC
LIMIT $4
"""


class NPlusOne:
    """A lookup per user and four queries for each user found: five round trips a user."""

    def __init__(self, statements: Sequence[PreparedStatement[asyncpg.Record]]) -> None:
        (
            self._user,
            self._unfinished_count,
            self._unfinished_tasks,
            self._completed_count,
            self._completed_tasks,
        ) = statements

    @classmethod
    async def prepare(cls, connection: asyncpg.Connection) -> NPlusOne:
        sqls = (
            _USER_SQL,
            _UNFINISHED_COUNT_SQL,
            _UNFINISHED_TASKS_SQL,
            _COMPLETED_COUNT_SQL,
            _COMPLETED_TASKS_SQL,
        )
        return cls([await connection.prepare(sql) for sql in sqls])

    async def reports(
        self,
        user_ids: Sequence[int],
        window: ReportWindow,
        max_tasks: int,
    ) -> list[Report]:
        start, end = window.start, window.end
        reports = []
        for user_id in sorted(set(user_ids)):
            user = await self._user.fetchrow(user_id)
            if user is None:
                continue
            unfinished_count = await self._unfinished_count.fetchval(user_id, end)
            unfinished = await self._unfinished_tasks.fetch(user_id, end, max_tasks)
            completed_count = await self._completed_count.fetchval(user_id, start, end)
            completed = await self._completed_tasks.fetch(user_id, start, end, max_tasks)
            reports.append(
                Report(
                    user_id=user_id,
                    email=user["email"],
                    unfinished_count=unfinished_count,
                    unfinished=tuple((row[0], row[1]) for row in unfinished),
                    completed_count=completed_count,
                    completed=tuple((row[0], row[1], row[2]) for row in completed),
                )
            )
        return reports


# The raw-rows design: the batch's users, then every task a report could need, unfinished
# as of the window's end or completed in the window. The two branches are written so each
# one walks one of the indexes; sorting, counting and capping happen in Python.
_BATCH_USERS_SQL = "SELECT id, email FROM users WHERE id = ANY($1::bigint[])"

_BATCH_TASKS_SQL = """
SELECT user_id, id, title, created_at, completed_at FROM tasks
WHERE user_id = ANY($1::bigint[]) AND completed_at IS NULL AND created_at < $3
UNION ALL
SELECT user_id, id, title, created_at, completed_at FROM tasks
WHERE user_id = ANY($1::bigint[]) AND completed_at >= $2 AND created_at < $3
"""


class RawRows:
    """Two statements a batch; the client groups, sorts, counts and caps."""

    def __init__(
        self,
        users: PreparedStatement[asyncpg.Record],
        tasks: PreparedStatement[asyncpg.Record],
    ) -> None:
        self._users = users
        self._tasks = tasks

    @classmethod
    async def prepare(cls, connection: asyncpg.Connection) -> RawRows:
        return cls(
            await connection.prepare(_BATCH_USERS_SQL),
            await connection.prepare(_BATCH_TASKS_SQL),
        )

    async def reports(
        self,
        user_ids: Sequence[int],
        window: ReportWindow,
        max_tasks: int,
    ) -> list[Report]:
        ids = sorted(set(user_ids))
        users = await self._users.fetch(ids)
        tasks = await self._tasks.fetch(ids, window.start, window.end)

        unfinished: dict[int, list[asyncpg.Record]] = {}
        completed: dict[int, list[asyncpg.Record]] = {}
        for task in tasks:
            done_at = task["completed_at"]
            if done_at is None or done_at >= window.end:
                unfinished.setdefault(task["user_id"], []).append(task)
            else:
                completed.setdefault(task["user_id"], []).append(task)

        reports = []
        for user in sorted(users, key=lambda row: int(row["id"])):
            user_id = user["id"]
            open_tasks = unfinished.get(user_id, [])
            done_tasks = completed.get(user_id, [])
            oldest = heapq.nsmallest(max_tasks, open_tasks, key=_creation_order)
            newest = heapq.nlargest(max_tasks, done_tasks, key=_completion_order)
            reports.append(
                Report(
                    user_id=user_id,
                    email=user["email"],
                    unfinished_count=len(open_tasks),
                    unfinished=_pairs(oldest),
                    completed_count=len(done_tasks),
                    completed=tuple((t["id"], t["title"], t["completed_at"]) for t in newest),
                )
            )
        return reports


def _creation_order(task: asyncpg.Record) -> tuple[datetime, int]:
    return task["created_at"], task["id"]


def _completion_order(task: asyncpg.Record) -> tuple[datetime, int]:
    return task["completed_at"], task["id"]


def _pairs(tasks: Iterable[asyncpg.Record]) -> tuple[tuple[int, str], ...]:
    return tuple((task["id"], task["title"]) for task in tasks)
