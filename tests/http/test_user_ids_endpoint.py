"""GET user-ids-for-processing over HTTP: pages, the window, and strict query strings."""

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.conftest import AUTH
from tests.data import Seeder, Task, User, at
from tests.http.test_errors_and_methods import USER_IDS, assert_invalid, module_app

WINDOW = "windowStart=2026-12-03T00:00:00Z&windowEnd=2026-12-04T00:00:00Z"
OPEN_SINCE = at("2026-12-01T09:00:00Z")


api = module_app()


async def _seed_eligible(seeder: Seeder, user_ids: list[int], idle_ids: list[int]) -> None:
    """Users in `user_ids` have an open task; those in `idle_ids` have none at all."""
    await seeder.users(User(i, f"user{i}@example.com") for i in sorted(user_ids + idle_ids))
    await seeder.tasks(
        Task(id=n, user_id=i, title=f"task of {i}", created_at=OPEN_SINCE)
        for n, i in enumerate(user_ids, start=1)
    )


async def test_returns_users_to_process_ascending_with_the_window(
    client: AsyncTestClient[Litestar],
    seeder: Seeder,
) -> None:
    await _seed_eligible(seeder, [8, 3, 15], idle_ids=[5])

    response = await client.get(f"{USER_IDS}?{WINDOW}", headers=AUTH)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "userIds": [3, 8, 15],
        "nextAfterId": None,
        "window": {"start": "2026-12-03T00:00:00Z", "end": "2026-12-04T00:00:00Z"},
    }


async def test_next_after_id_is_null_exactly_on_the_last_page(
    client: AsyncTestClient[Litestar],
    seeder: Seeder,
) -> None:
    await _seed_eligible(seeder, [1, 2, 4, 5, 7], idle_ids=[3, 6, 8])

    first = await client.get(f"{USER_IDS}?{WINDOW}&limit=2", headers=AUTH)
    second = await client.get(f"{USER_IDS}?{WINDOW}&limit=2&afterId=2", headers=AUTH)
    last = await client.get(f"{USER_IDS}?{WINDOW}&limit=2&afterId=5", headers=AUTH)

    assert (first.json()["userIds"], first.json()["nextAfterId"]) == ([1, 2], 2)
    assert (second.json()["userIds"], second.json()["nextAfterId"]) == ([4, 5], 5)
    # One ID left, and idle user 8 after it: the page says it is the last.
    assert (last.json()["userIds"], last.json()["nextAfterId"]) == ([7], None)


async def test_a_page_filled_exactly_by_the_last_ids_says_it_is_the_last(
    client: AsyncTestClient[Litestar],
    seeder: Seeder,
) -> None:
    await _seed_eligible(seeder, [1, 2, 3, 4], idle_ids=[])

    response = await client.get(f"{USER_IDS}?{WINDOW}&limit=2&afterId=2", headers=AUTH)

    assert response.json()["userIds"] == [3, 4]
    assert response.json()["nextAfterId"] is None


async def test_walking_pages_by_next_after_id_visits_each_user_once(
    client: AsyncTestClient[Litestar],
    seeder: Seeder,
) -> None:
    eligible = [2, 3, 5, 8, 13, 21, 34]
    await _seed_eligible(seeder, eligible, idle_ids=[1, 4, 6, 7, 40])

    seen: list[int] = []
    after: int | None = 0
    pages = 0
    while after is not None:
        page = (
            await client.get(f"{USER_IDS}?{WINDOW}&limit=3&afterId={after}", headers=AUTH)
        ).json()
        seen.extend(page["userIds"])
        after = page["nextAfterId"]
        pages += 1

    assert seen == eligible
    assert pages == 3


async def test_empty_page_only_when_nothing_follows_after_id(
    client: AsyncTestClient[Litestar],
    seeder: Seeder,
) -> None:
    await _seed_eligible(seeder, [1, 2], idle_ids=[3])

    response = await client.get(f"{USER_IDS}?{WINDOW}&afterId=2", headers=AUTH)

    assert response.json() == {
        "userIds": [],
        "nextAfterId": None,
        "window": {"start": "2026-12-03T00:00:00Z", "end": "2026-12-04T00:00:00Z"},
    }


@pytest.mark.parametrize(
    ("after_id", "expected"),
    [("0", [1, 9223372036854775807]), ("1", [9223372036854775807])],
)
async def test_after_id_zero_starts_from_the_beginning_and_the_largest_id_is_reachable(
    client: AsyncTestClient[Litestar],
    seeder: Seeder,
    after_id: str,
    expected: list[int],
) -> None:
    await _seed_eligible(seeder, [1, 9223372036854775807], idle_ids=[])

    response = await client.get(f"{USER_IDS}?{WINDOW}&afterId={after_id}", headers=AUTH)

    assert response.json()["userIds"] == expected


async def test_after_id_at_the_largest_id_answers_an_empty_last_page(
    client: AsyncTestClient[Litestar],
    seeder: Seeder,
) -> None:
    await _seed_eligible(seeder, [1], idle_ids=[])

    response = await client.get(f"{USER_IDS}?afterId=9223372036854775807", headers=AUTH)

    assert response.status_code == 200, response.text
    assert response.json()["userIds"] == []
    assert response.json()["nextAfterId"] is None


# --- the window ----------------------------------------------------------------------


async def test_window_sent_with_an_encoded_plus_offset_is_echoed_in_utc_with_z(
    client: AsyncTestClient[Litestar],
    seeder: Seeder,
) -> None:
    await _seed_eligible(seeder, [1], idle_ids=[])
    query = "windowStart=2026-12-03T01:00:00%2B01:00&windowEnd=2026-12-04T01:00:00%2B01:00"

    response = await client.get(f"{USER_IDS}?{query}", headers=AUTH)

    assert response.status_code == 200, response.text
    assert response.json()["window"] == {
        "start": "2026-12-03T00:00:00Z",
        "end": "2026-12-04T00:00:00Z",
    }


async def test_window_with_negative_offset_is_echoed_in_utc(
    api: AsyncTestClient[Litestar],
) -> None:
    query = "windowStart=2026-12-02T19:00:00-05:00&windowEnd=2026-12-03T19:00:00-05:00"

    response = await api.get(f"{USER_IDS}?{query}", headers=AUTH)

    assert response.json()["window"] == {
        "start": "2026-12-03T00:00:00Z",
        "end": "2026-12-04T00:00:00Z",
    }


async def test_window_of_exactly_31_days_is_accepted(api: AsyncTestClient[Litestar]) -> None:
    query = "windowStart=2026-11-03T00:00:00Z&windowEnd=2026-12-04T00:00:00Z"

    response = await api.get(f"{USER_IDS}?{query}", headers=AUTH)

    assert response.status_code == 200, response.text


async def test_default_window_is_the_24_hours_before_now(
    api: AsyncTestClient[Litestar],
) -> None:
    response = await api.get(USER_IDS, headers=AUTH)

    window = response.json()["window"]
    assert window["start"].endswith("Z")
    assert window["end"].endswith("Z")
    assert (at(window["end"]) - at(window["start"])).total_seconds() == 24 * 3600


@pytest.mark.parametrize(
    ("query", "field"),
    [
        # A "+" in a query string means a space, so the offset is lost.
        ("windowEnd=2026-12-04T00:00:00+01:00", "windowEnd"),
        ("windowStart=2026-12-03T00:00:00+01:00", "windowStart"),
        ("windowEnd=2026-12-04T00:00:00", "windowEnd"),
        ("windowStart=2026-12-03T00:00:00&windowEnd=2026-12-04T00:00:00Z", "windowStart"),
        ("windowEnd=2026-12-04", "windowEnd"),
        ("windowEnd=tomorrow", "windowEnd"),
        ("windowEnd=", "windowEnd"),
        ("windowEnd=2026-13-01T00:00:00Z", "windowEnd"),
        ("windowEnd=2026-12-04T00:00:00%2B24:00", "windowEnd"),
        ("windowStart=2026-12-04T00:00:00Z&windowEnd=2026-12-04T00:00:00Z", "windowStart"),
        ("windowStart=2026-12-05T00:00:00Z&windowEnd=2026-12-04T00:00:00Z", "windowStart"),
        ("windowStart=2026-11-02T23:59:59Z&windowEnd=2026-12-04T00:00:00Z", "windowStart"),
        ("windowStart=2999-01-01T00:00:00Z", "windowStart"),
    ],
    ids=[
        "unencoded-plus-end",
        "unencoded-plus-start",
        "no-offset",
        "start-without-offset",
        "date-only",
        "words",
        "empty",
        "month-13",
        "offset-24h",
        "start-equals-end",
        "start-after-end",
        "31-days-and-a-second",
        "start-after-default-end",
    ],
)
async def test_bad_window_is_a_400_naming_the_field(
    api: AsyncTestClient[Litestar],
    query: str,
    field: str,
) -> None:
    response = await api.get(f"{USER_IDS}?{query}", headers=AUTH)

    assert_invalid(response, field)


@pytest.mark.parametrize("value", ["1733270400", "1733270400.5", "-5"])
async def test_unix_seconds_are_not_an_rfc_3339_timestamp(
    api: AsyncTestClient[Litestar],
    value: str,
) -> None:
    response = await api.get(f"{USER_IDS}?windowEnd={value}", headers=AUTH)

    assert_invalid(response, "windowEnd")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("windowEnd=0001-01-01T00:00:00Z", "windowEnd"),
        ("windowEnd=9999-12-31T23:59:59-01:00", "windowEnd"),
        (
            "windowStart=0001-01-01T00:00:00%2B01:00&windowEnd=0001-01-01T05:00:00%2B05:00",
            "windowStart",
        ),
    ],
    ids=["default-start-before-year-1", "end-after-year-9999-in-utc", "start-before-year-1"],
)
async def test_window_at_the_edge_of_the_calendar_is_a_400_not_a_500(
    api: AsyncTestClient[Litestar],
    query: str,
    field: str,
) -> None:
    response = await api.get(f"{USER_IDS}?{query}", headers=AUTH)

    assert_invalid(response, field)


# --- limit and afterId ---------------------------------------------------------------


@pytest.mark.parametrize("limit", ["1", "10000"])
async def test_limit_at_its_bounds_is_accepted(
    api: AsyncTestClient[Litestar],
    limit: str,
) -> None:
    response = await api.get(f"{USER_IDS}?limit={limit}", headers=AUTH)

    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=10001", "limit"),
        ("limit=-1", "limit"),
        ("limit=1.0", "limit"),
        ("limit=1e3", "limit"),
        ("limit=%2B5", "limit"),
        ("limit=0x10", "limit"),
        ("limit=", "limit"),
        ("limit", "limit"),
        ("limit=%EF%BC%95", "limit"),
        ("afterId=-1", "afterId"),
        ("afterId=1.5", "afterId"),
        ("afterId=2e3", "afterId"),
        ("afterId=9223372036854775808", "afterId"),
        ("afterId=18446744073709551616", "afterId"),
        ("afterId=19933688932870350000", "afterId"),
        ("afterId=" + "9" * 100, "afterId"),
        ("afterId=one", "afterId"),
    ],
    ids=[
        "limit-0",
        "limit-10001",
        "limit-negative",
        "limit-float",
        "limit-exponent",
        "limit-plus-sign",
        "limit-hex",
        "limit-empty",
        "limit-without-value",
        "limit-fullwidth-digit",
        "after-negative",
        "after-float",
        "after-exponent",
        "after-2-to-the-63",
        "after-2-to-the-64",
        "after-beyond-64-bits",
        "after-100-digits",
        "after-word",
    ],
)
async def test_bad_limit_or_after_id_is_a_400_naming_the_field(
    api: AsyncTestClient[Litestar],
    query: str,
    field: str,
) -> None:
    response = await api.get(f"{USER_IDS}?{query}", headers=AUTH)

    assert_invalid(response, field)


@pytest.mark.parametrize(
    ("query", "expected"),
    [(f"afterId={'0' * 5000}1", [2, 3]), (f"limit={'0' * 5000}1", [1])],
    ids=["after-id", "limit"],
)
async def test_number_padded_with_thousands_of_zeros_reads_as_its_value(
    client: AsyncTestClient[Litestar],
    seeder: Seeder,
    query: str,
    expected: list[int],
) -> None:
    await _seed_eligible(seeder, [1, 2, 3], idle_ids=[])

    response = await client.get(f"{USER_IDS}?{WINDOW}&{query}", headers=AUTH)

    assert response.status_code == 200, response.text
    assert response.json()["userIds"] == expected


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("userIds=1", "userIds"),
        ("LIMIT=5", "LIMIT"),
        ("after_id=5", "after_id"),
        ("limit=5&limit=5", "limit"),
        ("afterId=1&afterId=2", "afterId"),
        ("windowEnd=2026-12-04T00:00:00Z&windowEnd=2026-12-04T00:00:00Z", "windowEnd"),
    ],
    ids=["unknown", "wrong-case", "snake-case", "repeated-limit", "repeated-after", "twice"],
)
async def test_unknown_or_repeated_parameter_is_a_400_naming_it(
    api: AsyncTestClient[Litestar],
    query: str,
    field: str,
) -> None:
    response = await api.get(f"{USER_IDS}?{query}", headers=AUTH)

    assert_invalid(response, field)


async def test_every_unreadable_parameter_is_named_in_one_answer(
    api: AsyncTestClient[Litestar],
) -> None:
    response = await api.get(f"{USER_IDS}?limit=ten&afterId=x&extra=1", headers=AUTH)

    assert_invalid(response, "limit")
    assert_invalid(response, "afterId")
    assert_invalid(response, "extra")
