"""A minimal scheduler speaking the two endpoints of /work/shared/API.md over one connection.

Answers are decoded into typed Structs, as a real consumer would read them, so a response
that strays from the contract fails the benchmark instead of being counted.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode

import msgspec

from bench.designs import Report
from bench.loopback_http import HttpConnection
from domain.reports import ReportWindow

REPORTS_PATH = "/api/v1/internal/scheduler/user-task-reports-by-ids"
USER_IDS_PATH = "/api/v1/internal/scheduler/user-ids-for-processing"


class UnfinishedTaskBody(msgspec.Struct, frozen=True):
    id: int
    title: str


class CompletedTaskBody(msgspec.Struct, frozen=True, rename="camel"):
    id: int
    title: str
    completed_at: datetime


class UnfinishedBody(msgspec.Struct, frozen=True):
    count: int
    tasks: list[UnfinishedTaskBody]


class CompletedBody(msgspec.Struct, frozen=True):
    count: int
    tasks: list[CompletedTaskBody]


class ReportBody(msgspec.Struct, frozen=True, rename="camel"):
    user_id: int
    email: str
    unfinished: UnfinishedBody
    completed: CompletedBody


class ReportsAnswer(msgspec.Struct, frozen=True, rename="camel"):
    reports: list[ReportBody]
    missing_user_ids: list[int]


class UserIdsAnswer(msgspec.Struct, frozen=True, rename="camel"):
    user_ids: list[int]
    next_after_id: int | None


_reports_decoder = msgspec.json.Decoder(ReportsAnswer)
_user_ids_decoder = msgspec.json.Decoder(UserIdsAnswer)


class UnexpectedAnswer(Exception):
    """The service answered a well-formed request with an error."""


@dataclass(frozen=True, slots=True)
class ReportsReply:
    answer: ReportsAnswer
    body_bytes: int


def reports_body(user_ids: Sequence[int], window: ReportWindow, max_tasks: int) -> bytes:
    return msgspec.json.encode(
        {
            "userIds": list(user_ids),
            "windowStart": window.start.astimezone(UTC),
            "windowEnd": window.end.astimezone(UTC),
            "maxTasks": max_tasks,
        }
    )


class SchedulerClient:
    def __init__(self, connection: HttpConnection, window: ReportWindow) -> None:
        self._connection = connection
        self._window_query = {
            "windowStart": _rfc3339(window.start),
            "windowEnd": _rfc3339(window.end),
        }

    async def reports(self, body: bytes) -> ReportsReply:
        """POST a prepared request body; see `reports_body`."""
        status, answer = await self._connection.request("POST", REPORTS_PATH, body)
        if status != 200:
            raise UnexpectedAnswer(f"POST {REPORTS_PATH}: {status} {answer[:300]!r}")
        return ReportsReply(_reports_decoder.decode(answer), len(answer))

    async def user_ids(self, after_id: int, limit: int) -> UserIdsAnswer:
        query = urlencode({"limit": limit, "afterId": after_id, **self._window_query})
        status, answer = await self._connection.request("GET", f"{USER_IDS_PATH}?{query}")
        if status != 200:
            raise UnexpectedAnswer(f"GET {USER_IDS_PATH}: {status} {answer[:300]!r}")
        return _user_ids_decoder.decode(answer)

    @property
    def local_port(self) -> int | None:
        return self._connection.local_port

    async def close(self) -> None:
        await self._connection.close()


def reports_of(answer: ReportsAnswer) -> list[Report]:
    return [
        Report(
            user_id=body.user_id,
            email=body.email,
            unfinished_count=body.unfinished.count,
            unfinished=tuple((task.id, task.title) for task in body.unfinished.tasks),
            completed_count=body.completed.count,
            completed=tuple(
                (task.id, task.title, task.completed_at) for task in body.completed.tasks
            ),
        )
        for body in answer.reports
    ]


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
