"""Clients that hang up mid-request: their statements stop and the pool is as it was.

Only a real server sees a client hang up, so the app is served by `task-tracker serve`
in a subprocess. A held lock keeps every report waiting in the database (or for a pooled
connection) until the clients are gone; every deadline of the service is set far beyond
the test, so whatever ends those statements, it is not a timeout.
"""

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import migrated_scratch_database
from tests.faults import (
    REPORTS_PATH,
    SEEDED_USERS,
    ServedProcess,
    TasksLock,
    eventually,
    metric,
    report_request,
    seed_reports,
    service_backends,
)

POOL_SIZE = 3
ABANDONED = 3 * POOL_SIZE
BEYOND_THE_TEST_MS = "120000"
# nginx's code for a request whose client closed the connection; the access log uses it.
CLIENT_CLOSED_REQUEST = 499


@pytest.fixture(scope="module")
async def served_database(server_url: str) -> AsyncIterator[str]:
    async with migrated_scratch_database(server_url) as url:
        connection = await asyncpg.connect(url)
        try:
            await seed_reports(connection)
        finally:
            await connection.close()
        yield url


@pytest.fixture
async def server(served_database: str, tmp_path: Path) -> AsyncIterator[ServedProcess]:
    settings = {
        "TASK_TRACKER_POOL_SIZE": str(POOL_SIZE),
        "TASK_TRACKER_POOL_TIMEOUT_MS": BEYOND_THE_TEST_MS,
        "TASK_TRACKER_STATEMENT_TIMEOUT_MS": BEYOND_THE_TEST_MS,
        "TASK_TRACKER_REQUEST_TIMEOUT_MS": BEYOND_THE_TEST_MS,
    }
    async with ServedProcess(served_database, tmp_path / "server.log", settings=settings) as served:
        yield served


@pytest.fixture
async def observer(served_database: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(served_database)
    yield connection
    await connection.close()


async def post_and_hold(server: ServedProcess, body: bytes) -> asyncio.StreamWriter:
    """Send a whole report request on a connection of its own and never read the answer."""
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    head = (
        f"POST {REPORTS_PATH} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{server.port}\r\n"
        f"X-API-Key: {server.api_key}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    writer.write(head.encode("ascii") + body)
    await writer.drain()
    return writer


async def pool_gauges(client: httpx.AsyncClient) -> tuple[float, float]:
    """Connections in use and requests waiting for one, as /metrics says."""
    exposition = (await client.get("/metrics")).text
    return (
        metric(exposition, "task_tracker_db_pool_in_use"),
        metric(exposition, "task_tracker_db_pool_waiting"),
    )


async def pool_gauges_are(client: httpx.AsyncClient, expected: tuple[float, float]) -> bool:
    return await pool_gauges(client) == expected


def statuses_logged(server: ServedProcess) -> list[int]:
    statuses = []
    for line in server.log_lines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("logger") == "task_tracker.access":
                statuses.append(entry["status"])
    return statuses


async def test_abandoned_requests_stop_their_statements_and_give_the_pool_back(
    server: ServedProcess,
    observer: asyncpg.Connection,
    served_database: str,
) -> None:
    body = json.dumps(report_request()).encode()

    async def every_connection_waits_and_the_rest_queue(client: httpx.AsyncClient) -> bool:
        waiting_in_database = [b for b in await service_backends(observer) if b.waits_for_a_lock]
        in_use, queued = await pool_gauges(client)
        return len(waiting_in_database) == POOL_SIZE and (in_use, queued) == (
            POOL_SIZE,
            ABANDONED - POOL_SIZE,
        )

    async def nothing_left_running() -> bool:
        return not any(backend.busy for backend in await service_backends(observer))

    async with httpx.AsyncClient(base_url=server.base_url, headers=server.auth) as client:
        async with TasksLock(served_database):
            writers = [await post_and_hold(server, body) for _ in range(ABANDONED)]
            all_in_flight = await eventually(
                lambda: every_connection_waits_and_the_rest_queue(client),
                timeout_s=15,
            )
            for writer in writers:
                writer.close()
            # Still under the lock: only a cancel can have ended these statements.
            stopped = await eventually(nothing_left_running, timeout_s=5)
            left_running = await service_backends(observer)
        pool_returned = await eventually(
            lambda: pool_gauges_are(client, (0, 0)),
            timeout_s=5,
        )
        gauges_after = await pool_gauges(client)
        backends_after = await service_backends(observer)
        answers = await asyncio.gather(
            *(client.post(REPORTS_PATH, json=report_request()) for _ in range(2 * POOL_SIZE)),
        )

    assert all_in_flight, "the requests never filled the pool and its queue"
    assert stopped, f"still running: {left_running}\n" + "\n".join(server.log_lines()[-15:])
    assert pool_returned, gauges_after
    assert len(backends_after) <= POOL_SIZE
    assert not any(backend.busy for backend in backends_after), backends_after
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["reports"]) == SEEDED_USERS
    assert statuses_logged(server).count(CLIENT_CLOSED_REQUEST) == ABANDONED
