"""The report statement on a real PostgreSQL: window edges, order, limits and exact text."""

import random
from datetime import datetime, timedelta

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.database import Database
from adapters.reports import PostgresTaskReportReader
from domain.reports import (
    CompletedTask,
    CompletedTasks,
    ReportWindow,
    UnfinishedTasks,
    UserTaskReport,
)
from tests.conftest import AUTH
from tests.data import Seeder, Task, User, at
from tests.integration.documents import DecodingReportReader

START = at("2026-12-03T00:00:00Z")
END = at("2026-12-04T00:00:00Z")
WINDOW = ReportWindow(start=START, end=END)
US = timedelta(microseconds=1)
HOUR = timedelta(hours=1)
MAX_ID = 2**63 - 1

ANN = User(id=1, email="ann@example.com")
BOB = User(id=2, email="bob@example.com")

UNFINISHED = "unfinished"
COMPLETED = "completed"
NOWHERE = None

REPORTS_PATH = "/api/v1/internal/scheduler/user-task-reports-by-ids"


@pytest.fixture
def reader(engine: AsyncEngine) -> DecodingReportReader:
    return DecodingReportReader(PostgresTaskReportReader(Database(engine)))


async def _one_report(
    reader: DecodingReportReader,
    user_id: int,
    max_tasks: int = 50,
) -> UserTaskReport:
    reports = await reader.read_reports([user_id], WINDOW, max_tasks)
    assert [report.user_id for report in reports] == [user_id]
    return reports[0]


def _unfinished_ids(report: UserTaskReport) -> list[int]:
    return [task.id for task in report.unfinished.tasks]


def _completed_ids(report: UserTaskReport) -> list[int]:
    return [task.id for task in report.completed.tasks]


# Each row is one sentence of API.md's "The report window" applied to one task;
# the anomalies (completed before created) follow the definitions word for word.
EDGES = [
    pytest.param(START - HOUR, START, COMPLETED, id="completed-exactly-at-window-start"),
    pytest.param(START - HOUR, START - US, NOWHERE, id="completed-1us-before-window-start"),
    pytest.param(START - HOUR, END - US, COMPLETED, id="completed-1us-before-window-end"),
    pytest.param(START - HOUR, END, UNFINISHED, id="completed-exactly-at-window-end"),
    pytest.param(START - HOUR, END + US, UNFINISHED, id="completed-1us-after-window-end"),
    pytest.param(START - HOUR, None, UNFINISHED, id="never-completed"),
    pytest.param(END - US, None, UNFINISHED, id="created-1us-before-window-end"),
    pytest.param(END - US, END, UNFINISHED, id="created-1us-before-end-completed-at-end"),
    pytest.param(END - 2 * US, END - US, COMPLETED, id="created-and-completed-just-before-end"),
    pytest.param(END, None, NOWHERE, id="created-exactly-at-window-end"),
    pytest.param(END, END + HOUR, NOWHERE, id="created-at-end-completed-later"),
    pytest.param(END + HOUR, None, NOWHERE, id="created-after-window-end"),
    pytest.param(START, START, COMPLETED, id="created-and-completed-at-window-start"),
    pytest.param(START + 2 * HOUR, START + HOUR, COMPLETED, id="anomaly-completed-in-window-first"),
    pytest.param(START + HOUR, START - HOUR, NOWHERE, id="anomaly-completed-before-window"),
    pytest.param(END + HOUR, START + HOUR, NOWHERE, id="anomaly-created-after-end-done-inside"),
    pytest.param(END + HOUR, END, NOWHERE, id="anomaly-created-after-end-done-at-end"),
    pytest.param(END + 2 * HOUR, END + HOUR, NOWHERE, id="anomaly-all-after-window-end"),
]


@pytest.mark.parametrize(("created_at", "completed_at", "counted_as"), EDGES)
async def test_task_is_counted_exactly_where_the_window_puts_it(
    reader: DecodingReportReader,
    seeder: Seeder,
    created_at: datetime,
    completed_at: datetime | None,
    counted_as: str | None,
) -> None:
    await seeder.users([ANN])
    await seeder.tasks([Task(7, ANN.id, "edge", created_at, completed_at)])

    report = await _one_report(reader, ANN.id)

    in_unfinished = (1, [7]) if counted_as == UNFINISHED else (0, [])
    in_completed = (1, [7]) if counted_as == COMPLETED else (0, [])
    assert (report.unfinished.count, _unfinished_ids(report)) == in_unfinished
    assert (report.completed.count, _completed_ids(report)) == in_completed


async def test_unfinished_ties_on_created_at_come_in_ascending_id_order(
    reader: DecodingReportReader,
    seeder: Seeder,
) -> None:
    same = START - HOUR
    await seeder.users([ANN])
    # Open tasks and tasks completed after the end are both unfinished; they must
    # interleave by (created_at, id) whichever kind each one is.
    await seeder.tasks(
        [
            Task(30, ANN.id, "open c", same),
            Task(10, ANN.id, "done after end", same, END + HOUR),
            Task(20, ANN.id, "open b", same),
            Task(5, ANN.id, "a microsecond younger", same + US),
            Task(40, ANN.id, "a microsecond older, done at end", same - US, END),
        ],
    )

    report = await _one_report(reader, ANN.id)

    assert report.unfinished.count == 5
    assert _unfinished_ids(report) == [40, 10, 20, 30, 5]


async def test_completed_ties_on_completed_at_come_in_descending_id_order(
    reader: DecodingReportReader,
    seeder: Seeder,
) -> None:
    same = START + HOUR
    await seeder.users([ANN])
    await seeder.tasks(
        [
            Task(7, ANN.id, "tie", START - HOUR, same),
            Task(3, ANN.id, "tie", START - HOUR, same),
            Task(9, ANN.id, "tie", START - HOUR, same),
            Task(11, ANN.id, "a microsecond earlier", START - HOUR, same - US),
            Task(1, ANN.id, "a microsecond later", START - HOUR, same + US),
        ],
    )

    report = await _one_report(reader, ANN.id)

    assert report.completed.count == 5
    assert _completed_ids(report) == [1, 9, 7, 3, 11]


def _busy_user_tasks() -> list[Task]:
    """Hundreds of tasks of ANN of every kind, with shuffled IDs and many tied times."""
    rng = random.Random(20261203)  # any fixed seed: the expectations are computed below
    ids = iter(rng.sample(range(1, 100_000), 680))

    def created(index: int) -> datetime:
        # Ten distinct creation times for hundreds of tasks: ties everywhere.
        return START - timedelta(days=1) + (index % 10) * HOUR

    def task(title: str, created_at: datetime, completed_at: datetime | None) -> Task:
        return Task(next(ids), ANN.id, title, created_at, completed_at)

    return [
        *(task(f"open #{i}", created(i), None) for i in range(300)),
        *(task(f"done after end #{i}", created(i), END + HOUR) for i in range(60)),
        *(task(f"done in window #{i}", created(i), START + (i % 7) * HOUR) for i in range(250)),
        *(task(f"done before start #{i}", created(i), START - US) for i in range(40)),
        *(task(f"created after end #{i}", END + (i % 3) * US, None) for i in range(30)),
    ]


@pytest.mark.parametrize("max_tasks", [0, 1, 5, 50])
async def test_busy_user_gets_full_counts_and_lists_capped_at_max_tasks(
    reader: DecodingReportReader,
    seeder: Seeder,
    max_tasks: int,
) -> None:
    tasks = _busy_user_tasks()
    await seeder.users([ANN, BOB])
    await seeder.tasks(tasks)
    await seeder.tasks(Task(200_000 + i, BOB.id, "bob's", START - HOUR) for i in range(20))

    report = await _one_report(reader, ANN.id, max_tasks=max_tasks)

    unfinished = sorted(
        (t for t in tasks if t.title.startswith(("open", "done after end"))),
        key=lambda t: (t.created_at, t.id),
    )
    completed = sorted(
        (t for t in tasks if t.title.startswith("done in window")),
        key=lambda t: (t.completed_at, t.id),
        reverse=True,
    )
    assert report.unfinished.count == 360
    assert report.completed.count == 250
    assert _unfinished_ids(report) == [t.id for t in unfinished[:max_tasks]]
    assert _completed_ids(report) == [t.id for t in completed[:max_tasks]]


# Four characters repeated 1,250 times: 5,000 characters, 8,750 bytes in UTF-8.
LONG_TITLE = "abc🎉" * 1250
TITLES = [
    pytest.param(
        "Party 🎉 with \U0001f469\u200d\U0001f469\u200d\U0001f467 and 🇪🇺",
        id="emoji-and-zwj",
    ),
    pytest.param("مراجعة التقرير الشهري", id="arabic"),
    pytest.param("לקנות חלב \u200f(2 ליטר)", id="hebrew-with-rtl-mark"),
    pytest.param('Say "hi" to O\'Brien, `now`', id="quotes"),
    pytest.param("C:\\Users\\ann\\todo.txt \\n is not a newline", id="backslashes"),
    pytest.param("line one\nline two\r\nline three\rend", id="newlines"),
    pytest.param("tab\there \x01\x08\x0b\x0c\x1b[31m\x1f\x7f\x85 end", id="control-chars"),
    pytest.param("".join(map(chr, range(1, 32))) + "\x7f", id="every-control-but-nul"),
    pytest.param("   leading and trailing   ", id="outer-spaces"),
    pytest.param("e\u0301 vs \u00e9, \ufeffbom, \u2028 and \u2029", id="unnormalised-unicode"),
    pytest.param(LONG_TITLE, id="5000-characters"),
]


@pytest.mark.parametrize("title", TITLES)
async def test_title_comes_back_exactly_as_stored(
    reader: DecodingReportReader,
    seeder: Seeder,
    title: str,
) -> None:
    await seeder.users([ANN])
    await seeder.tasks(
        [
            Task(1, ANN.id, title, START - HOUR),
            Task(2, ANN.id, title, START - HOUR, START + HOUR),
        ],
    )

    report = await _one_report(reader, ANN.id)

    # Equal str means equal code points, hence equal UTF-8 bytes.
    assert [t.title.encode() for t in report.unfinished.tasks] == [title.encode()]
    assert [t.title.encode() for t in report.completed.tasks] == [title.encode()]


async def test_titles_come_back_exactly_through_the_json_api(
    client: AsyncTestClient[Litestar],
    seeder: Seeder,
) -> None:
    titles = [str(param.values[0]) for param in TITLES]
    await seeder.users([ANN])
    await seeder.tasks(
        Task(index + 1, ANN.id, title, START - HOUR + index * US)
        for index, title in enumerate(titles)
    )

    response = await client.post(
        REPORTS_PATH,
        json={
            "userIds": [ANN.id],
            "windowStart": "2026-12-03T00:00:00Z",
            "windowEnd": "2026-12-04T00:00:00Z",
            "maxTasks": 50,
        },
        headers=AUTH,
    )

    assert response.status_code == 200, response.text
    [report] = response.json()["reports"]
    assert [task["title"] for task in report["unfinished"]["tasks"]] == titles


async def test_completion_time_comes_back_to_the_microsecond(
    reader: DecodingReportReader,
    seeder: Seeder,
) -> None:
    completed_at = at("2026-12-03T18:20:00.123457Z")
    await seeder.users([ANN])
    await seeder.tasks([Task(1, ANN.id, "Pay rent", START - HOUR, completed_at)])

    report = await _one_report(reader, ANN.id)

    [task] = report.completed.tasks
    assert task == CompletedTask(id=1, title="Pay rent", completed_at=completed_at)
    assert task.completed_at.utcoffset() == timedelta(0)


async def test_gapped_and_largest_ids_report_existing_users_only_in_ascending_order(
    reader: DecodingReportReader,
    seeder: Seeder,
) -> None:
    users = [User(user_id, f"user{user_id}@example.com") for user_id in (1, 7, 1000, MAX_ID)]
    await seeder.users(users)
    await seeder.tasks(
        [
            Task(MAX_ID, MAX_ID, "largest task of the largest user", START - HOUR),
            Task(MAX_ID - 1, MAX_ID, "done", START - HOUR, END - US),
            Task(1, 7, "small", START - HOUR),
        ],
    )

    reports = await reader.read_reports([1, 2, 7, 999, 1000, MAX_ID - 1, MAX_ID], WINDOW, 5)

    assert [report.user_id for report in reports] == [1, 7, 1000, MAX_ID]
    assert [report.email for report in reports] == [user.email for user in users]
    largest = reports[-1]
    assert _unfinished_ids(largest) == [MAX_ID]
    assert _completed_ids(largest) == [MAX_ID - 1]
    assert _unfinished_ids(reports[1]) == [1]


async def test_only_missing_ids_give_no_reports(
    reader: DecodingReportReader,
    seeder: Seeder,
) -> None:
    await seeder.users([ANN])
    await seeder.tasks([Task(1, ANN.id, "open", START - HOUR)])

    reports = await reader.read_reports([2, 3, MAX_ID], WINDOW, 5)

    assert reports == []


@pytest.mark.parametrize(
    "tasks",
    [
        pytest.param([], id="no-tasks"),
        pytest.param(
            [
                Task(1, ANN.id, "done long ago", START - 2 * HOUR, START - HOUR),
                Task(2, ANN.id, "created at the end", END),
            ],
            id="only-tasks-that-count-nowhere",
        ),
    ],
)
async def test_user_with_nothing_to_report_gets_a_zero_report(
    reader: DecodingReportReader,
    seeder: Seeder,
    tasks: list[Task],
) -> None:
    await seeder.users([ANN])
    await seeder.tasks(tasks)

    report = await _one_report(reader, ANN.id)

    assert report == UserTaskReport(
        user_id=ANN.id,
        email=ANN.email,
        unfinished=UnfinishedTasks(count=0, tasks=()),
        completed=CompletedTasks(count=0, tasks=()),
    )


async def test_each_user_of_a_batch_gets_only_their_own_tasks(
    reader: DecodingReportReader,
    seeder: Seeder,
) -> None:
    carol = User(id=3, email="carol@example.com")
    await seeder.users([ANN, BOB, carol])
    await seeder.tasks(
        [
            Task(11, ANN.id, "ann open", START - HOUR),
            Task(12, ANN.id, "ann done", START - HOUR, START + HOUR),
            Task(21, BOB.id, "bob open", START - 2 * HOUR),
            Task(22, BOB.id, "bob open too", START - 2 * HOUR),
        ],
    )

    reports = await reader.read_reports([ANN.id, BOB.id, carol.id], WINDOW, 5)

    by_user = {r.user_id: (_unfinished_ids(r), _completed_ids(r)) for r in reports}
    assert by_user == {ANN.id: ([11], [12]), BOB.id: ([21, 22], []), carol.id: ([], [])}
    assert [(r.unfinished.count, r.completed.count) for r in reports] == [(1, 1), (2, 0), (0, 0)]
