"""The producer on its own, and the whole nightly pass over HTTP and directly in SQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import asyncpg

from adapters.reports import REPORT_SQL
from adapters.user_ids import USER_IDS_SQL
from bench.scales import BATCH_SIZE
from bench.scheduler_client import SchedulerClient, reports_body
from bench.timing import WrongAnswer, median_ms
from domain.reports import ReportWindow

# The producer walks in pages of the API's largest size and cuts them into batches:
# a walk of 1000-ID pages spends most of a pass waiting on one page after another while
# the consumers keep the database busy.
PAGE_SIZE = 10_000

# The producer's page written with OFFSET instead of a keyset: the same users in the same
# order, probed the same way (each EXISTS fenced by OFFSET 0, as the product's are), but
# PostgreSQL must find and skip every eligible user before the page.
# $1 how many eligible users to skip, $2 window start, $3 window end, $4 page size.
OFFSET_USER_IDS_SQL = """
SELECT u.id
FROM users u
WHERE EXISTS (
          SELECT FROM tasks t
          WHERE t.user_id = u.id AND t.completed_at IS NULL AND t.created_at < $3
          OFFSET 0
      )
   OR EXISTS (
          SELECT FROM tasks t
          WHERE t.user_id = u.id AND t.completed_at >= $2 AND t.created_at < $3
          OFFSET 0
      )
ORDER BY u.id
OFFSET $1
LIMIT $4
"""

# How deep "deep" is: the page after this share of the eligible users.
DEEP_SHARE = 0.9


async def walk_in_sql(connection: asyncpg.Connection, window: ReportWindow) -> list[int]:
    """Every user to be processed, page by page as the service walks them."""
    user_ids: list[int] = []
    after_id = 0
    while True:
        rows = await connection.fetch(
            USER_IDS_SQL, after_id, window.start, window.end, BATCH_SIZE + 1
        )
        page = [row[0] for row in rows[:BATCH_SIZE]]
        user_ids += page
        if len(rows) <= BATCH_SIZE:
            return user_ids
        after_id = page[-1]


@dataclass(frozen=True, slots=True)
class ProducerTimes:
    first_page_ms: float
    deep_page_ms: float
    offset_deep_page_ms: float
    deep_position: int
    repetitions: int
    # How PostgreSQL planned the keyset statement's executions: generic and custom plans.
    generic_plans: int
    custom_plans: int


async def time_producer(
    connection: asyncpg.Connection,
    window: ReportWindow,
    eligible: Sequence[int],
    repetitions: int,
) -> ProducerTimes:
    """Median round trip of the first page, the keyset page at depth, and OFFSET there."""
    position = int(len(eligible) * DEEP_SHARE)
    after_id = eligible[position - 1] if position else 0
    expected_deep = list(eligible[position : position + BATCH_SIZE])
    keyset = await connection.prepare(USER_IDS_SQL)
    offset = await connection.prepare(OFFSET_USER_IDS_SQL)
    limit = BATCH_SIZE + 1

    async def first() -> list[asyncpg.Record]:
        return await keyset.fetch(0, window.start, window.end, limit)

    async def deep() -> list[asyncpg.Record]:
        return await keyset.fetch(after_id, window.start, window.end, limit)

    async def deep_by_offset() -> list[asyncpg.Record]:
        return await offset.fetch(position, window.start, window.end, limit)

    for read, expected in (
        (first, list(eligible[:BATCH_SIZE])),
        (deep, expected_deep),
        (deep_by_offset, expected_deep),
    ):
        got = [row[0] for row in (await read())[:BATCH_SIZE]]
        if got != expected:
            raise WrongAnswer(f"the producer page {read.__name__} differs from the walk")

    samples: dict[str, list[float]] = {"first": [], "deep": [], "offset": []}
    for _ in range(repetitions):
        for name, read in (("first", first), ("deep", deep), ("offset", deep_by_offset)):
            started = time.perf_counter()
            await read()
            samples[name].append(time.perf_counter() - started)

    plans = await connection.fetchrow(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1",
        USER_IDS_SQL,
    )
    return ProducerTimes(
        first_page_ms=median_ms(samples["first"]),
        deep_page_ms=median_ms(samples["deep"]),
        offset_deep_page_ms=median_ms(samples["offset"]),
        deep_position=position,
        repetitions=repetitions,
        generic_plans=plans["generic_plans"] if plans else 0,
        custom_plans=plans["custom_plans"] if plans else 0,
    )


@dataclass(frozen=True, slots=True)
class PassResult:
    wall_s: float
    pages: int
    batches: int
    reports: int
    user_ids: list[int]


# A page source yields (ids, next_after_id); a consumer turns a batch into a report count.
PageSource = Callable[[int], Awaitable[tuple[list[int], int | None]]]
Consumer = Callable[[list[int]], Awaitable[int]]


async def producer_consumer_pass(produce: PageSource, consumers: Sequence[Consumer]) -> PassResult:
    """The scheduler's pass: one producer walks the pages into a bounded queue, many consume.

    The queue holds two batches per consumer, so the producer stays ahead without reading
    the whole walk into memory; it waits with at most one page in hand.
    """
    queue: asyncio.Queue[list[int] | None] = asyncio.Queue(maxsize=2 * len(consumers))
    walked: list[int] = []
    pages = 0
    counts: list[int] = []

    async def producer() -> None:
        nonlocal pages
        after_id: int | None = 0
        while after_id is not None:
            user_ids, after_id = await produce(after_id)
            pages += 1
            walked.extend(user_ids)
            for start in range(0, len(user_ids), BATCH_SIZE):
                await queue.put(user_ids[start : start + BATCH_SIZE])
        for _ in consumers:
            await queue.put(None)

    async def consumer(consume: Consumer) -> None:
        while (batch := await queue.get()) is not None:
            reports = await consume(batch)
            if reports != len(batch):
                raise WrongAnswer(f"{reports} reports for a batch of {len(batch)} users")
            counts.append(reports)

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        group.create_task(producer())
        for consume in consumers:
            group.create_task(consumer(consume))
    wall_s = time.perf_counter() - started

    return PassResult(
        wall_s=wall_s,
        pages=pages,
        batches=len(counts),
        reports=sum(counts),
        user_ids=walked,
    )


async def sql_pass(
    pool: asyncpg.Pool[asyncpg.Record],
    window: ReportWindow,
    max_tasks: int,
    consumers: int,
) -> PassResult:
    """The pass done directly in SQL: the product's two statements over the pool."""

    async def produce(after_id: int) -> tuple[list[int], int | None]:
        rows = await pool.fetch(USER_IDS_SQL, after_id, window.start, window.end, PAGE_SIZE + 1)
        page = [row[0] for row in rows[:PAGE_SIZE]]
        return page, page[-1] if len(rows) > PAGE_SIZE else None

    async def consume(batch: list[int]) -> int:
        rows = await pool.fetch(REPORT_SQL, batch, window.start, window.end, max_tasks)
        return len(rows)

    return await producer_consumer_pass(produce, [consume] * consumers)


async def http_pass(
    producer: SchedulerClient,
    consumers: Sequence[SchedulerClient],
    window: ReportWindow,
    max_tasks: int,
) -> PassResult:
    """The pass over HTTP, each client on a keep-alive connection of its own."""

    async def produce(after_id: int) -> tuple[list[int], int | None]:
        page = await producer.user_ids(after_id, PAGE_SIZE)
        return page.user_ids, page.next_after_id

    def consumer_for(client: SchedulerClient) -> Consumer:
        async def consume(batch: list[int]) -> int:
            reply = await client.reports(reports_body(batch, window, max_tasks))
            return len(reply.answer.reports)

        return consume

    return await producer_consumer_pass(produce, [consumer_for(client) for client in consumers])
