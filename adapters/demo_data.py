"""Realistic users and tasks for the demo and the benchmark, generated inside PostgreSQL.

Every row is drawn by set-based SQL on the server: Python sends a handful of statements,
whatever the scale. All randomness comes from `random()` on the one connection after
`setseed()`, so the same seed on an equally fresh database gives the same rows.
"""

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import product

import asyncpg

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DemoDataSummary:
    users: int
    tasks: int
    completed: int


# E-mail addresses: a first and a last name, the user's id (which keeps them unique
# across repeated runs) and one of the domains reserved for examples (RFC 2606).
FIRST_NAMES = (
    "maria", "jan", "aisha", "wei", "yuki", "oluwaseun", "priya", "mateo", "sofia",
    "liam", "fatima", "kenji", "ingrid", "dmitri", "amara", "lucas", "chloe", "mohammed",
    "ana", "noah", "leila", "hiroshi", "zanele", "emma", "arjun", "camila", "tomasz",
    "nadia", "kwame", "elif", "sven", "mei", "rafael", "olga", "diego", "hana",
)  # fmt: skip
LAST_NAMES = (
    "kowalski", "nguyen", "okafor", "garcia", "mueller", "tanaka", "smith", "ivanova",
    "haddad", "patel", "silva", "johansson", "kim", "mensah", "rossi", "dubois", "yilmaz",
    "novak", "chen", "martinez", "adeyemi", "sato", "fischer", "hansen", "khan", "lopez",
    "petrov", "zhang", "bianchi", "kovacs", "andersen", "dlamini", "santos", "oconnor",
    "nakamura", "schmidt",
)  # fmt: skip
EMAIL_DOMAINS = ("example.com", "example.org", "example.net")

# Titles are a verb and an object from the same group, so every pairing makes sense.
_TITLE_GROUPS = (
    (
        ("Renew", "Find", "Make a copy of"),
        ("passport", "driving licence", "ID card", "residence permit", "parking permit"),
    ),
    (
        ("Book", "Reschedule", "Confirm", "Cancel"),
        (
            "dentist appointment", "haircut", "car service", "eye test",
            "vet visit for Luna", "parent-teacher meeting", "physio session",
            "table for Friday dinner",
        ),
    ),
    (
        ("Call", "Email", "Message"),
        (
            "plumber about the leak", "landlord about the heating",
            "Grandma about Sunday lunch", "the school about the field trip",
            "the electrician for a quote", "Zoe about the carpool",
            "the accountant about receipts", "the insurer about the claim",
        ),
    ),
    (
        ("Review", "Draft", "Update", "Finish", "Share"),
        (
            "Q3 budget", "onboarding checklist", "release notes", "team roadmap",
            "slides for Monday", "quarterly report", "hiring plan", "incident postmortem",
            "project proposal",
        ),
    ),
    (
        ("Buy", "Pick up", "Order"),
        (
            "groceries", "birthday present for Sam", "printer ink", "new running shoes",
            "flowers for Mum", "cat food", "batteries for the smoke alarm",
            "croissants from the café",
        ),
    ),
    (
        ("Fix", "Clean", "Check"),
        (
            "bathroom tap", "gutters", "bike brakes", "oven", "garage door",
            "washing machine filter", "smoke alarm",
        ),
    ),
    (
        ("Pay", "Double-check"),
        (
            "electricity bill", "phone bill", "water bill", "parking fine",
            "invoice from the roofer", "nursery fees",
        ),
    ),
    (
        ("Plan", "Book flights for", "Pack for"),
        (
            "the Lisbon trip", "the Kraków weekend", "summer holiday", "Mia's wedding",
            "the conference in Berlin",
        ),
    ),
)  # fmt: skip
TASK_TITLES = tuple(
    f"{verb} {thing}" for verbs, things in _TITLE_GROUPS for verb, thing in product(verbs, things)
)

# A few titles are written in another language, a few more carry a non-ASCII ending,
# and some run long: text the reports must carry through untouched.
FOREIGN_TITLES = (
    "Позвонить маме", "Купить билеты на поезд", "Llamar al fontanero",
    "Arzttermin vereinbaren", "Réserver le restaurant", "歯医者の予約をする",
    "Zadzwonić do hydraulika", "Ödevleri kontrol et",
)  # fmt: skip
TITLE_ENDINGS = (
    " 🎉", " ☕", " (срочно)", " für Oma", " avant vendredi", " — ask Zoë first",
    " ✅ almost there", " para el lunes",
)  # fmt: skip
TITLE_ASIDES = (
    " and check whether the warranty still covers it, otherwise get two quotes first",
    " before the end of the month, because the reminder letter said so twice already",
    " (the one we talked about at the last team meeting, not the old draft from spring)",
)
FOREIGN_TITLE_SHARE = 0.01
ENDING_SHARE = 0.025
ASIDE_SHARE = 0.015

DESCRIPTIONS = (
    "Before the end of the month.", "Receipt is in the blue folder.",
    "See the email from Tuesday.", "Needs the old contract number.", "Ask Sam first.",
    "Second reminder.", "Bring the spare key.", "Costs about 40 EUR.", "Not urgent.",
    "Call after 5 pm.",
)  # fmt: skip
DESCRIBED_SHARE = 0.35

# Tasks per user follow a Lomax (Pareto II) law scaled by how long the user has been
# active, rounded at random so the mean survives rounding. A shape above 2 keeps the
# variance finite, so the mean settles at demo scale, and still gives 1M users a tail
# into the thousands. The cap only trims draws too rare to move the mean.
TAIL_SHAPE = 2.2
MAX_TASKS_PER_USER = 20_000

# Users sign up evenly over twice the history, so half were active throughout it and
# the rest for part of it; on average a user is active for 3/4 of the history.
SIGNUP_SPAN_IN_HISTORIES = 2.0
MEAN_ACTIVE_SHARE = 0.75

# Each user completes a share of their tasks drawn evenly from this range (mean 40 %).
COMPLETION_RATE_RANGE = (0.2, 0.6)
# The wait from creating a task to completing it is exponential with this mean.
MEAN_WAIT = timedelta(days=2)

# Staging the per-user draws lets both inserts read them and makes the totals a sum.
_CREATE_PLAN_SQL = """
CREATE TEMPORARY TABLE demo_user_plan (
    user_id bigint NOT NULL,
    email text NOT NULL,
    created_at timestamptz NOT NULL,
    active_seconds double precision NOT NULL,
    task_count integer NOT NULL,
    completed_count integer NOT NULL
) ON COMMIT DROP
"""

# $1 users, $2 now, $3 history and $4 signup span in seconds, $5 Lomax scale, $6 Lomax
# shape, $7 task cap, $8 first names, $9 last names, $10 domains, $11 lowest and $12
# highest completion rate, $13 the sequence behind users.id.
#
# The ids come from the identity sequence, as the column default would take them, so
# they can go into the e-mail and later inserts by anyone else cannot collide with them.
# The sequence is looked up once beforehand: pg_get_serial_sequence() per row would cost
# more than all the other draws together.
#
# `draws` is not merged into the outer queries because it calls volatile functions: each
# draw is taken once per user, in the order of generate_series.
_FILL_PLAN_SQL = """
INSERT INTO demo_user_plan
SELECT
    user_id,
    email,
    created_at,
    active_seconds,
    task_count,
    floor(task_count * completion_rate + completion_rounding)
FROM (
    SELECT
        user_id,
        CASE
            WHEN address_style < 0.6 THEN first_name || '.' || last_name
            WHEN address_style < 0.85 THEN first_name || '_' || last_name
            ELSE left(first_name, 1) || last_name
        END || user_id || '@' || domain AS email,
        $2::timestamptz - age_seconds * interval '1 second' AS created_at,
        least(age_seconds, $3) AS active_seconds,
        least(
            $7::integer,
            floor(
                $5 * (tail_draw ^ (-1 / $6::float8) - 1) * least(age_seconds, $3) / $3
                + count_rounding
            )
        ) AS task_count,
        completion_rate,
        completion_rounding
    FROM (
        SELECT
            nextval($13::regclass) AS user_id,
            ($8::text[])[1 + floor(random() * cardinality($8::text[]))::int] AS first_name,
            ($9::text[])[1 + floor(random() * cardinality($9::text[]))::int] AS last_name,
            ($10::text[])[1 + floor(random() * cardinality($10::text[]))::int] AS domain,
            random() AS address_style,
            random() * $4 AS age_seconds,
            -- In (0, 1], so its negative power stays finite.
            1 - random() AS tail_draw,
            random() AS count_rounding,
            $11::float8 + ($12::float8 - $11::float8) * random() AS completion_rate,
            random() AS completion_rounding
        FROM generate_series(1, $1)
    ) AS draws
) AS counted
"""

_INSERT_USERS_SQL = """
INSERT INTO users (id, email, created_at)
SELECT user_id, email, created_at
FROM demo_user_plan
"""

# $1 now, $2 mean wait in seconds, $3 titles, $4 foreign titles, $5 title endings,
# $6 title asides, $7 descriptions, $8..$10 shares of foreign, ending and aside titles,
# $11 share of tasks with a description.
#
# A user's first `completed_count` tasks are the completed ones. For those, `age_seconds`
# says when the task was completed, evenly over the user's active time, and the wait
# back to its creation is exponential, truncated so that creation stays within that
# time (the inverse of the truncated distribution function; its exponent is clamped
# because exp() raises an underflow error below about -745). For an open task
# `age_seconds` says when it was created.
#
# The plan is read in the order it was written, since a temporary table never joins a
# synchronized scan, so every task gets the same draws on every run. Tasks are written
# user after user, which keeps the inserts into the indexes on (user_id, ...) together.
_INSERT_TASKS_SQL = """
INSERT INTO tasks (user_id, title, description, created_at, completed_at)
SELECT
    user_id,
    CASE
        WHEN title_style < $8::float8
            THEN ($4::text[])[1 + floor(random() * cardinality($4::text[]))::int]
        WHEN title_style < $8::float8 + $9::float8
            THEN base_title || ($5::text[])[1 + floor(random() * cardinality($5::text[]))::int]
        WHEN title_style < $8::float8 + $9::float8 + $10::float8
            THEN base_title || ($6::text[])[1 + floor(random() * cardinality($6::text[]))::int]
        ELSE base_title
    END,
    CASE
        WHEN description_style < $11
            THEN ($7::text[])[1 + floor(random() * cardinality($7::text[]))::int]
        ELSE ''
    END,
    $1::timestamptz - (age_seconds + coalesce(wait_seconds, 0)) * interval '1 second',
    CASE
        WHEN wait_seconds IS NOT NULL THEN $1::timestamptz - age_seconds * interval '1 second'
    END
FROM (
    SELECT
        user_id,
        base_title,
        title_style,
        description_style,
        age_seconds,
        -$2::float8 * ln(
            1 - wait_draw * (1 - exp(greatest((age_seconds - active_seconds) / $2, -700)))
        ) AS wait_seconds
    FROM (
        SELECT
            plan.user_id,
            plan.active_seconds,
            ($3::text[])[1 + floor(random() * cardinality($3::text[]))::int] AS base_title,
            random() AS title_style,
            random() AS description_style,
            random() * plan.active_seconds AS age_seconds,
            CASE WHEN task_number <= plan.completed_count THEN random() END AS wait_draw
        FROM demo_user_plan AS plan
        CROSS JOIN LATERAL generate_series(1, plan.task_count) AS task_number
    ) AS draws
) AS waits
"""


async def generate_demo_data(
    connection: asyncpg.Connection,
    *,
    users: int,
    tasks_per_user: float = 10.0,
    now: datetime,
    history_days: int = 60,
    seed: float = 0.42,
) -> DemoDataSummary:
    """Append `users` users and about `tasks_per_user` tasks each, all dated before `now`."""
    if users < 0:
        raise ValueError("users must not be negative")
    if tasks_per_user < 0:
        raise ValueError("tasks_per_user must not be negative")
    if history_days < 1:
        raise ValueError("history_days must be at least 1")
    if now.utcoffset() is None:
        raise ValueError("now must carry a UTC offset")
    if not -1.0 <= seed <= 1.0:
        raise ValueError("seed must be between -1 and 1, as setseed() requires")
    if connection.is_in_transaction():
        raise ValueError("the connection must not be in a transaction: VACUUM runs after it")

    logger.info("demo data started users=%d tasks_per_user=%s", users, tasks_per_user)
    started = time.perf_counter()
    async with _without_statement_timeout(connection):
        async with connection.transaction():
            await connection.execute("SELECT setseed($1)", seed)
            summary = await _insert_rows(
                connection,
                users=users,
                tasks_per_user=tasks_per_user,
                now=now,
                history_seconds=history_days * 86_400.0,
            )
        # Outside the transaction, as VACUUM must be: it sets the visibility map, without
        # which the report's index-only scans would visit the heap for every entry.
        await connection.execute("VACUUM (ANALYZE) users, tasks")

    logger.info(
        "demo data loaded users=%d tasks=%d completed=%d duration_s=%.1f",
        summary.users,
        summary.tasks,
        summary.completed,
        time.perf_counter() - started,
    )
    return summary


async def _insert_rows(
    connection: asyncpg.Connection,
    *,
    users: int,
    tasks_per_user: float,
    now: datetime,
    history_seconds: float,
) -> DemoDataSummary:
    """Stage the per-user draws, then write users and tasks from them; in a transaction."""
    # The Lomax mean is scale / (shape - 1); the active share scales every user's count.
    tail_scale = tasks_per_user * (TAIL_SHAPE - 1) / MEAN_ACTIVE_SHARE
    await connection.execute(_CREATE_PLAN_SQL)
    user_sequence = await connection.fetchval("SELECT pg_get_serial_sequence('users', 'id')")
    await connection.execute(
        _FILL_PLAN_SQL,
        users,
        now,
        history_seconds,
        history_seconds * SIGNUP_SPAN_IN_HISTORIES,
        tail_scale,
        TAIL_SHAPE,
        MAX_TASKS_PER_USER,
        FIRST_NAMES,
        LAST_NAMES,
        EMAIL_DOMAINS,
        *COMPLETION_RATE_RANGE,
        user_sequence,
    )

    user_status = await connection.execute(_INSERT_USERS_SQL)
    task_status = await connection.execute(
        _INSERT_TASKS_SQL,
        now,
        MEAN_WAIT.total_seconds(),
        TASK_TITLES,
        FOREIGN_TITLES,
        TITLE_ENDINGS,
        TITLE_ASIDES,
        DESCRIPTIONS,
        FOREIGN_TITLE_SHARE,
        ENDING_SHARE,
        ASIDE_SHARE,
        DESCRIBED_SHARE,
    )
    # Exactly the first `completed_count` tasks of each user were written as completed.
    completed: int = await connection.fetchval(
        "SELECT coalesce(sum(completed_count), 0) FROM demo_user_plan"
    )

    return DemoDataSummary(
        users=_row_count(user_status),
        tasks=_row_count(task_status),
        completed=completed,
    )


@asynccontextmanager
async def _without_statement_timeout(connection: asyncpg.Connection) -> AsyncIterator[None]:
    """Lift the session's statement deadline for a while, then put back what was there.

    A bulk load and its VACUUM outlive any deadline meant for the service's own queries.
    """
    deadline = await connection.fetchval("SELECT current_setting('statement_timeout')")
    await connection.execute("SET statement_timeout = 0")
    try:
        yield
    finally:
        if not connection.is_closed():
            await connection.execute(
                "SELECT set_config('statement_timeout', $1, false)",
                deadline,
            )


def _row_count(status: str) -> int:
    """The row count at the end of a command tag such as `INSERT 0 1000`."""
    return int(status.rsplit(" ", 1)[-1])
