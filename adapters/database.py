"""Engine set-up, borrowing a driver connection, and turning driver failures into ours."""

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

import asyncpg
import sqlalchemy.exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from domain.errors import StorageTimeout, StorageUnavailable


@dataclass(frozen=True)
class PoolSettings:
    size: int = 10
    acquire_timeout_s: float = 5.0
    statement_timeout_ms: int = 5000
    statement_cache_size: int = 100
    # Behind a transaction-mode pooler (PgBouncer) a server connection is shared between
    # clients transaction by transaction: no prepared statement or session setting of
    # ours may outlive a transaction there.
    transaction_pooler: bool = False


def asyncpg_url(url: str) -> URL:
    """Accept an ordinary libpq URL (`postgresql://…`) and name the driver for SQLAlchemy."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"expected a postgresql:// URL, got {parsed.drivername}://")
    return parsed.set(drivername="postgresql+asyncpg")


def create_engine(url: str, pool: PoolSettings) -> AsyncEngine:
    cache_size = 0 if pool.transaction_pooler else pool.statement_cache_size
    server_settings = {"application_name": "task-tracker"}
    if not pool.transaction_pooler:
        # A pooler refuses these as startup parameters; there Database sets them for
        # each transaction instead.
        server_settings["statement_timeout"] = str(pool.statement_timeout_ms)
        server_settings["lock_timeout"] = str(pool.statement_timeout_ms)
    return create_async_engine(
        asyncpg_url(url),
        pool_size=pool.size,
        max_overflow=0,
        pool_timeout=pool.acquire_timeout_s,
        # A connection the server dropped (restart, pg_terminate_backend) is noticed and
        # replaced at checkout instead of failing the next request.
        pool_pre_ping=True,
        connect_args={
            "statement_cache_size": cache_size,
            "prepared_statement_cache_size": cache_size,
            # Behind a transaction-mode pooler, statements SQLAlchemy prepares itself must
            # not collide with another client's of the same name on a shared connection.
            "prepared_statement_name_func": _unique_statement_name,
            "timeout": pool.acquire_timeout_s,
            "server_settings": server_settings,
        },
    )


def _unique_statement_name() -> str:
    return f"__task_tracker_{uuid.uuid4().hex}__"


_BROKEN_CONNECTION = (
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.InternalClientError,
)

# SQLSTATEs that mean "not now" rather than "wrong request": connection exceptions (08),
# refused login (28) or a missing database (3D000) while it is being set up,
# insufficient resources (53), operator intervention such as shutdown or cancel (57),
# a missing relation (42P01: the schema is not migrated yet), a lock not granted in
# time (55P03), and serialization failures or deadlocks (40001, 40P01).
_UNAVAILABLE_SQLSTATE_PREFIXES = (
    "08",
    "28",
    "3D000",
    "53",
    "57",
    "42P01",
    "55P03",
    "40001",
    "40P01",
)


def _is_unavailable(err: BaseException) -> bool:
    if isinstance(err, (OSError, TimeoutError)):
        return True
    # A connection the server closed under us (pg_terminate_backend, a restart) surfaces
    # as an interface error, or as an internal client error when asyncpg finds the
    # server's farewell on a connection it believed idle; SQLAlchemy may wrap either.
    if isinstance(err, _BROKEN_CONNECTION):
        return True
    if isinstance(err.__cause__, _BROKEN_CONNECTION):
        return True
    sqlstate = getattr(err, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATE_PREFIXES)


class DatabaseObserver(Protocol):
    """What the service may want to know about its use of the database (for metrics)."""

    def pool_waiting(self, delta: int) -> None: ...

    def pool_in_use(self, delta: int) -> None: ...

    def statement_finished(self, name: str, seconds: float) -> None: ...


class _Unobserved:
    def pool_waiting(self, delta: int) -> None:
        pass

    def pool_in_use(self, delta: int) -> None:
        pass

    def statement_finished(self, name: str, seconds: float) -> None:
        pass


class Database:
    """Runs a read statement on a pooled connection and speaks only in our errors."""

    def __init__(
        self,
        engine: AsyncEngine,
        observer: DatabaseObserver | None = None,
        *,
        pool: PoolSettings | None = None,
    ) -> None:
        self._engine = engine
        self._observer = observer or _Unobserved()
        self._timeouts_sql: str | None = None
        if pool is not None and pool.transaction_pooler:
            ms = int(pool.statement_timeout_ms)
            self._timeouts_sql = (
                f"SET LOCAL statement_timeout = {ms}; SET LOCAL lock_timeout = {ms}"
            )

    async def fetch(self, name: str, sql: str, *args: object) -> list[asyncpg.Record]:
        """Rows of one statement; `name` labels its timing."""
        async with self._driver_connection() as connection:
            started = time.perf_counter()
            if self._timeouts_sql is None:
                rows = await connection.fetch(sql, *args)
            else:
                async with connection.transaction(readonly=True):
                    await connection.execute(self._timeouts_sql)
                    rows = await connection.fetch(sql, *args)
            self._observer.statement_finished(name, time.perf_counter() - started)
        return rows

    @asynccontextmanager
    async def _driver_connection(self) -> AsyncIterator[asyncpg.Connection]:
        # The two read statements go straight to asyncpg: it decodes rows faster than
        # SQLAlchemy's result layer, and they need nothing else from it.
        try:
            connection = self._engine.connect()
            self._observer.pool_waiting(+1)
            try:
                await connection.start()
            finally:
                self._observer.pool_waiting(-1)
            self._observer.pool_in_use(+1)
            try:
                raw = await connection.get_raw_connection()
                driver = raw.driver_connection
                assert isinstance(driver, asyncpg.Connection)
                yield driver
            finally:
                self._observer.pool_in_use(-1)
                await connection.close()
        except asyncpg.exceptions.QueryCanceledError as err:
            raise StorageTimeout("the statement exceeded its time limit") from err
        except sqlalchemy.exc.TimeoutError as err:
            raise StorageUnavailable("no database connection became free in time") from err
        except sqlalchemy.exc.DBAPIError as err:
            if err.connection_invalidated or (err.orig is not None and _is_unavailable(err.orig)):
                raise StorageUnavailable("the database is unavailable") from err
            raise
        except (asyncpg.PostgresError, *_BROKEN_CONNECTION, OSError) as err:
            if _is_unavailable(err):
                raise StorageUnavailable("the database is unavailable") from err
            raise
        except TimeoutError as err:
            raise StorageUnavailable("the database did not answer in time") from err
