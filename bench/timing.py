"""Running a design against the batches for a time budget, and where the CPU went meanwhile."""

import asyncio
import functools
import itertools
import math
import operator
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from bench.processes import machine_busy_seconds, processes_cpu_seconds, tree_cpu_seconds

# Answers one batch and returns how many reports came back.
BatchRunner = Callable[[Sequence[int]], Awaitable[int]]


class WrongAnswer(Exception):
    """A design answered a batch with something else than one report per requested user."""


@dataclass(frozen=True, slots=True)
class CpuUse:
    """CPU seconds spent during a phase, by whom; `machine` counts every core."""

    wall_s: float
    client_s: float
    server_s: float | None
    postgres_s: float | None
    machine_s: float

    def cores(self, seconds: float | None) -> float | None:
        return None if seconds is None else seconds / self.wall_s

    def __add__(self, other: "CpuUse") -> "CpuUse":
        def both(mine: float | None, theirs: float | None) -> float | None:
            return None if mine is None or theirs is None else mine + theirs

        return CpuUse(
            wall_s=self.wall_s + other.wall_s,
            client_s=self.client_s + other.client_s,
            server_s=both(self.server_s, other.server_s),
            postgres_s=both(self.postgres_s, other.postgres_s),
            machine_s=self.machine_s + other.machine_s,
        )


class CpuMeter:
    """Measures the client (this process), the server's process tree and the backends.

    The backends are the ones connected to the benchmark's database when the phase starts
    or ends, found in pg_stat_activity; a backend that comes and goes within the phase is
    missed, which the pools kept open by every design make rare.
    """

    def __init__(
        self,
        backend_pids: Callable[[], Awaitable[list[int]]] | None,
        server_pid: int | None = None,
    ) -> None:
        self._backend_pids = backend_pids
        self._server_pid = server_pid
        self._started = (0.0, 0.0, 0.0, 0.0)
        self._backends: dict[int, float] = {}

    async def start(self) -> None:
        if self._backend_pids is not None:
            self._backends = processes_cpu_seconds(await self._backend_pids())
        self._started = (
            time.perf_counter(),
            time.process_time(),
            self._server_cpu(),
            machine_busy_seconds(),
        )

    async def stop(self) -> CpuUse:
        ended = (
            time.perf_counter(),
            time.process_time(),
            self._server_cpu(),
            machine_busy_seconds(),
        )
        postgres_s = None
        if self._backend_pids is not None:
            pids = set(await self._backend_pids()) | set(self._backends)
            now = processes_cpu_seconds(sorted(pids))
            postgres_s = sum(now[pid] - self._backends.get(pid, 0.0) for pid in now)
        wall, client, server, machine = (
            end - start for end, start in zip(ended, self._started, strict=True)
        )
        return CpuUse(
            wall_s=wall,
            client_s=client,
            server_s=server if self._server_pid is not None else None,
            postgres_s=postgres_s,
            machine_s=machine,
        )

    def _server_cpu(self) -> float:
        return 0.0 if self._server_pid is None else tree_cpu_seconds(self._server_pid)


@dataclass(frozen=True, slots=True)
class Throughput:
    batches: int
    reports: int
    elapsed_s: float
    latencies_s: tuple[float, ...]
    cpu: CpuUse | None

    @classmethod
    def combined(cls, slices: Sequence["Throughput"]) -> "Throughput":
        """The slices of one design, taken in turn with the others, as one measurement."""
        cpu = None
        if all(part.cpu is not None for part in slices):
            cpu = functools.reduce(operator.add, [part.cpu for part in slices if part.cpu])
        return cls(
            batches=sum(part.batches for part in slices),
            reports=sum(part.reports for part in slices),
            elapsed_s=sum(part.elapsed_s for part in slices),
            latencies_s=tuple(itertools.chain.from_iterable(p.latencies_s for p in slices)),
            cpu=cpu,
        )

    @property
    def reports_per_s(self) -> float:
        return self.reports / self.elapsed_s

    def latency_ms(self, percent: float) -> float:
        return percentile(self.latencies_s, percent) * 1000

    def cpu_ms_per_batch(self, seconds: float | None) -> float | None:
        return None if seconds is None else seconds * 1000 / self.batches


async def run_batches(
    runners: Sequence[BatchRunner],
    batches: Sequence[Sequence[int]],
    *,
    seconds: float,
    warmup_per_runner: int = 2,
    meter: CpuMeter | None = None,
) -> Throughput:
    """Let each runner take the next batch in turn until the budget is spent.

    A runner stands for one connection; the batches are taken round the list again and
    again, so every design sees the same batches in the same order. A batch that is
    started before the budget ends is finished and counted.
    """
    order = itertools.count()

    async def warm(runner: BatchRunner) -> None:
        for _ in range(warmup_per_runner):
            await _checked(runner, batches[next(order) % len(batches)])

    async with asyncio.TaskGroup() as warming:
        for runner in runners:
            warming.create_task(warm(runner))

    latencies: list[float] = []
    reports = 0
    if meter is not None:
        await meter.start()
    started = time.perf_counter()
    deadline = started + seconds

    async def work(runner: BatchRunner) -> None:
        nonlocal reports
        while time.perf_counter() < deadline:
            batch = batches[next(order) % len(batches)]
            sent = time.perf_counter()
            # Await first, then add: `reports += await …` would read the total before
            # the await and write back a stale sum over the other runners' batches.
            got = await _checked(runner, batch)
            reports += got
            latencies.append(time.perf_counter() - sent)

    async with asyncio.TaskGroup() as working:
        for runner in runners:
            working.create_task(work(runner))
    elapsed = time.perf_counter() - started
    cpu = await meter.stop() if meter is not None else None

    return Throughput(
        batches=len(latencies),
        reports=reports,
        elapsed_s=elapsed,
        latencies_s=tuple(latencies),
        cpu=cpu,
    )


async def _checked(runner: BatchRunner, batch: Sequence[int]) -> int:
    got = await runner(batch)
    if got != len(set(batch)):
        raise WrongAnswer(f"{got} reports for a batch of {len(set(batch))} existing users")
    return got


def percentile(values: Sequence[float], percent: float) -> float:
    """The nearest-rank percentile: the smallest value with `percent` % at or below it."""
    ordered = sorted(values)
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


def median_ms(seconds: Sequence[float]) -> float:
    return statistics.median(seconds) * 1000
