"""Ports: what the use cases need from the outside world, declared on their side."""

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from domain.reports import ReportWindow, UserIdPage, UserTaskReport


class UserIdReader(Protocol):
    async def read_page(self, window: ReportWindow, after_id: int, limit: int) -> UserIdPage:
        """IDs greater than `after_id` of users to be processed for `window`, ascending.

        At most `limit` of them; `next_after_id` is None exactly when no such ID follows.
        """
        ...


class TaskReportReader(Protocol):
    async def read_reports(
        self,
        user_ids: Sequence[int],
        window: ReportWindow,
        max_tasks: int,
    ) -> list[UserTaskReport]:
        """Reports of those of `user_ids` (distinct, ascending) that exist, ascending by ID."""
        ...


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...
