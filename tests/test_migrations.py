"""The migrations, up to head, down to base and up again, on a database of their own."""

from collections.abc import AsyncIterator

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import migrations
from adapters.database import PoolSettings, create_engine
from adapters.tables import metadata
from tests.conftest import scratch_database
from tests.data import Seeder

TABLES = {"users", "tasks"}
CONSTRAINTS = {
    ("users", "pk_users", "p"),
    ("users", "uq_users_email", "u"),
    ("tasks", "pk_tasks", "p"),
    ("tasks", "fk_tasks_user_id_users", "f"),
}
INDEXES = {"ix_tasks_user_id_created_at_open", "ix_tasks_user_id_completed_at"}


@pytest.fixture
async def fresh_engine(server_url: str) -> AsyncIterator[tuple[AsyncEngine, asyncpg.Connection]]:
    """An engine on an empty database, and a plain connection for looking at its catalog."""
    async with scratch_database(server_url) as url:
        engine = create_engine(url, PoolSettings(size=2))
        connection = await asyncpg.connect(url)
        try:
            yield engine, connection
        finally:
            await connection.close()
            await engine.dispose()


async def _tables(connection: asyncpg.Connection) -> set[str]:
    rows = await connection.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename = ANY($1)",
        list(TABLES),
    )
    return {row["tablename"] for row in rows}


async def _constraints(connection: asyncpg.Connection) -> set[tuple[str, str, str]]:
    rows = await connection.fetch(
        """
        SELECT c.conrelid::regclass::text AS table_name, c.conname, c.contype::text AS kind
        FROM pg_constraint c
        JOIN pg_namespace n ON n.oid = c.connamespace
        WHERE n.nspname = 'public' AND c.conname = ANY($1)
        """,
        [name for _, name, _ in CONSTRAINTS],
    )
    return {(row["table_name"], row["conname"], row["kind"]) for row in rows}


async def _index_definitions(connection: asyncpg.Connection) -> dict[str, str]:
    rows = await connection.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
    )
    return {row["indexname"]: row["indexdef"] for row in rows}


async def _assert_at_head(engine: AsyncEngine, connection: asyncpg.Connection) -> None:
    assert await migrations.current_revision(engine) == migrations.head_revision()
    assert await _tables(connection) == TABLES
    assert await _constraints(connection) == CONSTRAINTS
    indexes = await _index_definitions(connection)
    assert indexes.keys() >= INDEXES
    # The open-task index is partial, and the completion index covers created_at, as the
    # report statement's comments say they must be.
    open_index = indexes["ix_tasks_user_id_created_at_open"]
    assert "(user_id, created_at, id)" in open_index
    assert "WHERE (completed_at IS NULL)" in open_index
    completed_index = indexes["ix_tasks_user_id_completed_at"]
    assert "(user_id, completed_at, id)" in completed_index
    assert "INCLUDE (created_at)" in completed_index


async def _assert_at_base(engine: AsyncEngine, connection: asyncpg.Connection) -> None:
    assert await migrations.current_revision(engine) is None
    assert await _tables(connection) == set()
    assert await _constraints(connection) == set()
    assert not INDEXES & (await _index_definitions(connection)).keys()


async def test_upgrade_downgrade_upgrade_builds_removes_and_rebuilds_the_schema(
    fresh_engine: tuple[AsyncEngine, asyncpg.Connection],
) -> None:
    engine, connection = fresh_engine
    assert await migrations.current_revision(engine) is None

    await migrations.upgrade(engine)
    await _assert_at_head(engine, connection)

    await migrations.downgrade(engine, "base")
    await _assert_at_base(engine, connection)

    await migrations.upgrade(engine)
    await _assert_at_head(engine, connection)

    # A second upgrade, as every worker of a restarted service runs one, changes nothing.
    await migrations.upgrade(engine)
    await _assert_at_head(engine, connection)


# The schema's rules, checked on the suite's migrated database, emptied by the seeder,
# inside a transaction that is rolled back, so no other test sees the rows.


@pytest.fixture
async def in_transaction(
    seeder: Seeder,
    raw_connection: asyncpg.Connection,
) -> AsyncIterator[asyncpg.Connection]:
    transaction = raw_connection.transaction()
    await transaction.start()
    try:
        yield raw_connection
    finally:
        await transaction.rollback()


async def test_deleting_a_user_deletes_their_tasks_and_no_one_elses(
    in_transaction: asyncpg.Connection,
) -> None:
    connection = in_transaction
    await connection.execute(
        "INSERT INTO users (id, email) VALUES (1, 'ann@example.com'), (2, 'bob@example.com')",
    )
    await connection.execute(
        "INSERT INTO tasks (id, user_id, title) VALUES (1, 1, 'a'), (2, 1, 'b'), (3, 2, 'c')",
    )

    await connection.execute("DELETE FROM users WHERE id = 1")

    remaining = await connection.fetch("SELECT id, user_id FROM tasks ORDER BY id")
    assert [(row["id"], row["user_id"]) for row in remaining] == [(3, 2)]


async def test_a_task_needs_an_existing_user(in_transaction: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await in_transaction.execute("INSERT INTO tasks (id, user_id, title) VALUES (1, 99, 'x')")


async def test_two_users_cannot_share_an_email(in_transaction: asyncpg.Connection) -> None:
    await in_transaction.execute("INSERT INTO users (id, email) VALUES (1, 'ann@example.com')")

    with pytest.raises(asyncpg.UniqueViolationError):
        await in_transaction.execute("INSERT INTO users (id, email) VALUES (2, 'ann@example.com')")


async def test_defaults_fill_ids_created_at_and_description(
    in_transaction: asyncpg.Connection,
) -> None:
    connection = in_transaction

    user_id = await connection.fetchval(
        "INSERT INTO users (email) VALUES ('ann@example.com') RETURNING id",
    )
    await connection.execute("INSERT INTO tasks (user_id, title) VALUES ($1, 'x')", user_id)

    task = await connection.fetchrow("SELECT id, description, created_at, completed_at FROM tasks")
    assert task is not None
    assert task["id"] >= 1
    assert task["description"] == ""
    assert task["created_at"] is not None
    assert task["completed_at"] is None


async def test_table_metadata_matches_what_the_migrations_create(engine: AsyncEngine) -> None:
    def differences(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection)
        return list(compare_metadata(context, metadata))

    async with engine.connect() as connection:
        found = await connection.run_sync(differences)

    assert found == []
