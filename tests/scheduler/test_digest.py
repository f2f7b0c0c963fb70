"""The pass against an in-memory service: batching, failures, resuming, progress, the CLI."""

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import httpx
import msgspec
import pytest

from entrypoints.scheduler.client import REPORTS_PATH, USER_IDS_PATH, RetryPolicy
from entrypoints.scheduler.digest import (
    PassOptions,
    Snapshot,
    main,
    most_recent_midnight,
    progress_line,
    run_pass,
)
from entrypoints.scheduler.messages import decode_line

END = datetime(2026, 12, 4, tzinfo=UTC)
WINDOW_JSON = {"start": "2026-12-03T00:00:00Z", "end": "2026-12-04T00:00:00Z"}


@dataclass
class FakeService:
    """The two endpoints over a dict of users, each with (unfinished, completed) counts."""

    users: dict[int, tuple[int, int]]
    failing_user: int | None = None
    refuse_reports: bool = False
    gone: set[int] = field(default_factory=set)
    report_requests: list[list[int]] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == USER_IDS_PATH:
            return self._user_ids(request)
        assert request.url.path == REPORTS_PATH
        asked = json.loads(request.content)
        assert (asked["windowStart"], asked["windowEnd"]) == tuple(WINDOW_JSON.values())
        self.report_requests.append(asked["userIds"])
        if self.refuse_reports:
            return httpx.Response(400, json={"detail": "no such field"})
        if self.failing_user in asked["userIds"]:
            return httpx.Response(503, headers={"Retry-After": "0"})
        return self._reports(asked["userIds"])

    def _user_ids(self, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        assert (params["windowStart"], params["windowEnd"]) == tuple(WINDOW_JSON.values())
        after, limit = int(params["afterId"]), int(params["limit"])
        eligible = sorted(u for u, counts in self.users.items() if u > after and any(counts))
        ids = eligible[:limit]
        more = len(eligible) > limit
        body = {"userIds": ids, "nextAfterId": ids[-1] if more else None, "window": WINDOW_JSON}
        return httpx.Response(200, json=body)

    def _reports(self, user_ids: list[int]) -> httpx.Response:
        present = sorted({u for u in user_ids if u in self.users and u not in self.gone})
        missing = sorted({u for u in user_ids if u not in present})
        return httpx.Response(
            200,
            json={
                "window": WINDOW_JSON,
                "reports": [self._report(user_id) for user_id in present],
                "missingUserIds": missing,
            },
        )

    def _report(self, user_id: int) -> dict[str, object]:
        unfinished, completed = self.users[user_id]
        return {
            "userId": user_id,
            "email": f"user{user_id}@example.com",
            "unfinished": {
                "count": unfinished,
                "tasks": [
                    {"id": user_id * 100 + n, "title": f"Task {n}"} for n in range(unfinished)
                ],
            },
            "completed": {
                "count": completed,
                "tasks": [
                    {
                        "id": user_id * 100 + 50 + n,
                        "title": f"Done {n}",
                        "completedAt": "2026-12-03T12:00:00Z",
                    }
                    for n in range(completed)
                ],
            },
        }


def some_users(count: int) -> dict[int, tuple[int, int]]:
    """Every third ID is skipped; a fifth of the users have nothing to report."""
    return {
        user_id: (0, 0) if user_id % 5 == 0 else (user_id % 3, user_id % 2)
        for user_id in range(1, 3 * count // 2)
        if user_id % 3
    }


def options(service: FakeService, tmp_path: Path, **overrides: object) -> PassOptions:
    base = PassOptions(
        base_url="http://scheduler.test",
        api_key="ttk_test-key",
        window_end=END,
        out=tmp_path / "digest.jsonl",
        checkpoint=tmp_path / "digest.checkpoint",
        concurrency=3,
        batch_size=4,
        page_size=7,
        retry=RetryPolicy(attempts=3, base_delay_s=0.0),
        transport=httpx.MockTransport(service.handle),
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def messaged_users(out: Path) -> list[int]:
    return [decode_line(line).user_id for line in out.read_bytes().splitlines(keepends=True)]


def expected_users(service: FakeService) -> list[int]:
    return sorted(u for u, counts in service.users.items() if any(counts) and u not in service.gone)


async def test_every_user_to_process_gets_exactly_one_message(tmp_path: Path) -> None:
    service = FakeService(some_users(60))

    summary = await run_pass(options(service, tmp_path))

    messaged = messaged_users(tmp_path / "digest.jsonl")
    assert sorted(messaged) == expected_users(service)
    assert len(messaged) == len(set(messaged))
    assert all(len(batch) <= 4 for batch in service.report_requests)
    assert (summary.users, summary.messages) == (len(messaged), len(messaged))
    assert (summary.failures, summary.retries, summary.walk_complete) == (0, 0, True)
    assert not summary.left_undone


async def test_users_deleted_before_their_report_are_counted_as_gone(tmp_path: Path) -> None:
    service = FakeService(some_users(30), gone={2, 4, 7})

    summary = await run_pass(options(service, tmp_path))

    assert sorted(messaged_users(tmp_path / "digest.jsonl")) == expected_users(service)
    assert summary.gone == 3
    assert not summary.left_undone
    assert "3 users gone meanwhile" in summary.line()


async def test_a_batch_that_keeps_failing_is_done_by_the_next_run(tmp_path: Path) -> None:
    service = FakeService(some_users(60), failing_user=17)
    first = await run_pass(options(service, tmp_path))
    after_first = messaged_users(tmp_path / "digest.jsonl")
    service.failing_user = None
    service.report_requests.clear()

    second = await run_pass(options(service, tmp_path))

    final = messaged_users(tmp_path / "digest.jsonl")
    assert 17 not in after_first
    assert first.failures == 4
    assert first.retries == 2
    assert first.left_undone
    assert service.report_requests == [[16, 17, 19, 22]]
    assert second.users == 4
    assert second.earlier_users == first.users
    assert not second.left_undone
    assert sorted(final) == expected_users(service)
    assert len(final) == len(set(final))


async def test_a_refused_batch_stops_the_pass_and_records_nothing(tmp_path: Path) -> None:
    service = FakeService(some_users(60), refuse_reports=True)

    summary = await run_pass(options(service, tmp_path))

    assert summary.error is not None
    assert "HTTP 400: no such field" in summary.error
    assert summary.left_undone
    assert summary.messages == 0
    assert (tmp_path / "digest.jsonl").read_bytes() == b""
    assert json.loads((tmp_path / "digest.checkpoint").read_bytes())["done"] == []
    assert "Once that is fixed" in summary.undone_reason()


async def test_progress_counts_up_to_the_total_the_second_walk_found(tmp_path: Path) -> None:
    service = FakeService(some_users(60))
    snapshots: list[Snapshot] = []

    await run_pass(options(service, tmp_path, on_progress=snapshots.append))

    last = snapshots[-1]
    assert last.finished
    assert last.total == len([u for u, counts in service.users.items() if any(counts)])
    assert last.users == last.total
    assert all(earlier.users <= later.users for earlier, later in pairwise(snapshots))


def test_progress_line_shows_the_bar_rate_and_eta() -> None:
    halfway = Snapshot(users=2500, total=5000, messages=2000, retries=3, failures=0, elapsed_s=2.0)

    line = progress_line(halfway, width=10)

    assert line == (
        "[#####-----] 2,500/5,000 users  1,250/s  ETA 0:02  2,000 messages  3 retries  0 failed"
    )


def test_progress_line_without_a_total_has_no_eta() -> None:
    counting = Snapshot(users=10, total=None, messages=5, retries=0, failures=1, elapsed_s=0.5)

    line = progress_line(counting)

    assert line == "10 users  20/s  ETA ?  5 messages  0 retries  1 failed"


@pytest.mark.parametrize(
    ("now", "midnight"),
    [
        ("2026-12-04T16:56:20+00:00", "2026-12-04T00:00:00+00:00"),
        ("2026-12-04T00:00:00+00:00", "2026-12-04T00:00:00+00:00"),
        ("2026-12-03T23:59:59.999999+00:00", "2026-12-03T00:00:00+00:00"),
        # 02:00 in UTC+5 is still the evening before in UTC.
        ("2026-12-04T02:00:00+05:00", "2026-12-03T00:00:00+00:00"),
    ],
)
def test_window_ends_by_default_at_the_most_recent_midnight_utc(now: str, midnight: str) -> None:
    end = most_recent_midnight(datetime.fromisoformat(now))

    assert end == datetime.fromisoformat(midnight)
    assert end.utcoffset() == timedelta(0)


def test_main_refuses_to_run_without_an_api_key(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("TT_SCHEDULER_TEST_KEY", raising=False)

    code = main(["--base-url", "http://127.0.0.1:9", "--api-key-env", "TT_SCHEDULER_TEST_KEY"])

    assert code == 2
    assert "$TT_SCHEDULER_TEST_KEY holds no API key" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "complaint"),
    [
        (["--window-end", "2026-12-04T00:00:00"], "needs an offset"),
        (["--window-end", "yesterday"], "RFC 3339"),
        (["--window-end", "2999-01-01T00:00:00Z"], "in the future"),
        (["--batch-size", "1001"], "between 1 and 1000"),
        (["--page-size", "0"], "between 1 and 10000"),
        (["--max-tasks", "51"], "between 0 and 50"),
        (["--concurrency", "many"], "whole number"),
    ],
)
def test_main_refuses_options_outside_the_contract(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    complaint: str,
) -> None:
    monkeypatch.setenv("TT_SCHEDULER_TEST_KEY", "ttk_test-key")

    code = main(
        ["--base-url", "http://127.0.0.1:9", "--api-key-env", "TT_SCHEDULER_TEST_KEY", *extra]
    )

    assert code == 2
    assert complaint in capsys.readouterr().err


def test_main_says_so_when_the_output_cannot_be_created(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("TT_SCHEDULER_TEST_KEY", "ttk_test-key")
    out = tmp_path / "no-such-folder" / "digest.jsonl"
    args = ["--base-url", "http://127.0.0.1:9", "--api-key-env", "TT_SCHEDULER_TEST_KEY"]

    code = main([*args, "--window-end", "2024-06-01T00:00:00Z", "--out", str(out)])

    assert code == 2
    assert "No such file or directory" in capsys.readouterr().err


def test_main_refuses_a_checkpoint_of_another_window(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("TT_SCHEDULER_TEST_KEY", "ttk_test-key")
    out = tmp_path / "out.jsonl"
    out.write_bytes(b"")
    (tmp_path / "out.jsonl.checkpoint").write_bytes(
        msgspec.json.encode(
            {
                "format": 1,
                "windowStart": "2024-01-01T00:00:00Z",
                "windowEnd": "2024-01-02T00:00:00Z",
                "maxTasks": 5,
                "output": str(out),
                "outputBytes": 0,
                "done": [],
                "users": 0,
                "messages": 0,
            },
        ),
    )
    args = ["--base-url", "http://127.0.0.1:9", "--api-key-env", "TT_SCHEDULER_TEST_KEY"]

    code = main([*args, "--window-end", "2024-06-01T00:00:00Z", "--out", str(out)])

    assert code == 2
    assert "another pass" in capsys.readouterr().err
