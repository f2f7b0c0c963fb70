"""Problem details, methods, body limits and media types, through the real app.

Also home to the helpers the other HTTP tests share: the two routes, the checks of a
problem-details answer, and `exchange`, which speaks raw ASGI to the app.
"""

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, cast

import asyncpg
import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from litestar.types import HTTPReceiveMessage, Message, Scope
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.database import PoolSettings
from domain.ports import Clock
from entrypoints.bootstrap import build_app
from tests.conftest import AUTH, app_settings
from tests.data import Seeder, Task, User, at

USER_IDS = "/api/v1/internal/scheduler/user-ids-for-processing"
REPORTS = "/api/v1/internal/scheduler/user-task-reports-by-ids"
PROBLEM_JSON = "application/problem+json"
MIB = 1024 * 1024


@asynccontextmanager
async def serving(
    database_url: str,
    clock: Clock | None = None,
    **overrides: object,
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """The real app on `database_url`, its settings changed as given, behind a test client."""
    app = build_app(app_settings(database_url, **overrides), database_url, clock=clock)
    async with AsyncTestClient(app) as client:
        yield client


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The answer is RFC 9457 problem details for `status`, with no stack trace in it."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    for member in ("type", "title", "detail"):
        assert isinstance(body[member], str)
        assert body[member]
    assert "Traceback" not in response.text
    assert 'File "' not in response.text
    return body


def assert_invalid(response: httpx.Response, field: str) -> None:
    """A 400 whose `errors` name `field`, each error with a message."""
    body = assert_problem(response, 400)
    assert body["errors"], body
    for error in body["errors"]:
        assert set(error) == {"field", "message"}
        assert error["message"]
    assert field in [error["field"] for error in body["errors"]], body


@dataclasses.dataclass(frozen=True, slots=True)
class Exchange:
    """Everything the app sent back, and how much of the request body it read."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    bytes_read: int

    def header(self, name: str) -> str | None:
        values = [value for key, value in self.headers if key == name.lower().encode()]
        return values[0].decode() if values else None


async def exchange(
    client: AsyncTestClient[Litestar],
    method: str,
    target: str,
    headers: Sequence[tuple[bytes, bytes]] = (),
    body: Iterable[bytes] = (),
) -> Exchange:
    """One request straight through the app's ASGI interface, as a server would pass it.

    Litestar's test client joins repeated headers into one, cannot stream a body, and
    drops the body of an answer to HEAD; here the app sees headers as given and the body
    chunk by chunk, and every byte it sends is kept. The request runs on the test
    client's own event loop, where the app's database pool lives.
    """
    return client.blocking_portal.call(
        partial(_exchange, client.app, method, target, headers, iter(body)),
    )


async def _exchange(
    app: Litestar,
    method: str,
    target: str,
    headers: Sequence[tuple[bytes, bytes]],
    chunks: Iterator[bytes],
) -> Exchange:
    path, _, query = target.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(b"host", b"testserver.local"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver.local", 80),
    }
    sent: list[Message] = []
    answered = asyncio.Event()
    pending: bytes | None = next(chunks, b"")
    read = 0

    async def receive() -> HTTPReceiveMessage:
        nonlocal pending, read
        if pending is None:
            # The whole body is in; like a client, wait for the answer, then hang up.
            await answered.wait()
            return {"type": "http.disconnect"}
        chunk, pending = pending, next(chunks, None)
        read += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": pending is not None}

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            answered.set()

    await asyncio.wait_for(app(cast(Scope, scope), receive, send), timeout=10)

    start = next(m for m in sent if m["type"] == "http.response.start")
    return Exchange(
        status=start["status"],
        headers=list(start.get("headers", [])),
        body=b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"),
        bytes_read=read,
    )


def module_app() -> Any:
    """An `api` fixture for a test module: one app for its tests that arrange no data."""

    @pytest.fixture(scope="module")
    async def api(
        engine: AsyncEngine,  # asked for so that the database is migrated first
        database_url: str,
    ) -> AsyncIterator[AsyncTestClient[Litestar]]:
        async with serving(database_url) as client:
            yield client

    return api


api = module_app()


def _key() -> tuple[bytes, bytes]:
    return (b"x-api-key", AUTH["X-API-Key"].encode())


async def _assert_still_serving(client: AsyncTestClient[Litestar]) -> None:
    response = await client.post(REPORTS, json={"userIds": [1]}, headers=AUTH)
    assert response.status_code == 200, response.text


# --- 405 and Allow -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", REPORTS, "POST"),
        ("PUT", REPORTS, "POST"),
        ("DELETE", REPORTS, "POST"),
        ("PATCH", REPORTS, "POST"),
        ("POST", USER_IDS, "GET"),
        ("PUT", USER_IDS, "GET"),
        ("DELETE", USER_IDS, "GET"),
        ("TRACE", USER_IDS, "GET"),
    ],
)
async def test_wrong_method_with_key_gets_405_naming_the_allowed_method(
    api: AsyncTestClient[Litestar],
    method: str,
    path: str,
    allowed: str,
) -> None:
    response = await api.request(method, path, headers=AUTH)

    assert_problem(response, 405)
    allow = [name.strip() for name in response.headers["allow"].split(",")]
    assert allowed in allow
    assert method not in allow
    await _assert_still_serving(api)


@pytest.mark.parametrize(("path", "allowed"), [(USER_IDS, "GET"), (REPORTS, "POST")])
async def test_options_with_key_answers_204_with_allow_or_405_and_never_data(
    api: AsyncTestClient[Litestar],
    path: str,
    allowed: str,
) -> None:
    answer = await exchange(api, "OPTIONS", path, [_key()])

    assert answer.status in (204, 405)
    assert allowed in (answer.header("allow") or "")
    if answer.status == 204:
        assert answer.body == b""
    assert b"userIds" not in answer.body
    assert b"reports" not in answer.body


@pytest.mark.parametrize("path", [USER_IDS, REPORTS])
async def test_head_with_key_answers_no_data_and_no_server_error(
    client: AsyncTestClient[Litestar],
    seeder: Seeder,
    path: str,
) -> None:
    await seeder.users([User(1, "ann@example.com")])
    await seeder.tasks([Task(1, 1, "Renew passport", at("2026-12-01T00:00:00Z"))])

    answer = await exchange(client, "HEAD", path, [_key()])

    assert answer.status < 500
    for data in (b"userIds", b"reports", b"ann@example.com", b"Renew passport"):
        assert data not in answer.body


# --- 404 ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/internal/scheduler/no-such-route",
        "/api/v1/internal",
        "/api/v1/internal/scheduler",
    ],
)
async def test_unknown_internal_path_with_key_is_404(
    api: AsyncTestClient[Litestar],
    path: str,
) -> None:
    response = await api.get(path, headers=AUTH)

    assert_problem(response, 404)


@pytest.mark.parametrize(
    "path",
    ["/", "/nope", "/api/v1/nope", "/api/v1/internalish/scheduler", "/API/V1/INTERNAL/x"],
)
async def test_unknown_path_outside_internal_is_404_without_key(
    api: AsyncTestClient[Litestar],
    path: str,
) -> None:
    response = await api.get(path)

    assert_problem(response, 404)
    assert "www-authenticate" not in response.headers


# --- 413 ------------------------------------------------------------------------------


async def test_body_over_1_mib_with_content_length_is_413(
    api: AsyncTestClient[Litestar],
) -> None:
    body = b'{"userIds":[1]}' + b" " * MIB

    response = await api.post(
        REPORTS,
        content=body,
        headers={**AUTH, "Content-Type": "application/json"},
    )

    assert_problem(response, 413)
    await _assert_still_serving(api)


async def test_body_of_exactly_1_mib_is_accepted(api: AsyncTestClient[Litestar]) -> None:
    payload = b'{"userIds":[1]}'
    body = payload + b" " * (MIB - len(payload))

    response = await api.post(
        REPORTS,
        content=body,
        headers={**AUTH, "Content-Type": "application/json"},
    )

    assert response.status_code == 200, response.text


async def test_chunked_body_over_1_mib_is_413_and_not_read_to_the_end(
    api: AsyncTestClient[Litestar],
) -> None:
    chunk = b" " * 65536

    def endless() -> Iterator[bytes]:
        while True:
            yield chunk

    answer = await exchange(
        api,
        "POST",
        REPORTS,
        [_key(), (b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")],
        endless(),
    )

    assert answer.status == 413
    assert answer.header("content-type") == PROBLEM_JSON
    # The stream never ends: the app stops reading a few chunks past the limit.
    assert answer.bytes_read <= 2 * MIB
    await _assert_still_serving(api)


async def test_chunked_body_under_the_limit_is_read_whole(
    client: AsyncTestClient[Litestar],
    seeder: Seeder,
) -> None:
    await seeder.users([User(7, "eve@example.com")])

    answer = await exchange(
        client,
        "POST",
        REPORTS,
        [_key(), (b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")],
        [b'{"userIds"', b":[7,", b" 8]}"],
    )

    assert answer.status == 200, answer.body
    answered = json.loads(answer.body)
    assert [report["userId"] for report in answered["reports"]] == [7]
    assert answered["missingUserIds"] == [8]


# --- 415 ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json-patch+json",
        "application/json; charset=latin-1",
    ],
)
async def test_body_not_sent_as_json_is_415(
    api: AsyncTestClient[Litestar],
    content_type: str | None,
) -> None:
    headers = dict(AUTH)
    if content_type is not None:
        headers["Content-Type"] = content_type

    response = await api.post(REPORTS, content=b'{"userIds":[1]}', headers=headers)

    assert_problem(response, 415)
    await _assert_still_serving(api)


async def test_json_with_utf8_charset_is_accepted(api: AsyncTestClient[Litestar]) -> None:
    response = await api.post(
        REPORTS,
        content=b'{"userIds":[1]}',
        headers={**AUTH, "Content-Type": "application/json; charset=UTF-8"},
    )

    assert response.status_code == 200, response.text


# --- after an error the next request still works ----------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "content", "content_type"),
    [
        ("POST", REPORTS, b"{", "application/json"),
        ("POST", REPORTS, b'{"userIds":[1]}\xff\xfe', "application/json"),
        ("POST", REPORTS, b'{"userIds":[' + b"[" * 10_000, "application/json"),
        ("POST", REPORTS, b'{"userIds":[1' + b"0" * 5000 + b"]}", "application/json"),
        ("POST", REPORTS, b"[" * 100_000 + b"]" * 100_000, "application/json"),
        ("GET", USER_IDS + "?limit=zero", None, None),
        ("GET", USER_IDS + "?" + "&".join(f"p{i}=1" for i in range(500)), None, None),
    ],
    ids=[
        "truncated-json",
        "invalid-utf8",
        "deep-nesting",
        "5000-digit-id",
        "deep-array-body",
        "bad-limit",
        "500-unknown-params",
    ],
)
async def test_bad_request_is_400_and_the_next_request_is_served(
    api: AsyncTestClient[Litestar],
    method: str,
    path: str,
    content: bytes | None,
    content_type: str | None,
) -> None:
    headers = dict(AUTH)
    if content_type is not None:
        headers["Content-Type"] = content_type

    response = await api.request(method, path, content=content, headers=headers)

    assert_problem(response, 400)
    await _assert_still_serving(api)


# --- headers on every internal answer ----------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("GET", USER_IDS, AUTH, 200),
        ("GET", USER_IDS + "?limit=0", AUTH, 400),
        ("GET", USER_IDS, {}, 401),
        ("GET", "/api/v1/internal/nope", AUTH, 404),
        ("DELETE", USER_IDS, AUTH, 405),
    ],
)
async def test_internal_answers_are_never_cached_nor_sniffed(
    api: AsyncTestClient[Litestar],
    method: str,
    path: str,
    headers: dict[str, str],
    status: int,
) -> None:
    response = await api.request(method, path, headers=headers)

    assert response.status_code == status
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_request_id_sent_by_the_caller_is_echoed(
    api: AsyncTestClient[Litestar],
) -> None:
    response = await api.get(USER_IDS, headers={**AUTH, "X-Request-ID": "sched-42.7"})

    assert response.headers["x-request-id"] == "sched-42.7"


@pytest.mark.parametrize("headers", [AUTH, {}], ids=["with-key", "without-key"])
async def test_request_id_is_generated_afresh_when_absent(
    api: AsyncTestClient[Litestar],
    headers: dict[str, str],
) -> None:
    first = await api.get(USER_IDS, headers=headers)
    second = await api.get(USER_IDS, headers=headers)

    assert first.headers["x-request-id"]
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


@pytest.mark.parametrize("sent", ["two words", "x" * 129, "caf\u00e9"])
async def test_request_id_that_is_not_short_visible_ascii_is_replaced(
    api: AsyncTestClient[Litestar],
    sent: str,
) -> None:
    response = await api.get(
        USER_IDS,
        headers=[_key(), (b"x-request-id", sent.encode())],
    )

    echoed = response.headers["x-request-id"]
    assert echoed
    assert echoed != sent
    assert echoed.isascii()
    assert " " not in echoed


# --- a database that does not answer in time ---------------------------------------------


async def test_statement_timeout_is_503_with_retry_after_and_the_next_call_works(
    database_url: str,
    seeder: Seeder,
    raw_connection: asyncpg.Connection,
) -> None:
    await seeder.users([User(1, "ann@example.com")])
    pool = PoolSettings(size=2, acquire_timeout_s=2.0, statement_timeout_ms=200)

    async with serving(database_url, pool=pool) as client:
        # Both statements read tasks; a held exclusive lock makes them wait out their limit.
        lock = raw_connection.transaction()
        await lock.start()
        try:
            await raw_connection.execute("LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE")
            page = await client.get(USER_IDS, headers=AUTH)
            reports = await client.post(REPORTS, json={"userIds": [1]}, headers=AUTH)
        finally:
            await lock.rollback()
        after = await client.post(REPORTS, json={"userIds": [1]}, headers=AUTH)

    for response in (page, reports):
        assert_problem(response, 503)
        assert int(response.headers["retry-after"]) >= 1
    assert after.status_code == 200, after.text
    assert after.json()["reports"][0]["userId"] == 1
