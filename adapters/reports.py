"""The report statement: every user of a batch answered by one round trip."""

from collections.abc import Sequence

from adapters.database import Database
from domain.reports import (
    CompletedTask,
    CompletedTasks,
    ReportWindow,
    UnfinishedTask,
    UnfinishedTasks,
    UserTaskReport,
)

# $1 user ids, $2 window start, $3 window end, $4 how many tasks each list shows.
#
# The report is as of the window's end: a task created at or after $3 counts nowhere,
# and one completed at or after $3 is still unfinished. Each part is a correlated
# subquery per user, so PostgreSQL walks only that user's index range and stops at $4:
#
# - ix_tasks_user_id_created_at_open (user_id, created_at, id) WHERE completed_at IS NULL
#   counts open tasks with an index-only scan and yields the oldest in order;
# - ix_tasks_user_id_completed_at (user_id, completed_at, id) INCLUDE (created_at)
#   serves the completions in the window, newest first, and the few tasks completed
#   after the window's end that still count as unfinished as of that end.
#
# The users come from the primary key, already in id order, probed once per requested
# id; IDs with no user simply yield no row. Both lists leave the database as arrays of
# rows, so the batch is a single statement with exactly one row per existing user.
REPORT_SQL = """
SELECT
    u.id,
    u.email,
    (
        SELECT count(*) FROM tasks t
        WHERE t.user_id = u.id AND t.completed_at IS NULL AND t.created_at < $3
    ) + (
        SELECT count(*) FROM tasks t
        WHERE t.user_id = u.id AND t.completed_at >= $3 AND t.created_at < $3
    ) AS unfinished_count,
    ARRAY(
        SELECT ROW(unfinished.id, unfinished.title)
        FROM (
            (
                SELECT t.id, t.title, t.created_at FROM tasks t
                WHERE t.user_id = u.id AND t.completed_at IS NULL AND t.created_at < $3
                ORDER BY t.created_at, t.id
                LIMIT $4
            )
            UNION ALL
            (
                SELECT t.id, t.title, t.created_at FROM tasks t
                WHERE t.user_id = u.id AND t.completed_at >= $3 AND t.created_at < $3
                ORDER BY t.created_at, t.id
                LIMIT $4
            )
        ) AS unfinished
        ORDER BY unfinished.created_at, unfinished.id
        LIMIT $4
    ) AS unfinished_tasks,
    (
        SELECT count(*) FROM tasks t
        WHERE t.user_id = u.id
          AND t.completed_at >= $2 AND t.completed_at < $3
          AND t.created_at < $3
    ) AS completed_count,
    ARRAY(
        SELECT ROW(t.id, t.title, t.completed_at) FROM tasks t
        WHERE t.user_id = u.id
          AND t.completed_at >= $2 AND t.completed_at < $3
          AND t.created_at < $3
        ORDER BY t.completed_at DESC, t.id DESC
        LIMIT $4
    ) AS completed_tasks
FROM users u
WHERE u.id = ANY($1::bigint[])
ORDER BY u.id
"""


class PostgresTaskReportReader:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def read_reports(
        self,
        user_ids: Sequence[int],
        window: ReportWindow,
        max_tasks: int,
    ) -> list[UserTaskReport]:
        rows = await self._database.fetch(
            "report",
            REPORT_SQL,
            list(user_ids),
            window.start,
            window.end,
            max_tasks,
        )

        unfinished_task = UnfinishedTask._make
        completed_task = CompletedTask._make
        return [
            UserTaskReport(
                user_id,
                email,
                UnfinishedTasks(unfinished_count, tuple(map(unfinished_task, unfinished))),
                CompletedTasks(completed_count, tuple(map(completed_task, completed))),
            )
            for user_id, email, unfinished_count, unfinished, completed_count, completed in rows
        ]
