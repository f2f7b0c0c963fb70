"""The nightly digest pass: one producer walks the users to process, N consumers turn
batches of them into messages, and a checkpoint lets a killed pass resume.

The window is pinned before the first request and sent explicitly on every one, so every
page, every batch and every retry (and a resumed run the same day) sees the same window.
"""

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO, TypeVar

import httpx

from .checkpoint import (
    CheckpointError,
    DigestOutput,
    DoneRanges,
    PassIdentity,
)
from .client import (
    MAX_BATCH_SIZE,
    MAX_MAX_TASKS,
    MAX_PAGE_SIZE,
    RetriesExhausted,
    RetryPolicy,
    SchedulerApiError,
    SchedulerClient,
    Window,
    rfc3339,
)
from .messages import compose, encode_line

logger = logging.getLogger(__name__)

T = TypeVar("T")

WINDOW_SPAN = timedelta(hours=24)
MAX_CONCURRENCY = 64


@dataclass(frozen=True, slots=True)
class Snapshot:
    """How far the pass is; `users` counts every ID handled, reported, gone or failed."""

    users: int
    total: int | None
    messages: int
    retries: int
    failures: int
    elapsed_s: float
    finished: bool = False


@dataclass(frozen=True, slots=True)
class PassOptions:
    base_url: str
    api_key: str
    window_end: datetime
    out: Path
    checkpoint: Path | None = None
    concurrency: int = 4
    batch_size: int = 250
    page_size: int = 1000
    max_tasks: int = 5
    timeout_s: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    on_progress: Callable[[Snapshot], None] | None = None
    progress_interval_s: float = 0.2
    # A second walk with the largest pages, only to give the progress bar its total.
    estimate_total: bool = True
    transport: httpx.AsyncBaseTransport | None = None


@dataclass(frozen=True, slots=True)
class Summary:
    users: int
    messages: int
    retries: int
    failures: int
    gone: int
    duration_s: float
    walk_complete: bool
    error: str | None
    window: Window
    output: Path
    earlier_users: int
    earlier_messages: int

    @property
    def left_undone(self) -> bool:
        return self.failures > 0 or not self.walk_complete or self.error is not None

    def line(self) -> str:
        text = (
            f"digest: {self.users:,} users, {self.messages:,} messages, "
            f"{self.retries:,} retries, {self.failures:,} failures "
            f"in {self.duration_s:.1f} s"
        )
        if self.gone:
            text += f" ({self.gone:,} users gone meanwhile)"
        if self.earlier_users:
            text += (
                f", after {self.earlier_users:,} users and {self.earlier_messages:,} messages"
                " of earlier runs"
            )
        return text + f"; window ending {rfc3339(self.window.end)}; messages in {self.output}"

    def undone_reason(self) -> str:
        if self.error is not None:
            return (
                f"left undone, because {self.error.rstrip('.')}. "
                "Once that is fixed, run the same command again to finish the pass."
            )
        return (
            f"left undone: {self.failures:,} users failed. "
            "Run the same command again to finish the pass."
        )


@dataclass(frozen=True, slots=True)
class _Batch:
    """User IDs to report on, covering the walk's range (after, last]."""

    after: int
    last: int
    user_ids: list[int]


@dataclass(frozen=True, slots=True)
class _Answered:
    """A batch with its messages encoded, waiting to be committed."""

    batch: _Batch
    lines: list[bytes]
    users: int
    gone: int


async def _run_to_the_end(work: Coroutine[Any, Any, T]) -> T:
    """Await `work`; if cancelled meanwhile, still wait for it to end before going on.

    A commit runs in a thread, which nothing can interrupt halfway; returning early would
    let it write the output or the checkpoint after the pass has ended.
    """
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        while not task.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([task])
        if not task.cancelled():
            task.exception()  # retrieved, so that no warning says it never was
        raise


def most_recent_midnight(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def window_ending(end: datetime) -> Window:
    end = end.astimezone(UTC)
    return Window(start=end - WINDOW_SPAN, end=end)


async def run_pass(options: PassOptions) -> Summary:
    """Run (or resume) one pass; raises CheckpointError before any request if it cannot."""
    window = window_ending(options.window_end)
    identity = PassIdentity(
        window_start=window.start,
        window_end=window.end,
        max_tasks=options.max_tasks,
        output=options.out,
    )

    with DigestOutput.open(identity, options.checkpoint) as output:
        async with _client(options, connections=options.concurrency + 1) as client:
            return await _Pass(options, window, output, client).run()


def _client(options: PassOptions, *, connections: int) -> SchedulerClient:
    return SchedulerClient(
        options.base_url,
        options.api_key,
        timeout_s=options.timeout_s,
        connections=connections,
        retry=options.retry,
        transport=options.transport,
    )


class _Pass:
    """One run: the producer, the consumers and the writer, and what they counted."""

    def __init__(
        self,
        options: PassOptions,
        window: Window,
        output: DigestOutput,
        client: SchedulerClient,
    ) -> None:
        self._options = options
        self._window = window
        self._output = output
        self._client = client
        self._earlier_users = output.users
        self._earlier_messages = output.messages
        self._started = time.monotonic()
        self._users = 0
        self._messages = 0
        self._failures = 0
        self._gone = 0
        self._total: int | None = None
        self._walk_complete = False
        self._write_failed = False
        self._error: str | None = None

    async def run(self) -> Summary:
        # Twice the consumers: enough that none waits for the producer or the writer, and
        # the walk never runs far ahead of what has been written.
        depth = 2 * self._options.concurrency
        batches: asyncio.Queue[_Batch | None] = asyncio.Queue(maxsize=depth)
        answers: asyncio.Queue[_Answered | None] = asyncio.Queue(maxsize=depth)
        # Taken before any commit of this run, and the only view of the checkpoint that
        # the walks read: the writer thread updates the live one.
        done_before = DoneRanges(self._output.done.spans())
        helpers = []
        if self._options.estimate_total:
            helpers.append(asyncio.create_task(self._estimate_total(done_before)))
        if self._options.on_progress is not None:
            helpers.append(asyncio.create_task(self._report_progress(self._options.on_progress)))

        try:
            async with asyncio.TaskGroup() as writing:
                writing.create_task(self._write(answers))
                async with asyncio.TaskGroup() as working:
                    working.create_task(self._produce(batches, done_before))
                    for _ in range(self._options.concurrency):
                        working.create_task(self._consume(batches, answers))
                await answers.put(None)
        finally:
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)

        if self._options.on_progress is not None:
            self._options.on_progress(self._snapshot(finished=True))
        return self._summary()

    async def _produce(self, batches: asyncio.Queue[_Batch | None], done: DoneRanges) -> None:
        try:
            await self._hand_out_batches(batches, done)
        except SchedulerApiError as err:
            self._stop(f"walking the user IDs failed: {err}")
        # Not in a `finally`: a cancelled pass has no consumers left to take these.
        for _ in range(self._options.concurrency):
            await batches.put(None)

    async def _hand_out_batches(
        self,
        batches: asyncio.Queue[_Batch | None],
        done: DoneRanges,
    ) -> None:
        after = done.prefix_end()
        batch: list[int] = []
        pages = self._client.walk(
            self._window,
            after_id=after,
            page_size=self._options.page_size,
        )
        async with contextlib.aclosing(pages):
            async for page in pages:
                if self._error is not None:
                    return
                for user_id in page:
                    # Done in an earlier run. The ranges this run adds end behind the
                    # walk, so they would never hide an ID still to come anyway.
                    if user_id in done:
                        continue
                    batch.append(user_id)
                    if len(batch) == self._options.batch_size:
                        await batches.put(_Batch(after, user_id, batch))
                        after, batch = user_id, []
        if batch:
            await batches.put(_Batch(after, batch[-1], batch))
        self._walk_complete = True

    async def _consume(
        self,
        batches: asyncio.Queue[_Batch | None],
        answers: asyncio.Queue[_Answered | None],
    ) -> None:
        while (batch := await batches.get()) is not None:
            if self._error is not None:
                self._failures += len(batch.user_ids)
                continue
            answered = await self._answer(batch)
            if answered is not None:
                await answers.put(answered)

    async def _answer(self, batch: _Batch) -> _Answered | None:
        try:
            page = await self._client.reports(
                self._window,
                batch.user_ids,
                max_tasks=self._options.max_tasks,
            )
        except RetriesExhausted as err:
            # Left out of the checkpoint, so the next run asks for these users again.
            logger.warning("a batch of %d users failed: %s", len(batch.user_ids), err)
            self._failures += len(batch.user_ids)
            return None
        except SchedulerApiError as err:
            self._failures += len(batch.user_ids)
            self._stop(f"the service refused a batch: {err}")
            return None

        lines = []
        for report in page.reports:
            message = compose(report, self._window)
            if message is not None:
                lines.append(encode_line(message))
        return _Answered(batch, lines, users=len(page.reports), gone=len(page.missing_user_ids))

    async def _write(self, answers: asyncio.Queue[_Answered | None]) -> None:
        """Commit answered batches, all that are waiting at once, so one fsync serves many."""
        finished = False
        while not finished:
            group = [await answers.get()]
            while not answers.empty():
                group.append(answers.get_nowait())
            finished = group[-1] is None
            await self._commit([answered for answered in group if answered is not None])

    async def _commit(self, group: list[_Answered]) -> None:
        if not group:
            return
        users = sum(len(answered.batch.user_ids) for answered in group)
        if self._write_failed:
            self._failures += users
            return
        try:
            # In a thread, so that requests go on while the disk syncs.
            await _run_to_the_end(
                asyncio.to_thread(
                    self._output.commit,
                    [(answered.batch.after, answered.batch.last) for answered in group],
                    [line for answered in group for line in answered.lines],
                    users=sum(answered.users for answered in group),
                ),
            )
        except OSError as err:
            self._write_failed = True
            self._failures += users
            self._stop(f"writing {self._options.out} failed: {err}")
            return
        self._users += sum(answered.users for answered in group)
        self._gone += sum(answered.gone for answered in group)
        self._messages += sum(len(answered.lines) for answered in group)

    async def _estimate_total(self, done_before: DoneRanges) -> None:
        total = 0
        try:
            async with _client(self._options, connections=1) as client:
                pages = client.walk(
                    self._window,
                    after_id=done_before.prefix_end(),
                    page_size=MAX_PAGE_SIZE,
                )
                async with contextlib.aclosing(pages):
                    async for page in pages:
                        total += sum(1 for user_id in page if user_id not in done_before)
        except SchedulerApiError as err:
            logger.info("no total for the progress bar: %s", err)
            return
        self._total = total

    async def _report_progress(self, on_progress: Callable[[Snapshot], None]) -> None:
        while True:
            await asyncio.sleep(self._options.progress_interval_s)
            on_progress(self._snapshot())

    def _stop(self, reason: str) -> None:
        if self._error is None:
            logger.debug("the pass stops: %s", reason)
            self._error = reason

    def _snapshot(self, *, finished: bool = False) -> Snapshot:
        return Snapshot(
            users=self._users + self._gone + self._failures,
            total=self._total,
            messages=self._messages,
            retries=self._client.retries,
            failures=self._failures,
            elapsed_s=time.monotonic() - self._started,
            finished=finished,
        )

    def _summary(self) -> Summary:
        return Summary(
            users=self._users,
            messages=self._messages,
            retries=self._client.retries,
            failures=self._failures,
            gone=self._gone,
            duration_s=time.monotonic() - self._started,
            walk_complete=self._walk_complete,
            error=self._error,
            window=self._window,
            output=self._options.out,
            earlier_users=self._earlier_users,
            earlier_messages=self._earlier_messages,
        )


def progress_line(snapshot: Snapshot, width: int = 24) -> str:
    """`[######------] 1,200/5,000 users  800/s  ETA 0:05  700 messages  0 retries  0 failed`."""
    rate = snapshot.users / snapshot.elapsed_s if snapshot.elapsed_s > 0 else 0.0
    counts = (
        f"{snapshot.messages:,} messages  {snapshot.retries:,} retries  "
        f"{snapshot.failures:,} failed"
    )
    if snapshot.total is None:
        return f"{snapshot.users:,} users  {rate:,.0f}/s  ETA ?  {counts}"

    total = max(snapshot.total, snapshot.users)
    filled = width if total == 0 else width * snapshot.users // total
    bar = "#" * filled + "-" * (width - filled)
    eta = _clock((total - snapshot.users) / rate) if rate > 0 else "?"
    return f"[{bar}] {snapshot.users:,}/{total:,} users  {rate:,.0f}/s  ETA {eta}  {counts}"


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressPrinter:
    """A bar redrawn in place on a terminal; otherwise one plain line per update."""

    def __init__(self, stream: TextIO, *, interactive: bool) -> None:
        self._stream = stream
        self._interactive = interactive
        self._drawn = 0

    def __call__(self, snapshot: Snapshot) -> None:
        line = progress_line(snapshot)
        if not self._interactive:
            # The summary follows the last snapshot; in a log it would only repeat it.
            if not snapshot.finished:
                self._stream.write(line + "\n")
                self._stream.flush()
            return
        # Wider than the terminal would wrap, and `\r` would then redraw only the tail.
        line = line[: max(20, shutil.get_terminal_size().columns - 1)]
        self._stream.write("\r" + line.ljust(self._drawn))
        self._stream.flush()
        self._drawn = len(line)

    def finish(self) -> None:
        if self._interactive and self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = 0


class UsageError(Exception):
    """The command line or the environment does not describe a pass that can run."""


def main(argv: Sequence[str]) -> int:
    """`task-tracker digest …`: run or resume one pass; non-zero when anything is left undone."""
    try:
        args = _parser().parse_args(list(argv))
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 2

    # httpx tells of every request at info, which would bury the progress and the summary.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger("httpx").level))
    interactive = sys.stderr.isatty()
    printer = ProgressPrinter(sys.stderr, interactive=interactive)
    try:
        options = _pass_options(args, datetime.now(UTC), printer, interactive=interactive)
        summary = asyncio.run(run_pass(options))
    except (UsageError, CheckpointError, OSError) as err:
        # OSError only from opening the output: the pass itself reports write failures.
        print(f"digest: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        printer.finish()
        print("digest: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    finally:
        printer.finish()

    print(summary.line())
    if summary.left_undone:
        print(f"digest: {summary.undone_reason()}", file=sys.stderr)
        return 1
    return 0


def _pass_options(
    args: argparse.Namespace,
    now: datetime,
    printer: ProgressPrinter,
    *,
    interactive: bool,
) -> PassOptions:
    api_key = os.environ.get(args.api_key_env, "").strip()
    if not api_key:
        raise UsageError(f"${args.api_key_env} holds no API key")
    window_end = args.window_end or most_recent_midnight(now)
    if window_end > now:
        raise UsageError(
            "--window-end is in the future; the window must be over, "
            "or its reports would change while the pass runs",
        )
    out = args.out or Path(f"digest-{window_end:%Y%m%dT%H%M%SZ}.jsonl")

    return PassOptions(
        base_url=args.base_url,
        api_key=api_key,
        window_end=window_end,
        out=out,
        checkpoint=args.checkpoint or out.with_name(out.name + ".checkpoint"),
        concurrency=args.concurrency,
        batch_size=args.batch_size,
        page_size=args.page_size,
        max_tasks=args.max_tasks,
        on_progress=printer,
        progress_interval_s=0.2 if interactive else 10.0,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="task-tracker digest",
        description="Write tonight's digest messages as JSON lines, resuming a killed pass.",
    )
    parser.add_argument("--base-url", required=True, help="the service, e.g. http://127.0.0.1:8000")
    parser.add_argument(
        "--api-key-env",
        required=True,
        metavar="VAR",
        help="the environment variable that holds the API key",
    )
    parser.add_argument(
        "--window-end",
        type=_timestamp,
        metavar="T",
        help="end of the 24-hour window, RFC 3339 (default: the last midnight UTC)",
    )
    parser.add_argument(
        "--concurrency",
        type=_between(1, MAX_CONCURRENCY),
        default=4,
        metavar="N",
        help="consumers asking for reports at once (default 4)",
    )
    parser.add_argument(
        "--batch-size",
        type=_between(1, MAX_BATCH_SIZE),
        default=250,
        metavar="B",
        help=f"users per report request, 1-{MAX_BATCH_SIZE} (default 250)",
    )
    parser.add_argument(
        "--page-size",
        type=_between(1, MAX_PAGE_SIZE),
        default=1000,
        metavar="P",
        help=f"user IDs per page of the walk, 1-{MAX_PAGE_SIZE} (default 1000)",
    )
    parser.add_argument(
        "--max-tasks",
        type=_between(0, MAX_MAX_TASKS),
        default=5,
        metavar="M",
        help=f"titles per list in a report, 0-{MAX_MAX_TASKS} (default 5)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="the messages, one JSON object a line, written afresh unless resuming "
        "(default: digest-<window end>.jsonl)",
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        metavar="FILE",
        help="progress of the pass, to resume it (default: the output file + .checkpoint)",
    )
    return parser


def _timestamp(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an RFC 3339 timestamp such as 2026-12-04T00:00:00Z, got {text!r}",
        ) from None
    if value.utcoffset() is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs an offset, such as Z or +01:00")
    return value.astimezone(UTC)


def _between(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {value}")
        return value

    return parse
