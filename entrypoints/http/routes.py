"""Route handlers: read the request, run a use case, write the answer."""

from collections.abc import Awaitable, Callable

from litestar import Response, Router, get, post
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException

from application.limits import DEFAULT_PAGE_LIMIT
from application.reports import BuildReportsByIds
from application.user_ids import ListUserIdsForProcessing, ListUserIdsQuery
from domain.reports import ReportDocument
from entrypoints.http.access_log import LOG_FIELDS_STATE_KEY
from entrypoints.http.authentication import INTERNAL_PREFIX, require_api_client
from entrypoints.http.metrics import METRICS_MEDIA_TYPE, Metrics
from entrypoints.http.openapi import (
    REPORTS_RESPONSES,
    USER_IDS_RESPONSES,
    ReportsOperation,
    UserIdsOperation,
)
from entrypoints.http.problems import RETRY_AFTER_S, AnyRequest, problem_response
from entrypoints.http.query import QueryReader
from entrypoints.http.schemas import (
    decode_reports_request,
    encode_reports,
    encoder,
    user_ids_response,
)

JSON = "application/json"
Readiness = Callable[[], Awaitable[str | None]]
_USER_IDS_PARAMS = frozenset({"limit", "afterId", "windowStart", "windowEnd"})


def _log_fields(request: AnyRequest, **fields: int) -> None:
    request.scope["state"].setdefault(LOG_FIELDS_STATE_KEY, {}).update(fields)


@get(
    "/scheduler/user-ids-for-processing",
    operation_class=UserIdsOperation,
    responses=USER_IDS_RESPONSES,
)
async def user_ids_for_processing(
    request: AnyRequest,
    list_user_ids: NamedDependency[ListUserIdsForProcessing],
) -> Response[bytes]:
    """Users to be processed for the window, ascending; follow `nextAfterId` until null."""
    query = QueryReader(request.query_params.multi_items(), _USER_IDS_PARAMS)
    limit = query.integer("limit", DEFAULT_PAGE_LIMIT)
    after_id = query.integer("afterId", 0)
    window_start = query.timestamp("windowStart")
    window_end = query.timestamp("windowEnd")
    query.check()

    page = await list_user_ids.execute(
        ListUserIdsQuery(
            limit=limit,
            after_id=after_id,
            window_start=window_start,
            window_end=window_end,
        ),
    )

    _log_fields(request, page_size=limit, rows=len(page.user_ids))
    return Response(encoder.encode(user_ids_response(page)), media_type=JSON)


@post(
    "/scheduler/user-task-reports-by-ids",
    status_code=200,
    operation_class=ReportsOperation,
    responses=REPORTS_RESPONSES,
)
async def user_task_reports_by_ids(
    request: AnyRequest,
    build_reports: NamedDependency[BuildReportsByIds[ReportDocument]],
) -> Response[bytes]:
    """Reports for up to 1000 users, computed by one SQL statement."""
    media_type, options = request.content_type
    if media_type != JSON or options.get("charset", "utf-8").lower() != "utf-8":
        raise HTTPException(status_code=415)
    command = decode_reports_request(await request.body())

    batch = await build_reports.execute(command)

    _log_fields(
        request,
        batch_size=len(batch.reports) + len(batch.missing_user_ids),
        rows=len(batch.reports),
    )
    return Response(encode_reports(batch), media_type=JSON)


internal_router = Router(
    path=INTERNAL_PREFIX,
    route_handlers=[user_ids_for_processing, user_task_reports_by_ids],
    guards=[require_api_client],
    security=[{"ApiKey": []}],
    tags=["scheduler"],
)


@get("/metrics", include_in_schema=False)
async def metrics(metrics: NamedDependency[Metrics]) -> Response[bytes]:
    """Prometheus text format, for scrapers on the internal network."""
    return Response(metrics.exposition(), media_type=METRICS_MEDIA_TYPE)


@get("/health/live", include_in_schema=False)
async def live() -> Response[bytes]:
    """200 for as long as the process can answer at all."""
    return Response(b'{"status":"live"}', media_type=JSON)


@get("/health/ready", include_in_schema=False)
async def ready(readiness: NamedDependency[Readiness]) -> Response[bytes]:
    """200 when the database answers and its schema is the newest this build knows."""
    problem = await readiness()
    if problem is not None:
        return problem_response(503, problem, headers={"Retry-After": str(RETRY_AFTER_S)})
    return Response(b'{"status":"ready"}', media_type=JSON)
