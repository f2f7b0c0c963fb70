"""Use case: the producer's page of user IDs to process."""

from dataclasses import dataclass
from datetime import datetime

from application.limits import DEFAULT_PAGE_LIMIT, MAX_ID, MAX_PAGE_LIMIT
from application.windows import resolve_window
from domain.errors import FieldError, InvalidRequest
from domain.ports import Clock, UserIdReader
from domain.reports import ReportWindow


@dataclass(frozen=True, slots=True)
class ListUserIdsQuery:
    limit: int = DEFAULT_PAGE_LIMIT
    after_id: int = 0
    window_start: datetime | None = None
    window_end: datetime | None = None


@dataclass(frozen=True, slots=True)
class UserIdsPage:
    user_ids: tuple[int, ...]
    next_after_id: int | None
    window: ReportWindow


class ListUserIdsForProcessing:
    """Pages through the users who have something to report for a window."""

    def __init__(self, reader: UserIdReader, clock: Clock) -> None:
        self._reader = reader
        self._clock = clock

    async def execute(self, query: ListUserIdsQuery) -> UserIdsPage:
        errors = []
        if not 1 <= query.limit <= MAX_PAGE_LIMIT:
            errors.append(FieldError("limit", f"must be between 1 and {MAX_PAGE_LIMIT}"))
        if not 0 <= query.after_id <= MAX_ID:
            errors.append(FieldError("afterId", f"must be between 0 and {MAX_ID}"))
        if errors:
            raise InvalidRequest(*errors)
        window = resolve_window(query.window_start, query.window_end, self._clock.now())

        page = await self._reader.read_page(window, query.after_id, query.limit)

        return UserIdsPage(
            user_ids=page.user_ids,
            next_after_id=page.next_after_id,
            window=window,
        )
