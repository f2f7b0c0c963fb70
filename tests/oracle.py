"""The contract's definitions in plain Python, to check the SQL against.

Written from API.md alone and never from the statements in adapters/: each rule is the
sentence of the contract it quotes, applied by brute force to every task in memory.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from domain.reports import (
    CompletedTask,
    CompletedTasks,
    ReportWindow,
    UnfinishedTask,
    UnfinishedTasks,
    UserIdPage,
    UserTaskReport,
)
from tests.data import Task, User


def is_unfinished(task: Task, window: ReportWindow) -> bool:
    """Created before windowEnd and not completed before windowEnd."""
    if task.created_at >= window.end:
        return False
    return task.completed_at is None or task.completed_at >= window.end


def is_completed_in_window(task: Task, window: ReportWindow) -> bool:
    """Completed at windowStart or later and before windowEnd.

    Tasks created at or after windowEnd count nowhere, so they are not counted here
    either, even when their completion (an anomaly) falls inside the window.
    """
    if task.created_at >= window.end or task.completed_at is None:
        return False
    return window.start <= task.completed_at < window.end


def is_to_be_processed(user_id: int, tasks: Iterable[Task], window: ReportWindow) -> bool:
    """At least one unfinished task, or at least one task completed in the window."""
    return any(
        is_unfinished(task, window) or is_completed_in_window(task, window)
        for task in tasks
        if task.user_id == user_id
    )


def report_of(
    user: User,
    tasks: Iterable[Task],
    window: ReportWindow,
    max_tasks: int,
) -> UserTaskReport:
    own = [task for task in tasks if task.user_id == user.id]
    unfinished = sorted(
        (task for task in own if is_unfinished(task, window)),
        key=lambda task: (task.created_at, task.id),
    )
    completed = sorted(
        (task for task in own if is_completed_in_window(task, window)),
        key=lambda task: (task.completed_at, task.id),
        reverse=True,
    )

    return UserTaskReport(
        user_id=user.id,
        email=user.email,
        unfinished=UnfinishedTasks(
            count=len(unfinished),
            tasks=tuple(UnfinishedTask(id=t.id, title=t.title) for t in unfinished[:max_tasks]),
        ),
        completed=CompletedTasks(
            count=len(completed),
            tasks=tuple(
                CompletedTask(id=t.id, title=t.title, completed_at=_completion(t))
                for t in completed[:max_tasks]
            ),
        ),
    )


@dataclass(frozen=True, slots=True)
class ExpectedBatch:
    reports: list[UserTaskReport]
    missing_user_ids: list[int]


def reports_for(
    users: Sequence[User],
    tasks: Sequence[Task],
    requested: Iterable[int],
    window: ReportWindow,
    max_tasks: int,
) -> ExpectedBatch:
    """One report per distinct requested user that exists; the other IDs named once."""
    by_id = {user.id: user for user in users}
    distinct = sorted(set(requested))

    return ExpectedBatch(
        reports=[
            report_of(by_id[user_id], tasks, window, max_tasks)
            for user_id in distinct
            if user_id in by_id
        ],
        missing_user_ids=[user_id for user_id in distinct if user_id not in by_id],
    )


def walk(
    users: Sequence[User],
    tasks: Sequence[Task],
    window: ReportWindow,
    page_size: int,
    after_id: int = 0,
) -> list[UserIdPage]:
    """Every page a producer sees from `after_id` on, the last one saying it is the last.

    An empty page comes only when nothing after `after_id` is to be processed.
    """
    eligible = sorted(
        user.id
        for user in users
        if user.id > after_id and is_to_be_processed(user.id, tasks, window)
    )
    if not eligible:
        return [UserIdPage(user_ids=(), next_after_id=None)]

    chunks = [eligible[i : i + page_size] for i in range(0, len(eligible), page_size)]
    return [
        UserIdPage(
            user_ids=tuple(chunk),
            next_after_id=None if index == len(chunks) - 1 else chunk[-1],
        )
        for index, chunk in enumerate(chunks)
    ]


def timestamp_json(value: datetime) -> str:
    """The service answers in UTC with `Z`; a fraction only when there is one."""
    utc = value.astimezone(UTC)
    fraction = f".{utc.microsecond:06d}" if utc.microsecond else ""
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


def window_json(window: ReportWindow) -> dict[str, Any]:
    return {"start": timestamp_json(window.start), "end": timestamp_json(window.end)}


def report_json(report: UserTaskReport) -> dict[str, Any]:
    return {
        "userId": report.user_id,
        "email": report.email,
        "unfinished": {
            "count": report.unfinished.count,
            "tasks": [{"id": t.id, "title": t.title} for t in report.unfinished.tasks],
        },
        "completed": {
            "count": report.completed.count,
            "tasks": [
                {"id": t.id, "title": t.title, "completedAt": timestamp_json(t.completed_at)}
                for t in report.completed.tasks
            ],
        },
    }


def batch_json(batch: ExpectedBatch, window: ReportWindow) -> dict[str, Any]:
    return {
        "window": window_json(window),
        "reports": [report_json(report) for report in batch.reports],
        "missingUserIds": batch.missing_user_ids,
    }


def page_json(page: UserIdPage, window: ReportWindow) -> dict[str, Any]:
    return {
        "userIds": list(page.user_ids),
        "nextAfterId": page.next_after_id,
        "window": window_json(window),
    }


def _completion(task: Task) -> datetime:
    assert task.completed_at is not None
    return task.completed_at
