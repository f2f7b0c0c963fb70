"""The API-key gate: nothing under /api/v1/internal answers, or leaks, without a valid key."""

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from entrypoints.api_keys import new_api_key
from tests.conftest import API_KEY, AUTH
from tests.data import Seeder, Task, User, at
from tests.http.test_errors_and_methods import (
    REPORTS,
    USER_IDS,
    assert_problem,
    exchange,
    module_app,
    serving,
)

UNKNOWN_INTERNAL = "/api/v1/internal/scheduler/no-such-route"


api = module_app()


def _assert_refused(response: httpx.Response) -> None:
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "ApiKey"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-API-Key": ""},
        {"X-API-Key": "wrong"},
        # Well formed, checksum and all, but never configured.
        {"X-API-Key": new_api_key()},
        # The right key with its last character changed fails the checksum.
        {"X-API-Key": API_KEY[:-1] + ("a" if API_KEY[-1] != "a" else "b")},
        {"X-API-Key": API_KEY.upper()},
        {"X-API-Key": API_KEY[:-1]},
        {"X-API-Key": API_KEY + "x"},
        {"X-API-Key": "k" * 100_000},
        {"Authorization": f"ApiKey {API_KEY}"},
        {"Authorization": f"Bearer {API_KEY}"},
        {"X-Api-Key-": API_KEY},
    ],
    ids=[
        "no-key",
        "empty-key",
        "wrong-key",
        "unknown-well-formed-key",
        "bad-checksum",
        "upper-cased-key",
        "truncated-key",
        "extended-key",
        "100k-character-key",
        "authorization-apikey",
        "authorization-bearer",
        "misspelled-header",
    ],
)
@pytest.mark.parametrize(("method", "path"), [("GET", USER_IDS), ("POST", REPORTS)])
async def test_returns_401_without_a_valid_api_key(
    api: AsyncTestClient[Litestar],
    headers: dict[str, str],
    method: str,
    path: str,
) -> None:
    response = await api.request(method, path, headers=headers, json={"userIds": [1]})

    _assert_refused(response)


@pytest.mark.parametrize(
    "value",
    ["ключ".encode(), "caf\u00e9".encode("latin-1"), API_KEY.encode() + b"\xff", b"\x00"],
    ids=["utf8", "latin1", "key-and-a-high-byte", "nul"],
)
async def test_returns_401_for_a_key_that_is_not_ascii(
    api: AsyncTestClient[Litestar],
    value: bytes,
) -> None:
    response = await api.get(USER_IDS, headers=[(b"x-api-key", value)])

    _assert_refused(response)


@pytest.mark.parametrize("name", ["X-API-Key", "x-api-key", "api_key", "apiKey", "key"])
async def test_returns_401_for_a_key_only_in_the_query_string(
    api: AsyncTestClient[Litestar],
    name: str,
) -> None:
    response = await api.get(USER_IDS, params={name: API_KEY})

    _assert_refused(response)


async def test_returns_401_for_two_x_api_key_headers_even_if_both_are_valid(
    api: AsyncTestClient[Litestar],
) -> None:
    key = (b"x-api-key", API_KEY.encode())

    answer = await exchange(api, "GET", USER_IDS, [key, key])

    assert answer.status == 401
    assert answer.header("www-authenticate") == "ApiKey"
    assert b"userIds" not in answer.body


async def test_returns_401_for_a_valid_and_a_wrong_x_api_key_header(
    api: AsyncTestClient[Litestar],
) -> None:
    headers = [(b"x-api-key", b"wrong"), (b"x-api-key", API_KEY.encode())]

    answer = await exchange(api, "GET", USER_IDS, headers)

    assert answer.status == 401


async def test_valid_key_in_header_lets_the_request_through(
    api: AsyncTestClient[Litestar],
) -> None:
    response = await api.get(USER_IDS, headers=AUTH)

    assert response.status_code == 200, response.text


# --- nothing about routes or input leaks without a key --------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status_with_key"),
    [
        ("GET", UNKNOWN_INTERNAL, 404),
        ("GET", "/api/v1/internal", 404),
        ("GET", "/api/v1/internal/", 404),
        ("GET", "/api/v1/internal/scheduler/user-ids-for-processing/extra", 404),
        ("POST", UNKNOWN_INTERNAL, 404),
        ("DELETE", USER_IDS, 405),
        ("POST", USER_IDS, 405),
        ("GET", REPORTS, 405),
        ("PUT", REPORTS, 405),
        ("GET", USER_IDS + "?limit=0", 400),
        ("GET", USER_IDS + "?nonsense=1", 400),
    ],
)
async def test_without_key_answer_is_401_whatever_else_is_wrong(
    api: AsyncTestClient[Litestar],
    method: str,
    path: str,
    status_with_key: int,
) -> None:
    without_key = await api.request(method, path)
    with_key = await api.request(method, path, headers=AUTH)

    _assert_refused(without_key)
    assert "allow" not in without_key.headers
    assert with_key.status_code == status_with_key


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"{", "application/json"),
        (b'{"userIds":[1]}', "text/plain"),
        (b'{"userIds":[1]}' + b" " * (1024 * 1024), "application/json"),
    ],
    ids=["invalid-json", "wrong-media-type", "too-large"],
)
async def test_without_key_a_bad_body_is_401_not_400_415_or_413(
    api: AsyncTestClient[Litestar],
    content: bytes,
    content_type: str,
) -> None:
    response = await api.post(REPORTS, content=content, headers={"Content-Type": content_type})

    _assert_refused(response)


async def test_refusal_is_the_same_for_real_and_unknown_internal_paths(
    api: AsyncTestClient[Litestar],
) -> None:
    real = await api.get(USER_IDS)
    unknown = await api.get(UNKNOWN_INTERNAL)

    assert real.status_code == unknown.status_code == 401
    assert real.content == unknown.content
    ignored = {"x-request-id"}
    assert {k: v for k, v in real.headers.items() if k not in ignored} == {
        k: v for k, v in unknown.headers.items() if k not in ignored
    }


@pytest.mark.parametrize("method", ["OPTIONS", "HEAD"])
@pytest.mark.parametrize("path", [USER_IDS, REPORTS, UNKNOWN_INTERNAL])
async def test_options_and_head_without_key_are_401_with_no_data(
    client: AsyncTestClient[Litestar],
    seeder: Seeder,
    method: str,
    path: str,
) -> None:
    await seeder.users([User(1, "ann@example.com")])
    await seeder.tasks([Task(1, 1, "Renew passport", at("2026-12-01T00:00:00Z"))])

    answer = await exchange(client, method, path)

    assert answer.status == 401
    assert answer.header("www-authenticate") == "ApiKey"
    assert answer.header("allow") is None
    assert b"ann@example.com" not in answer.body
    if method == "HEAD":
        assert answer.body == b""


@pytest.mark.parametrize(
    "path",
    [
        "//api/v1/internal/scheduler/user-ids-for-processing",
        "/api/v1//internal/scheduler/user-ids-for-processing",
        "/api/v1/internal//scheduler/user-ids-for-processing",
        "/api/v1/internal/scheduler/user-ids-for-processing/",
        "//api//v1//internal//no-such-route",
    ],
)
async def test_slashes_doubled_or_trailing_do_not_get_past_the_gate(
    client: AsyncTestClient[Litestar],
    seeder: Seeder,
    path: str,
) -> None:
    await seeder.users([User(1, "ann@example.com")])
    await seeder.tasks([Task(1, 1, "Renew passport", at("2026-12-01T00:00:00Z"))])

    # Raw ASGI: an HTTP client would read a leading "//" as the start of a host name.
    answer = await exchange(client, "GET", path)

    assert answer.status == 401
    assert b"userIds" not in answer.body


# --- throttling repeated failures --------------------------------------------------------


async def test_more_than_n_failures_a_minute_get_429_while_a_valid_key_still_passes(
    database_url: str,
    seeder: Seeder,
) -> None:
    async with serving(database_url, auth_failures_per_minute=3) as client:
        failures = [await client.get(USER_IDS, headers={"X-API-Key": "wrong"}) for _ in range(3)]
        throttled = await client.get(USER_IDS, headers={"X-API-Key": "wrong"})
        throttled_unknown_path = await client.get(UNKNOWN_INTERNAL)
        with_key = await client.get(USER_IDS, headers=AUTH)
        health = await client.get("/health/live")

    for response in failures:
        _assert_refused(response)
    for response in (throttled, throttled_unknown_path):
        assert_problem(response, 429)
        assert 1 <= int(response.headers["retry-after"]) <= 60
    assert with_key.status_code == 200, with_key.text
    assert health.status_code == 200


async def test_valid_requests_do_not_count_towards_the_failure_limit(
    database_url: str,
    seeder: Seeder,
) -> None:
    async with serving(database_url, auth_failures_per_minute=2) as client:
        for _ in range(5):
            await client.get(USER_IDS, headers=AUTH)
        first_failure = await client.get(USER_IDS)
        second_failure = await client.get(USER_IDS)
        third = await client.get(USER_IDS)

    _assert_refused(first_failure)
    _assert_refused(second_failure)
    assert_problem(third, 429)
