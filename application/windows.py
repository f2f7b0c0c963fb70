"""The report window: its defaults and its bounds, shared by both use cases."""

from datetime import UTC, datetime, timedelta

from domain.errors import FieldError, InvalidRequest
from domain.reports import ReportWindow

DEFAULT_SPAN = timedelta(hours=24)
MAX_SPAN = timedelta(days=31)


def resolve_window(
    start: datetime | None,
    end: datetime | None,
    now: datetime,
) -> ReportWindow:
    """Fill in what the caller left out and check the result.

    `end` defaults to `now` and `start` to `end` minus 24 hours; an explicit `start`
    with a defaulted `end` is checked against `now` like any other pair.
    """
    for name, value in (("windowStart", start), ("windowEnd", end)):
        if value is not None and value.utcoffset() is None:
            raise InvalidRequest(FieldError(name, "must carry a UTC offset"))

    resolved_end = _in_utc("windowEnd", end if end is not None else now)
    if start is not None:
        resolved_start = _in_utc("windowStart", start)
    elif resolved_end - datetime.min.replace(tzinfo=UTC) < DEFAULT_SPAN:
        raise InvalidRequest(FieldError("windowEnd", "is too early for a default windowStart"))
    else:
        resolved_start = resolved_end - DEFAULT_SPAN

    if resolved_start >= resolved_end:
        raise InvalidRequest(FieldError("windowStart", "must be before windowEnd"))
    if resolved_end - resolved_start > MAX_SPAN:
        raise InvalidRequest(FieldError("windowStart", "window may span at most 31 days"))
    return ReportWindow(start=resolved_start, end=resolved_end)


def _in_utc(name: str, value: datetime) -> datetime:
    # An offset can push a timestamp near year 1 or 9999 out of what datetime can hold.
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise InvalidRequest(FieldError(name, "is out of range")) from None
