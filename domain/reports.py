"""What a nightly report says about one user, as of the end of its window.

Reports and their tasks are NamedTuples: a batch of a thousand reports builds thousands
of them, and a NamedTuple is built several times faster than a frozen dataclass while
being just as immutable. (The two lists stay dataclasses: a tuple's own `count` method
would shadow their field of that name.)
"""

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple


@dataclass(frozen=True, slots=True)
class ReportWindow:
    """A half-open interval [start, end) of aware timestamps."""

    start: datetime
    end: datetime


class UnfinishedTask(NamedTuple):
    id: int
    title: str


class CompletedTask(NamedTuple):
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


class UserTaskReport(NamedTuple):
    user_id: int
    email: str
    unfinished: UnfinishedTasks
    completed: CompletedTasks


class ReportDocument(NamedTuple):
    """A UserTaskReport as the storage already rendered it, in the contract's JSON form.

    The read path passes it on untouched, so no layer decodes it or needs to; see the
    report statement in adapters/reports.py for why the database renders it.
    """

    user_id: int
    json: bytes


@dataclass(frozen=True, slots=True)
class UserIdPage:
    """One keyset page: ascending IDs, and the cursor for the next page if there is one."""

    user_ids: tuple[int, ...]
    next_after_id: int | None
