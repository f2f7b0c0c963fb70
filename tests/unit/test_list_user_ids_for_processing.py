"""ListUserIdsForProcessing with an in-memory reader: bounds, paging and the window."""

from datetime import datetime, timedelta, timezone

import pytest

from application.user_ids import ListUserIdsForProcessing, ListUserIdsQuery
from domain.errors import InvalidRequest
from domain.reports import ReportWindow
from tests.data import Task, User, at
from tests.unit.fakes import FixedClock, InMemoryUserIdReader, PageCall

MAX_ID = 2**63 - 1
NOW = at("2026-12-04T00:00:00Z")
DAY = ReportWindow(start=at("2026-12-03T00:00:00Z"), end=NOW)

USERS = [User(id=n, email=f"user{n}@example.com") for n in (1, 2, 3, 5, 8, 13)]
TASKS = [
    Task(id=11, user_id=1, title="Never done", created_at=at("2026-11-01T00:00:00Z")),
    Task(
        id=21,
        user_id=2,
        title="Done long ago",
        created_at=at("2026-10-01T00:00:00Z"),
        completed_at=at("2026-10-02T00:00:00Z"),
    ),
    Task(
        id=31,
        user_id=3,
        title="Done in the day",
        created_at=at("2026-12-01T00:00:00Z"),
        completed_at=at("2026-12-03T12:00:00Z"),
    ),
    Task(id=51, user_id=5, title="Created after the day", created_at=NOW),
    Task(
        id=81,
        user_id=8,
        title="Done only after the day",
        created_at=at("2026-12-01T00:00:00Z"),
        completed_at=NOW,
    ),
    Task(id=131, user_id=13, title="Open", created_at=at("2026-12-03T23:59:59Z")),
]
# Hand-read from TASKS for DAY: 1 and 13 have an open task, 3 finished one in the day,
# 8's task was still open at the end of the day; 2 finished long before, 5 only started after.
ELIGIBLE_IN_DAY = (1, 3, 8, 13)


def make_use_case() -> tuple[ListUserIdsForProcessing, InMemoryUserIdReader]:
    reader = InMemoryUserIdReader(USERS, TASKS)
    return ListUserIdsForProcessing(reader, FixedClock(NOW)), reader


async def test_defaults_to_the_first_1000_ids_of_the_last_24_hours() -> None:
    use_case, reader = make_use_case()

    page = await use_case.execute(ListUserIdsQuery())

    assert reader.calls == [PageCall(window=DAY, after_id=0, limit=1000)]
    assert page.user_ids == ELIGIBLE_IN_DAY
    assert page.next_after_id is None
    assert page.window == DAY


async def test_walks_every_eligible_user_once_page_by_page() -> None:
    use_case, reader = make_use_case()
    seen: list[int] = []
    cursors: list[int | None] = []

    after_id = 0
    while True:
        page = await use_case.execute(ListUserIdsQuery(limit=3, after_id=after_id))
        seen.extend(page.user_ids)
        cursors.append(page.next_after_id)
        if page.next_after_id is None:
            break
        after_id = page.next_after_id

    assert tuple(seen) == ELIGIBLE_IN_DAY
    assert cursors == [8, None]
    assert [call.after_id for call in reader.calls] == [0, 8]


async def test_passes_the_readers_cursor_through() -> None:
    use_case, _ = make_use_case()

    page = await use_case.execute(ListUserIdsQuery(limit=1, after_id=1))

    assert page.user_ids == (3,)
    assert page.next_after_id == 3


async def test_answers_an_empty_last_page_after_the_last_eligible_id() -> None:
    use_case, _ = make_use_case()

    page = await use_case.execute(ListUserIdsQuery(after_id=13))

    assert page.user_ids == ()
    assert page.next_after_id is None


@pytest.mark.parametrize("limit", [1, 10_000])
async def test_accepts_limit_at_its_bounds(limit: int) -> None:
    use_case, reader = make_use_case()

    page = await use_case.execute(ListUserIdsQuery(limit=limit))

    assert reader.calls[0].limit == limit
    assert page.user_ids == ELIGIBLE_IN_DAY[:limit]


@pytest.mark.parametrize("limit", [-1, 0, 10_001])
async def test_refuses_limit_out_of_bounds_without_reading(limit: int) -> None:
    use_case, reader = make_use_case()

    with pytest.raises(InvalidRequest) as err:
        await use_case.execute(ListUserIdsQuery(limit=limit))

    assert [error.field for error in err.value.errors] == ["limit"]
    assert reader.calls == []


@pytest.mark.parametrize("after_id", [0, MAX_ID])
async def test_accepts_after_id_at_its_bounds(after_id: int) -> None:
    use_case, reader = make_use_case()

    await use_case.execute(ListUserIdsQuery(after_id=after_id))

    assert reader.calls[0].after_id == after_id


@pytest.mark.parametrize("after_id", [-1, MAX_ID + 1])
async def test_refuses_after_id_out_of_bounds_without_reading(after_id: int) -> None:
    use_case, reader = make_use_case()

    with pytest.raises(InvalidRequest) as err:
        await use_case.execute(ListUserIdsQuery(after_id=after_id))

    assert [error.field for error in err.value.errors] == ["afterId"]
    assert reader.calls == []


async def test_names_every_bad_parameter_at_once() -> None:
    use_case, reader = make_use_case()

    with pytest.raises(InvalidRequest) as err:
        await use_case.execute(ListUserIdsQuery(limit=0, after_id=-1))

    assert [error.field for error in err.value.errors] == ["limit", "afterId"]
    assert reader.calls == []


async def test_reads_and_returns_the_given_window_in_utc() -> None:
    use_case, reader = make_use_case()
    plus_two = timezone(timedelta(hours=2))
    query = ListUserIdsQuery(
        window_start=datetime(2026, 12, 1, 2, 0, tzinfo=plus_two),
        window_end=datetime(2026, 12, 2, 2, 0, tzinfo=plus_two),
    )

    page = await use_case.execute(query)

    expected = ReportWindow(start=at("2026-12-01T00:00:00Z"), end=at("2026-12-02T00:00:00Z"))
    assert page.window == expected
    assert reader.calls[0].window == expected


async def test_window_moves_which_users_are_eligible() -> None:
    use_case, _ = make_use_case()
    # A day later than DAY: 3's task was done the day before, 5's and 8's now count.
    next_day = ListUserIdsQuery(window_end=at("2026-12-05T00:00:00Z"))

    page = await use_case.execute(next_day)

    assert page.window == ReportWindow(start=NOW, end=at("2026-12-05T00:00:00Z"))
    assert page.user_ids == (1, 5, 8, 13)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        pytest.param(ListUserIdsQuery(window_start=NOW), "windowStart", id="start-at-now"),
        pytest.param(
            ListUserIdsQuery(window_end=datetime(2026, 12, 4)),
            "windowEnd",
            id="naive-end",
        ),
        pytest.param(
            ListUserIdsQuery(window_start=NOW - timedelta(days=31, microseconds=1)),
            "windowStart",
            id="over-31-days",
        ),
    ],
)
async def test_refuses_a_bad_window_without_reading(query: ListUserIdsQuery, field: str) -> None:
    use_case, reader = make_use_case()

    with pytest.raises(InvalidRequest) as err:
        await use_case.execute(query)

    assert [error.field for error in err.value.errors] == [field]
    assert reader.calls == []
