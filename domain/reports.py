"""What a nightly report says about one user, as of the end of its window."""

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class ReportWindow:
    """A half-open interval [start, end) of aware timestamps."""

    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class UnfinishedTask:
    id: int
    title: str


@dataclass(frozen=True, slots=True)
class CompletedTask:
    id: int
    title: str
    completed_at: datetime


@dataclass(frozen=True, slots=True)
class UnfinishedTasks:
    """The full count, and the oldest few tasks (created_at, then id)."""

    count: int
    tasks: tuple[UnfinishedTask, ...]


@dataclass(frozen=True, slots=True)
class CompletedTasks:
    """The full count, and the newest few tasks (completed_at desc, then id desc)."""

    count: int
    tasks: tuple[CompletedTask, ...]


@dataclass(frozen=True, slots=True)
class UserTaskReport:
    user_id: int
    email: str
    unfinished: UnfinishedTasks
    completed: CompletedTasks


@dataclass(frozen=True, slots=True)
class UserIdPage:
    """One keyset page: ascending IDs, and the cursor for the next page if there is one."""

    user_ids: tuple[int, ...]
    next_after_id: int | None
