"""The plans PostgreSQL picks for the two read statements, on tables big enough to matter.

Both statements are promised to probe the two task indexes per user and never read the
whole tasks table (adapters/reports.py, adapters/user_ids.py). The plans are checked as
PostgreSQL plans them with the values bound (a custom plan) and as a generic plan, the
kind a long-lived prepared statement in asyncpg's cache may switch to.
"""

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from adapters.reports import REPORT_SQL
from adapters.user_ids import USER_IDS_SQL
from tests.data import at

START = at("2026-12-03T00:00:00Z")
END = at("2026-12-04T00:00:00Z")
OPEN_INDEX = "ix_tasks_user_id_created_at_open"
COMPLETED_INDEX = "ix_tasks_user_id_completed_at"

# 3,000 users with ten tasks each: a third open, a third completed in the window, a third
# completed days before it; creation times spread over six weeks.
FILL = """
INSERT INTO users (id, email)
SELECT g, 'user' || g || '@example.com' FROM generate_series(1, 3000) AS g;

INSERT INTO tasks (id, user_id, title, created_at, completed_at)
SELECT
    g,
    1 + g % 3000,
    'task ' || g,
    timestamptz '2026-12-03 00:00Z' - (g % 1000) * interval '1 hour',
    CASE g % 3
        WHEN 0 THEN NULL
        WHEN 1 THEN timestamptz '2026-12-03 00:00Z' + (g % 24) * interval '1 hour'
        ELSE timestamptz '2026-12-01 00:00Z' - (g % 500) * interval '1 hour'
    END
FROM generate_series(1, 30000) AS g;

ANALYZE users;
ANALYZE tasks;
"""

EMPTY = "TRUNCATE users, tasks RESTART IDENTITY CASCADE"
REPORT_TYPES = "bigint[], timestamptz, timestamptz, bigint"
USER_IDS_TYPES = "bigint, timestamptz, timestamptz, bigint"
# A batch of 1,000 IDs spread over the users, and the default page (1,000 plus one).
REPORT_ARGS: tuple[Any, ...] = (list(range(1, 3001, 3)), START, END, 5)
USER_IDS_ARGS: tuple[Any, ...] = (0, START, END, 1001)


@pytest.fixture(scope="module")
async def filled(raw_connection: asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    """The tables filled once for this module, and emptied again after it."""
    await raw_connection.execute(EMPTY)
    await raw_connection.execute(FILL)
    yield raw_connection
    await raw_connection.execute(EMPTY)


async def _plan(
    connection: asyncpg.Connection,
    sql: str,
    types: str,
    args: tuple[Any, ...],
    mode: str,
) -> str:
    """The plain EXPLAIN (never ANALYZE) text of `sql` planned in the given mode."""
    if mode == "custom":
        rows = await connection.fetch("EXPLAIN " + sql, *args)
        return "\n".join(row[0] for row in rows)

    # A generic plan is made without the values, so the NULLs below are never looked at.
    await connection.execute(f"PREPARE plan_probe ({types}) AS {sql}")
    try:
        async with connection.transaction():
            await connection.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            rows = await connection.fetch(
                "EXPLAIN EXECUTE plan_probe (NULL, NULL, NULL, NULL)",
            )
    finally:
        await connection.execute("DEALLOCATE plan_probe")
    return "\n".join(row[0] for row in rows)


@pytest.mark.parametrize("mode", ["custom", "generic"])
async def test_report_statement_probes_both_task_indexes_and_never_scans_tasks(
    filled: asyncpg.Connection,
    mode: str,
) -> None:
    plan = await _plan(filled, REPORT_SQL, REPORT_TYPES, REPORT_ARGS, mode)

    assert OPEN_INDEX in plan, plan
    assert COMPLETED_INDEX in plan, plan
    assert "Seq Scan on tasks" not in plan, plan


@pytest.mark.parametrize("mode", ["custom", "generic"])
async def test_user_ids_statement_probes_both_task_indexes_and_never_scans_tasks(
    filled: asyncpg.Connection,
    mode: str,
) -> None:
    plan = await _plan(filled, USER_IDS_SQL, USER_IDS_TYPES, USER_IDS_ARGS, mode)

    assert OPEN_INDEX in plan, plan
    assert COMPLETED_INDEX in plan, plan
    assert "Seq Scan on tasks" not in plan, plan
