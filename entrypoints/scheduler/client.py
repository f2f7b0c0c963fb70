"""The two scheduler endpoints of API.md over HTTP: wire types, checks and retries.

The wire types are this client's own reading of the contract. Answers may carry fields
the client does not know (the service may grow), but every field it relies on is typed,
and an answer that breaks a promise the pass depends on (the window echoed back, pages
that move forward, one entry per requested ID) is refused rather than trusted.
"""

import asyncio
import email.utils
import logging
import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, TypeVar

import httpx
import msgspec
from msgspec import Meta, Struct

logger = logging.getLogger(__name__)

T = TypeVar("T")

USER_IDS_PATH = "/api/v1/internal/scheduler/user-ids-for-processing"
REPORTS_PATH = "/api/v1/internal/scheduler/user-task-reports-by-ids"

MAX_ID = 2**63 - 1
MAX_PAGE_SIZE = 10_000
MAX_BATCH_SIZE = 1000
MAX_MAX_TASKS = 50

# Worth another try: the service or something in front of it is busy or restarting.
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})

UtcTime = Annotated[datetime, Meta(tz=True)]
UserId = Annotated[int, Meta(ge=1, le=MAX_ID)]
Count = Annotated[int, Meta(ge=0)]


class Window(Struct, frozen=True):
    start: UtcTime
    end: UtcTime


class UserIdsPage(Struct, rename="camel", frozen=True):
    user_ids: list[UserId]
    next_after_id: UserId | None
    window: Window


class UnfinishedTask(Struct, frozen=True):
    id: int
    title: str


class CompletedTask(Struct, rename="camel", frozen=True):
    id: int
    title: str
    completed_at: UtcTime


class UnfinishedTasks(Struct, frozen=True):
    count: Count
    tasks: list[UnfinishedTask]


class CompletedTasks(Struct, frozen=True):
    count: Count
    tasks: list[CompletedTask]


class UserReport(Struct, rename="camel", frozen=True):
    user_id: UserId
    email: str
    unfinished: UnfinishedTasks
    completed: CompletedTasks


class ReportsPage(Struct, rename="camel", frozen=True):
    window: Window
    reports: list[UserReport]
    missing_user_ids: list[UserId]


class ReportsRequest(Struct, rename="camel", frozen=True):
    user_ids: list[int]
    window_start: datetime
    window_end: datetime
    max_tasks: int


class Problem(Struct, frozen=True):
    title: str = ""
    detail: str = ""


_user_ids_decoder = msgspec.json.Decoder(UserIdsPage)
_reports_decoder = msgspec.json.Decoder(ReportsPage)
_problem_decoder = msgspec.json.Decoder(Problem)
_encoder = msgspec.json.Encoder()


class SchedulerApiError(Exception):
    """A call to the service did not give a usable answer."""


class RequestRefused(SchedulerApiError):
    """The service answered with an error that another try would not change."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}" if detail else f"HTTP {status}")
        self.status = status


class RetriesExhausted(SchedulerApiError):
    """Every try met a passing fault (busy, unavailable, timed out, disconnected)."""

    def __init__(self, attempts: int, last_fault: str) -> None:
        super().__init__(f"gave up after {attempts} tries, the last one: {last_fault}")
        self.attempts = attempts


class ContractViolation(SchedulerApiError):
    """The answer does not keep a promise of API.md that the pass relies on."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter, and how long a Retry-After may ask for."""

    attempts: int = 8
    base_delay_s: float = 0.25
    max_delay_s: float = 30.0
    max_retry_after_s: float = 300.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("a retry policy needs at least one attempt")

    def delay(self, retry: int, draw: float, retry_after_s: float | None) -> float:
        """The wait before retry number `retry` (1 for the first), `draw` being in [0, 1).

        Full jitter spreads consumers that failed together over the whole step, so they
        do not all come back at once; a Retry-After is a floor, never shortened.
        """
        step = min(self.max_delay_s, self.base_delay_s * 2.0 ** min(retry - 1, 60))
        jittered = draw * step
        if retry_after_s is None:
            return jittered
        return max(min(retry_after_s, self.max_retry_after_s), jittered)


def rfc3339(value: datetime) -> str:
    """UTC with `Z`, and a fraction only when there is one: `2026-12-04T00:00:00Z`."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def retry_after_s(value: str | None, now: datetime) -> float | None:
    """Seconds a Retry-After header asks for: delta-seconds or an HTTP-date; None if unusable."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class SchedulerClient:
    """One connection pool to the service; every call retried on passing faults."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float = 30.0,
        connections: int = 8,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        draw: Callable[[], float] = random.random,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers={"X-API-Key": api_key, "User-Agent": "task-tracker-scheduler"},
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(
                max_connections=connections,
                max_keepalive_connections=connections,
            ),
            transport=transport,
        )
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._draw = draw
        self._clock = clock
        self.retries = 0

    async def __aenter__(self) -> "SchedulerClient":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def user_ids_page(self, window: Window, *, after_id: int, limit: int) -> UserIdsPage:
        params = {
            "limit": str(limit),
            "afterId": str(after_id),
            "windowStart": rfc3339(window.start),
            "windowEnd": rfc3339(window.end),
        }
        body = await self._send("GET", USER_IDS_PATH, params=params)

        page = _decode(_user_ids_decoder, body, USER_IDS_PATH)
        _check_window(page.window, window)
        _check_page(page, after_id, limit)
        return page

    async def walk(
        self,
        window: Window,
        *,
        after_id: int,
        page_size: int,
    ) -> AsyncGenerator[list[int], None]:
        """Every page of user IDs after `after_id`, following `nextAfterId` until null.

        Each page is checked to start past the previous one, so the walk ends within
        2^63 steps whatever the service answers.
        """
        cursor: int | None = after_id
        while cursor is not None:
            page = await self.user_ids_page(window, after_id=cursor, limit=page_size)
            if page.user_ids:
                yield page.user_ids
            cursor = page.next_after_id

    async def reports(
        self,
        window: Window,
        user_ids: Sequence[int],
        *,
        max_tasks: int,
    ) -> ReportsPage:
        request = ReportsRequest(
            user_ids=list(user_ids),
            window_start=window.start.astimezone(UTC),
            window_end=window.end.astimezone(UTC),
            max_tasks=max_tasks,
        )
        body = await self._send("POST", REPORTS_PATH, content=_encoder.encode(request))

        page = _decode(_reports_decoder, body, REPORTS_PATH)
        _check_window(page.window, window)
        _check_reports(page, user_ids)
        return page

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        content: bytes | None = None,
    ) -> bytes:
        headers = {"Content-Type": "application/json"} if content is not None else None
        for attempt in range(1, self._retry.attempts + 1):
            retry_after: float | None = None
            try:
                response = await self._http.request(
                    method,
                    path,
                    params=params,
                    content=content,
                    headers=headers,
                )
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as err:
                # Both endpoints only read, so a request that may or may not have reached
                # the service is safe to send again.
                fault = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
            else:
                if response.status_code == 200:
                    return response.content
                if response.status_code not in RETRYABLE_STATUSES:
                    raise RequestRefused(response.status_code, _problem_detail(response))
                fault = f"HTTP {response.status_code}"
                retry_after = retry_after_s(response.headers.get("Retry-After"), self._clock())

            if attempt == self._retry.attempts:
                raise RetriesExhausted(attempt, fault)
            delay = self._retry.delay(attempt, self._draw(), retry_after)
            self.retries += 1
            logger.debug("retrying %s %s in %.2fs after %s", method, path, delay, fault)
            await self._sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")


def _decode(decoder: msgspec.json.Decoder[T], body: bytes, path: str) -> T:
    try:
        return decoder.decode(body)
    except msgspec.DecodeError as err:
        raise ContractViolation(f"{path} answered with an unexpected body: {err}") from err


def _problem_detail(response: httpx.Response) -> str:
    try:
        problem = _problem_decoder.decode(response.content)
    except msgspec.DecodeError:
        return ""
    return problem.detail or problem.title


def _check_window(answered: Window, asked: Window) -> None:
    if answered.start != asked.start or answered.end != asked.end:
        raise ContractViolation(
            f"asked for the window {rfc3339(asked.start)}..{rfc3339(asked.end)}, "
            f"got {rfc3339(answered.start)}..{rfc3339(answered.end)}",
        )


def _check_page(page: UserIdsPage, after_id: int, limit: int) -> None:
    ids = page.user_ids
    if len(ids) > limit:
        raise ContractViolation(f"a page of at most {limit} IDs held {len(ids)}")
    if any(earlier >= later for earlier, later in zip([after_id, *ids], ids, strict=False)):
        raise ContractViolation(f"the page after {after_id} is not ascending past it")
    if page.next_after_id is not None and (not ids or page.next_after_id != ids[-1]):
        raise ContractViolation("nextAfterId is not the last ID of its page")


def _check_reports(page: ReportsPage, asked: Sequence[int]) -> None:
    reported = [report.user_id for report in page.reports]
    answered = sorted([*reported, *page.missing_user_ids])
    if answered != sorted(set(asked)):
        raise ContractViolation("the reports do not answer each requested ID exactly once")
