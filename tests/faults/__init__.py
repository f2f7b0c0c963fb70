"""What the fault tests share: seeded reports, a held lock, the service's backends, a server.

The service names its connections `application_name = 'task-tracker'`. Every look at
pg_stat_activity here is narrowed to the current database as well, so a suite running
beside this one on the same server is neither seen nor disturbed.
"""

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from entrypoints.api_keys import entry_line, new_api_key
from tests.data import Seeder, Task, User, at

SERVICE_APPLICATION = "task-tracker"
REPORTS_PATH = "/api/v1/internal/scheduler/user-task-reports-by-ids"
USER_IDS_PATH = "/api/v1/internal/scheduler/user-ids-for-processing"
WINDOW = {"windowStart": "2026-12-03T00:00:00Z", "windowEnd": "2026-12-04T00:00:00Z"}
SEEDED_USERS = 40


async def seed_reports(connection: asyncpg.Connection) -> None:
    """SEEDED_USERS users, each with two open tasks and one completed inside WINDOW."""
    seeder = Seeder(connection)
    await connection.execute("TRUNCATE users, tasks RESTART IDENTITY CASCADE")
    user_ids = range(1, SEEDED_USERS + 1)
    await seeder.users(User(user_id, f"user{user_id}@example.com") for user_id in user_ids)
    await seeder.tasks(
        task
        for user_id in user_ids
        for task in (
            Task(user_id * 10 + 1, user_id, "Renew passport", at("2026-11-20T09:00:00Z")),
            Task(user_id * 10 + 2, user_id, "Book dentist", at("2026-11-21T09:00:00Z")),
            Task(
                user_id * 10 + 3,
                user_id,
                "Pay rent",
                at("2026-11-25T10:00:00Z"),
                at("2026-12-03T18:20:00Z"),
            ),
        )
    )


def report_request() -> dict[str, object]:
    """A report request for every seeded user."""
    return {"userIds": list(range(1, SEEDED_USERS + 1)), **WINDOW}


@dataclass(frozen=True, slots=True)
class Backend:
    pid: int
    state: str | None
    wait_event_type: str | None
    query: str

    @property
    def waits_for_a_lock(self) -> bool:
        return self.state == "active" and self.wait_event_type == "Lock"

    @property
    def busy(self) -> bool:
        """Running a statement, or holding a transaction open between statements."""
        return self.state not in (None, "idle")


async def service_backends(observer: asyncpg.Connection) -> list[Backend]:
    """The service's connections to the observer's database, as PostgreSQL sees them now."""
    rows = await observer.fetch(
        """
        SELECT pid, state, wait_event_type, query
        FROM pg_stat_activity
        WHERE application_name = $1 AND datname = current_database()
        ORDER BY pid
        """,
        SERVICE_APPLICATION,
    )
    return [Backend(*row) for row in rows]


async def eventually(
    check: Callable[[], Awaitable[bool]],
    *,
    timeout_s: float,
    interval_s: float = 0.05,
) -> bool:
    """Whether `check` comes true before the timeout; it is asked at least once."""
    deadline = time.monotonic() + timeout_s
    while True:
        if await check():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval_s)


class TasksLock:
    """ACCESS EXCLUSIVE on `tasks`, held in an open transaction of a connection of our own.

    Every statement that reads `tasks` waits for it, which makes a report as slow as a
    test needs without touching the statement the service sends.
    """

    def __init__(self, database_url: str) -> None:
        self._database_url = database_url
        self._connection: asyncpg.Connection | None = None

    async def __aenter__(self) -> "TasksLock":
        self._connection = await asyncpg.connect(
            self._database_url,
            server_settings={"application_name": "task-tracker-fault-tests"},
        )
        await self._connection.execute("BEGIN")
        await self._connection.execute("LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE")
        return self

    async def release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            # Closing the session ends its transaction, and with it the lock.
            await connection.close()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.release()


def metric(exposition: str, name: str) -> float:
    """The value of a metric without labels in Prometheus text format."""
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and not sample.labels:
                return float(sample.value)
    raise AssertionError(f"{name} is not in the exposition")


def _live_processes() -> list[tuple[int, int, int]]:
    """(pid, parent pid, process group) of every process that has not exited.

    A zombie has exited: it only waits for its parent, or for init once the parent is
    gone, to collect its exit code.
    """
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
            state, parent, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except OSError:
            continue
        if state != "Z":
            found.append((int(stat.parent.name), int(parent), int(group)))
    return found


def _runs_multiprocessing_worker(pid: int) -> bool:
    # A spawned worker, unlike multiprocessing's resource tracker beside it.
    try:
        return b"multiprocessing.spawn" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# What uvicorn logs once a worker's app has started and the worker is about to serve.
_STARTUP_COMPLETE = '"message": "Application startup complete."'


class ServedProcess:
    """`task-tracker serve` in a process group of its own, on a free loopback port.

    Its log (JSON lines) goes to a file. Whatever of the group is still alive at the
    end is killed, so a failed test leaves no server behind.
    """

    # Worker start-up imports the whole app, which takes seconds on a busy machine.
    READY_TIMEOUT_S = 90.0

    def __init__(
        self,
        database_url: str,
        log_path: Path,
        *,
        workers: int = 1,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.api_key = new_api_key()
        self.port = free_loopback_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._workers = workers
        self._environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TASK_TRACKER_")},
            "TASK_TRACKER_DATABASE_URL": database_url,
            "TASK_TRACKER_API_KEYS": entry_line("tests", self.api_key),
            "TASK_TRACKER_LOG_FORMAT": "json",
            "TASK_TRACKER_LOG_LEVEL": "INFO",
            **(settings or {}),
        }
        self._process: asyncio.subprocess.Process | None = None

    @property
    def auth(self) -> dict[str, str]:
        return {"X-API-Key": self.api_key}

    @property
    def process(self) -> asyncio.subprocess.Process:
        assert self._process is not None, "the server has not been started"
        return self._process

    async def __aenter__(self) -> "ServedProcess":
        command = [
            # The console script `uv run task-tracker` would run, without uv's own start-up.
            str(Path(sys.executable).with_name("task-tracker")),
            "serve",
            "--no-migrate",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self._workers),
        ]
        with self.log_path.open("wb") as log:
            self._process = await asyncio.create_subprocess_exec(
                *command,
                env=self._environment,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            await self._wait_until_ready()
        except BaseException:
            await self.kill_group()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.kill_group()

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    async def exit_code(self, *, timeout_s: float) -> int | None:
        """The exit code, or None if the server is still running after `timeout_s`."""
        try:
            async with asyncio.timeout(timeout_s):
                return await self.process.wait()
        except TimeoutError:
            return None

    def running_members(self) -> list[int]:
        """Process ids of the server's group (workers included) that have not exited."""
        return [pid for pid, parent, group in _live_processes() if group == self.process.pid]

    def worker_pids(self) -> list[int]:
        """The supervisor's live worker processes (with --workers above 1)."""
        return [
            pid
            for pid, parent, _ in _live_processes()
            if parent == self.process.pid and _runs_multiprocessing_worker(pid)
        ]

    async def kill_group(self) -> None:
        if self._process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGKILL)
        await self._process.wait()

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()

    def workers_started(self) -> int:
        """How many server processes have logged the end of their start-up."""
        return sum(1 for line in self.log_lines() if _STARTUP_COMPLETE in line)

    async def _wait_until_ready(self) -> None:
        async def ready() -> bool:
            if self.process.returncode is not None:
                raise AssertionError(
                    f"the server exited with {self.process.returncode}:\n"
                    + "\n".join(self.log_lines()[-20:])
                )
            # Each worker listens on a socket of its own: one answering says nothing of
            # the others, so the log has to say that every one of them has started.
            if self.workers_started() < self._workers:
                return False
            try:
                async with httpx.AsyncClient(base_url=self.base_url, timeout=2.0) as client:
                    response = await client.get("/health/ready")
            except httpx.TransportError:
                return False
            return response.status_code == 200

        if not await eventually(ready, timeout_s=self.READY_TIMEOUT_S, interval_s=0.2):
            raise AssertionError(
                f"the server was not ready within {self.READY_TIMEOUT_S} s:\n"
                + "\n".join(self.log_lines()[-20:])
            )
