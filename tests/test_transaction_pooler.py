"""The service behind PgBouncer in transaction mode: no prepared-statement errors, and
statement timeouts that still fire although the pooler refuses them as startup settings.

PgBouncer comes from the system's packages; CI installs it and sets
TASK_TRACKER_REQUIRE_PGBOUNCER=1, so there a missing binary fails instead of skipping.
"""

import asyncio
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.engine import make_url

from adapters.database import PoolSettings
from entrypoints.bootstrap import build_app
from tests.conftest import AUTH, app_settings
from tests.data import Seeder, Task, User, at

REPORTS = "/api/v1/internal/scheduler/user-task-reports-by-ids"
USER_IDS = "/api/v1/internal/scheduler/user-ids-for-processing"
WINDOW = {"windowStart": "2026-12-03T00:00:00Z", "windowEnd": "2026-12-04T00:00:00Z"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _pgbouncer() -> str:
    binary = shutil.which("pgbouncer") or next(
        (str(path) for path in Path("/usr/sbin").glob("pgbouncer") if path.exists()),
        None,
    )
    if binary is None:
        if os.environ.get("TASK_TRACKER_REQUIRE_PGBOUNCER"):
            pytest.fail("pgbouncer is required here but not installed")
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer)")
    return binary


@pytest.fixture(scope="module")
def pooler_url(database_url: str) -> Iterator[str]:
    """A PgBouncer in transaction mode in front of the test database; its URL."""
    binary = _pgbouncer()
    upstream = make_url(database_url)
    host = str(upstream.query.get("host") or upstream.host or "127.0.0.1")
    port = _free_port()
    folder = Path(f"/tmp/tt-pgbouncer-{port}")
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)
    (folder / "users.txt").write_text(f'"{upstream.username}" ""\n')
    (folder / "pgbouncer.ini").write_text(
        f"""
[databases]
{upstream.database} = host={host} port={upstream.port or 5432} dbname={upstream.database}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder / "users.txt"}
pool_mode = transaction
default_pool_size = 4
""",
    )
    command = [binary, str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:
        # PgBouncer refuses to run as root; run it as whoever owns the server's socket
        # folder, who can reach the socket.
        owner = pwd.getpwuid(Path(host).stat().st_uid).pw_name if host.startswith("/") else ""
        command[1:1] = ["-u", owner if owner and owner != "root" else "nobody"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, process)
        yield (
            make_url(database_url)
            .set(host="127.0.0.1", port=port, query={})
            .render_as_string(
                hide_password=False,
            )
        )
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode() if process.stdout else ""
            pytest.fail(f"pgbouncer exited: {output}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail("pgbouncer did not start listening")


@pytest.fixture
async def pooled_client(
    pooler_url: str,
    database_url: str,
    seeder: Seeder,
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    await seeder.users(User(id_, f"user{id_}@example.com") for id_ in range(1, 41))
    await seeder.tasks(
        Task(1000 + id_, id_, f"Task {id_}", at("2026-12-01T09:00:00Z")) for id_ in range(1, 41)
    )
    settings = app_settings(
        pooler_url,
        pool=PoolSettings(size=4, statement_timeout_ms=400, transaction_pooler=True),
    )
    async with AsyncTestClient(build_app(settings, pooler_url)) as client:
        yield client


async def test_many_concurrent_requests_through_the_pooler_all_succeed(
    pooled_client: AsyncTestClient[Litestar],
) -> None:
    async def one(index: int) -> list[int]:
        page = await pooled_client.get(USER_IDS, params={"limit": 5, **WINDOW}, headers=AUTH)
        reports = await pooled_client.post(
            REPORTS,
            json={"userIds": [index + 1, index + 2], **WINDOW},
            headers=AUTH,
        )
        ready = await pooled_client.get("/health/ready")
        return [page.status_code, reports.status_code, ready.status_code]

    statuses = await asyncio.gather(*(one(index) for index in range(30)))

    assert {status for trio in statuses for status in trio} == {200}


async def test_statement_timeout_still_fires_behind_the_pooler(
    pooled_client: AsyncTestClient[Litestar],
    database_url: str,
) -> None:
    blocker = await asyncpg.connect(database_url)
    transaction = blocker.transaction()
    await transaction.start()
    await blocker.execute("LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE")
    try:
        started = time.monotonic()
        blocked = await pooled_client.post(REPORTS, json={"userIds": [1], **WINDOW}, headers=AUTH)
        waited = time.monotonic() - started
    finally:
        await transaction.rollback()
        await blocker.close()

    after = await pooled_client.post(REPORTS, json={"userIds": [1], **WINDOW}, headers=AUTH)

    assert blocked.status_code == 503
    assert blocked.headers["retry-after"]
    assert waited < 3
    assert after.status_code == 200
    assert after.json()["reports"][0]["unfinished"]["count"] == 1
