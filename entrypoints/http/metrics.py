"""Prometheus metrics: what the person on call graphs and alerts on.

Each app gets its own registry, so tests can build many apps in one process. With
several server processes, `serve` sets PROMETHEUS_MULTIPROC_DIR and each process
writes its samples there; a scrape of any one process then adds them all up.
"""

import os
from contextvars import ContextVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 10, 50, 100, 250, 500, 750, 1000)
METRICS_MEDIA_TYPE = CONTENT_TYPE_LATEST

# Database seconds of the request being served, for its access-log line; the access
# log sets a fresh holder per request, and the task serving it shares the holder.
_request_database_seconds: ContextVar[list[float] | None] = ContextVar(
    "request_database_seconds",
    default=None,
)


def track_database_time() -> list[float]:
    """Start adding this request's statement times up; read the total from the list."""
    holder = [0.0]
    _request_database_seconds.set(holder)
    return holder


class Metrics:
    def __init__(self) -> None:
        self._registry = CollectorRegistry(auto_describe=True)
        self._multiprocess = "PROMETHEUS_MULTIPROC_DIR" in os.environ
        registry = self._registry
        self._requests = Counter(
            "task_tracker_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=registry,
        )
        self._latency = Histogram(
            "task_tracker_http_request_duration_seconds",
            "Time from the request's arrival to the end of its answer.",
            ["route", "method", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self._auth_failures = Counter(
            "task_tracker_auth_failures",
            "Refused authentications on the internal API, by reason.",
            ["reason"],
            registry=registry,
        )
        self._batch_size = Histogram(
            "task_tracker_report_batch_size",
            "Distinct user IDs per report request.",
            buckets=_BATCH_BUCKETS,
            registry=registry,
        )
        self._statements = Histogram(
            "task_tracker_db_statement_duration_seconds",
            "Time of each read statement, from send to last row decoded.",
            ["statement"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self._pool_in_use = Gauge(
            "task_tracker_db_pool_in_use",
            "Database connections checked out of the pool.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self._pool_waiting = Gauge(
            "task_tracker_db_pool_waiting",
            "Requests waiting for a free database connection.",
            registry=registry,
            multiprocess_mode="livesum",
        )

    def request_finished(self, route: str, method: str, status: int, seconds: float) -> None:
        labels = (route, method, str(status))
        self._requests.labels(*labels).inc()
        self._latency.labels(*labels).observe(seconds)

    def auth_failed(self, reason: str) -> None:
        self._auth_failures.labels(reason).inc()

    def report_batch(self, distinct_ids: int) -> None:
        self._batch_size.observe(distinct_ids)

    # The DatabaseObserver port of adapters.database.

    def pool_waiting(self, delta: int) -> None:
        self._pool_waiting.inc(delta)

    def pool_in_use(self, delta: int) -> None:
        self._pool_in_use.inc(delta)

    def statement_finished(self, name: str, seconds: float) -> None:
        self._statements.labels(name).observe(seconds)
        holder = _request_database_seconds.get()
        if holder is not None:
            holder[0] += seconds

    def exposition(self) -> bytes:
        if not self._multiprocess:
            return generate_latest(self._registry)
        collected = CollectorRegistry()
        multiprocess.MultiProcessCollector(collected)  # type: ignore[no-untyped-call]
        return generate_latest(collected)
