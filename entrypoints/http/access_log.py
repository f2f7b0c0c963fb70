"""One log line per request, a request id on every response, and headers every answer carries."""

import logging
import re
import time
import uuid

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from entrypoints.http.authentication import API_CLIENT_STATE_KEY
from entrypoints.http.lifetime import STATUS_STATE_KEY
from entrypoints.http.metrics import Metrics, track_database_time

logger = logging.getLogger("task_tracker.access")

REQUEST_ID_HEADER = b"x-request-id"
REQUEST_ID_STATE_KEY = "request_id"
# Handlers put what the person on call wants to see (batch size, rows) here.
LOG_FIELDS_STATE_KEY = "log_fields"
# A caller's id is echoed only if it is short, visible ASCII; anything else is replaced.
_ACCEPTABLE_REQUEST_ID = re.compile(rb"[\x21-\x7e]{1,128}")
_ALWAYS = (
    # Reports carry e-mail addresses: no cache along the way may keep them.
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
)


class AccessLog:
    """ASGI middleware around the whole app."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self._app(scope, receive, send)
            return

        started = time.perf_counter()
        database_seconds = track_database_time()
        request_id = _request_id(scope)
        state = scope.setdefault("state", {})
        state[REQUEST_ID_STATE_KEY] = request_id
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.lower() not in (b"cache-control", REQUEST_ID_HEADER)
                ]
                headers.extend(_ALWAYS)
                headers.append((REQUEST_ID_HEADER, request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self._app(scope, receive, send_with_headers)
        finally:
            status = state.get(STATUS_STATE_KEY, status)
            seconds = time.perf_counter() - started
            fields = state.get(LOG_FIELDS_STATE_KEY, {})
            route = scope.get("path_template", "-")
            self._metrics.request_finished(route, scope["method"], status, seconds)
            if "batch_size" in fields:
                self._metrics.report_batch(fields["batch_size"])
            logger.info(
                "request",
                extra={
                    "request_id": request_id,
                    "client": state.get(API_CLIENT_STATE_KEY, "-"),
                    "method": scope["method"],
                    "route": route,
                    "path": scope["path"],
                    "status": status,
                    **fields,
                    "db_ms": round(database_seconds[0] * 1000, 2),
                    "duration_ms": round(seconds * 1000, 2),
                },
            )


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER and _ACCEPTABLE_REQUEST_ID.fullmatch(value):
            return value.decode("ascii")
    return uuid.uuid4().hex
