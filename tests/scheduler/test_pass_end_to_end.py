"""The digest pass against the real server on real PostgreSQL.

`task-tracker serve` runs in a subprocess on a database of this module's own. Every
check compares the messages with what tests/oracle.py says each user's report is as of
the pinned windowEnd, put through the same composition: while other writers keep
changing the tables, behind a proxy that drops and refuses requests, and across passes
that are cancelled or SIGKILLed at random moments and resumed.
"""

import asyncio
import contextlib
import itertools
import os
import random
import signal
import socket
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import IO

import asyncpg
import httpx
import msgspec
import pytest

from domain.reports import ReportWindow
from entrypoints.api_keys import entry_line, new_api_key
from entrypoints.scheduler.client import RetryPolicy, UserReport, Window
from entrypoints.scheduler.digest import PassOptions, Snapshot, Summary, main, run_pass
from entrypoints.scheduler.messages import DigestMessage, compose, decode_line
from tests import oracle
from tests.conftest import migrated_scratch_database
from tests.data import Seeder, Task, User

PROJECT_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
# In the past, so the CLI accepts it as a window that is over.
END = datetime(2026, 11, 4, tzinfo=UTC)
START = END - timedelta(hours=24)
WINDOW = Window(start=START, end=END)
MAX_TASKS = 5
US = timedelta(microseconds=1)
KEY_ENV = "TT_SCHEDULER_E2E_KEY"
SEEDED_USERS = 240
READY_TIMEOUT_S = 60.0
PASS_TIMEOUT_S = 60.0
TITLES = [
    "Renew passport",
    "Pay rent",
    "Buy\nmilk",
    "🎉 party prep 👩‍💻",
    "לקנות חלב",
    'say "hi" \\ to O\'Neil',
    "",
    "Réserver le restaurant",
    "tab\there",
    "x" * 300,
]
# Each user's tasks on this list: mostly small, a few above MAX_TASKS.
TASK_COUNTS = [0, 0, 1, 1, 2, 3, 4, 6, 9]


@dataclass
class World:
    """Every user and task in the tables, as this test wrote them."""

    users: dict[int, User]
    tasks: dict[int, Task]

    def tasks_of(self, user_id: int) -> list[Task]:
        return [task for task in self.tasks.values() if task.user_id == user_id]


def instant_before_end(rng: random.Random) -> datetime:
    """Around the window, often on an edge of it give or take a microsecond."""
    if rng.random() < 0.2:
        return rng.choice([START - US, START, START + US, END - US])
    return END - timedelta(seconds=rng.uniform(1, 4 * 86_400))


def completion_after(rng: random.Random, created_at: datetime) -> datetime | None:
    roll = rng.random()
    if roll < 0.45:
        return None
    if roll < 0.6:
        edge = rng.choice([START - US, START, END - US, END])
        return max(edge, created_at)
    return created_at + timedelta(seconds=rng.uniform(0, 3 * 86_400))


def build_world(seed: int) -> World:
    """Users 3, 6, 9, …, so IDs in between are free for users added during a pass."""
    rng = random.Random(seed)
    users = {3 * n: User(3 * n, f"user{3 * n}@example.com") for n in range(1, SEEDED_USERS + 1)}
    tasks: dict[int, Task] = {}
    task_ids = itertools.count(1)
    for user_id in users:
        for _ in range(rng.choice(TASK_COUNTS)):
            created_at = instant_before_end(rng)
            task_id = next(task_ids)
            tasks[task_id] = Task(
                task_id,
                user_id,
                rng.choice(TITLES),
                created_at,
                completion_after(rng, created_at),
            )
    return World(users, tasks)


def expected_message(user: User, tasks: Iterable[Task]) -> DigestMessage | None:
    """The oracle's report as of END, read as the wire type and composed like the pass does."""
    window = ReportWindow(start=START, end=END)
    report = oracle.report_of(user, list(tasks), window, MAX_TASKS)
    return compose(msgspec.convert(oracle.report_json(report), UserReport), WINDOW)


def expected_messages(world: World) -> dict[int, DigestMessage]:
    by_user: dict[int, list[Task]] = {user_id: [] for user_id in world.users}
    for task in world.tasks.values():
        by_user[task.user_id].append(task)
    expected = {}
    for user_id, user in world.users.items():
        message = expected_message(user, by_user[user_id])
        if message is not None:
            expected[user_id] = message
    return expected


def read_messages(out: Path) -> list[DigestMessage]:
    return [decode_line(line) for line in out.read_bytes().splitlines(keepends=True)]


def sorted_lines(out: Path) -> list[bytes]:
    return sorted(out.read_bytes().splitlines())


def by_user_once(messages: list[DigestMessage]) -> dict[int, DigestMessage]:
    """The messages by user, after checking that no user and no key comes twice."""
    users = Counter(message.user_id for message in messages)
    keys = Counter(message.idempotency_key for message in messages)
    assert [user for user, times in users.items() if times > 1] == []
    assert [key for key, times in keys.items() if times > 1] == []
    return {message.user_id: message for message in messages}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class Served:
    base_url: str
    api_key: str
    database_url: str


@pytest.fixture(scope="module")
async def served(server_url: str) -> AsyncIterator[Served]:
    """`task-tracker serve` on a migrated database of this module's own."""
    async with migrated_scratch_database(server_url) as database_url:
        api_key = new_api_key()
        port = free_port()
        env = {name: value for name, value in os.environ.items() if "TASK_TRACKER_" not in name}
        env["TASK_TRACKER_DATABASE_URL"] = database_url
        env["TASK_TRACKER_API_KEYS"] = entry_line("scheduler", api_key)
        env["TASK_TRACKER_LOG_LEVEL"] = "WARNING"
        with tempfile.TemporaryFile() as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "entrypoints.cli",
                "serve",
                "--no-migrate",
                "--host",
                HOST,
                "--port",
                str(port),
                cwd=PROJECT_ROOT,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
            try:
                base_url = f"http://{HOST}:{port}"
                await wait_until_ready(process, base_url, log)
                yield Served(base_url, api_key, database_url)
            finally:
                await stop(process)


async def wait_until_ready(
    process: asyncio.subprocess.Process,
    base_url: str,
    log: IO[bytes],
) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    async with httpx.AsyncClient(base_url=base_url, timeout=2.0) as probe:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                break
            with contextlib.suppress(httpx.TransportError):
                if (await probe.get("/health/ready")).status_code == 200:
                    return
            await asyncio.sleep(0.05)
    log.seek(0)
    pytest.fail(f"the server did not become ready:\n{log.read().decode(errors='replace')}")


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()


@pytest.fixture(scope="module")
async def connection(served: Served) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(served.database_url)
    yield connection
    await connection.close()


async def seed(connection: asyncpg.Connection, world: World) -> None:
    await connection.execute("TRUNCATE users, tasks RESTART IDENTITY CASCADE")
    seeder = Seeder(connection)
    await seeder.users(world.users.values())
    await seeder.tasks(world.tasks.values())


def pass_options(served: Served, out: Path, **overrides: object) -> PassOptions:
    base = PassOptions(
        base_url=served.base_url,
        api_key=served.api_key,
        window_end=END,
        out=out,
        checkpoint=out.with_name(out.name + ".checkpoint"),
        concurrency=4,
        batch_size=5,
        page_size=7,
        max_tasks=MAX_TASKS,
        timeout_s=10.0,
        retry=RetryPolicy(attempts=6, base_delay_s=0.01, max_delay_s=0.1),
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


async def bounded_pass(options: PassOptions) -> Summary:
    return await asyncio.wait_for(run_pass(options), PASS_TIMEOUT_S)


class Writers:
    """Keeps writing while the pass runs, never changing an as-of-END report of a user it
    leaves alone: new tasks and completions come after END, deleted tasks are those new
    ones. It also deletes some users, and adds users in the gaps between IDs, some with a
    task from before END (eligible from then on, so at most one message for them)."""

    KINDS = ("late_task", "complete_after_end", "delete_late_task", "add_user", "delete_user")

    def __init__(self, connection: asyncpg.Connection, world: World, seed: int) -> None:
        self.connection = connection
        self.world = world
        self.rng = random.Random(seed)
        self.done: Counter[str] = Counter()
        self.deleted: dict[int, tuple[User, list[Task]]] = {}
        self.latecomers: set[int] = set()
        seeded = sorted(world.users)
        self.doomed = self.rng.sample(seeded, len(seeded) // 6)
        self.task_ids = itertools.count(10_000_000)
        self.free_ids = [user_id + offset for user_id in seeded for offset in (1, 2)]
        self.rng.shuffle(self.free_ids)

    async def run(self, stop: asyncio.Event, max_steps: int = 3000) -> None:
        for kind in itertools.islice(itertools.cycle(self.KINDS), max_steps):
            if stop.is_set():
                return
            if await getattr(self, kind)():
                self.done[kind] += 1

    def _late(self) -> datetime:
        return END + timedelta(seconds=self.rng.uniform(0, 12 * 3600))

    async def _insert_task(self, task: Task) -> None:
        await self.connection.execute(
            "INSERT INTO tasks (id, user_id, title, created_at, completed_at)"
            " VALUES ($1, $2, $3, $4, $5)",
            task.id,
            task.user_id,
            task.title,
            task.created_at,
            task.completed_at,
        )
        self.world.tasks[task.id] = task

    async def late_task(self) -> bool:
        created_at = self._late()
        completed_at = created_at + timedelta(minutes=5) if self.rng.random() < 0.5 else None
        user_id = self.rng.choice(list(self.world.users))
        task = Task(next(self.task_ids), user_id, "Late idea", created_at, completed_at)
        await self._insert_task(task)
        return True

    async def complete_after_end(self) -> bool:
        open_tasks = [t for t in self.world.tasks.values() if t.completed_at is None]
        if not open_tasks:
            return False
        task = self.rng.choice(open_tasks)
        completed_at = max(END, task.created_at) + timedelta(seconds=self.rng.uniform(0, 3600))
        await self.connection.execute(
            "UPDATE tasks SET completed_at = $2 WHERE id = $1",
            task.id,
            completed_at,
        )
        self.world.tasks[task.id] = replace(task, completed_at=completed_at)
        return True

    async def delete_late_task(self) -> bool:
        late = [t for t in self.world.tasks.values() if t.created_at >= END]
        if not late:
            return False
        task = self.rng.choice(late)
        await self.connection.execute("DELETE FROM tasks WHERE id = $1", task.id)
        del self.world.tasks[task.id]
        return True

    async def add_user(self) -> bool:
        user_id = self.free_ids.pop()
        user = User(user_id, f"new{user_id}@example.com")
        latecomer = self.rng.random() < 0.5
        created_at = START + timedelta(hours=1) if latecomer else self._late()
        await self.connection.execute(
            "INSERT INTO users (id, email) VALUES ($1, $2)",
            user.id,
            user.email,
        )
        self.world.users[user.id] = user
        await self._insert_task(Task(next(self.task_ids), user.id, "Hello", created_at))
        if latecomer:
            self.latecomers.add(user.id)
        return True

    async def delete_user(self) -> bool:
        if not self.doomed:
            return False
        user_id = self.doomed.pop()
        await self.connection.execute("DELETE FROM users WHERE id = $1", user_id)
        tasks = self.world.tasks_of(user_id)
        self.deleted[user_id] = (self.world.users.pop(user_id), tasks)
        for task in tasks:
            del self.world.tasks[task.id]
        return True


async def test_each_user_to_process_throughout_gets_exactly_the_oracles_message(
    served: Served,
    connection: asyncpg.Connection,
    tmp_path: Path,
) -> None:
    world = build_world(seed=1)
    await seed(connection, world)
    writers = Writers(connection, world, seed=2)
    stop_writing = asyncio.Event()
    writing = asyncio.create_task(writers.run(stop_writing))

    try:
        summary = await bounded_pass(
            pass_options(served, tmp_path / "digest.jsonl", batch_size=3, page_size=5),
        )
    finally:
        stop_writing.set()
        await writing

    got = by_user_once(read_messages(tmp_path / "digest.jsonl"))
    final = expected_messages(world)
    # Users who stayed (seeded, never deleted) must each get exactly their message.
    required = {uid: m for uid, m in final.items() if uid not in writers.latecomers}
    # Users who came or went during the pass may be missed, but never told anything else.
    optional = {uid: final[uid] for uid in writers.latecomers}
    for user_id, (user, tasks) in writers.deleted.items():
        message = expected_message(user, tasks)
        if message is not None:
            optional[user_id] = message
    assert {uid: got.get(uid) for uid in required} == required
    assert set(got) <= set(required) | set(optional)
    assert all(got[uid] == optional[uid] for uid in set(got) & set(optional))
    assert min(writers.done[kind] for kind in Writers.KINDS) >= 3
    assert summary.messages == len(got)
    assert (summary.failures, summary.walk_complete) == (0, True)


@dataclass(frozen=True)
class ProxiedRequest:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def key(self) -> bytes:
        return f"{self.method} {self.target}\n".encode() + self.body


class FaultyProxy:
    """A loopback HTTP proxy that answers some requests with a fault instead of the app's.

    The faults take turns: 503 and 429 with Retry-After, a connection closed before any
    answer, an answer cut off halfway, and a stall until the client gives up. No request
    (the same method, target and body) is faulted more than twice, so a client that tries
    three times always gets through; each answer closes its connection.
    """

    KINDS = ("503", "drop", "truncate", "429", "stall")

    def __init__(
        self,
        upstream: str,
        *,
        seed: int,
        fault_share: float,
        delay_s: float = 0.0,
        max_stalls: int = 1,
    ) -> None:
        self.faults: Counter[str] = Counter()
        self.requests = 0
        self._upstream_url = upstream
        self._rng = random.Random(seed)
        self._fault_share = fault_share
        self._delay_s = delay_s
        self._max_stalls = max_stalls
        self._tries: Counter[bytes] = Counter()
        self._turn = itertools.cycle(self.KINDS)

    async def __aenter__(self) -> "FaultyProxy":
        self._upstream = httpx.AsyncClient(base_url=self._upstream_url, timeout=10.0)
        self._server = await asyncio.start_server(self._serve, HOST, 0)
        port = self._server.sockets[0].getsockname()[1]
        self.base_url = f"http://{HOST}:{port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._server.close()
        await self._server.wait_closed()
        await self._upstream.aclose()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await read_request(reader)
            self.requests += 1
            if self._delay_s:
                await asyncio.sleep(self._delay_s)
            await self._answer(request, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _fault_for(self, request: ProxiedRequest) -> str | None:
        tries = self._tries[request.key]
        self._tries[request.key] += 1
        if tries >= 2 or self._rng.random() >= self._fault_share:
            return None
        kind = next(self._turn)
        if kind == "stall" and self.faults["stall"] >= self._max_stalls:
            kind = "503"
        self.faults[kind] += 1
        return kind

    async def _answer(
        self,
        request: ProxiedRequest,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        fault = self._fault_for(request)
        if fault == "drop":
            return
        if fault == "stall":
            # Until the client times out and hangs up (or a bound passes).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reader.read(), 10.0)
            return
        if fault in ("503", "429"):
            # The first one asks for a second, the others for no wait at all.
            wait = "1" if self.faults[fault] == 1 and fault == "503" else "0"
            body = f'{{"type":"about:blank","title":"busy","status":{fault}}}'.encode()
            writer.write(http_response(int(fault), body, {"Retry-After": wait}))
            await writer.drain()
            return

        upstream = await self._upstream.request(
            request.method,
            request.target,
            content=request.body,
            headers={k: v for k, v in request.headers.items() if k in FORWARDED},
        )
        headers = {k: v for k, v in upstream.headers.items() if k in FORWARDED}
        answer = http_response(upstream.status_code, upstream.content, headers)
        if fault == "truncate":
            answer = answer[: len(answer) - len(upstream.content) // 2 - 1]
        writer.write(answer)
        await writer.drain()


FORWARDED = ("x-api-key", "content-type", "retry-after")


async def read_request(reader: asyncio.StreamReader) -> ProxiedRequest:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    request_line, *header_lines = head.split("\r\n")
    method, target, _ = request_line.split(" ", 2)
    headers = {}
    for line in header_lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return ProxiedRequest(method, target, headers, body)


def http_response(status: int, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def test_faults_in_front_of_the_app_change_no_message(
    served: Served,
    connection: asyncpg.Connection,
    tmp_path: Path,
) -> None:
    world = build_world(seed=3)
    await seed(connection, world)
    direct = await bounded_pass(pass_options(served, tmp_path / "direct.jsonl"))

    async with FaultyProxy(served.base_url, seed=4, fault_share=0.3) as proxy:
        faulty = await bounded_pass(
            pass_options(
                served,
                tmp_path / "proxied.jsonl",
                base_url=proxy.base_url,
                timeout_s=1.5,
                estimate_total=False,
            ),
        )

    proxied = read_messages(tmp_path / "proxied.jsonl")
    assert by_user_once(proxied) == expected_messages(world)
    assert sorted_lines(tmp_path / "proxied.jsonl") == sorted_lines(tmp_path / "direct.jsonl")
    assert all(proxy.faults[kind] >= 1 for kind in FaultyProxy.KINDS), proxy.faults
    # Each fault costs exactly one retry: none is missed, and nothing else is retried.
    assert faulty.retries == proxy.faults.total()
    assert (faulty.messages, faulty.failures, faulty.left_undone) == (direct.messages, 0, False)


def lines_by_key(out: Path) -> dict[str, bytes]:
    """The complete lines of a file by idempotency key; a torn last line is left out."""
    lines = out.read_bytes().splitlines(keepends=True) if out.exists() else []
    return {decode_line(line).idempotency_key: line for line in lines if line.endswith(b"\n")}


def assert_one_version_each(seen: list[dict[str, bytes]], final: dict[str, bytes]) -> None:
    """Whatever a reader saw in the file at any time is the final line for that key."""
    for snapshot in seen:
        assert {key: final.get(key) for key in snapshot} == snapshot


class CancelAfter:
    """A progress callback that cancels its pass once that has handled `users` users."""

    def __init__(self, users: int) -> None:
        self.users = users
        self.task: asyncio.Task[Summary] | None = None

    def __call__(self, snapshot: Snapshot) -> None:
        if self.task is not None and snapshot.users >= self.users and not snapshot.finished:
            self.task.cancel()


async def test_a_pass_cancelled_at_random_moments_resumes_without_gap_or_duplicate(
    served: Served,
    connection: asyncpg.Connection,
    tmp_path: Path,
) -> None:
    world = build_world(seed=5)
    await seed(connection, world)
    expected = expected_messages(world)
    rng = random.Random(6)
    out = tmp_path / "digest.jsonl"
    seen: list[dict[str, bytes]] = []
    interrupted = 0

    for _ in range(6):
        remaining = len(expected) - len(lines_by_key(out))
        # Zero cancels at the first look, before the first answer has come back.
        cancel = CancelAfter(users=rng.randint(0, remaining // 2))
        options = pass_options(
            served,
            out,
            concurrency=3,
            on_progress=cancel,
            progress_interval_s=0.001,
        )
        task = cancel.task = asyncio.create_task(run_pass(options))
        try:
            await asyncio.wait_for(task, PASS_TIMEOUT_S)
        except asyncio.CancelledError:
            interrupted += 1
        else:
            break  # finished before the callback looked again: nothing left to cancel
        finally:
            seen.append(lines_by_key(out))
    last = await bounded_pass(pass_options(served, out))

    final = read_messages(out)
    assert by_user_once(final) == expected
    assert_one_version_each(seen, lines_by_key(out))
    assert interrupted >= 3
    assert not last.left_undone


DIGEST_SCRIPT = (
    "import sys; from entrypoints.scheduler.digest import main; sys.exit(main(sys.argv[1:]))"
)


async def start_digest(base_url: str, api_key: str, out: Path) -> asyncio.subprocess.Process:
    env = {name: value for name, value in os.environ.items() if "TASK_TRACKER_" not in name}
    env[KEY_ENV] = api_key
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        DIGEST_SCRIPT,
        "--base-url",
        base_url,
        "--api-key-env",
        KEY_ENV,
        "--window-end",
        "2026-11-04T00:00:00Z",
        "--concurrency",
        "3",
        "--batch-size",
        "4",
        "--page-size",
        "9",
        "--out",
        str(out),
        cwd=PROJECT_ROOT,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


def checkpointed_users(out: Path) -> int:
    try:
        saved = msgspec.json.decode(out.with_name(out.name + ".checkpoint").read_bytes())
    except FileNotFoundError:
        return 0
    users: int = saved["users"]
    return users


async def kill_when_checkpointed(
    process: asyncio.subprocess.Process,
    out: Path,
    users: int,
) -> bool:
    """SIGKILL the pass once its checkpoint counts `users`; False if it ended before."""
    deadline = time.monotonic() + PASS_TIMEOUT_S
    while process.returncode is None and time.monotonic() < deadline:
        if checkpointed_users(out) >= users:
            process.kill()
            await process.communicate()
            return process.returncode == -signal.SIGKILL
        await asyncio.sleep(0.002)
    await process.communicate()
    return False


async def test_a_pass_killed_at_random_moments_resumes_without_gap_or_duplicate(
    served: Served,
    connection: asyncpg.Connection,
    tmp_path: Path,
) -> None:
    world = build_world(seed=7)
    await seed(connection, world)
    expected = expected_messages(world)
    rng = random.Random(8)
    out = tmp_path / "digest.jsonl"
    seen: list[dict[str, bytes]] = []
    kills = 0

    # Slowed down a little, so that a kill lands in the middle of the work.
    async with FaultyProxy(served.base_url, seed=9, fault_share=0.0, delay_s=0.005) as proxy:
        for _ in range(4):
            done = checkpointed_users(out)
            at = done + rng.randint(1, max(1, (len(expected) - done) // 2))
            process = await start_digest(proxy.base_url, served.api_key, out)
            if not await kill_when_checkpointed(process, out, at):
                break
            kills += 1
            seen.append(lines_by_key(out))
        last = await start_digest(proxy.base_url, served.api_key, out)
        stdout, stderr = await asyncio.wait_for(last.communicate(), PASS_TIMEOUT_S)

    assert last.returncode == 0, stderr.decode()
    assert b" 0 failures" in stdout
    final = read_messages(out)
    assert by_user_once(final) == expected
    assert_one_version_each(seen, lines_by_key(out))
    assert kills >= 3


async def test_main_says_why_and_exits_non_zero_when_the_key_is_refused(
    served: Served,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(KEY_ENV, new_api_key())
    args = ["--base-url", served.base_url, "--api-key-env", KEY_ENV]
    args += ["--window-end", "2026-11-04T00:00:00Z", "--out", str(tmp_path / "digest.jsonl")]

    code = await asyncio.to_thread(main, args)

    captured = capsys.readouterr()
    assert code == 1
    assert "0 users, 0 messages" in captured.out
    assert "HTTP 401" in captured.err
    assert "Once that is fixed" in captured.err
