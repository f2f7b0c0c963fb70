"""The API-key gate in front of everything under /api/v1/internal.

It runs before routing, so a request without a valid key learns nothing: not whether
the path exists, nor which methods it takes, nor what is wrong with its input.
"""

import logging
import math
import re
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.types import ASGIApp, Receive, Scope, Send

from entrypoints.api_keys import KEY_PREFIX, ApiKeyRegistry, key_id_of
from entrypoints.http.problems import send_problem

logger = logging.getLogger(__name__)

INTERNAL_PREFIX = "/api/v1/internal"
API_CLIENT_STATE_KEY = "api_client"
API_KEY_HEADER = b"x-api-key"
WWW_AUTHENTICATE = "ApiKey"
# Visible ASCII, and far longer than any key we mint; anything else is refused unhashed.
_KEY_SHAPE = re.compile(rb"[\x21-\x7e]{1,256}")
_SLASHES = re.compile(r"/{2,}")


def is_internal(path: str) -> bool:
    collapsed = _SLASHES.sub("/", path)
    return collapsed == INTERNAL_PREFIX or collapsed.startswith(INTERNAL_PREFIX + "/")


class FailedAuthLimiter:
    """Counts failed authentications per remote address over a sliding minute."""

    WINDOW_S = 60.0
    _MAX_ADDRESSES = 100_000

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._per_minute = per_minute
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, address: str) -> int | None:
        """Whole seconds until `address` may try again, or None if it may now."""
        failures = self._recent(address)
        if failures is None or len(failures) < self._per_minute:
            return None
        return max(1, math.ceil(failures[0] + self.WINDOW_S - self._clock()))

    def record_failure(self, address: str) -> None:
        failures = self._recent(address)
        if failures is None:
            if len(self._failures) >= self._MAX_ADDRESSES:
                self._forget_oldest()
            failures = self._failures[address] = deque()
        failures.append(self._clock())

    def _recent(self, address: str) -> deque[float] | None:
        failures = self._failures.get(address)
        if failures is None:
            return None
        horizon = self._clock() - self.WINDOW_S
        while failures and failures[0] <= horizon:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return None
        return failures

    def _forget_oldest(self) -> None:
        # Dicts keep insertion order: the first addresses are the ones seen longest ago.
        for address in list(self._failures)[: self._MAX_ADDRESSES // 10]:
            del self._failures[address]


class ApiKeyGate:
    """ASGI middleware: internal paths pass only with exactly one valid X-API-Key header."""

    def __init__(
        self,
        app: ASGIApp,
        registry: Callable[[], ApiKeyRegistry],
        limiter: FailedAuthLimiter,
        on_failure: Callable[[str], None] = lambda reason: None,
    ) -> None:
        self._app = app
        self._registry = registry
        self._limiter = limiter
        self._on_failure = on_failure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or not is_internal(scope["path"]):
            await self._app(scope, receive, send)
            return

        presented = [value for name, value in scope["headers"] if name == API_KEY_HEADER]
        client, reason = self._authenticate(presented)
        if client is not None:
            scope.setdefault("state", {})[API_CLIENT_STATE_KEY] = client
            await self._app(scope, receive, send)
            return

        client_address = scope.get("client")
        address = client_address[0] if client_address else "unknown"
        retry_after = self._limiter.retry_after(address)
        if retry_after is not None:
            self._on_failure("throttled")
            await send_problem(
                scope,
                send,
                429,
                "Too many failed authentications from this address; try again later.",
                [(b"retry-after", str(retry_after).encode())],
            )
            return

        self._limiter.record_failure(address)
        self._on_failure(reason)
        key_id = key_id_of(presented[0]) if len(presented) == 1 else None
        logger.warning(
            "authentication failed",
            extra={
                "reason": reason,
                "key_id": key_id or "-",
                "remote": address,
                "method": scope["method"],
                "path": scope["path"],
            },
        )
        await send_problem(
            scope,
            send,
            401,
            "A valid X-API-Key header is required.",
            [(b"www-authenticate", WWW_AUTHENTICATE.encode())],
        )

    def _authenticate(self, presented: list[bytes]) -> tuple[str | None, str]:
        if not presented:
            return None, "missing"
        if len(presented) > 1:
            return None, "repeated"
        key = presented[0]
        if not _KEY_SHAPE.fullmatch(key):
            return None, "malformed"
        if key.startswith(KEY_PREFIX.encode()) and key_id_of(key) is None:
            return None, "bad-checksum"
        return self._registry().client_for(key, datetime.now(UTC))


async def require_api_client(
    connection: ASGIConnection[Any, Any, Any, Any],
    _: BaseRouteHandler,
) -> None:
    """Guard on the internal router: a second lock in case it is ever mounted without the gate."""
    if not connection.scope.get("state", {}).get(API_CLIENT_STATE_KEY):
        raise NotAuthorizedException(headers={"WWW-Authenticate": WWW_AUTHENTICATE})
