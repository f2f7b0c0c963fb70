"""In-memory stand-ins for the use cases' ports, answering as API.md says, plainly."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

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
from tests.oracle import is_completed_in_window as is_completed_in
from tests.oracle import is_unfinished


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now


@dataclass(frozen=True, slots=True)
class PageCall:
    window: ReportWindow
    after_id: int
    limit: int


@dataclass(frozen=True, slots=True)
class ReportsCall:
    user_ids: list[int]
    window: ReportWindow
    max_tasks: int


class InMemoryUserIdReader:
    """Pages through the users with an unfinished task or one completed in the window."""

    def __init__(self, users: Iterable[User], tasks: Iterable[Task]) -> None:
        self._users = list(users)
        self._tasks = list(tasks)
        self.calls: list[PageCall] = []

    async def read_page(self, window: ReportWindow, after_id: int, limit: int) -> UserIdPage:
        self.calls.append(PageCall(window, after_id, limit))

        eligible = sorted(
            user.id
            for user in self._users
            if user.id > after_id and self._has_something_to_report(user, window)
        )

        page = tuple(eligible[:limit])
        more = len(eligible) > limit
        return UserIdPage(user_ids=page, next_after_id=page[-1] if more else None)

    def _has_something_to_report(self, user: User, window: ReportWindow) -> bool:
        return any(
            is_unfinished(task, window) or is_completed_in(task, window)
            for task in self._tasks
            if task.user_id == user.id
        )


class InMemoryTaskReportReader:
    """Builds each existing user's report; may answer in descending order to test the caller."""

    def __init__(
        self,
        users: Iterable[User],
        tasks: Iterable[Task],
        *,
        answer_descending: bool = False,
    ) -> None:
        self._users = {user.id: user for user in users}
        self._tasks = list(tasks)
        self._answer_descending = answer_descending
        self.calls: list[ReportsCall] = []

    async def read_reports(
        self,
        user_ids: Sequence[int],
        window: ReportWindow,
        max_tasks: int,
    ) -> list[UserTaskReport]:
        self.calls.append(ReportsCall(list(user_ids), window, max_tasks))

        reports = [
            self._report(self._users[user_id], window, max_tasks)
            for user_id in user_ids
            if user_id in self._users
        ]

        return sorted(reports, key=lambda report: report.user_id, reverse=self._answer_descending)

    def _report(self, user: User, window: ReportWindow, max_tasks: int) -> UserTaskReport:
        own = [task for task in self._tasks if task.user_id == user.id]
        unfinished = sorted(
            (task for task in own if is_unfinished(task, window)),
            key=lambda task: (task.created_at, task.id),
        )
        completed = sorted(
            (
                CompletedTask(task.id, task.title, task.completed_at)
                for task in own
                if task.completed_at is not None and is_completed_in(task, window)
            ),
            key=lambda task: (task.completed_at, task.id),
            reverse=True,
        )
        return UserTaskReport(
            user_id=user.id,
            email=user.email,
            unfinished=UnfinishedTasks(
                count=len(unfinished),
                tasks=tuple(UnfinishedTask(t.id, t.title) for t in unfinished[:max_tasks]),
            ),
            completed=CompletedTasks(
                count=len(completed),
                tasks=tuple(completed[:max_tasks]),
            ),
        )
