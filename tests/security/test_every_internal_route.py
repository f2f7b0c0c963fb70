"""Every internal route, every method, every kind of bad key: 401, and no database work.

The routes are the ones the app itself registers, so a route added later is covered
without touching this file. The app's database is an address where nothing listens: a
request that got as far as the database would answer 503, never 401.
"""

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from entrypoints.api_keys import ApiKeyEntry, digest_of, new_api_key
from entrypoints.bootstrap import build_app
from entrypoints.http.authentication import INTERNAL_PREFIX
from tests.conftest import API_KEY, app_settings
from tests.http.test_errors_and_methods import (
    PROBLEM_JSON,
    REPORTS,
    USER_IDS,
    Exchange,
    exchange,
)

# Nothing listens on port 1 of the loopback address: connecting is refused at once.
UNREACHABLE_URL = "postgresql://postgres@127.0.0.1:1/nowhere"
EXPIRED_KEY = new_api_key()
YESTERDAY = datetime.now(UTC) - timedelta(days=1)
SETTINGS = app_settings(
    UNREACHABLE_URL,
    api_keys=(
        ApiKeyEntry("tests", digest_of(API_KEY)),
        ApiKeyEntry("tests", digest_of(EXPIRED_KEY), expires_at=YESTERDAY),
    ),
    # With the docs on, the app registers every route it can have.
    docs_enabled=True,
)
APP = build_app(SETTINGS, UNREACHABLE_URL)

# The methods of HTTP that a client may send, and one that no route will ever take.
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE", "PURGE")
_PATH_PARAMETER = re.compile(r"\{[^}]+\}")
# A valid body with every request, so that one let through would go on to the database.
BODY = b'{"userIds":[1]}'


def _key(value: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"x-api-key", value)]


_WRONG_CHECKSUM = API_KEY[:-1] + ("a" if API_KEY[-1] != "a" else "b")
BAD_KEYS: dict[str, list[tuple[bytes, bytes]]] = {
    "missing": [],
    "empty": _key(b""),
    "malformed": _key(b"not a key at all"),
    "non-ascii": _key(API_KEY.encode()[:-1] + b"\xe9"),
    "wrong-checksum": _key(_WRONG_CHECKSUM.encode()),
    "unknown": _key(new_api_key().encode()),
    "expired": _key(EXPIRED_KEY.encode()),
    # As an ASGI server could pass them on; an HTTP parser would strip the spaces itself.
    "space-padded": _key(b" " + API_KEY.encode() + b" "),
    "repeated": _key(API_KEY.encode()) * 2,
    "in-authorization": [(b"authorization", b"Bearer " + API_KEY.encode())],
}


def _internal_routes(app: Litestar) -> list[tuple[str, frozenset[str]]]:
    """(a path to request, the methods its handlers take) for each internal route."""
    routes = []
    for route in app.routes:
        if route.path == INTERNAL_PREFIX or route.path.startswith(INTERNAL_PREFIX + "/"):
            # Any value stands in for a path parameter: the gate must refuse before routing.
            path = _PATH_PARAMETER.sub("1", route.path)
            routes.append((path, frozenset(getattr(route, "methods", ()))))
    return routes


INTERNAL_ROUTES = _internal_routes(APP)
CASES = [
    pytest.param(path, method, kind, id=f"{method} {path} {kind}")
    for path, own_methods in INTERNAL_ROUTES
    for method in sorted(set(METHODS) | own_methods)
    for kind in BAD_KEYS
]


@pytest.fixture(scope="module")
async def api() -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(APP) as client:
        yield client


@pytest.fixture(scope="module")
async def refusal(api: AsyncTestClient[Litestar]) -> Exchange:
    """The answer to a plain GET without a key; every refusal must be this, byte for byte."""
    return await exchange(api, "GET", INTERNAL_PREFIX + "/no-such-route")


@pytest.fixture(scope="module")
async def without_docs() -> AsyncIterator[AsyncTestClient[Litestar]]:
    """The app as configured by default, with the docs off."""
    async with AsyncTestClient(build_app(app_settings(UNREACHABLE_URL), UNREACHABLE_URL)) as client:
        yield client


def _request_headers(kind: str) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", b"application/json"), *BAD_KEYS[kind]]


def test_routes_are_found_in_the_app_and_include_both_scheduler_routes() -> None:
    paths = {path for path, _ in INTERNAL_ROUTES}

    assert {USER_IDS, REPORTS} <= paths
    assert len(CASES) >= len(paths) * len(METHODS) * len(BAD_KEYS)


def test_refusal_is_a_401_problem_with_www_authenticate(refusal: Exchange) -> None:
    problem: dict[str, Any] = msgspec.json.decode(refusal.body)

    assert refusal.status == 401
    assert refusal.header("www-authenticate") == "ApiKey"
    assert refusal.header("content-type") == PROBLEM_JSON
    assert problem["status"] == 401
    assert all(isinstance(problem[name], str) and problem[name] for name in ("type", "title"))
    assert problem["detail"] == "A valid X-API-Key header is required."


@pytest.mark.parametrize(("method", "path"), [("GET", USER_IDS), ("POST", REPORTS)])
async def test_with_a_valid_key_the_unreachable_database_answers_503(
    api: AsyncTestClient[Litestar],
    method: str,
    path: str,
) -> None:
    headers = [(b"content-type", b"application/json"), *_key(API_KEY.encode())]

    answer = await exchange(api, method, path, headers, [BODY])

    assert answer.status == 503, "the check below relies on a 503 from any database work"


@pytest.mark.parametrize(("path", "method", "kind"), CASES)
async def test_without_a_valid_key_every_route_and_method_answers_the_same_401(
    api: AsyncTestClient[Litestar],
    refusal: Exchange,
    path: str,
    method: str,
    kind: str,
) -> None:
    answer = await exchange(api, method, path, _request_headers(kind), [BODY])

    assert answer.status == 401, answer.body
    assert answer.header("www-authenticate") == "ApiKey"
    assert answer.header("content-type") == PROBLEM_JSON
    assert answer.header("allow") is None
    assert answer.header("cache-control") == "no-store"
    assert answer.header("access-control-allow-origin") is None
    assert answer.body == (b"" if method == "HEAD" else refusal.body)


@pytest.mark.parametrize("path", ["/schema", "/schema/openapi.json", "/schema/swagger"])
async def test_docs_are_not_served_unless_enabled(
    without_docs: AsyncTestClient[Litestar],
    path: str,
) -> None:
    response = await without_docs.get(path)

    assert response.status_code == 404
    assert not [route.path for route in without_docs.app.routes if route.path.startswith("/schema")]
