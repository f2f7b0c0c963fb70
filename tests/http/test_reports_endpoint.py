"""POST user-task-reports-by-ids over HTTP: the reports, and a strict body."""

import re
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.conftest import AUTH
from tests.data import Seeder, Task, User, at
from tests.http.test_errors_and_methods import (
    REPORTS,
    assert_invalid,
    assert_problem,
    module_app,
    serving,
)
from tests.unit.fakes import FixedClock

WINDOW = {"windowStart": "2026-12-03T00:00:00Z", "windowEnd": "2026-12-04T00:00:00Z"}
MAX_ID = 2**63 - 1
# A JSON number the scheduler once sent: past 2**64, it must never become some other ID.
BEYOND_64_BITS = 19933688932870350000


api = module_app()


def _raw(body: bytes) -> dict[str, Any]:
    return {"content": body, "headers": {**AUTH, "Content-Type": "application/json"}}


async def _seed_two_users(seeder: Seeder) -> None:
    await seeder.users([User(1, "ann@example.com"), User(2, "bob@example.com")])
    await seeder.tasks(
        [
            Task(11, 1, "Renew passport", at("2026-11-20T09:00:00Z")),
            Task(12, 1, "Pay rent", at("2026-11-25T10:00:00Z"), at("2026-12-03T18:20:00Z")),
            Task(21, 2, "Bob's secret plan", at("2026-11-20T09:00:00Z")),
            Task(22, 2, "Bob's done deal", at("2026-11-21T09:00:00Z"), at("2026-12-03T10:00:00Z")),
        ],
    )


async def test_returns_the_report_of_each_requested_user(
    client: AsyncTestClient[Litestar],
    seeder: Seeder,
) -> None:
    await _seed_two_users(seeder)

    response = await client.post(REPORTS, json={"userIds": [1], **WINDOW}, headers=AUTH)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "window": {"start": "2026-12-03T00:00:00Z", "end": "2026-12-04T00:00:00Z"},
        "reports": [
            {
                "userId": 1,
                "email": "ann@example.com",
                "unfinished": {"count": 1, "tasks": [{"id": 11, "title": "Renew passport"}]},
                "completed": {
                    "count": 1,
                    "tasks": [
                        {"id": 12, "title": "Pay rent", "completedAt": "2026-12-03T18:20:00Z"},
                    ],
                },
            },
        ],
        "missingUserIds": [],
    }


async def test_never_answers_with_another_users_tasks(
    client: AsyncTestClient[Litestar],
    seeder: Seeder,
) -> None:
    await _seed_two_users(seeder)

    response = await client.post(REPORTS, json={"userIds": [1, 3], **WINDOW}, headers=AUTH)

    assert [report["userId"] for report in response.json()["reports"]] == [1]
    assert "bob" not in response.text.lower()


async def test_duplicates_are_answered_once_and_unknown_ids_listed_once_ascending(
    client: AsyncTestClient[Litestar],
    seeder: Seeder,
) -> None:
    await _seed_two_users(seeder)
    user_ids = [99, 2, 1, 99, 2, 42, 1, MAX_ID, 42]

    response = await client.post(REPORTS, json={"userIds": user_ids, **WINDOW}, headers=AUTH)

    body = response.json()
    assert [report["userId"] for report in body["reports"]] == [1, 2]
    assert body["missingUserIds"] == [42, 99, MAX_ID]


async def test_user_without_tasks_gets_a_report_with_zero_counts(
    client: AsyncTestClient[Litestar],
    seeder: Seeder,
) -> None:
    await seeder.users([User(5, "chen@example.com")])

    response = await client.post(REPORTS, json={"userIds": [5], **WINDOW}, headers=AUTH)

    assert response.json()["reports"] == [
        {
            "userId": 5,
            "email": "chen@example.com",
            "unfinished": {"count": 0, "tasks": []},
            "completed": {"count": 0, "tasks": []},
        },
    ]


async def test_max_tasks_limits_the_lists_but_not_the_counts(
    client: AsyncTestClient[Litestar],
    seeder: Seeder,
) -> None:
    await seeder.users([User(1, "ann@example.com")])
    await seeder.tasks(
        Task(n, 1, f"open {n}", at(f"2026-11-{n:02d}T09:00:00Z")) for n in range(1, 8)
    )

    zero = await client.post(REPORTS, json={"userIds": [1], "maxTasks": 0, **WINDOW}, headers=AUTH)
    two = await client.post(REPORTS, json={"userIds": [1], "maxTasks": 2, **WINDOW}, headers=AUTH)
    default = await client.post(REPORTS, json={"userIds": [1], **WINDOW}, headers=AUTH)

    assert zero.json()["reports"][0]["unfinished"] == {"count": 7, "tasks": []}
    assert two.json()["reports"][0]["unfinished"]["tasks"] == [
        {"id": 1, "title": "open 1"},
        {"id": 2, "title": "open 2"},
    ]
    assert len(default.json()["reports"][0]["unfinished"]["tasks"]) == 5


async def test_titles_and_emails_come_back_exactly_as_stored(
    client: AsyncTestClient[Litestar],
    seeder: Seeder,
) -> None:
    title = 'Ünïcødé ✓ 𝄞 "quoted" \\ back\tslash\n עברית \u2028 🙂 <script>'
    await seeder.users([User(1, "zoë+tasks@exämple.com")])
    await seeder.tasks([Task(1, 1, title, at("2026-11-20T09:00:00Z"))])

    response = await client.post(REPORTS, json={"userIds": [1], **WINDOW}, headers=AUTH)

    report = response.json()["reports"][0]
    assert report["email"] == "zoë+tasks@exämple.com"
    assert report["unfinished"]["tasks"] == [{"id": 1, "title": title}]


async def test_window_sent_with_offsets_is_echoed_in_utc_with_z(
    api: AsyncTestClient[Litestar],
) -> None:
    window = {"windowStart": "2026-12-03T01:00:00+01:00", "windowEnd": "2026-12-03T19:00:00-05:00"}

    response = await api.post(REPORTS, json={"userIds": [1], **window}, headers=AUTH)

    assert response.json()["window"] == {
        "start": "2026-12-03T00:00:00Z",
        "end": "2026-12-04T00:00:00Z",
    }


async def test_ids_past_2_to_the_53_keep_every_digit(
    client: AsyncTestClient[Litestar],
    seeder: Seeder,
) -> None:
    # 2**53 + 1 is the first integer a float64 cannot hold; its neighbour would win.
    await seeder.users([User(2**53, "even@example.com"), User(2**53 + 1, "odd@example.com")])

    response = await client.post(REPORTS, json={"userIds": [2**53 + 1]}, headers=AUTH)

    assert [r["email"] for r in response.json()["reports"]] == ["odd@example.com"]
    # Every digit is in the text itself, where a client's own JSON parser reads it.
    assert re.search(rf'"userId"\s*:\s*{2**53 + 1}\b', response.text)


async def test_null_optional_fields_mean_absent(
    database_url: str,
    seeder: Seeder,
) -> None:
    await _seed_two_users(seeder)
    clock = FixedClock(at("2026-12-04T00:00:00Z"))
    with_nulls = {"userIds": [1], "windowStart": None, "windowEnd": None, "maxTasks": None}

    async with serving(database_url, clock=clock) as client:
        absent = await client.post(REPORTS, json={"userIds": [1]}, headers=AUTH)
        nulls = await client.post(REPORTS, json=with_nulls, headers=AUTH)

    assert absent.status_code == nulls.status_code == 200
    assert nulls.json() == absent.json()
    assert nulls.json()["window"] == {
        "start": "2026-12-03T00:00:00Z",
        "end": "2026-12-04T00:00:00Z",
    }


async def test_batch_of_1000_distinct_ids_is_accepted(
    api: AsyncTestClient[Litestar],
) -> None:
    response = await api.post(REPORTS, json={"userIds": list(range(1, 1001))}, headers=AUTH)

    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["reports"]) + len(body["missingUserIds"]) == 1000


async def test_window_of_exactly_31_days_is_accepted(api: AsyncTestClient[Litestar]) -> None:
    body = {
        "userIds": [1],
        "windowStart": "2026-11-03T00:00:00Z",
        "windowEnd": "2026-12-04T00:00:00Z",
    }

    response = await api.post(REPORTS, json=body, headers=AUTH)

    assert response.status_code == 200, response.text


# --- IDs that are not positive 64-bit integers ---------------------------------------


@pytest.mark.parametrize(
    "bad_id",
    [BEYOND_64_BITS, 2**64, 2**64 - 1, 2**63, 0, -1, -(2**63), 10**40],
    ids=["beyond-64-bits", "2**64", "2**64-1", "2**63", "zero", "minus-one", "-2**63", "10**40"],
)
async def test_id_outside_1_to_2_63_minus_1_is_a_400_and_no_report(
    client: AsyncTestClient[Litestar],
    seeder: Seeder,
    bad_id: int,
) -> None:
    # Users an ID could wrap around to, were it cut to 64 bits or read as a float.
    wrapped = {bad_id % 2**64, bad_id % 2**63, int(float(bad_id)) % 2**64}
    await seeder.users(
        User(n, f"wrapped{i}@example.com") for i, n in enumerate(sorted(wrapped)) if 0 < n <= MAX_ID
    )

    response = await client.post(REPORTS, json={"userIds": [1, 2, 3, bad_id]}, headers=AUTH)

    assert_invalid(response, "userIds[3]")
    assert "wrapped" not in response.text
    assert "reports" not in response.json()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"userIds":[1.0]}', "userIds[0]"),
        (b'{"userIds":[1.5]}', "userIds[0]"),
        (b'{"userIds":[1e3]}', "userIds[0]"),
        (b'{"userIds":[1E0]}', "userIds[0]"),
        (b'{"userIds":[-0]}', "userIds[0]"),
        (b'{"userIds":["1"]}', "userIds[0]"),
        (b'{"userIds":[true]}', "userIds[0]"),
        (b'{"userIds":[null]}', "userIds[0]"),
        (b'{"userIds":[[1]]}', "userIds[0]"),
        (b'{"userIds":[1,2,3,{"id":4}]}', "userIds[3]"),
        (b'{"userIds":[1' + b"0" * 5000 + b"]}", "userIds[0]"),
    ],
    ids=[
        "float",
        "fraction",
        "exponent",
        "exponent-one",
        "negative-zero",
        "string",
        "boolean",
        "null",
        "nested-array",
        "object",
        "5000-digits",
    ],
)
async def test_id_that_is_not_a_json_integer_is_a_400_naming_its_position(
    api: AsyncTestClient[Litestar],
    body: bytes,
    field: str,
) -> None:
    response = await api.post(REPORTS, **_raw(body))

    assert_invalid(response, field)


# --- the rest of the body --------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"userIds": [1], "userId": 2}, "userId"),
        ({"userIds": [1], "limit": 5}, "limit"),
        ({"user_ids": [1]}, "user_ids"),
        ({"UserIds": [1]}, "UserIds"),
        ({}, "userIds"),
        ({"userIds": None}, "userIds"),
        ({"userIds": []}, "userIds"),
        ({"userIds": list(range(1, 1002))}, "userIds"),
        ({"userIds": 1}, "userIds"),
        ({"userIds": [1], "maxTasks": 51}, "maxTasks"),
        ({"userIds": [1], "maxTasks": -1}, "maxTasks"),
        ({"userIds": [1], "maxTasks": 5.0}, "maxTasks"),
        ({"userIds": [1], "maxTasks": "5"}, "maxTasks"),
        ({"userIds": [1], "maxTasks": True}, "maxTasks"),
        ({"userIds": [1], "windowStart": "2026-12-03T00:00:00"}, "windowStart"),
        ({"userIds": [1], "windowEnd": "2026-12-04T00:00:00"}, "windowEnd"),
        ({"userIds": [1], "windowEnd": "2026-12-04"}, "windowEnd"),
        ({"userIds": [1], "windowEnd": 1733270400}, "windowEnd"),
        ({"userIds": [1], "windowEnd": "1733270400"}, "windowEnd"),
        ({"userIds": [1], "windowEnd": "0001-01-01T00:00:00Z"}, "windowEnd"),
        ({"userIds": [1], "windowEnd": "9999-12-31T23:59:59-01:00"}, "windowEnd"),
        (
            {
                "userIds": [1],
                "windowStart": "2026-12-04T00:00:00Z",
                "windowEnd": "2026-12-04T00:00:00Z",
            },
            "windowStart",
        ),
        (
            {
                "userIds": [1],
                "windowStart": "2026-12-04T00:00:01Z",
                "windowEnd": "2026-12-04T00:00:00Z",
            },
            "windowStart",
        ),
        (
            {
                "userIds": [1],
                "windowStart": "2026-11-02T23:59:59Z",
                "windowEnd": "2026-12-04T00:00:00Z",
            },
            "windowStart",
        ),
    ],
    ids=[
        "unknown-field",
        "limit-is-not-a-field-here",
        "snake-case",
        "wrong-case",
        "no-user-ids",
        "null-user-ids",
        "empty-user-ids",
        "1001-ids",
        "user-ids-not-a-list",
        "max-tasks-51",
        "max-tasks-negative",
        "max-tasks-float",
        "max-tasks-string",
        "max-tasks-boolean",
        "start-without-offset",
        "end-without-offset",
        "date-only",
        "unix-seconds-number",
        "unix-seconds-string",
        "end-at-year-1",
        "end-past-year-9999-in-utc",
        "start-equals-end",
        "start-after-end",
        "31-days-and-a-second",
    ],
)
async def test_bad_body_is_a_400_naming_the_field(
    api: AsyncTestClient[Litestar],
    body: dict[str, Any],
    field: str,
) -> None:
    response = await api.post(REPORTS, json=body, headers=AUTH)

    assert_invalid(response, field)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b'{"userIds":[1],}',
        b"{'userIds':[1]}",
        b'{"userIds":[01]}',
        b'{"userIds":[NaN]}',
        b'{"userIds":[1]} {"userIds":[2]}',
        b'\xef\xbb\xbf{"userIds":[1]}',
        b'{"userIds":[1]\xff\xfe}',
        b'{"userIds":[1]}\x00',
    ],
    ids=[
        "empty",
        "truncated",
        "trailing-comma",
        "single-quotes",
        "leading-zero",
        "nan",
        "two-documents",
        "byte-order-mark",
        "invalid-utf8",
        "nul-after",
    ],
)
async def test_body_that_is_not_one_json_document_is_a_400(
    api: AsyncTestClient[Litestar],
    body: bytes,
) -> None:
    response = await api.post(REPORTS, **_raw(body))

    assert_invalid(response, "body")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"userIds":[1],"windowEnd":"\xff\xfe"}', "windowEnd"),
        (b'{"userIds":[1],"windowEnd":"2026-12-04T00:00:00\\u0000Z"}', "windowEnd"),
        # Not valid JSON text at all: an escaped half of a UTF-16 pair.
        (b'{"userIds":[1],"windowEnd":"2026-12-04T00:00:00Z\\udcff"}', "body"),
    ],
    ids=["invalid-utf8", "escaped-nul", "escaped-lone-surrogate"],
)
async def test_timestamp_with_broken_text_is_a_400(
    api: AsyncTestClient[Litestar],
    body: bytes,
    field: str,
) -> None:
    response = await api.post(REPORTS, **_raw(body))

    assert_invalid(response, field)


@pytest.mark.parametrize(
    "body",
    [b"[1, 2, 3]", b'"userIds"', b"42", b"null", b"true", b'[{"userIds":[1]}]'],
    ids=["array", "string", "number", "null", "boolean", "array-of-object"],
)
async def test_json_that_is_not_an_object_is_a_400(
    api: AsyncTestClient[Litestar],
    body: bytes,
) -> None:
    response = await api.post(REPORTS, **_raw(body))

    body_problem = assert_problem(response, 400)
    assert body_problem["errors"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"userIds":[1],"userIds":[2]}',
        # The same name written with an escape: JSON reads both as "userIds".
        b'{"userIds":[1],"\\u0075serIds":[2]}',
        b'{"userIds":[1],"maxTasks":1,"maxTasks":2}',
    ],
    ids=["plain", "escaped", "optional-field"],
)
async def test_a_name_given_twice_is_a_400_not_the_last_one_winning(
    api: AsyncTestClient[Litestar],
    body: bytes,
) -> None:
    response = await api.post(REPORTS, **_raw(body))

    body_json = assert_problem(response, 400)
    assert [error["message"] for error in body_json["errors"]] == ["is given more than once"]


async def test_a_huge_unknown_field_name_is_not_echoed_in_full(
    api: AsyncTestClient[Litestar],
) -> None:
    name = "x" * 500_000
    body = b'{"userIds":[1],"' + name.encode() + b'":1}'

    response = await api.post(REPORTS, **_raw(body))

    problem = assert_problem(response, 400)
    assert len(response.content) < 2_000
    assert problem["errors"][0]["field"] == "x" * 100 + "…"
