"""One database per scale, `tt_bench_<scale>`: migrated and filled once, then reused.

A marker table written after the data is complete records what was generated (scale,
seed, the pinned "now"); a database without a matching marker is dropped and rebuilt.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from sqlalchemy.engine import make_url

from adapters.database import PoolSettings, create_engine
from adapters.demo_data import generate_demo_data
from adapters.migrations import upgrade
from bench.scales import DATA_NOW, HISTORY_DAYS, Scale

MARKER_TABLE = "bench_dataset"
# Generation and migrations on millions of rows outlive the service's own deadlines.
_MAINTENANCE_POOL = PoolSettings(size=1, statement_timeout_ms=3_600_000)

_CREATE_MARKER_SQL = f"""
CREATE TABLE {MARKER_TABLE} (
    scale text NOT NULL,
    seed double precision NOT NULL,
    data_now timestamptz NOT NULL,
    users bigint NOT NULL,
    tasks_per_user double precision NOT NULL,
    inserted_users bigint NOT NULL,
    inserted_tasks bigint NOT NULL,
    completed_tasks bigint NOT NULL,
    generation_s double precision NOT NULL,
    built_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True, slots=True)
class Dataset:
    url: str
    scale: str
    seed: float
    now: datetime
    users: int
    tasks: int
    completed: int
    generation_s: float
    reused: bool


def database_url(server_url: str, database: str) -> str:
    """The same server, another database."""
    return make_url(server_url).set(database=database).render_as_string(hide_password=False)


async def prepare_dataset(
    server_url: str,
    scale: Scale,
    *,
    seed: float,
    rebuild: bool,
    say: Callable[[str], None],
) -> Dataset:
    url = database_url(server_url, scale.database)
    admin = await asyncpg.connect(server_url)
    try:
        exists = await admin.fetchval(
            "SELECT true FROM pg_database WHERE datname = $1", scale.database
        )
        if exists and not rebuild:
            found = await _read_marker(url, scale, seed)
            if found is not None:
                # A newer migration (an index, say) applies to data that stays valid.
                await _migrate(url)
                say(f"reusing {scale.database} ({found.users} users, {found.tasks} tasks)")
                return found
            say(f"{scale.database} is incomplete or from other settings: rebuilding")
        if exists:
            await admin.execute(f'DROP DATABASE "{scale.database}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{scale.database}"')
    finally:
        await admin.close()

    await _migrate(url)
    return await _generate(url, scale, seed, say)


async def _migrate(url: str) -> None:
    engine = create_engine(url, _MAINTENANCE_POOL)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


async def _generate(
    url: str,
    scale: Scale,
    seed: float,
    say: Callable[[str], None],
) -> Dataset:
    say(f"generating {scale.users} users, about {scale.tasks_per_user:g} tasks each")
    connection = await asyncpg.connect(url)
    try:
        started = time.perf_counter()
        summary = await generate_demo_data(
            connection,
            users=scale.users,
            tasks_per_user=scale.tasks_per_user,
            now=DATA_NOW,
            history_days=HISTORY_DAYS,
            seed=seed,
        )
        generation_s = time.perf_counter() - started
        async with connection.transaction():
            await connection.execute(_CREATE_MARKER_SQL)
            await connection.execute(
                f"""
                INSERT INTO {MARKER_TABLE} (
                    scale, seed, data_now, users, tasks_per_user,
                    inserted_users, inserted_tasks, completed_tasks, generation_s
                ) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                """,
                scale.name,
                seed,
                DATA_NOW,
                scale.users,
                scale.tasks_per_user,
                summary.users,
                summary.tasks,
                summary.completed,
                generation_s,
            )
    finally:
        await connection.close()

    say(f"generated {summary.users} users and {summary.tasks} tasks in {generation_s:.1f} s")
    return Dataset(
        url=url,
        scale=scale.name,
        seed=seed,
        now=DATA_NOW,
        users=summary.users,
        tasks=summary.tasks,
        completed=summary.completed,
        generation_s=generation_s,
        reused=False,
    )


async def _read_marker(url: str, scale: Scale, seed: float) -> Dataset | None:
    connection = await asyncpg.connect(url)
    try:
        if await connection.fetchval("SELECT to_regclass($1)", MARKER_TABLE) is None:
            return None
        row = await connection.fetchrow(
            f"""
            SELECT inserted_users, inserted_tasks, completed_tasks, generation_s
            FROM {MARKER_TABLE}
            WHERE scale = $1 AND seed = $2 AND data_now = $3
              AND users = $4 AND tasks_per_user = $5
            """,
            scale.name,
            seed,
            DATA_NOW,
            scale.users,
            scale.tasks_per_user,
        )
    finally:
        await connection.close()
    if row is None:
        return None
    return Dataset(
        url=url,
        scale=scale.name,
        seed=seed,
        now=DATA_NOW,
        users=row["inserted_users"],
        tasks=row["inserted_tasks"],
        completed=row["completed_tasks"],
        generation_s=row["generation_s"],
        reused=True,
    )
