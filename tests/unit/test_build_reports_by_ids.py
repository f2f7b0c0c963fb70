"""BuildReportsByIds with an in-memory reader: batch rules, order, missing IDs and the window."""

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from application.reports import BuildReportsByIds, BuildReportsCommand
from domain.errors import InvalidRequest
from domain.reports import (
    CompletedTask,
    CompletedTasks,
    ReportWindow,
    UnfinishedTask,
    UnfinishedTasks,
    UserTaskReport,
)
from tests.data import Task, User, at
from tests.unit.fakes import FixedClock, InMemoryTaskReportReader, ReportsCall

MAX_ID = 2**63 - 1
NOW = at("2026-12-04T00:00:00Z")
DAY = ReportWindow(start=at("2026-12-03T00:00:00Z"), end=NOW)

USERS = [
    User(id=1, email="ann@example.com"),
    User(id=2, email="bob@example.com"),
    User(id=3, email="carol@example.com"),
    User(id=MAX_ID, email="last@example.com"),
]
# Ann has seven open tasks, created a minute apart, and two finished in DAY; Bob has none.
TASKS = [
    *(
        Task(
            id=100 + n,
            user_id=1,
            title=f"Open {n}",
            created_at=at("2026-12-01T00:00:00Z") + timedelta(minutes=n),
        )
        for n in range(7)
    ),
    Task(
        id=201,
        user_id=1,
        title="Pay rent",
        created_at=at("2026-11-25T10:00:00Z"),
        completed_at=at("2026-12-03T18:20:00Z"),
    ),
    Task(
        id=202,
        user_id=1,
        title="Call mum",
        created_at=at("2026-12-01T08:00:00Z"),
        completed_at=at("2026-12-03T00:00:00Z"),
    ),
    Task(id=301, user_id=3, title="Carol's only task", created_at=at("2026-12-02T00:00:00Z")),
]


def make_use_case(
    *,
    answer_descending: bool = False,
) -> tuple[BuildReportsByIds[UserTaskReport], InMemoryTaskReportReader]:
    reader = InMemoryTaskReportReader(USERS, TASKS, answer_descending=answer_descending)
    return BuildReportsByIds(reader, FixedClock(NOW)), reader


def fields_of(err: pytest.ExceptionInfo[InvalidRequest]) -> list[str]:
    return [error.field for error in err.value.errors]


async def test_reports_as_of_the_end_of_the_default_window() -> None:
    use_case, reader = make_use_case()

    batch = await use_case.execute(BuildReportsCommand(user_ids=(1,)))

    assert reader.calls == [ReportsCall(user_ids=[1], window=DAY, max_tasks=5)]
    assert batch.window == DAY
    assert batch.reports == [
        UserTaskReport(
            user_id=1,
            email="ann@example.com",
            unfinished=UnfinishedTasks(
                count=7,
                tasks=tuple(UnfinishedTask(100 + n, f"Open {n}") for n in range(5)),
            ),
            completed=CompletedTasks(
                count=2,
                tasks=(
                    CompletedTask(201, "Pay rent", at("2026-12-03T18:20:00Z")),
                    CompletedTask(202, "Call mum", at("2026-12-03T00:00:00Z")),
                ),
            ),
        ),
    ]
    assert batch.missing_user_ids == []


async def test_reports_a_user_with_nothing_to_report() -> None:
    use_case, _ = make_use_case()

    batch = await use_case.execute(BuildReportsCommand(user_ids=(2,)))

    assert [(r.user_id, r.unfinished.count, r.completed.count) for r in batch.reports] == [
        (2, 0, 0),
    ]


async def test_asks_for_each_duplicate_once_and_answers_it_once() -> None:
    use_case, reader = make_use_case()

    batch = await use_case.execute(BuildReportsCommand(user_ids=(3, 1, 3, 99, 1, 2, 99)))

    assert [call.user_ids for call in reader.calls] == [[1, 2, 3, 99]]
    assert [report.user_id for report in batch.reports] == [1, 2, 3]
    assert batch.missing_user_ids == [99]


async def test_names_missing_ids_ascending_and_once() -> None:
    use_case, _ = make_use_case()

    batch = await use_case.execute(BuildReportsCommand(user_ids=(99, 4, 99, 1, 50, 4)))

    assert batch.missing_user_ids == [4, 50, 99]
    assert [report.user_id for report in batch.reports] == [1]


async def test_orders_reports_by_user_id_whatever_order_the_reader_answers_in() -> None:
    use_case, reader = make_use_case(answer_descending=True)
    # Check the fake really answers out of order, or this test would prove nothing.
    answered = await reader.read_reports([1, 2, 3], DAY, 5)
    assert [report.user_id for report in answered] == [3, 2, 1]

    batch = await use_case.execute(BuildReportsCommand(user_ids=(2, 3, 1)))

    assert [report.user_id for report in batch.reports] == [1, 2, 3]


@pytest.mark.parametrize("size", [1, 1000])
async def test_accepts_batches_at_the_size_bounds(size: int) -> None:
    use_case, reader = make_use_case()
    user_ids = tuple(range(1, size + 1))

    batch = await use_case.execute(BuildReportsCommand(user_ids=user_ids))

    assert reader.calls[0].user_ids == list(user_ids)
    assert len(batch.reports) + len(batch.missing_user_ids) == size


@pytest.mark.parametrize("size", [0, 1001])
async def test_refuses_batches_out_of_the_size_bounds_without_reading(size: int) -> None:
    use_case, reader = make_use_case()

    with pytest.raises(InvalidRequest) as err:
        await use_case.execute(BuildReportsCommand(user_ids=tuple(range(1, size + 1))))

    assert fields_of(err) == ["userIds"]
    assert reader.calls == []


async def test_counts_duplicates_towards_the_batch_size() -> None:
    use_case, reader = make_use_case()

    with pytest.raises(InvalidRequest) as err:
        await use_case.execute(BuildReportsCommand(user_ids=(1,) * 1001))

    assert fields_of(err) == ["userIds"]
    assert reader.calls == []


async def test_accepts_ids_at_their_bounds() -> None:
    use_case, reader = make_use_case()

    batch = await use_case.execute(BuildReportsCommand(user_ids=(MAX_ID, 1)))

    assert reader.calls[0].user_ids == [1, MAX_ID]
    assert [report.user_id for report in batch.reports] == [1, MAX_ID]


@pytest.mark.parametrize("bad_id", [-1, 0, MAX_ID + 1])
async def test_refuses_an_id_out_of_bounds_naming_its_index(bad_id: int) -> None:
    use_case, reader = make_use_case()

    with pytest.raises(InvalidRequest) as err:
        await use_case.execute(BuildReportsCommand(user_ids=(1, 2, 3, bad_id)))

    assert fields_of(err) == ["userIds[3]"]
    assert reader.calls == []


async def test_names_every_bad_id_and_bad_max_tasks_at_once() -> None:
    use_case, reader = make_use_case()
    command = BuildReportsCommand(user_ids=(0, 1, MAX_ID + 1, 0), max_tasks=51)

    with pytest.raises(InvalidRequest) as err:
        await use_case.execute(command)

    assert fields_of(err) == ["userIds[0]", "userIds[2]", "userIds[3]", "maxTasks"]
    assert reader.calls == []


@pytest.mark.parametrize(("max_tasks", "shown"), [(0, 0), (1, 1), (50, 7)])
async def test_shows_at_most_max_tasks_of_each_list(max_tasks: int, shown: int) -> None:
    use_case, reader = make_use_case()

    batch = await use_case.execute(BuildReportsCommand(user_ids=(1,), max_tasks=max_tasks))

    assert reader.calls[0].max_tasks == max_tasks
    (report,) = batch.reports
    assert report.unfinished.count == 7
    assert len(report.unfinished.tasks) == shown


@pytest.mark.parametrize("max_tasks", [-1, 51])
async def test_refuses_max_tasks_out_of_bounds_without_reading(max_tasks: int) -> None:
    use_case, reader = make_use_case()

    with pytest.raises(InvalidRequest) as err:
        await use_case.execute(BuildReportsCommand(user_ids=(1,), max_tasks=max_tasks))

    assert fields_of(err) == ["maxTasks"]
    assert reader.calls == []


async def test_reads_and_returns_the_given_window_in_utc() -> None:
    use_case, reader = make_use_case()
    minus_five = timezone(timedelta(hours=-5))
    command = BuildReportsCommand(
        user_ids=(1,),
        window_start=datetime(2026, 12, 2, 19, 0, tzinfo=minus_five),
        window_end=datetime(2026, 12, 3, 19, 0, tzinfo=minus_five),
    )

    batch = await use_case.execute(command)

    assert batch.window == DAY
    assert reader.calls[0].window == DAY


async def test_reports_as_of_a_window_that_ends_earlier() -> None:
    use_case, _ = make_use_case()
    # Ends at 12:00 on 3 December: "Pay rent" (done 18:20) was still open then.
    command = BuildReportsCommand(user_ids=(1,), window_end=at("2026-12-03T12:00:00Z"))

    batch = await use_case.execute(command)

    assert batch.window == ReportWindow(
        start=at("2026-12-02T12:00:00Z"),
        end=at("2026-12-03T12:00:00Z"),
    )
    (report,) = batch.reports
    assert (report.unfinished.count, report.completed.count) == (8, 1)
    assert report.unfinished.tasks[0] == UnfinishedTask(201, "Pay rent")


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        pytest.param(NOW, NOW, "windowStart", id="empty"),
        pytest.param(datetime(2026, 12, 3), None, "windowStart", id="naive-start"),
        pytest.param(
            at("2026-11-02T23:59:59.999999Z"),
            NOW,
            "windowStart",
            id="31-days-and-a-microsecond",
        ),
    ],
)
async def test_refuses_a_bad_window_without_reading(
    start: datetime | None,
    end: datetime | None,
    field: str,
) -> None:
    use_case, reader = make_use_case()
    command = BuildReportsCommand(user_ids=(1,), window_start=start, window_end=end)

    with pytest.raises(InvalidRequest) as err:
        await use_case.execute(command)

    assert fields_of(err) == [field]
    assert reader.calls == []


@settings(max_examples=100, deadline=None)
@given(user_ids=st.lists(st.sampled_from([1, 2, 3, 4, 50, MAX_ID]), min_size=1, max_size=30))
async def test_answers_every_distinct_id_once_either_as_report_or_as_missing(
    user_ids: list[int],
) -> None:
    use_case, reader = make_use_case(answer_descending=True)

    batch = await use_case.execute(BuildReportsCommand(user_ids=tuple(user_ids)))

    distinct = sorted(set(user_ids))
    reported = [report.user_id for report in batch.reports]
    assert [call.user_ids for call in reader.calls] == [distinct]
    assert reported == sorted(set(reported))
    assert batch.missing_user_ids == sorted(set(batch.missing_user_ids))
    assert sorted(reported + batch.missing_user_ids) == distinct
    assert set(batch.missing_user_ids) == set(distinct) - {user.id for user in USERS}
