"""The demo data generator against a real PostgreSQL server, one scratch database per test."""

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from adapters.demo_data import DemoDataSummary, generate_demo_data
from tests.conftest import migrated_scratch_database

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


# --- Scratch databases -------------------------------------------------------------------
# Each test gets a database of its own on the tests' server, migrated like the service's.


@asynccontextmanager
async def scratch_database(server_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to a new, migrated database; the database is dropped afterwards."""
    async with migrated_scratch_database(server_url) as url:
        connection = await asyncpg.connect(url)
        try:
            yield connection
        finally:
            await connection.close()


@pytest.fixture
async def database(server_url: str) -> AsyncIterator[asyncpg.Connection]:
    async with scratch_database(server_url) as connection:
        yield connection


# --- Tests ------------------------------------------------------------------------------


async def _fingerprint(connection: asyncpg.Connection) -> str:
    """One hash over every column of every row of both tables, in id order."""
    fingerprint: str = await connection.fetchval(
        """
        SELECT md5(
            (SELECT string_agg(concat_ws('|', id, email, created_at), ',' ORDER BY id)
             FROM users)
            || '#'
            || (SELECT string_agg(
                    concat_ws('|', id, user_id, title, description, created_at, completed_at),
                    ','
                    ORDER BY id
                )
                FROM tasks)
        )
        """
    )
    return fingerprint


@pytest.mark.asyncio
async def test_summary_counts_the_rows_in_the_tables(database: asyncpg.Connection) -> None:
    summary = await generate_demo_data(database, users=2000, now=NOW)

    counted = await database.fetchrow(
        """
        SELECT (SELECT count(*) FROM users) AS users,
               (SELECT count(*) FROM tasks) AS tasks,
               (SELECT count(*) FROM tasks WHERE completed_at IS NOT NULL) AS completed
        """
    )

    assert counted is not None
    assert summary == DemoDataSummary(**counted)
    assert summary.users == 2000


@pytest.mark.asyncio
async def test_second_run_appends_with_unique_emails(database: asyncpg.Connection) -> None:
    first = await generate_demo_data(database, users=1000, now=NOW)

    second = await generate_demo_data(database, users=1000, now=NOW + timedelta(hours=1))
    totals = await database.fetchrow(
        """
        SELECT count(*) AS users,
               count(DISTINCT email) AS emails,
               (SELECT count(*) FROM tasks) AS tasks
        FROM users
        """
    )
    # The identity must have moved past the generated ids, or this insert would collide.
    added_later = await database.fetchval(
        "INSERT INTO users (email) VALUES ('later@example.com') RETURNING id"
    )

    assert totals is not None
    assert totals["users"] == totals["emails"] == 2000
    assert totals["tasks"] == first.tasks + second.tasks
    assert added_later == 2001


@pytest.mark.asyncio
async def test_emails_and_titles_look_real(database: asyncpg.Connection) -> None:
    await generate_demo_data(database, users=2000, now=NOW)

    emails = [row["email"] for row in await database.fetch("SELECT email FROM users")]
    non_ascii_share = await database.fetchval(
        "SELECT avg((title ~ '[^\\x01-\\x7f]')::int)::float8 FROM tasks"
    )

    address = re.compile(r"[a-z_.]+[0-9]+@example\.(com|org|net)")
    assert all(address.fullmatch(email) for email in emails)
    assert 0.01 <= non_ascii_share <= 0.10


@pytest.mark.asyncio
async def test_nothing_happens_after_now_or_before_creation(
    database: asyncpg.Connection,
) -> None:
    await generate_demo_data(database, users=2000, now=NOW, history_days=30)

    bounds = await database.fetchrow(
        """
        SELECT (SELECT max(created_at) FROM users) AS last_signup,
               max(created_at) AS last_created,
               max(completed_at) AS last_completed,
               min(created_at) AS first_created,
               count(*) FILTER (WHERE completed_at < created_at) AS completed_before_created
        FROM tasks
        """
    )

    assert bounds is not None
    assert bounds["last_signup"] <= NOW
    assert bounds["last_created"] <= NOW
    assert bounds["last_completed"] <= NOW
    assert bounds["first_created"] >= NOW - timedelta(days=30)
    assert bounds["completed_before_created"] == 0


@pytest.mark.asyncio
async def test_about_forty_percent_complete_and_a_few_of_them_recently(
    database: asyncpg.Connection,
) -> None:
    await generate_demo_data(database, users=3000, now=NOW)

    shares = await database.fetchrow(
        """
        SELECT avg((completed_at IS NOT NULL)::int)::float8 AS completed,
               (count(*) FILTER (WHERE completed_at > $1::timestamptz - interval '24 hours'))
                   ::float8 / count(completed_at) AS completed_last_day
        FROM tasks
        """,
        NOW,
    )

    assert shares is not None
    assert 0.30 <= shares["completed"] <= 0.50
    # One day of a 60-day history is 1.7 %; later sign-ups make recent days busier.
    assert 0.005 <= shares["completed_last_day"] <= 0.08


@pytest.mark.asyncio
async def test_tasks_per_user_have_a_long_tail(database: asyncpg.Connection) -> None:
    await generate_demo_data(database, users=5000, tasks_per_user=10.0, now=NOW)

    spread = await database.fetchrow(
        """
        SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY task_count) AS median,
               max(task_count) AS most,
               avg(task_count)::float8 AS mean,
               count(*) FILTER (WHERE task_count = 0) AS without_tasks
        FROM (
            SELECT count(t.id) AS task_count
            FROM users u
            LEFT JOIN tasks t ON t.user_id = u.id
            GROUP BY u.id
        ) AS per_user
        """
    )

    assert spread is not None
    assert spread["most"] >= 20 * spread["median"]
    assert 8.0 <= spread["mean"] <= 12.0
    assert spread["without_tasks"] > 0


@pytest.mark.asyncio
async def test_same_seed_gives_the_same_rows(server_url: str) -> None:
    fingerprints = []
    for seed in (0.42, 0.42, -0.5):
        async with scratch_database(server_url) as connection:
            await generate_demo_data(connection, users=1000, now=NOW, seed=seed)
            fingerprints.append(await _fingerprint(connection))

    same_seed, repeated, other_seed = fingerprints

    assert repeated == same_seed
    assert other_seed != same_seed


@pytest.mark.asyncio
async def test_refuses_a_now_without_utc_offset(database: asyncpg.Connection) -> None:
    with pytest.raises(ValueError, match="UTC offset"):
        await generate_demo_data(database, users=10, now=datetime(2025, 3, 1, 12, 0))

    users = await database.fetchval("SELECT count(*) FROM users")

    assert users == 0
