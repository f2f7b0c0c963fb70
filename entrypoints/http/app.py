"""Builds the Litestar app from use cases and checks; knows nothing of where they come from."""

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from litestar import Litestar
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from application.reports import BuildReportsByIds
from application.user_ids import ListUserIdsForProcessing
from domain.reports import ReportDocument
from entrypoints.api_keys import ApiKeyRegistry
from entrypoints.http.access_log import AccessLog
from entrypoints.http.authentication import ApiKeyGate, FailedAuthLimiter
from entrypoints.http.lifetime import RequestLifetime
from entrypoints.http.metrics import Metrics
from entrypoints.http.problems import EXCEPTION_HANDLERS
from entrypoints.http.routes import Readiness, internal_router, live, metrics, ready

MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class HttpDependencies:
    list_user_ids: ListUserIdsForProcessing
    build_reports: BuildReportsByIds[ReportDocument]
    readiness: Readiness
    api_keys: Callable[[], ApiKeyRegistry]
    on_reload_signal: Callable[[], None] | None = None
    metrics: Metrics = field(default_factory=Metrics)
    auth_failures_per_minute: int = 60
    request_deadline_s: float = 15.0
    docs_enabled: bool = False


def create_app(
    deps: HttpDependencies,
    *,
    on_shutdown: Sequence[Callable[[], Awaitable[None]]] = (),
) -> Litestar:
    app = Litestar(
        route_handlers=[internal_router, live, ready, metrics],
        dependencies={
            "list_user_ids": Provide(
                lambda: deps.list_user_ids, use_cache=True, sync_to_thread=False
            ),
            "build_reports": Provide(
                lambda: deps.build_reports, use_cache=True, sync_to_thread=False
            ),
            "readiness": Provide(lambda: deps.readiness, use_cache=True, sync_to_thread=False),
            "metrics": Provide(lambda: deps.metrics, use_cache=True, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=MAX_BODY_BYTES,
        openapi_config=_openapi() if deps.docs_enabled else None,
        logging_config=None,
        on_startup=[_reload_on_sighup(deps.on_reload_signal)] if deps.on_reload_signal else [],
        on_shutdown=list(on_shutdown),
    )
    # The gate, the deadline and the access log wrap Litestar's router itself rather than
    # a route, so they also see requests that match no route: an unknown internal path
    # must answer 401, not 404, to a caller without a key.
    gate = ApiKeyGate(
        app.asgi_handler,
        registry=deps.api_keys,
        limiter=FailedAuthLimiter(deps.auth_failures_per_minute),
        on_failure=deps.metrics.auth_failed,
    )
    lifetime = RequestLifetime(gate, deadline_s=deps.request_deadline_s)
    app.asgi_handler = AccessLog(lifetime, deps.metrics)
    return app


def _reload_on_sighup(reload: Callable[[], None]) -> Callable[[], None]:
    def install() -> None:
        # Only the main thread of a process may take signals; elsewhere (tests) the
        # file is still re-read when it changes.
        with contextlib.suppress(RuntimeError, ValueError, NotImplementedError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload)

    return install


def _openapi() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="task-tracker internal reporting API",
        version="1",
        path="/schema",
        # JSON only: the HTML viewers load their scripts from a CDN, which an internal
        # network may not reach.
        render_plugins=[JsonRenderPlugin()],
        components=Components(
            security_schemes={
                "ApiKey": SecurityScheme(
                    type="apiKey", name="X-API-Key", security_scheme_in="header"
                ),
            },
        ),
    )
