"""Sustained load of issue 5: many scheduler-like clients against the served app on loopback.

    uv run python bench/load.py [--clients 32] [--seconds 60] [--users 5000] [--workers 2]
                                [--server-url postgresql://…]

Builds a demo-size database of its own (`tt_load_<random>`, dropped at the end) on the
embedded PostgreSQL in `.task-tracker/bench-postgres` or on `--server-url`, serves it with
`task-tracker serve` on a free loopback port, and keeps `--clients` keep-alive connections
busy for `--seconds`. The clients share one job list built the way the scheduler works a
night: each producer page of 1000 IDs, then that page's IDs as report batches of 250, all
for one pinned 24-hour window. Every answer is checked against the walk made before the
load, so a wrong answer counts as an error, like a status other than 200 or a broken
connection.

Prints requests/s, p50/p95/p99 latency, the errors, and the resident memory of the
server's process tree (every worker) before and after; the last line is one JSON object
with every figure. Progress goes to stderr. It judges nothing: it fails only when the
server cannot be started.
"""

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

import asyncpg
import msgspec
import psutil
from sqlalchemy.engine import make_url

from adapters.database import PoolSettings, create_engine
from adapters.demo_data import generate_demo_data
from adapters.embedded_postgres import start_embedded_postgres
from adapters.migrations import upgrade
from bench.loopback_http import HttpConnection
from entrypoints.api_keys import entry_line, new_api_key

PROJECT_ROOT = Path(__file__).resolve().parent.parent
EMBEDDED_DATA_DIR = PROJECT_ROOT / ".task-tracker" / "bench-postgres"
HOST = "127.0.0.1"
REPORTS_PATH = "/api/v1/internal/scheduler/user-task-reports-by-ids"
USER_IDS_PATH = "/api/v1/internal/scheduler/user-ids-for-processing"
# The reference scheduler's defaults (entrypoints/scheduler/digest.py).
PAGE_SIZE = 1000
BATCH_SIZE = 250
MAX_TASKS = 5
WINDOW = timedelta(hours=24)
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 30.0
WARM_UP_S = 3.0
RSS_SAMPLE_S = 1.0
# Generation and migration outlive the service's own statement deadline.
_MAINTENANCE_POOL = PoolSettings(size=1, statement_timeout_ms=600_000)

_started = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - _started:6.1f}s] {message}", file=sys.stderr, flush=True)


# The database


async def create_database(server_url: str) -> str:
    """A new, empty database on the server; its URL."""
    name = f"tt_load_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


async def fill_database(url: str, users: int, now: datetime) -> None:
    """The newest schema, and `users` demo users with their tasks, all dated before `now`."""
    engine = create_engine(url, _MAINTENANCE_POOL)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    connection = await asyncpg.connect(url)
    try:
        summary = await generate_demo_data(connection, users=users, now=now)
    finally:
        await connection.close()
    say(f"built {make_url(url).database}: {summary.users} users, {summary.tasks} tasks")


async def drop_database(server_url: str, url: str) -> None:
    name = make_url(url).database
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


# The server


class Server:
    """`task-tracker serve` in a process group of its own; its log in a temporary file."""

    def __init__(self, database_url: str, args: argparse.Namespace) -> None:
        self.api_key = new_api_key()
        self.port = _free_port()
        self._args = args
        self._database_url = database_url
        self.log_path = Path(tempfile.mkstemp(prefix="tt-load-server-", suffix=".log")[1])
        self._process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def connection(self) -> HttpConnection:
        return HttpConnection(HOST, self.port, {"X-API-Key": self.api_key})

    async def __aenter__(self) -> "Server":
        environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TASK_TRACKER_")},
            "TASK_TRACKER_DATABASE_URL": self._database_url,
            "TASK_TRACKER_API_KEYS": entry_line("load", self.api_key),
            "TASK_TRACKER_LOG_FORMAT": "json",
            "TASK_TRACKER_LOG_LEVEL": self._args.log_level,
        }
        if self._args.pool_size is not None:
            environment["TASK_TRACKER_POOL_SIZE"] = str(self._args.pool_size)
        command = [
            str(Path(sys.executable).with_name("task-tracker")),
            *("serve", "--no-migrate", "--host", HOST, "--port", str(self.port)),
            *("--workers", str(self._args.workers)),
        ]
        with self.log_path.open("wb") as log:
            self._process = await asyncio.create_subprocess_exec(
                *command,
                env=environment,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            await self._wait_until_ready()
        except BaseException:
            await self._kill()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._kill()
        self.log_path.unlink(missing_ok=True)

    async def stop(self) -> int | None:
        """SIGTERM, as an orchestrator sends it; the exit code, or None if it hung."""
        assert self._process is not None
        self._process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                return await self._process.wait()
        except TimeoutError:
            return None

    def rss_bytes(self) -> int:
        """Resident memory of the server and all its descendants, summed."""
        total = 0
        try:
            root = psutil.Process(self.pid)
            members = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0
        for member in members:
            try:
                total += int(member.memory_info().rss)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return total

    def access_log_sample(self) -> str | None:
        """The last line the access log wrote, for a look at what the person on call sees."""
        lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        return next((line for line in reversed(lines) if "task_tracker.access" in line), None)

    async def _wait_until_ready(self) -> None:
        probe = HttpConnection(HOST, self.port, {})
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.returncode is not None:
                raise SystemExit(
                    f"the server exited with {self._process.returncode}:\n{self._tail()}"
                )
            try:
                status, _ = await probe.request("GET", "/health/ready")
            except (OSError, asyncio.IncompleteReadError):
                status = 0
            await probe.close()
            if status == 200:
                return
            await asyncio.sleep(0.2)
        raise SystemExit(f"the server was not ready in {READY_TIMEOUT_S:.0f} s:\n{self._tail()}")

    def _tail(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-20:])

    async def _kill(self) -> None:
        if self._process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGKILL)
        await self._process.wait()


# The jobs the clients share


class _UserIdsAnswer(msgspec.Struct, rename="camel"):
    user_ids: list[int]
    next_after_id: int | None


class _ReportUserId(msgspec.Struct, rename="camel"):
    user_id: int


class _ReportsAnswer(msgspec.Struct, rename="camel"):
    reports: list[_ReportUserId]
    missing_user_ids: list[int]


_user_ids_decoder = msgspec.json.Decoder(_UserIdsAnswer)
_reports_decoder = msgspec.json.Decoder(_ReportsAnswer)


@dataclass(frozen=True, slots=True)
class Job:
    kind: str  # "page" or "batch"
    method: str
    target: str
    body: bytes | None
    expected_ids: tuple[int, ...]

    def answer_is_right(self, answer: bytes) -> bool:
        """Whether the answer holds exactly the users the walk before the load found."""
        try:
            if self.kind == "page":
                return tuple(_user_ids_decoder.decode(answer).user_ids) == self.expected_ids
            reports = _reports_decoder.decode(answer)
        except msgspec.DecodeError:
            return False
        reported = tuple(report.user_id for report in reports.reports)
        return reported == self.expected_ids and not reports.missing_user_ids


async def plan_jobs(connection: HttpConnection, window_end: datetime) -> list[Job]:
    """Walk the producer once; every page becomes a job, and so does each batch of it."""
    window = {
        "windowStart": _rfc3339(window_end - WINDOW),
        "windowEnd": _rfc3339(window_end),
    }
    jobs = []
    after_id: int | None = 0
    while after_id is not None:
        target = f"{USER_IDS_PATH}?{urlencode({'limit': PAGE_SIZE, 'afterId': after_id, **window})}"
        status, answer = await connection.request("GET", target)
        if status != 200:
            raise SystemExit(f"the producer's walk failed: {status} {answer[:300]!r}")
        page = _user_ids_decoder.decode(answer)
        jobs.append(Job("page", "GET", target, None, tuple(page.user_ids)))
        for start in range(0, len(page.user_ids), BATCH_SIZE):
            batch = tuple(page.user_ids[start : start + BATCH_SIZE])
            body = msgspec.json.encode({"userIds": batch, "maxTasks": MAX_TASKS, **window})
            jobs.append(Job("batch", "POST", REPORTS_PATH, body, batch))
        after_id = page.next_after_id
    return jobs


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# The load


@dataclass
class Tally:
    latencies_s: dict[str, list[float]] = field(default_factory=lambda: {"page": [], "batch": []})
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def requests(self) -> int:
        return sum(map(len, self.latencies_s.values())) + self.errors.total()


async def run_clients(
    server: Server,
    jobs: Iterator[Job],
    clients: int,
    seconds: float,
) -> tuple[Tally, float]:
    """Each client takes the next job the moment its last answer is in, until time is up."""
    tally = Tally()
    deadline = time.monotonic() + seconds

    async def client() -> None:
        connection = server.connection()
        try:
            while time.monotonic() < deadline:
                job = next(jobs)
                started = time.monotonic()
                try:
                    async with asyncio.timeout(REQUEST_TIMEOUT_S):
                        status, answer = await connection.request(job.method, job.target, job.body)
                except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as err:
                    tally.errors[f"{job.kind} {type(err).__name__}"] += 1
                    await connection.close()
                    continue
                if status != 200:
                    tally.errors[f"{job.kind} {status}"] += 1
                elif not job.answer_is_right(answer):
                    tally.errors[f"{job.kind} wrong answer"] += 1
                else:
                    tally.latencies_s[job.kind].append(time.monotonic() - started)
        finally:
            await connection.close()

    started = time.monotonic()
    await asyncio.gather(*(client() for _ in range(clients)))
    return tally, time.monotonic() - started


async def sample_rss(server: Server, samples: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        samples.append(server.rss_bytes())
        try:
            await asyncio.wait_for(stop.wait(), RSS_SAMPLE_S)
        except TimeoutError:
            continue


def percentiles_ms(latencies_s: Sequence[float]) -> dict[str, float]:
    if len(latencies_s) < 2:
        return {"p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0}
    cuts = statistics.quantiles(latencies_s, n=100, method="inclusive")
    return {f"p{p}_ms": round(cuts[p - 1] * 1000, 2) for p in (50, 95, 99)}


def _mib(value: int) -> float:
    return round(value / 2**20, 1)


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    server_url = args.server_url or await asyncio.to_thread(
        start_embedded_postgres, EMBEDDED_DATA_DIR
    )
    # Whole seconds, so the pinned window reads the same in the JSON and the requests.
    data_now = datetime.now(UTC).replace(microsecond=0)
    say(f"building a database of {args.users} demo users")
    database_url = await create_database(server_url)
    try:
        await fill_database(database_url, args.users, data_now)
        async with Server(database_url, args) as server:
            say(f"serving on port {server.port} with {args.workers} worker(s)")
            rss_idle = server.rss_bytes()
            planner = server.connection()
            try:
                jobs = await plan_jobs(planner, data_now)
            finally:
                await planner.close()
            say(f"{len(jobs)} jobs a night; warming up for {WARM_UP_S:.0f} s")
            await run_clients(server, itertools.cycle(jobs), args.clients, WARM_UP_S)

            rss_before = server.rss_bytes()
            samples: list[int] = []
            stop_sampling = asyncio.Event()
            sampler = asyncio.create_task(sample_rss(server, samples, stop_sampling))
            say(f"{args.clients} clients for {args.seconds:g} s")
            tally, elapsed = await run_clients(
                server, itertools.cycle(jobs), args.clients, args.seconds
            )
            stop_sampling.set()
            await sampler
            rss_after = server.rss_bytes()
            access_log_line = server.access_log_sample()
            exit_code = await server.stop()
    finally:
        await drop_database(server_url, database_url)

    if access_log_line is not None:
        say(f"a line of the server's access log: {access_log_line}")
    everything = [*tally.latencies_s["page"], *tally.latencies_s["batch"]]
    return {
        "clients": args.clients,
        "seconds": round(elapsed, 2),
        "workers": args.workers,
        "users": args.users,
        "jobs_per_night": len(jobs),
        "requests": tally.requests,
        "requests_per_s": round(tally.requests / elapsed, 1),
        **percentiles_ms(everything),
        "page": {
            "requests": len(tally.latencies_s["page"]),
            **percentiles_ms(tally.latencies_s["page"]),
        },
        "batch": {
            "requests": len(tally.latencies_s["batch"]),
            "users_per_batch": BATCH_SIZE,
            **percentiles_ms(tally.latencies_s["batch"]),
        },
        "errors": tally.errors.total(),
        "errors_by_kind": dict(tally.errors),
        "server_rss_mib_idle": _mib(rss_idle),
        "server_rss_mib_before": _mib(rss_before),
        "server_rss_mib_after": _mib(rss_after),
        "server_rss_mib_peak": _mib(max(samples, default=rss_after)),
        # Flat memory shows as a flat row here, not just as two close end points.
        "server_rss_mib_every_10s": [_mib(sample) for sample in samples[:: int(10 / RSS_SAMPLE_S)]],
        "server_exit_code": exit_code,
    }


def render(figures: dict[str, Any]) -> str:
    page, batch = figures["page"], figures["batch"]
    return "\n".join(
        [
            f"load: {figures['clients']} clients for {figures['seconds']} s against "
            f"{figures['workers']} worker(s), {figures['users']} demo users",
            f"  requests     {figures['requests']} ({figures['requests_per_s']}/s), "
            f"errors {figures['errors']}",
            f"  latency      p50 {figures['p50_ms']} ms, p95 {figures['p95_ms']} ms, "
            f"p99 {figures['p99_ms']} ms",
            f"  pages        {page['requests']}: p50 {page['p50_ms']} ms, p99 {page['p99_ms']} ms",
            f"  batches      {batch['requests']} of {batch['users_per_batch']} users: "
            f"p50 {batch['p50_ms']} ms, p99 {batch['p99_ms']} ms",
            f"  server RSS   {figures['server_rss_mib_before']} MiB before, "
            f"{figures['server_rss_mib_after']} MiB after, "
            f"{figures['server_rss_mib_peak']} MiB at most",
        ]
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/load.py",
        description="Hold many scheduler-like clients against the served app on loopback.",
    )
    parser.add_argument("--clients", type=_positive, default=32, help="default 32")
    parser.add_argument("--seconds", type=float, default=60.0, help="default 60")
    parser.add_argument("--users", type=_positive, default=5000, help="demo users, default 5000")
    parser.add_argument("--workers", type=_positive, default=2, help="server workers, default 2")
    parser.add_argument("--pool-size", type=_positive, help="TASK_TRACKER_POOL_SIZE per worker")
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="the server's log level; INFO (the default) keeps the access log's cost in",
    )
    parser.add_argument(
        "--server-url",
        help="a PostgreSQL server to build the database on instead of the embedded one",
    )
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    figures = asyncio.run(measure(args))
    print(render(figures))
    print(json.dumps(figures, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
