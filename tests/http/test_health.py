"""Health routes, and what the API answers when its database is missing or behind."""

import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.engine import make_url

from adapters import migrations
from tests.conftest import AUTH, scratch_database
from tests.http.test_errors_and_methods import REPORTS, USER_IDS, assert_problem, serving

# Nothing listens on port 1 of the loopback address: connecting is refused at once.
UNREACHABLE_URL = "postgresql://postgres@127.0.0.1:1/nowhere"
# Far more than a refused connection takes, far less than a request left hanging.
QUICKLY_S = 3.0


@pytest.fixture
async def unreachable_client() -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with serving(UNREACHABLE_URL) as client:
        yield client


async def _internal_requests(client: AsyncTestClient[Litestar]) -> list[httpx.Response]:
    return [
        await client.get(USER_IDS, headers=AUTH),
        await client.post(REPORTS, json={"userIds": [1]}, headers=AUTH),
    ]


async def _stamp(url: str, revision: str) -> None:
    """Record `revision` as the schema's, as Alembic would, without building anything."""
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS alembic_version (version_num varchar(32) PRIMARY KEY)",
        )
        await connection.execute("DELETE FROM alembic_version")
        await connection.execute("INSERT INTO alembic_version VALUES ($1)", revision)
    finally:
        await connection.close()


def _assert_unavailable(response: httpx.Response) -> None:
    assert_problem(response, 503)
    assert int(response.headers["retry-after"]) >= 1


async def test_live_is_200(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/health/live")

    assert response.status_code == 200


async def test_ready_is_200_on_a_migrated_database(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/health/ready")

    assert response.status_code == 200, response.text


@pytest.mark.parametrize("path", ["/health/live", "/health/ready"])
async def test_health_needs_no_key_and_ignores_a_wrong_one(
    client: AsyncTestClient[Litestar],
    path: str,
) -> None:
    response = await client.get(path, headers={"X-API-Key": "wrong"})

    assert response.status_code == 200
    assert "www-authenticate" not in response.headers


async def test_ready_is_503_until_the_schema_is_at_this_builds_head(
    server_url: str,
) -> None:
    async with scratch_database(server_url) as url, serving(url) as client:
        empty = await client.get("/health/ready")
        internal = await _internal_requests(client)
        live = await client.get("/health/live")
        # As if a newer release had migrated the database past this one.
        await _stamp(url, "ffffffffffff")
        unknown_revision = await client.get("/health/ready")
        await _stamp(url, migrations.head_revision())
        at_head = await client.get("/health/ready")

    _assert_unavailable(empty)
    for response in internal:
        _assert_unavailable(response)
    assert live.status_code == 200
    _assert_unavailable(unknown_revision)
    assert at_head.status_code == 200, at_head.text


async def test_ready_is_503_when_the_database_is_unreachable(
    unreachable_client: AsyncTestClient[Litestar],
) -> None:
    started = time.perf_counter()
    response = await unreachable_client.get("/health/ready")
    elapsed = time.perf_counter() - started

    _assert_unavailable(response)
    assert elapsed < QUICKLY_S


async def test_live_stays_200_when_the_database_is_unreachable(
    unreachable_client: AsyncTestClient[Litestar],
) -> None:
    response = await unreachable_client.get("/health/live")

    assert response.status_code == 200


async def test_api_is_503_quickly_when_the_database_is_unreachable(
    unreachable_client: AsyncTestClient[Litestar],
) -> None:
    started = time.perf_counter()
    responses = await _internal_requests(unreachable_client)
    elapsed = time.perf_counter() - started

    for response in responses:
        _assert_unavailable(response)
    assert elapsed < QUICKLY_S


async def test_without_database_a_bad_request_is_still_400_and_no_key_still_401(
    unreachable_client: AsyncTestClient[Litestar],
) -> None:
    invalid = await unreachable_client.post(REPORTS, json={"userIds": [0]}, headers=AUTH)
    refused = await unreachable_client.get(USER_IDS)

    assert_problem(invalid, 400)
    assert_problem(refused, 401)


async def test_api_is_503_when_the_database_does_not_exist(server_url: str) -> None:
    url = make_url(server_url).set(database=f"tt_missing_{uuid.uuid4().hex[:12]}")

    async with serving(url.render_as_string(hide_password=False)) as client:
        responses = await _internal_requests(client)

    for response in responses:
        _assert_unavailable(response)
