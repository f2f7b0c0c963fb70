"""Problem details (RFC 9457) for every error the HTTP API answers with."""

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.types import ExceptionHandlersMap, HTTPScope, Send
from litestar.types.asgi_types import HTTPResponseBodyEvent, HTTPResponseStartEvent

from domain.errors import FieldError, InvalidRequest, StorageTimeout, StorageUnavailable

logger = logging.getLogger(__name__)

AnyRequest = Request[Any, Any, Any]

PROBLEM_MEDIA_TYPE = "application/problem+json"
RETRY_AFTER_S = 1


class ProblemField(msgspec.Struct, frozen=True):
    field: str
    message: str


class Problem(msgspec.Struct, frozen=True, omit_defaults=True):
    type: str
    title: str
    status: int
    detail: str
    errors: list[ProblemField] | None = None


_encoder = msgspec.json.Encoder()
# Field names can come from the caller (unknown parameters and fields): the answer
# names at most this many, each cut short, so it never grows with the request.
_MAX_ERRORS = 20
_MAX_FIELD_LENGTH = 100
_MAX_MESSAGE_LENGTH = 300


def _shown(error: FieldError) -> ProblemField:
    field = error.field
    if len(field) > _MAX_FIELD_LENGTH:
        field = field[:_MAX_FIELD_LENGTH] + "…"
    return ProblemField(field, error.message[:_MAX_MESSAGE_LENGTH])


def problem_body(
    status: int,
    detail: str,
    errors: Sequence[FieldError] = (),
) -> bytes:
    """The encoded body; `type` is about:blank, so `title` is the status phrase."""
    problem = Problem(
        type="about:blank",
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        errors=[_shown(e) for e in errors[:_MAX_ERRORS]] if errors else None,
    )
    return _encoder.encode(problem)


def problem_response(
    status: int,
    detail: str,
    errors: Sequence[FieldError] = (),
    headers: dict[str, str] | None = None,
) -> Response[bytes]:
    return Response(
        content=problem_body(status, detail, errors),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


async def send_problem(
    scope: HTTPScope,
    send: Send,
    status: int,
    detail: str,
    extra_headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """Answer with problem details straight from ASGI middleware, outside Litestar."""
    body = problem_body(status, detail)
    headers = [
        (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        *extra_headers,
    ]
    await send(HTTPResponseStartEvent(type="http.response.start", status=status, headers=headers))
    await send(
        HTTPResponseBodyEvent(
            type="http.response.body",
            body=b"" if scope["method"] == "HEAD" else body,
            more_body=False,
        ),
    )


_DETAILS = {
    401: "A valid X-API-Key header is required.",
    404: "No such resource.",
    405: "This method is not allowed here; see the Allow header.",
    413: "The request body is larger than the limit of 1 MiB.",
    415: "The request body must be JSON, sent as Content-Type: application/json.",
}


def _on_http_exception(request: AnyRequest, exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    if status >= 500:
        logger.error("unexpected error answering %s", request.url.path, exc_info=exc)
        return problem_response(500, "The server failed to answer; the error has been logged.")
    detail = _DETAILS.get(status) or (exc.detail if isinstance(exc.detail, str) else "")
    return problem_response(status, detail or HTTPStatus(status).phrase, headers=exc.headers)


def _on_invalid_request(request: AnyRequest, exc: InvalidRequest) -> Response[bytes]:
    return problem_response(400, "The request is invalid; see errors.", exc.errors)


def _on_storage_unavailable(
    request: AnyRequest,
    exc: StorageUnavailable,
) -> Response[bytes]:
    logger.warning("storage unavailable for %s: %s", request.url.path, exc, exc_info=exc.__cause__)
    detail = (
        "The database did not answer within its time limit; try again."
        if isinstance(exc, StorageTimeout)
        else "The database is unavailable; try again shortly."
    )
    return problem_response(503, detail, headers={"Retry-After": str(RETRY_AFTER_S)})


def _on_unexpected(request: AnyRequest, exc: Exception) -> Response[bytes]:
    logger.error("unexpected error answering %s", request.url.path, exc_info=exc)
    return problem_response(500, "The server failed to answer; the error has been logged.")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    HTTPException: _on_http_exception,
    InvalidRequest: _on_invalid_request,
    StorageUnavailable: _on_storage_unavailable,
    Exception: _on_unexpected,
}
