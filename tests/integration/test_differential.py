"""Differential test: the adapters and the HTTP API against the plain-Python oracle.

Hypothesis builds small worlds whose task times crowd around the window's edges, so
that the exact boundaries (and ties between tasks) come up in most examples; the SQL,
the JSON API and tests/oracle.py must then agree on every report and every page.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.database import Database
from adapters.reports import PostgresTaskReportReader
from adapters.user_ids import PostgresUserIdReader
from domain.reports import ReportWindow, UserIdPage
from tests import oracle
from tests.conftest import AUTH
from tests.data import Seeder, Task, User, at
from tests.integration.documents import DecodingReportReader

MAX_ID = 2**63 - 1
US = timedelta(microseconds=1)
BASE = at("2026-12-03T00:00:00Z")
END = BASE + timedelta(days=1)
HOUR = timedelta(hours=1)
# From the shortest window there is to the longest the contract allows.
SPANS = [US, timedelta(seconds=1), HOUR, timedelta(days=1), timedelta(days=31)]
NUDGES = [-HOUR, -US, timedelta(0), timedelta(0), US, HOUR]
# The offsets the request's window is written in; the answer must be in UTC all the same.
OFFSETS = [UTC, timezone(timedelta(hours=1)), timezone(-timedelta(hours=5, minutes=30))]
TITLES = ["Pay rent", "", " padded ", "🎉 done", "שלום", 'say "hi"\\\n', "x" * 300]

REPORTS_PATH = "/api/v1/internal/scheduler/user-task-reports-by-ids"
USER_IDS_PATH = "/api/v1/internal/scheduler/user-ids-for-processing"
ZULU = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z")


@dataclass(frozen=True)
class World:
    users: list[User]
    tasks: list[Task]
    window: ReportWindow
    offset: timezone
    requested: list[int]
    max_tasks: int
    page_size: int
    after_id: int


def _instants(window: ReportWindow) -> st.SearchStrategy[datetime]:
    """An edge of the window give or take a hair, a coarse grid point (for ties), or anywhere."""
    span = window.end - window.start
    on_edge = st.builds(
        lambda edge, nudge: edge + nudge,
        st.sampled_from([window.start, window.end]),
        st.sampled_from(NUDGES),
    )
    on_grid = st.integers(-4, 8).map(lambda quarter: window.start + span * quarter / 4)
    anywhere = st.integers(-(10**11), 10**11).map(lambda offset_us: window.start + offset_us * US)
    return st.one_of(on_edge, on_edge, on_grid, on_grid, anywhere)


@st.composite
def worlds(draw: st.DrawFn) -> World:
    start = BASE + draw(st.sampled_from([timedelta(0), timedelta(minutes=7, microseconds=3)]))
    window = ReportWindow(start=start, end=start + draw(st.sampled_from(SPANS)))
    ids = st.one_of(st.integers(1, 40), st.integers(1, 40), st.just(MAX_ID))
    user_ids = draw(st.lists(ids, unique=True, min_size=1, max_size=5))
    users = [User(user_id, f"user{user_id}@example.com") for user_id in user_ids]

    task_count = draw(st.integers(1, 25))
    owners = draw(st.lists(st.sampled_from(user_ids), min_size=task_count, max_size=task_count))
    task_ids = draw(
        st.lists(
            st.integers(1, 300) | st.just(MAX_ID),
            unique=True,
            min_size=len(owners),
            max_size=len(owners),
        ),
    )
    times = _instants(window)
    tasks: list[Task] = []
    for task_id, owner in zip(task_ids, owners, strict=True):
        created_at, completed_at = draw(times), draw(st.none() | times)
        twinned = draw(st.booleans())
        if tasks and twinned:
            # The same times as an earlier task: ties for the order to break by ID.
            twin = draw(st.sampled_from(tasks))
            created_at, completed_at = twin.created_at, twin.completed_at
        title = draw(st.sampled_from(TITLES))
        tasks.append(Task(task_id, owner, title, created_at, completed_at))

    wanted = st.one_of(st.sampled_from(user_ids), st.sampled_from(user_ids), ids)
    return World(
        users=users,
        tasks=tasks,
        window=window,
        offset=draw(st.sampled_from(OFFSETS)),
        requested=draw(st.lists(wanted, min_size=1, max_size=12)),
        max_tasks=draw(st.sampled_from([0, 1, 2, 3, 50]) | st.integers(0, 50)),
        page_size=draw(st.integers(1, 3)),
        after_id=draw(st.sampled_from([0, 0, 0, 1, 20, 41, MAX_ID - 1, MAX_ID])),
    )


def _wire_time(value: datetime, offset: timezone) -> str:
    return value.astimezone(offset).isoformat()


def _in_utc(text: Any) -> str:
    """Check a timestamp of the answer is UTC with `Z`, then write it as the oracle does."""
    assert isinstance(text, str)
    assert ZULU.fullmatch(text), text
    return oracle.timestamp_json(datetime.fromisoformat(text.replace("Z", "+00:00")))


def _normalised(body: dict[str, Any]) -> dict[str, Any]:
    body["window"] = {key: _in_utc(value) for key, value in body["window"].items()}
    for report in body.get("reports", []):
        for task in report["completed"]["tasks"]:
            task["completedAt"] = _in_utc(task["completedAt"])
    return body


async def _seed(seeder: Seeder, world: World) -> None:
    await seeder.connection.execute("TRUNCATE users, tasks RESTART IDENTITY CASCADE")
    await seeder.users(world.users)
    await seeder.tasks(world.tasks)


async def _walk_adapter(engine: AsyncEngine, world: World) -> list[UserIdPage]:
    reader = PostgresUserIdReader(Database(engine))
    pages = [await reader.read_page(world.window, world.after_id, world.page_size)]
    while (cursor := pages[-1].next_after_id) is not None:
        assert len(pages) <= len(world.users), "more pages than users"
        pages.append(await reader.read_page(world.window, cursor, world.page_size))
    return pages


async def _walk_http(client: AsyncTestClient[Litestar], world: World) -> list[dict[str, Any]]:
    params = {
        "limit": str(world.page_size),
        "windowStart": _wire_time(world.window.start, world.offset),
        "windowEnd": _wire_time(world.window.end, world.offset),
    }
    if world.after_id:
        params["afterId"] = str(world.after_id)
    pages: list[dict[str, Any]] = []
    while not pages or pages[-1]["nextAfterId"] is not None:
        assert len(pages) <= len(world.users), "more pages than users"
        if pages:
            params["afterId"] = str(pages[-1]["nextAfterId"])
        response = await client.get(USER_IDS_PATH, params=params, headers=AUTH)
        assert response.status_code == 200, response.text
        pages.append(_normalised(response.json()))
    return pages


def _lone_task_world(created_at: datetime, completed_at: datetime | None) -> World:
    """Users 1 and 3 with a plainly open task each, and user 2 whose one task sits on an edge.

    Whether user 2 is reported and listed then rests on that edge alone, which random
    worlds reach only now and then.
    """
    window = ReportWindow(start=BASE, end=END)
    users = [User(user_id, f"user{user_id}@example.com") for user_id in (1, 2, 3)]
    return World(
        users=users,
        tasks=[
            Task(1, 1, "open", BASE - HOUR),
            Task(2, 2, "on the edge", created_at, completed_at),
            Task(3, 3, "open", BASE - HOUR),
        ],
        window=window,
        offset=UTC,
        requested=[3, 2, 1, 2, 4],
        max_tasks=5,
        page_size=1,
        after_id=0,
    )


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(world=worlds())
# Edges that decide on their own whether user 2 is reported and listed, run every time.
@example(world=_lone_task_world(BASE - HOUR, BASE))  # completed exactly at windowStart
@example(world=_lone_task_world(BASE - HOUR, BASE - US))  # completed just before it
@example(world=_lone_task_world(BASE - HOUR, END))  # completed exactly at windowEnd
@example(world=_lone_task_world(END, None))  # created exactly at windowEnd
@example(world=_lone_task_world(END - US, None))  # created just before it
@example(world=_lone_task_world(END + HOUR, BASE + HOUR))  # created after, completed inside
async def test_adapters_and_api_agree_with_the_oracle(
    engine: AsyncEngine,
    client: AsyncTestClient[Litestar],
    seeder: Seeder,
    world: World,
) -> None:
    await _seed(seeder, world)
    expected = oracle.reports_for(
        world.users,
        world.tasks,
        world.requested,
        world.window,
        world.max_tasks,
    )
    expected_pages = oracle.walk(
        world.users,
        world.tasks,
        world.window,
        world.page_size,
        world.after_id,
    )

    reports = await DecodingReportReader(PostgresTaskReportReader(Database(engine))).read_reports(
        sorted(set(world.requested)),
        world.window,
        world.max_tasks,
    )
    response = await client.post(
        REPORTS_PATH,
        json={
            "userIds": world.requested,
            "windowStart": _wire_time(world.window.start, world.offset),
            "windowEnd": _wire_time(world.window.end, world.offset),
            "maxTasks": world.max_tasks,
        },
        headers=AUTH,
    )
    pages = await _walk_adapter(engine, world)
    http_pages = await _walk_http(client, world)

    assert reports == expected.reports
    assert response.status_code == 200, response.text
    assert _normalised(response.json()) == oracle.batch_json(expected, world.window)
    assert pages == expected_pages
    assert http_pages == [oracle.page_json(page, world.window) for page in expected_pages]
