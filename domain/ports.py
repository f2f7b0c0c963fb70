"""Ports: what the use cases need from the outside world, declared on their side."""

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, TypeVar

from domain.reports import ReportWindow, UserIdPage


class UserReport(Protocol):
    """Any form of one user's report: the use cases need only to know whose it is."""

    @property
    def user_id(self) -> int: ...


ReportT = TypeVar("ReportT", bound=UserReport)
ReportT_co = TypeVar("ReportT_co", bound=UserReport, covariant=True)


class UserIdReader(Protocol):
    async def read_page(self, window: ReportWindow, after_id: int, limit: int) -> UserIdPage:
        """IDs greater than `after_id` of users to be processed for `window`, ascending.

        At most `limit` of them; `next_after_id` is None exactly when no such ID follows.
        """
        ...


class TaskReportReader(Protocol[ReportT_co]):
    async def read_reports(
        self,
        user_ids: Sequence[int],
        window: ReportWindow,
        max_tasks: int,
    ) -> Sequence[ReportT_co]:
        """Reports of those of `user_ids` (distinct, ascending) that exist, ascending by ID.

        A report is a UserTaskReport, or a ReportDocument where the storage renders it.
        """
        ...


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...
