"""The OpenAPI document, explored by schemathesis against the real server and database.

`task-tracker serve` runs in a process of its own on a free loopback port, with the docs
on and one valid key; schemathesis reads the document the server publishes and sends
each operation requests built from it. Every answer must be no server error, a status
the document lists, in the media type it lists, with a body that fits its schema.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import schemathesis  # type: ignore[import-not-found, unused-ignore]  # until it is a dev dependency
from hypothesis import HealthCheck, given, settings
from sqlalchemy.ext.asyncio import AsyncEngine

from entrypoints.api_keys import entry_line, new_api_key
from tests.conftest import PROJECT_ROOT
from tests.data import Seeder, Task, User

CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]
# Start-up imports the whole app and connects to the database; slow on a busy machine.
READY_WITHIN_S = 60.0
SEEDED_USERS = 12
# Per operation and generation mode: enough to reach the corners, few enough for CI.
EXAMPLES = 25


@dataclass(frozen=True, slots=True)
class Served:
    base_url: str
    key: str


def _free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
async def seeded_database(
    engine: AsyncEngine,  # asked for so that the database is migrated first
    database_url: str,
    raw_connection: asyncpg.Connection,
) -> str:
    """Users with open and recently finished tasks, so that default windows have content."""
    now = datetime.now(UTC)
    titles = ["Renew passport", "Прочитать книгу", "買い物 🛒", 'Say "hi"\tto Zoë']
    await raw_connection.execute("TRUNCATE users, tasks RESTART IDENTITY CASCADE")
    seeder = Seeder(raw_connection)
    await seeder.users(User(n, f"user{n}@example.com") for n in range(1, SEEDED_USERS + 1))
    await seeder.tasks(
        Task(
            id=user * 10 + n,
            user_id=user,
            title=titles[n % len(titles)],
            created_at=now - timedelta(days=n + 1),
            completed_at=now - timedelta(hours=n + 1) if n % 2 else None,
        )
        for user in range(1, SEEDED_USERS + 1)
        for n in range(user % 5)
    )
    return database_url


@pytest.fixture(scope="module")
def served(seeded_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    key = new_api_key()
    port = _free_loopback_port()
    log_path = tmp_path_factory.mktemp("fuzz") / "server.log"
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TASK_TRACKER_")},
        "TASK_TRACKER_DATABASE_URL": seeded_database,
        "TASK_TRACKER_API_KEYS": entry_line("fuzz", key),
        "TASK_TRACKER_DOCS_ENABLED": "true",
        "TASK_TRACKER_LOG_FORMAT": "json",
        "TASK_TRACKER_SHUTDOWN_GRACE_MS": "2000",
    }
    # `uv run task-tracker serve`, minus uv: the interpreter running the tests already has
    # the project, and a nested uv could sync the environment under the running suite.
    command = [sys.executable, "-m", "entrypoints.cli", "serve", "--no-migrate"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        base_url = f"http://127.0.0.1:{port}"
        _wait_until_ready(process, base_url, log_path)
        yield Served(base_url=base_url, key=key)
    finally:
        _stop(process)


def _wait_until_ready(process: subprocess.Popen[bytes], base_url: str, log_path: Path) -> None:
    deadline = time.monotonic() + READY_WITHIN_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if httpx.get(f"{base_url}/health/ready", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    tail = log_path.read_text(errors="replace").splitlines()[-20:]
    raise AssertionError("the server did not become ready:\n" + "\n".join(tail))


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's own process group, SIGKILL if it is still there after 10 s."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        process.wait()


@pytest.fixture(scope="module")
def served_schema(served: Served) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{served.base_url}/schema/openapi.json")


def test_document_lists_both_operations_and_requires_the_key_on_each(served: Served) -> None:
    document = httpx.get(f"{served.base_url}/schema/openapi.json", timeout=10).json()

    operations = [
        (method.upper(), path, operation.get("security"))
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]

    assert sorted(operations) == [
        ("GET", "/api/v1/internal/scheduler/user-ids-for-processing", [{"ApiKey": []}]),
        ("POST", "/api/v1/internal/scheduler/user-task-reports-by-ids", [{"ApiKey": []}]),
    ]
    assert document["components"]["securitySchemes"]["ApiKey"] == {
        "type": "apiKey",
        "name": "X-API-Key",
        "in": "header",
    }


def _explore(
    operation: schemathesis.APIOperation[Any, Any, Any, Any],
    mode: schemathesis.GenerationMode,
    served: Served,
) -> None:
    """Send up to EXAMPLES requests to `operation`; raise for the smallest one that fails."""
    # The key is fixed, so that negative examples go at the input rather than the key.
    auth = {"X-API-Key": served.key}

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode, headers=auth))
    def call(case: schemathesis.Case[Any]) -> None:
        case.call_and_validate(base_url=served.base_url, headers=auth, checks=CHECKS)

    call()


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_every_operation_answers_as_its_document_says(
    served: Served,
    served_schema: schemathesis.BaseSchema,
    mode: str,
) -> None:
    operations = [
        served_schema[path][method] for path in served_schema for method in served_schema[path]
    ]

    failures = {}
    for operation in operations:
        # Each operation is explored to the end, so one report names every failure.
        try:
            _explore(operation, schemathesis.GenerationMode(mode), served)
        except Exception as failure:
            failures[operation.label] = str(failure)

    assert len(operations) == 2
    assert failures == {}, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
