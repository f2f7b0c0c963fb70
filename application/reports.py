"""Use case: finished reports for a batch of user IDs."""

from dataclasses import dataclass
from datetime import datetime
from typing import Generic

from application.limits import DEFAULT_MAX_TASKS, MAX_BATCH_SIZE, MAX_ID, MAX_MAX_TASKS
from application.windows import resolve_window
from domain.errors import FieldError, InvalidRequest
from domain.ports import Clock, ReportT, TaskReportReader
from domain.reports import ReportWindow


@dataclass(frozen=True, slots=True)
class BuildReportsCommand:
    user_ids: tuple[int, ...]
    window_start: datetime | None = None
    window_end: datetime | None = None
    max_tasks: int = DEFAULT_MAX_TASKS


@dataclass(frozen=True, slots=True)
class ReportBatch(Generic[ReportT]):
    window: ReportWindow
    reports: list[ReportT]
    missing_user_ids: list[int]


class BuildReportsByIds(Generic[ReportT]):
    """Answers a batch once per distinct user and names the IDs that have no user."""

    def __init__(self, reader: TaskReportReader[ReportT], clock: Clock) -> None:
        self._reader = reader
        self._clock = clock

    async def execute(self, command: BuildReportsCommand) -> ReportBatch[ReportT]:
        _check(command)
        window = resolve_window(command.window_start, command.window_end, self._clock.now())
        distinct_ids = sorted(set(command.user_ids))

        reports = await self._reader.read_reports(distinct_ids, window, command.max_tasks)

        found = {report.user_id for report in reports}
        return ReportBatch(
            window=window,
            reports=sorted(reports, key=lambda report: report.user_id),
            missing_user_ids=[user_id for user_id in distinct_ids if user_id not in found],
        )


def _check(command: BuildReportsCommand) -> None:
    errors = []
    if not 1 <= len(command.user_ids) <= MAX_BATCH_SIZE:
        errors.append(FieldError("userIds", f"must hold between 1 and {MAX_BATCH_SIZE} IDs"))
    errors.extend(
        FieldError(f"userIds[{index}]", f"must be between 1 and {MAX_ID}")
        for index, user_id in enumerate(command.user_ids)
        if not 1 <= user_id <= MAX_ID
    )
    if not 0 <= command.max_tasks <= MAX_MAX_TASKS:
        errors.append(FieldError("maxTasks", f"must be between 0 and {MAX_MAX_TASKS}"))
    if errors:
        raise InvalidRequest(*errors)
