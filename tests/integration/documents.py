"""Reading the report documents the adapter renders back into domain reports.

The adapter's tests compare reports field by field; this turns each JSON document into
the UserTaskReport it stands for, checking on the way that it names the same user.
"""

import json
from collections.abc import Sequence
from datetime import datetime

from adapters.reports import PostgresTaskReportReader
from domain.reports import (
    CompletedTask,
    CompletedTasks,
    ReportDocument,
    ReportWindow,
    UnfinishedTask,
    UnfinishedTasks,
    UserTaskReport,
)


def report_of(document: ReportDocument) -> UserTaskReport:
    parsed = json.loads(document.json)
    assert parsed["userId"] == document.user_id
    unfinished, completed = parsed["unfinished"], parsed["completed"]
    return UserTaskReport(
        user_id=parsed["userId"],
        email=parsed["email"],
        unfinished=UnfinishedTasks(
            count=unfinished["count"],
            tasks=tuple(UnfinishedTask(t["id"], t["title"]) for t in unfinished["tasks"]),
        ),
        completed=CompletedTasks(
            count=completed["count"],
            tasks=tuple(
                CompletedTask(
                    t["id"],
                    t["title"],
                    datetime.fromisoformat(t["completedAt"].replace("Z", "+00:00")),
                )
                for t in completed["tasks"]
            ),
        ),
    )


class DecodingReportReader:
    """The adapter, with its documents read back into domain reports."""

    def __init__(self, reader: PostgresTaskReportReader) -> None:
        self._reader = reader

    async def read_reports(
        self,
        user_ids: Sequence[int],
        window: ReportWindow,
        max_tasks: int,
    ) -> list[UserTaskReport]:
        documents = await self._reader.read_reports(user_ids, window, max_tasks)
        return [report_of(document) for document in documents]
