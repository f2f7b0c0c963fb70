"""The report window of API.md: defaults, bounds and time zones, checked on `resolve_window`."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from application.windows import resolve_window
from domain.errors import FieldError, InvalidRequest
from domain.reports import ReportWindow
from tests.data import at

NOW = at("2026-12-04T00:00:00Z")
PARIS_WINTER = timezone(timedelta(hours=1))
NEW_YORK_WINTER = timezone(timedelta(hours=-5))


def fields_of(err: pytest.ExceptionInfo[InvalidRequest]) -> list[str]:
    return [error.field for error in err.value.errors]


def test_defaults_to_the_24_hours_before_now() -> None:
    window = resolve_window(None, None, NOW)

    assert window == ReportWindow(start=at("2026-12-03T00:00:00Z"), end=NOW)


def test_only_start_given_ends_now() -> None:
    start = at("2026-12-01T06:00:00Z")

    window = resolve_window(start, None, NOW)

    assert window == ReportWindow(start=start, end=NOW)


def test_only_end_given_starts_24_hours_earlier() -> None:
    end = at("2026-11-20T00:00:00Z")

    window = resolve_window(None, end, NOW)

    assert window == ReportWindow(start=at("2026-11-19T00:00:00Z"), end=end)


def test_explicit_window_may_lie_in_the_future() -> None:
    start, end = at("2027-01-01T00:00:00Z"), at("2027-01-02T00:00:00Z")

    window = resolve_window(start, end, NOW)

    assert window == ReportWindow(start=start, end=end)


def test_refuses_start_equal_to_end() -> None:
    instant = at("2026-12-03T00:00:00Z")

    with pytest.raises(InvalidRequest) as err:
        resolve_window(instant, instant, NOW)

    assert fields_of(err) == ["windowStart"]


def test_refuses_start_after_end() -> None:
    start, end = at("2026-12-03T00:00:00.000001Z"), at("2026-12-03T00:00:00Z")

    with pytest.raises(InvalidRequest) as err:
        resolve_window(start, end, NOW)

    assert fields_of(err) == ["windowStart"]


def test_refuses_only_start_given_when_it_is_not_before_now() -> None:
    with pytest.raises(InvalidRequest) as err:
        resolve_window(NOW, None, NOW)

    assert fields_of(err) == ["windowStart"]


def test_allows_a_span_of_exactly_31_days() -> None:
    start, end = at("2026-11-03T00:00:00Z"), at("2026-12-04T00:00:00Z")

    window = resolve_window(start, end, NOW)

    assert window.end - window.start == timedelta(days=31)


def test_refuses_a_span_of_31_days_and_one_microsecond() -> None:
    start, end = at("2026-11-02T23:59:59.999999Z"), at("2026-12-04T00:00:00Z")

    with pytest.raises(InvalidRequest) as err:
        resolve_window(start, end, NOW)

    assert fields_of(err) == ["windowStart"]


def test_refuses_only_start_given_more_than_31_days_before_now() -> None:
    start = NOW - timedelta(days=31, microseconds=1)

    with pytest.raises(InvalidRequest) as err:
        resolve_window(start, None, NOW)

    assert fields_of(err) == ["windowStart"]


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        pytest.param(datetime(2026, 12, 3), None, "windowStart", id="naive-start"),
        pytest.param(None, datetime(2026, 12, 4), "windowEnd", id="naive-end"),
    ],
)
def test_refuses_a_timestamp_without_offset(
    start: datetime | None,
    end: datetime | None,
    field: str,
) -> None:
    with pytest.raises(InvalidRequest) as err:
        resolve_window(start, end, NOW)

    assert err.value.errors == (FieldError(field, "must carry a UTC offset"),)


def test_normalises_offsets_to_utc() -> None:
    start = datetime(2026, 12, 3, 1, 0, tzinfo=PARIS_WINTER)
    end = datetime(2026, 12, 3, 19, 0, tzinfo=NEW_YORK_WINTER)

    window = resolve_window(start, end, NOW)

    assert window == ReportWindow(start=at("2026-12-03T00:00:00Z"), end=at("2026-12-04T00:00:00Z"))
    assert window.start.tzinfo is UTC
    assert window.end.tzinfo is UTC


def test_normalises_a_clock_that_is_not_in_utc() -> None:
    now = datetime(2026, 12, 4, 1, 0, tzinfo=PARIS_WINTER)

    window = resolve_window(None, None, now)

    assert window == ReportWindow(start=at("2026-12-03T00:00:00Z"), end=at("2026-12-04T00:00:00Z"))
    assert window.end.tzinfo is UTC


@pytest.mark.parametrize(
    ("start", "end"),
    [
        # The default start, 24 h before 0001-01-01, is before the first date Python has.
        pytest.param(None, datetime(1, 1, 1, tzinfo=UTC), id="default-start-before-year-1"),
        # 00:30+01:00 on the first day is 23:30 UTC on the day before it.
        pytest.param(
            datetime(1, 1, 1, 0, 30, tzinfo=PARIS_WINTER),
            datetime(1, 1, 2, tzinfo=UTC),
            id="start-before-year-1-in-utc",
        ),
        # 23:00-05:00 on the last day is 04:00 UTC on the day after it.
        pytest.param(
            datetime(9999, 12, 31, tzinfo=UTC),
            datetime(9999, 12, 31, 23, 0, tzinfo=NEW_YORK_WINTER),
            id="end-after-year-9999-in-utc",
        ),
    ],
)
def test_refuses_a_window_beyond_the_representable_range(
    start: datetime | None,
    end: datetime | None,
) -> None:
    with pytest.raises(InvalidRequest):
        resolve_window(start, end, NOW)


_LATEST_OFFSET = timedelta(hours=23, minutes=59)
_offsets = st.builds(
    timezone,
    st.timedeltas(min_value=-_LATEST_OFFSET, max_value=_LATEST_OFFSET),
)
_instants = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=_offsets,
)
_allowed_spans = st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=31))
_refused_spans = st.one_of(
    st.timedeltas(min_value=-timedelta(days=40), max_value=timedelta(0)),
    st.timedeltas(min_value=timedelta(days=31, microseconds=1), max_value=timedelta(days=400)),
)


@settings(max_examples=100, deadline=None)
@given(start=_instants, span=_allowed_spans, end_zone=_offsets)
def test_accepts_any_span_up_to_31_days_in_any_offsets(
    start: datetime,
    span: timedelta,
    end_zone: timezone,
) -> None:
    end = (start + span).astimezone(end_zone)

    window = resolve_window(start, end, NOW)

    assert (window.start, window.end) == (start, end)
    assert window.start.tzinfo is UTC
    assert window.end.tzinfo is UTC


@settings(max_examples=100, deadline=None)
@given(start=_instants, span=_refused_spans, end_zone=_offsets)
def test_refuses_any_empty_negative_or_too_long_span(
    start: datetime,
    span: timedelta,
    end_zone: timezone,
) -> None:
    end = (start + span).astimezone(end_zone)

    with pytest.raises(InvalidRequest) as err:
        resolve_window(start, end, NOW)

    assert fields_of(err) == ["windowStart"]
