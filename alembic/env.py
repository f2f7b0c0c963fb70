"""Runs migrations on the connection `task-tracker migrate` hands in, or on its own."""

import asyncio
import os

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from adapters.database import asyncpg_url
from adapters.tables import metadata


def run_on(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()


async def run_standalone(url: str) -> None:
    engine = create_async_engine(asyncpg_url(url))
    async with engine.connect() as connection:
        await connection.run_sync(run_on)
        await connection.commit()
    await engine.dispose()


given = context.config.attributes.get("connection")
if isinstance(given, Connection):
    run_on(given)
elif context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; give a database URL")
else:
    # Only reached from the plain `alembic` command; the service never reads os.environ here.
    asyncio.run(run_standalone(os.environ["TASK_TRACKER_DATABASE_URL"]))
