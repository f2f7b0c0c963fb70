"""The producer's keyset pages on a real PostgreSQL: who is eligible, and every page edge."""

from datetime import datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.database import Database
from adapters.user_ids import PostgresUserIdReader
from domain.reports import ReportWindow, UserIdPage
from tests.data import Seeder, Task, User, at

START = at("2026-12-03T00:00:00Z")
END = at("2026-12-04T00:00:00Z")
WINDOW = ReportWindow(start=START, end=END)
US = timedelta(microseconds=1)
HOUR = timedelta(hours=1)
MAX_ID = 2**63 - 1


@pytest.fixture
def reader(engine: AsyncEngine) -> PostgresUserIdReader:
    return PostgresUserIdReader(Database(engine))


def _user(user_id: int) -> User:
    return User(user_id, f"user{user_id}@example.com")


def _open_task(task_id: int, user_id: int) -> Task:
    return Task(task_id, user_id, "open", START - HOUR)


async def _walk(
    reader: PostgresUserIdReader,
    limit: int,
    after_id: int = 0,
) -> list[UserIdPage]:
    """Follow next_after_id to the end, as the scheduler's producer does."""
    pages = [await reader.read_page(WINDOW, after_id, limit)]
    while pages[-1].next_after_id is not None:
        assert len(pages) < 1000, "the walk does not end"
        pages.append(await reader.read_page(WINDOW, pages[-1].next_after_id, limit))
    return pages


# Users 1 … 60 with gaps, eligible or not for reasons of every kind (see API.md, "The
# report window": unfinished as of windowEnd, or completed in the window).
ELIGIBLE = [2, 3, 5, 8, 13, 21, 34, 55, 56, 57, 58, 59]
INELIGIBLE_TASKS: dict[int, list[tuple[datetime, datetime | None]]] = {
    4: [(START - HOUR, START - US)],
    6: [(END, None), (END + HOUR, START + HOUR)],
    9: [(START - HOUR, START - HOUR), (END, END + HOUR)],
}
WITHOUT_TASKS = [1, 10, 60]


async def _seed_mixed_users(seeder: Seeder) -> None:
    ids = sorted([*ELIGIBLE, *INELIGIBLE_TASKS, *WITHOUT_TASKS])
    await seeder.users(_user(user_id) for user_id in ids)
    eligible_by = [
        # One way each to be eligible, round robin over the eligible users.
        (START - HOUR, None),
        (END - US, None),
        (START - HOUR, START),
        (START - HOUR, END - US),
        (START - HOUR, END),
    ]
    tasks = [
        Task(1000 + index, user_id, "eligible", *eligible_by[index % len(eligible_by)])
        for index, user_id in enumerate(ELIGIBLE)
    ]
    tasks.extend(
        Task(2000 + 10 * user_id + index, user_id, "ineligible", created_at, completed_at)
        for user_id, times in INELIGIBLE_TASKS.items()
        for index, (created_at, completed_at) in enumerate(times)
    )
    await seeder.tasks(tasks)


@pytest.mark.parametrize("limit", [1, 2, 3, 5, 6, 11, 12, 13, 10_000])
async def test_walk_yields_every_eligible_user_once_in_full_pages(
    reader: PostgresUserIdReader,
    seeder: Seeder,
    limit: int,
) -> None:
    await _seed_mixed_users(seeder)

    pages = await _walk(reader, limit)

    assert [user_id for page in pages for user_id in page.user_ids] == ELIGIBLE
    assert all(len(page.user_ids) == limit for page in pages[:-1])
    assert 1 <= len(pages[-1].user_ids) <= limit
    assert [page.next_after_id for page in pages[:-1]] == [page.user_ids[-1] for page in pages[:-1]]
    assert pages[-1].next_after_id is None


@pytest.mark.parametrize("limit", [1, 4, 6, 12])
async def test_exactly_full_last_page_says_it_is_the_last(
    reader: PostgresUserIdReader,
    seeder: Seeder,
    limit: int,
) -> None:
    # 12 eligible users divide evenly by each limit: the reader must look one row ahead
    # rather than send the producer for an empty page.
    await _seed_mixed_users(seeder)

    pages = await _walk(reader, limit)

    assert len(pages) == len(ELIGIBLE) // limit
    assert len(pages[-1].user_ids) == limit
    assert pages[-1].next_after_id is None


@pytest.mark.parametrize(
    "after_id",
    [
        pytest.param(59, id="last-eligible-id"),
        pytest.param(60, id="last-id"),
        pytest.param(61, id="beyond-the-last-id"),
        pytest.param(MAX_ID, id="largest-id"),
    ],
)
async def test_page_after_the_last_eligible_user_is_empty_and_final(
    reader: PostgresUserIdReader,
    seeder: Seeder,
    after_id: int,
) -> None:
    await _seed_mixed_users(seeder)

    page = await reader.read_page(WINDOW, after_id, 5)

    assert page == UserIdPage(user_ids=(), next_after_id=None)


async def test_page_starts_strictly_after_the_given_id(
    reader: PostgresUserIdReader,
    seeder: Seeder,
) -> None:
    await _seed_mixed_users(seeder)

    pages = [await reader.read_page(WINDOW, after_id, 3) for after_id in (13, 14, 54)]

    assert pages == [
        UserIdPage(user_ids=(21, 34, 55), next_after_id=55),
        UserIdPage(user_ids=(21, 34, 55), next_after_id=55),
        UserIdPage(user_ids=(55, 56, 57), next_after_id=57),
    ]


async def test_no_eligible_user_gives_one_empty_final_page(
    reader: PostgresUserIdReader,
    seeder: Seeder,
) -> None:
    await seeder.users(_user(user_id) for user_id in (1, 2, 3))
    await seeder.tasks([Task(1, 2, "done before the window", START - HOUR, START - US)])

    page = await reader.read_page(WINDOW, 0, 10)

    assert page == UserIdPage(user_ids=(), next_after_id=None)


# Single-task users, one per sentence of API.md's "The report window".
ELIGIBILITY = [
    pytest.param(START - HOUR, None, True, id="open"),
    pytest.param(START - HOUR, START, True, id="completed-exactly-at-window-start"),
    pytest.param(START - HOUR, START - US, False, id="completed-1us-before-window-start"),
    pytest.param(START - HOUR, END - US, True, id="completed-1us-before-window-end"),
    pytest.param(START - HOUR, END, True, id="completed-exactly-at-window-end"),
    pytest.param(START - HOUR, END + HOUR, True, id="completed-after-window-end"),
    pytest.param(END - US, None, True, id="created-1us-before-window-end"),
    pytest.param(END, None, False, id="created-exactly-at-window-end"),
    pytest.param(END, END + HOUR, False, id="created-at-end-completed-later"),
    pytest.param(START + 2 * HOUR, START + HOUR, True, id="anomaly-completed-in-window-first"),
    pytest.param(START + HOUR, START - HOUR, False, id="anomaly-completed-before-window"),
    pytest.param(END + HOUR, START + HOUR, False, id="anomaly-created-after-end-done-inside"),
]


@pytest.mark.parametrize(("created_at", "completed_at", "eligible"), ELIGIBILITY)
async def test_user_is_listed_exactly_when_a_task_makes_them_eligible(
    reader: PostgresUserIdReader,
    seeder: Seeder,
    created_at: datetime,
    completed_at: datetime | None,
    eligible: bool,
) -> None:
    await seeder.users([_user(1), _user(2), _user(3)])
    await seeder.tasks(
        [
            _open_task(1, 1),
            Task(2, 2, "edge", created_at, completed_at),
            _open_task(3, 3),
        ],
    )

    page = await reader.read_page(WINDOW, 0, 10)

    assert page.user_ids == ((1, 2, 3) if eligible else (1, 3))
    assert page.next_after_id is None


async def test_largest_ids_are_paged_like_any_other(
    reader: PostgresUserIdReader,
    seeder: Seeder,
) -> None:
    ids = [1, MAX_ID - 2, MAX_ID - 1, MAX_ID]
    await seeder.users(_user(user_id) for user_id in ids)
    await seeder.tasks(_open_task(MAX_ID - index, user_id) for index, user_id in enumerate(ids))

    pages = await _walk(reader, 2, after_id=1)

    assert pages == [
        UserIdPage(user_ids=(MAX_ID - 2, MAX_ID - 1), next_after_id=MAX_ID - 1),
        UserIdPage(user_ids=(MAX_ID,), next_after_id=None),
    ]


async def test_walk_meanwhile_changed_yields_every_user_that_stays_eligible_once(
    reader: PostgresUserIdReader,
    seeder: Seeder,
) -> None:
    # Users at multiples of 10; newcomers get IDs ending in 4, 5 or 9, so none collide.
    start_ids = list(range(100, 1000, 10))
    await seeder.users(_user(user_id) for user_id in start_ids)
    await seeder.tasks(_open_task(user_id, user_id) for user_id in start_ids)
    connection = seeder.connection
    gone_ahead: set[int] = set()
    arrived_ahead: set[int] = set()

    seen: list[int] = []
    page = await reader.read_page(WINDOW, 0, 10)
    seen.extend(page.user_ids)
    while page.next_after_id is not None:
        cursor = page.next_after_id
        # Between pages: the cursor's own user leaves, a newcomer lands behind the cursor
        # and one ahead of it, a user ahead leaves and another ahead stops being eligible.
        base = cursor // 10 * 10
        await connection.execute("DELETE FROM users WHERE id = $1", cursor)
        await seeder.users([_user(cursor - 1), _user(base + 25)])
        await seeder.tasks([_open_task(cursor - 1, cursor - 1), _open_task(base + 25, base + 25)])
        await connection.execute("DELETE FROM users WHERE id = $1", base + 30)
        await connection.execute(
            "UPDATE tasks SET completed_at = $2 WHERE user_id = $1",
            base + 40,
            START - HOUR,
        )
        arrived_ahead.add(base + 25)
        gone_ahead.update([base + 30, base + 40])
        page = await reader.read_page(WINDOW, cursor, 10)
        seen.extend(page.user_ids)

    assert len(arrived_ahead) >= 5, "the walk should have taken several pages"
    assert seen == sorted((set(start_ids) - gone_ahead) | arrived_ahead)
