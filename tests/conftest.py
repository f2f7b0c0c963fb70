"""Shared fixtures: a real PostgreSQL database, migrated once, emptied between tests.

By default the tests start the embedded PostgreSQL from the wheel, with its data in
`.task-tracker/test-postgres`. Set TASK_TRACKER_TEST_DATABASE_URL to a server you run
instead (the URL of any database the user may CREATE DATABASE from); either way every
run works in a fresh database of its own and drops it at the end.
"""

import dataclasses
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import migrations
from adapters.database import PoolSettings, create_engine
from adapters.embedded_postgres import start_embedded_postgres
from entrypoints.api_keys import ApiKeyEntry, digest_of, new_api_key
from entrypoints.bootstrap import build_app
from entrypoints.settings import Settings
from tests.data import Seeder

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _server_url() -> str:
    given = os.environ.get("TASK_TRACKER_TEST_DATABASE_URL")
    if given:
        return given
    return start_embedded_postgres(PROJECT_ROOT / ".task-tracker" / "test-postgres")


def _with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def server_url() -> str:
    return _server_url()


@asynccontextmanager
async def scratch_database(server_url: str) -> AsyncIterator[str]:
    """The URL of a new, empty database on the tests' server; dropped afterwards."""
    name = f"tt_scratch_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield _with_database(server_url, name)
    finally:
        admin = await asyncpg.connect(server_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@asynccontextmanager
async def migrated_scratch_database(server_url: str) -> AsyncIterator[str]:
    """Like scratch_database, with the schema at the newest migration."""
    async with scratch_database(server_url) as url:
        engine = create_engine(url, PoolSettings(size=1))
        try:
            await migrations.upgrade(engine)
        finally:
            await engine.dispose()
        yield url


@pytest.fixture(scope="session")
async def database_url(server_url: str) -> AsyncIterator[str]:
    async with scratch_database(server_url) as url:
        yield url


@pytest.fixture(scope="session")
def pool_settings() -> PoolSettings:
    return PoolSettings(size=5, acquire_timeout_s=5.0, statement_timeout_ms=10_000)


@pytest.fixture(scope="session")
async def engine(database_url: str, pool_settings: PoolSettings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_settings)
    await migrations.upgrade(engine)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def raw_connection(
    engine: AsyncEngine, database_url: str
) -> AsyncIterator[asyncpg.Connection]:
    """A connection of the tests' own, for arranging data."""
    connection = await asyncpg.connect(database_url)
    yield connection
    await connection.close()


@pytest.fixture
async def seeder(raw_connection: asyncpg.Connection) -> Seeder:
    """Empty tables before the test, and a way to fill them."""
    await raw_connection.execute("TRUNCATE users, tasks RESTART IDENTITY CASCADE")
    return Seeder(raw_connection)


API_KEY = new_api_key()
AUTH = {"X-API-Key": API_KEY}


def app_settings(database_url: str, **overrides: object) -> Settings:
    base = Settings(
        database_url=database_url,
        api_keys=(ApiKeyEntry(client="tests", digest=digest_of(API_KEY)),),
        pool=PoolSettings(size=4, acquire_timeout_s=5.0, statement_timeout_ms=10_000),
        # High enough that tests sending many bad keys are never throttled by accident.
        auth_failures_per_minute=1_000_000,
    )
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


@pytest.fixture
async def client(
    engine: AsyncEngine,
    database_url: str,
    seeder: Seeder,
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """The real app on the test database, with the tables emptied first."""
    app = build_app(app_settings(database_url), database_url)
    async with AsyncTestClient(app, base_url="http://testserver.local") as test_client:
        yield test_client
