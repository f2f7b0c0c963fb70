"""The OpenAPI description of what the handlers read by hand: query strings and bodies.

The handlers parse their input themselves (strictly, see query.py and schemas.py), so
Litestar cannot infer it from their signatures; these operations describe it instead,
with the same bounds as the wire schemas.
"""

from dataclasses import dataclass

from litestar.openapi import ResponseSpec
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    Parameter,
    RequestBody,
    Schema,
)

from application.limits import (
    DEFAULT_MAX_TASKS,
    DEFAULT_PAGE_LIMIT,
    MAX_BATCH_SIZE,
    MAX_ID,
    MAX_MAX_TASKS,
    MAX_PAGE_LIMIT,
)
from entrypoints.http.problems import PROBLEM_MEDIA_TYPE, Problem
from entrypoints.http.schemas import ReportsResponse, UserIdsResponse

_TIMESTAMP = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.DATE_TIME)
_OPTIONAL_TIMESTAMP = Schema(one_of=[_TIMESTAMP, Schema(type=OpenAPIType.NULL)])


def _window_parameter(name: str, meaning: str) -> Parameter:
    return Parameter(
        name=name,
        param_in="query",
        schema=_TIMESTAMP,
        description=f"{meaning}; RFC 3339 with an offset (send `+` as `%2B`).",
    )


@dataclass
class UserIdsOperation(Operation):
    def __post_init__(self) -> None:
        self.parameters = [
            Parameter(
                name="limit",
                param_in="query",
                schema=Schema(
                    type=OpenAPIType.INTEGER,
                    minimum=1,
                    maximum=MAX_PAGE_LIMIT,
                    default=DEFAULT_PAGE_LIMIT,
                ),
                description="Most IDs on the page.",
            ),
            Parameter(
                name="afterId",
                param_in="query",
                schema=Schema(type=OpenAPIType.INTEGER, minimum=0, maximum=MAX_ID),
                description="Only IDs greater than this; the previous page's nextAfterId.",
            ),
            _window_parameter("windowStart", "Start of the window (default: end minus 24 hours)"),
            _window_parameter("windowEnd", "End of the window (default: now)"),
        ]


@dataclass
class ReportsOperation(Operation):
    def __post_init__(self) -> None:
        user_id = Schema(type=OpenAPIType.INTEGER, minimum=1, maximum=MAX_ID)
        body = Schema(
            type=OpenAPIType.OBJECT,
            required=["userIds"],
            additional_properties=False,
            properties={
                "userIds": Schema(
                    type=OpenAPIType.ARRAY,
                    items=user_id,
                    min_items=1,
                    max_items=MAX_BATCH_SIZE,
                ),
                "windowStart": _OPTIONAL_TIMESTAMP,
                "windowEnd": _OPTIONAL_TIMESTAMP,
                "maxTasks": Schema(
                    one_of=[
                        Schema(
                            type=OpenAPIType.INTEGER,
                            minimum=0,
                            maximum=MAX_MAX_TASKS,
                            default=DEFAULT_MAX_TASKS,
                        ),
                        Schema(type=OpenAPIType.NULL),
                    ],
                ),
            },
        )
        self.request_body = RequestBody(
            content={"application/json": OpenAPIMediaType(schema=body)},
            required=True,
        )


def _problem(meaning: str) -> ResponseSpec:
    return ResponseSpec(
        Problem,
        description=meaning,
        media_type=PROBLEM_MEDIA_TYPE,
        generate_examples=False,
    )


_PROBLEMS = {
    400: _problem("The request is invalid; `errors` names each offending input"),
    401: _problem("No valid X-API-Key header"),
    429: _problem("Too many failed authentications from this address; see Retry-After"),
    503: _problem("The database is unavailable or timed out; see Retry-After"),
}

USER_IDS_RESPONSES = {
    200: ResponseSpec(
        UserIdsResponse,
        description="One page of user IDs",
        generate_examples=False,
    ),
    **_PROBLEMS,
}
REPORTS_RESPONSES = {
    200: ResponseSpec(
        ReportsResponse,
        description="Reports, ascending by userId",
        generate_examples=False,
    ),
    **_PROBLEMS,
    413: _problem("The body is larger than 1 MiB"),
    415: _problem("The body is not sent as application/json"),
}
