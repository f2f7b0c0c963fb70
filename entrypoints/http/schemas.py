"""Wire schemas of the internal API (camelCase, strict) and their mapping to the domain."""

import json
import re
from datetime import UTC, datetime
from typing import Annotated

import msgspec
from msgspec import Meta, Struct

from application.limits import MAX_BATCH_SIZE, MAX_ID, MAX_MAX_TASKS
from application.reports import BuildReportsCommand, ReportBatch
from application.user_ids import UserIdsPage
from domain.errors import FieldError, InvalidRequest
from domain.reports import ReportDocument, ReportWindow

UserId = Annotated[int, Meta(ge=1, le=MAX_ID)]
Timestamp = Annotated[datetime, Meta(tz=True)]


class ReportsRequest(Struct, rename="camel", forbid_unknown_fields=True, frozen=True):
    user_ids: Annotated[list[UserId], Meta(min_length=1, max_length=MAX_BATCH_SIZE)]
    window_start: Timestamp | None = None
    window_end: Timestamp | None = None
    max_tasks: Annotated[int, Meta(ge=0, le=MAX_MAX_TASKS)] | None = None


# The answer's Structs hold only numbers, strings and each other, never a cycle, so the
# garbage collector need not track the thousands a batch creates.


class Window(Struct, frozen=True, gc=False):
    start: datetime
    end: datetime


class UserIdsResponse(Struct, rename="camel", frozen=True, gc=False):
    user_ids: list[int]
    next_after_id: int | None
    window: Window


class UnfinishedTaskBody(Struct, frozen=True, gc=False):
    id: int
    title: str


class CompletedTaskBody(Struct, rename="camel", frozen=True, gc=False):
    id: int
    title: str
    completed_at: datetime


class UnfinishedBody(Struct, frozen=True, gc=False):
    count: int
    tasks: list[UnfinishedTaskBody]


class CompletedBody(Struct, frozen=True, gc=False):
    count: int
    tasks: list[CompletedTaskBody]


class ReportBody(Struct, rename="camel", frozen=True, gc=False):
    user_id: int
    email: str
    unfinished: UnfinishedBody
    completed: CompletedBody


class ReportsResponse(Struct, rename="camel", frozen=True, gc=False):
    window: Window
    reports: list[ReportBody]
    missing_user_ids: list[int]


_request_decoder = msgspec.json.Decoder(ReportsRequest)
encoder = msgspec.json.Encoder()


def decode_reports_request(body: bytes) -> BuildReportsCommand:
    try:
        request = _request_decoder.decode(body)
    except msgspec.ValidationError as err:
        raise InvalidRequest(field_error_of(err)) from None
    except msgspec.DecodeError:
        raise InvalidRequest(FieldError("body", "is not valid JSON")) from None
    _refuse_repeated_names(body)

    command = BuildReportsCommand(
        user_ids=tuple(request.user_ids),
        window_start=request.window_start,
        window_end=request.window_end,
    )
    if request.max_tasks is not None:
        command = BuildReportsCommand(
            user_ids=command.user_ids,
            window_start=command.window_start,
            window_end=command.window_end,
            max_tasks=request.max_tasks,
        )
    return command


def _refuse_repeated_names(body: bytes) -> None:
    """Refuse `{"userIds": [1], "userIds": [2]}`.

    msgspec keeps the last of repeated names, while a proxy or log reader in front of
    us may take the first; the two must never disagree about which users were asked
    for. The body is small and already known to be valid JSON, so parsing it again with
    the standard library, which can see every name, costs little.
    """
    repeated: list[str] = []

    def pairs_hook(pairs: list[tuple[str, object]]) -> None:
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                repeated.append(name)
            seen.add(name)

    json.loads(body, object_pairs_hook=pairs_hook)
    if repeated:
        raise InvalidRequest(*(FieldError(name, "is given more than once") for name in repeated))


_AT_PATH = re.compile(r"^(?P<message>.*) - at `\$(?P<path>[^`]*)`$", re.DOTALL)
_NAMED_FIELD = re.compile(
    r"^Object (?P<kind>missing required|contains unknown) field `(?P<name>.*)`$", re.DOTALL
)
_NAMED_FIELD_MESSAGES = {
    "missing required": "is required",
    "contains unknown": "is not a known field",
}


def field_error_of(err: msgspec.ValidationError) -> FieldError:
    """Turn msgspec's "Expected … - at `$.userIds[3]`" into field `userIds[3]` and a message."""
    text = str(err)
    message, path = text, ""
    if match := _AT_PATH.match(text):
        message, path = match["message"], match["path"]
    field = path.removeprefix(".")
    if named := _NAMED_FIELD.match(message):
        field = f"{field}.{named['name']}" if field else named["name"]
        message = _NAMED_FIELD_MESSAGES[named["kind"]]
    return FieldError(field or "body", message)


def _window(window: ReportWindow) -> Window:
    return Window(start=window.start.astimezone(UTC), end=window.end.astimezone(UTC))


def user_ids_response(page: UserIdsPage) -> UserIdsResponse:
    return UserIdsResponse(
        user_ids=list(page.user_ids),
        next_after_id=page.next_after_id,
        window=_window(page.window),
    )


def encode_reports(batch: ReportBatch[ReportDocument]) -> bytes:
    """The answer of the reports endpoint, around reports the database already rendered.

    The result is what encoding a ReportsResponse would give (ReportsResponse documents
    it): the envelope comes from msgspec, each report's bytes are copied in unchanged.
    """
    return b"".join(
        (
            b'{"window":',
            encoder.encode(_window(batch.window)),
            b',"reports":[',
            b",".join(report.json for report in batch.reports),
            b'],"missingUserIds":',
            encoder.encode(batch.missing_user_ids),
            b"}",
        ),
    )
