"""The scheduler's HTTP client against scripted answers: what it sends, when it retries."""

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from entrypoints.scheduler.client import (
    REPORTS_PATH,
    USER_IDS_PATH,
    ContractViolation,
    RequestRefused,
    RetriesExhausted,
    RetryPolicy,
    SchedulerClient,
    Window,
    retry_after_s,
)

END = datetime(2026, 12, 4, tzinfo=UTC)
WINDOW = Window(start=END - timedelta(hours=24), end=END)
WINDOW_JSON = {"start": "2026-12-03T00:00:00Z", "end": "2026-12-04T00:00:00Z"}
KEY = "ttk_test-key"

Answer = httpx.Response | type[httpx.TransportError]


def page(user_ids: list[int], next_after_id: int | None, window: Any = WINDOW_JSON) -> Any:
    body = {"userIds": user_ids, "nextAfterId": next_after_id, "window": window}
    return httpx.Response(200, json=body)


def reports(user_ids: list[int], missing: list[int] = []) -> Any:  # noqa: B006 never mutated
    return httpx.Response(
        200,
        json={
            "window": WINDOW_JSON,
            "reports": [
                {
                    "userId": user_id,
                    "email": f"user{user_id}@example.com",
                    "unfinished": {"count": 1, "tasks": [{"id": 1, "title": "Renew passport"}]},
                    "completed": {"count": 0, "tasks": []},
                }
                for user_id in user_ids
            ],
            "missingUserIds": missing,
        },
    )


def problem(status: int, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"type": "about:blank", "title": "t", "status": status, "detail": f"it is a {status}"}
    return httpx.Response(status, json=body, headers=headers)


class Script:
    """Answers requests in order, an exception class meaning that fault; records requests."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.delays: list[float] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, httpx.Response):
            return answer
        raise answer("injected fault", request=request)

    async def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)

    def client(self, attempts: int = 8, draw: Callable[[], float] = lambda: 0.5) -> SchedulerClient:
        return SchedulerClient(
            "http://scheduler.test",
            KEY,
            retry=RetryPolicy(attempts=attempts, base_delay_s=0.25, max_delay_s=30.0),
            transport=httpx.MockTransport(self.handle),
            sleep=self.sleep,
            draw=draw,
            clock=lambda: END,
        )


async def test_sends_the_window_and_the_key_with_every_page_request() -> None:
    script = Script(page([3, 8], 8))

    async with script.client() as client:
        answer = await client.user_ids_page(WINDOW, after_id=2, limit=2)

    assert answer.user_ids == [3, 8]
    request = script.requests[0]
    assert request.method == "GET"
    assert request.url.path == USER_IDS_PATH
    assert dict(request.url.params) == {
        "limit": "2",
        "afterId": "2",
        "windowStart": "2026-12-03T00:00:00Z",
        "windowEnd": "2026-12-04T00:00:00Z",
    }
    assert request.headers["X-API-Key"] == KEY


async def test_sends_the_window_and_the_key_with_every_reports_request() -> None:
    script = Script(reports([3, 8], missing=[99]))

    async with script.client() as client:
        answer = await client.reports(WINDOW, [3, 8, 99], max_tasks=5)

    assert [report.user_id for report in answer.reports] == [3, 8]
    assert answer.missing_user_ids == [99]
    request = script.requests[0]
    assert request.method == "POST"
    assert request.url.path == REPORTS_PATH
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-API-Key"] == KEY
    assert json.loads(request.content) == {
        "userIds": [3, 8, 99],
        "windowStart": "2026-12-03T00:00:00Z",
        "windowEnd": "2026-12-04T00:00:00Z",
        "maxTasks": 5,
    }


@pytest.mark.parametrize("status", [429, 502, 503, 504])
async def test_retries_a_busy_or_unavailable_answer_after_its_retry_after(status: int) -> None:
    script = Script(problem(status, {"Retry-After": "3"}), reports([1]))

    async with script.client() as client:
        answer = await client.reports(WINDOW, [1], max_tasks=5)

    assert [report.user_id for report in answer.reports] == [1]
    assert len(script.requests) == 2
    assert script.delays == [3.0]
    assert client.retries == 1


@pytest.mark.parametrize(
    "fault",
    [
        httpx.ConnectTimeout,
        httpx.ReadTimeout,
        httpx.ConnectError,
        httpx.ReadError,
        httpx.RemoteProtocolError,
        httpx.PoolTimeout,
    ],
)
async def test_retries_timeouts_and_dropped_connections(
    fault: type[httpx.TransportError],
) -> None:
    script = Script(fault, fault, page([1], None))

    async with script.client() as client:
        answer = await client.user_ids_page(WINDOW, after_id=0, limit=10)

    assert answer.user_ids == [1]
    assert len(script.requests) == 3
    # Full jitter with the draw fixed at 0.5: half of 0.25 s, then half of 0.5 s.
    assert script.delays == [0.125, 0.25]
    assert client.retries == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 413, 415, 422, 500])
async def test_does_not_retry_any_other_error(status: int) -> None:
    script = Script(problem(status), reports([1]))

    async with script.client() as client:
        with pytest.raises(RequestRefused) as refused:
            await client.reports(WINDOW, [1], max_tasks=5)

    assert refused.value.status == status
    assert f"it is a {status}" in str(refused.value)
    assert len(script.requests) == 1
    assert client.retries == 0


async def test_gives_up_after_the_configured_number_of_tries() -> None:
    script = Script(*[problem(503, {"Retry-After": "0"})] * 4)

    async with script.client(attempts=4) as client:
        with pytest.raises(RetriesExhausted, match=r"4 tries.*HTTP 503"):
            await client.reports(WINDOW, [1], max_tasks=5)

    assert len(script.requests) == 4
    assert client.retries == 3


def test_backoff_doubles_up_to_its_cap_with_full_jitter() -> None:
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=5.0)

    highest = [policy.delay(retry, 1.0, None) for retry in range(1, 7)]
    lowest = [policy.delay(retry, 0.0, None) for retry in range(1, 7)]
    middle = policy.delay(3, 0.5, None)

    assert highest == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert lowest == [0.0] * 6
    assert middle == 2.0


def test_retry_after_is_a_floor_with_a_ceiling_of_its_own() -> None:
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=5.0, max_retry_after_s=60.0)

    waits_as_asked = policy.delay(1, 0.5, 10.0)
    backoff_is_longer = policy.delay(4, 1.0, 0.0)
    asked_too_much = policy.delay(1, 0.5, 3600.0)

    assert waits_as_asked == 10.0
    assert backoff_is_longer == 5.0
    assert asked_too_much == 60.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("0", 0.0),
        (" 7 ", 7.0),
        ("Fri, 04 Dec 2026 00:00:10 GMT", 10.0),
        ("Thu, 03 Dec 2026 23:00:00 GMT", 0.0),
        ("-1", None),
        ("1.5", None),
        ("²", None),
        ("soon", None),
        (None, None),
    ],
)
def test_reads_retry_after_as_seconds_or_an_http_date(
    header: str | None,
    seconds: float | None,
) -> None:
    wait = retry_after_s(header, END)

    assert wait == seconds


async def test_walk_follows_next_after_id_until_it_is_null() -> None:
    script = Script(page([2, 5], 5), page([9], 9), page([], None))

    async with script.client() as client:
        pages = [ids async for ids in client.walk(WINDOW, after_id=0, page_size=2)]

    assert pages == [[2, 5], [9]]
    assert [r.url.params["afterId"] for r in script.requests] == ["0", "5", "9"]


@pytest.mark.parametrize(
    "answer",
    [
        page([3, 2], None),
        page([2, 2], None),
        page([1], None),
        page([4, 5, 6], None),
        page([4, 5], 4),
        page([], 7),
        page([4], None, window={"start": "2026-12-03T00:00:00Z", "end": "2026-12-04T17:00:00Z"}),
        httpx.Response(200, content=b"<html>gateway</html>"),
    ],
)
async def test_refuses_a_page_that_breaks_the_contract(answer: httpx.Response) -> None:
    # Asked for at most two IDs after 1: order, bounds, cursor and window are checked.
    script = Script(answer)

    async with script.client() as client:
        with pytest.raises(ContractViolation):
            await client.user_ids_page(WINDOW, after_id=1, limit=2)

    assert len(script.requests) == 1


@pytest.mark.parametrize(
    "answer",
    [reports([1]), reports([1, 2, 2]), reports([1], missing=[2, 3]), reports([1, 2, 3])],
)
async def test_refuses_reports_that_do_not_answer_each_requested_id_once(
    answer: httpx.Response,
) -> None:
    script = Script(answer)

    async with script.client() as client:
        with pytest.raises(ContractViolation):
            await client.reports(WINDOW, [1, 2, 2], max_tasks=5)

    assert len(script.requests) == 1
