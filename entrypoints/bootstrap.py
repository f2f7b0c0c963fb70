"""The composition root: settings in, a wired application out."""

import asyncio
import logging
import sys

from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import migrations
from adapters.clock import SystemClock
from adapters.database import Database, create_engine
from adapters.embedded_postgres import start_embedded_postgres
from adapters.reports import PostgresTaskReportReader
from adapters.user_ids import PostgresUserIdReader
from application.reports import BuildReportsByIds
from application.user_ids import ListUserIdsForProcessing
from domain.errors import StorageUnavailable
from domain.ports import Clock
from entrypoints.api_keys import ApiKeySource
from entrypoints.http.app import HttpDependencies, create_app
from entrypoints.http.metrics import Metrics
from entrypoints.server import draining
from entrypoints.settings import Settings

logger = logging.getLogger(__name__)

_READINESS_TIMEOUT_S = 2.0
_SCHEMA_VERSION_SQL = "SELECT version_num FROM alembic_version"


def resolve_database_url(settings: Settings) -> str:
    """The configured URL, or an embedded server's when none is configured."""
    if settings.database_url is not None:
        return settings.database_url
    data_dir = (settings.data_dir / "postgres").resolve()
    url = start_embedded_postgres(data_dir)
    print(
        f"No TASK_TRACKER_DATABASE_URL set: using embedded PostgreSQL with data in {data_dir}",
        file=sys.stderr,
    )
    return url


def build_app(
    settings: Settings,
    database_url: str,
    *,
    clock: Clock | None = None,
) -> Litestar:
    metrics = Metrics()
    engine = create_engine(settings.read_database_url or database_url, settings.pool)
    clock = clock or SystemClock()
    keys = ApiKeySource(settings.api_keys, settings.api_keys_file)
    if not settings.api_keys and settings.api_keys_file is None:
        logger.warning("no API keys configured: every internal request will be refused")
    head = migrations.head_revision()
    database = Database(engine, metrics, pool=settings.pool)

    async def readiness() -> str | None:
        if draining.is_set():
            return "The service is shutting down."
        try:
            async with asyncio.timeout(_READINESS_TIMEOUT_S):
                rows = await database.fetch("readiness", _SCHEMA_VERSION_SQL)
        except (StorageUnavailable, TimeoutError) as err:
            logger.warning("readiness check failed: %s", err)
            return "The database does not answer, or has no schema yet."
        current = rows[0][0] if rows else None
        if current != head:
            logger.warning("readiness: schema at %s, expected %s", current or "nothing", head)
            return "The database schema is not at the newest migration."
        return None

    deps = HttpDependencies(
        list_user_ids=ListUserIdsForProcessing(PostgresUserIdReader(database), clock),
        build_reports=BuildReportsByIds(PostgresTaskReportReader(database), clock),
        metrics=metrics,
        request_deadline_s=settings.request_timeout_ms / 1000,
        readiness=readiness,
        api_keys=keys.current,
        on_reload_signal=keys.request_reload,
        auth_failures_per_minute=settings.auth_failures_per_minute,
        docs_enabled=settings.docs_enabled,
    )
    return create_app(deps, on_shutdown=[engine.dispose])


async def migrate(database_url: str, settings: Settings) -> None:
    engine: AsyncEngine = create_engine(database_url, settings.pool)
    try:
        await migrations.upgrade(engine)
    finally:
        await engine.dispose()
