"""The benchmark of issue 6: the product against PostgreSQL itself and the rejected designs.

    uv run python bench/run.py --scale tiny|small|medium|large

Builds (once) a database per scale, then measures on the same data, the same batches of
1000 ids from the producer's walk and the same 24-hour window: the report statement
through asyncpg (the ceiling), the served app over loopback HTTP (the product), N+1 and
raw rows (the rejected designs), the producer's pages, and the nightly pass over HTTP and
in SQL. Every design's answer is compared with the product's before anything is timed.
Prints a table and, as its last line, one JSON object with every figure; progress goes
to stderr. It judges no timing: it fails only on an error or a wrong answer.
"""

import argparse
import asyncio
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import msgspec

from adapters.embedded_postgres import start_embedded_postgres
from adapters.reports import REPORT_SQL
from adapters.user_ids import USER_IDS_SQL
from bench.dataset import Dataset, prepare_dataset
from bench.designs import NPlusOne, RawRows, Report, ReportDesign, SingleStatement
from bench.passes import PassResult, ProducerTimes, http_pass, sql_pass, time_producer, walk_in_sql
from bench.plans import PlanCase, write_plans
from bench.scales import (
    BATCH_SIZE,
    DEFAULT_SEED,
    MAX_TASKS,
    SCALES,
    WINDOW_LENGTH,
    Scale,
)
from bench.scheduler_client import (
    ReportsAnswer,
    SchedulerClient,
    UnexpectedAnswer,
    reports_body,
    reports_of,
)
from bench.served_app import ServedApp, ServerFailed
from bench.timing import BatchRunner, CpuMeter, CpuUse, Throughput, WrongAnswer, run_batches
from bench.wire_bytes import CountingProxy, Traffic
from domain.reports import ReportWindow

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SERVER_URL_VARIABLE = "TASK_TRACKER_BENCH_SERVER_URL"
EMBEDDED_DATA_DIR = PROJECT_ROOT / ".task-tracker" / "bench-postgres"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
# The ceiling, the rejected designs and the SQL pass each get this many connections.
SQL_CONNECTIONS = 2
# Batches whose traffic is counted for "bytes moved", after one untimed round.
BYTES_SAMPLE_BATCHES = 3

TARGETS = {
    "product_over_ceiling": (">=", 0.8),
    "single_over_n_plus_one": (">=", 10.0),
    "deep_over_first_page": ("<=", 1.5),
    "http_pass_over_sql_pass": ("<=", 1.25),
    "server_peak_rss_mb": ("<=", 250.0),
}

_TIMED = ("ceiling", "http", "n_plus_one", "raw_rows")
# Above this, the neighbours' load is worth a warning under the table.
_BUSY_MACHINE_CORES = 0.25

_started = time.perf_counter()


def say(message: str) -> None:
    print(f"[{time.perf_counter() - _started:6.1f}s] {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        figures = asyncio.run(_benchmark(args))
    except (WrongAnswer, UnexpectedAnswer, ServerFailed) as err:
        print(f"bench: FAILED: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    print(render_table(figures))
    print(json.dumps(figures, separators=(",", ":")))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/run.py",
        description="Benchmark the report API against PostgreSQL and the rejected designs.",
    )
    parser.add_argument("--scale", choices=SCALES, default="small", help="default small")
    parser.add_argument(
        "--seconds",
        type=_positive(float),
        help="time budget of each timed design (default 12 s; tiny 1.5 s)",
    )
    parser.add_argument(
        "--rounds",
        type=_positive(int),
        help="turns the timed designs take, sharing their budgets (default 3; tiny 1)",
    )
    parser.add_argument(
        "--workers",
        type=_positive(int),
        # One worker needs about 2 ms of CPU per 1000-report batch against PostgreSQL's
        # 10 ms, so on two shared cores a second worker only adds memory and contention.
        default=1,
        help="server workers (default 1, what fits beside PostgreSQL on two cores)",
    )
    parser.add_argument(
        "--concurrency",
        type=_positive(int),
        default=4,
        help="concurrent HTTP clients for the product and the HTTP pass (default 4)",
    )
    parser.add_argument(
        "--pool-size",
        type=_positive(int),
        help="TASK_TRACKER_POOL_SIZE of each server worker (default: the product's)",
    )
    parser.add_argument(
        "--server-url",
        default=os.environ.get(SERVER_URL_VARIABLE),
        help=f"a PostgreSQL server to use instead of the embedded one (or ${SERVER_URL_VARIABLE})",
    )
    parser.add_argument("--rebuild", action="store_true", help="rebuild the scale's data")
    parser.add_argument("--seed", type=_seed, default=DEFAULT_SEED, help="data seed, -1 … 1")
    return parser


Number = TypeVar("Number", int, float)


def _positive(kind: Callable[[str], Number]) -> Callable[[str], Number]:
    def parse(text: str) -> Number:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
        return value

    return parse


def _seed(text: str) -> float:
    value = float(text)
    if not -1 <= value <= 1:
        # PostgreSQL's setseed() takes nothing else.
        raise argparse.ArgumentTypeError(f"must be between -1 and 1, got {text}")
    return value


@dataclass(frozen=True, slots=True)
class Setting:
    """What every phase shares: the data, its window, its batches."""

    scale: Scale
    dataset: Dataset
    window: ReportWindow
    eligible: list[int]
    batches: list[list[int]]
    heavy: list[int]
    missing_id: int
    seconds: float
    rounds: int


async def _benchmark(args: argparse.Namespace) -> dict[str, Any]:
    scale = SCALES[args.scale]
    server_url = args.server_url
    if server_url is None:
        server_url = start_embedded_postgres(EMBEDDED_DATA_DIR)
        say(f"embedded PostgreSQL in {EMBEDDED_DATA_DIR}")
    dataset = await prepare_dataset(
        server_url, scale, seed=args.seed, rebuild=args.rebuild, say=say
    )
    window = ReportWindow(start=dataset.now - WINDOW_LENGTH, end=dataset.now)

    admin = await asyncpg.connect(dataset.url)
    try:
        eligible = await walk_in_sql(admin, window)
        if not eligible:
            raise WrongAnswer("no user has anything to report: the data is not what it should be")
        heavy_rows = await admin.fetch(
            """
            SELECT user_id, count(*) AS open_tasks FROM tasks
            WHERE completed_at IS NULL
            GROUP BY user_id
            ORDER BY count(*) DESC, user_id
            LIMIT $1
            """,
            BATCH_SIZE,
        )
        setting = Setting(
            scale=scale,
            dataset=dataset,
            window=window,
            eligible=eligible,
            batches=[eligible[i : i + BATCH_SIZE] for i in range(0, len(eligible), BATCH_SIZE)],
            heavy=[row["user_id"] for row in heavy_rows],
            missing_id=await admin.fetchval("SELECT coalesce(max(id), 0) + 1 FROM users"),
            seconds=args.seconds or scale.seconds_per_phase,
            rounds=args.rounds or scale.rounds,
        )
        say(
            f"{len(eligible)} of {dataset.users} users to process, "
            f"{len(setting.batches)} batches; heaviest user has {heavy_rows[0]['open_tasks']} "
            "open tasks"
        )

        async def backend_pids() -> list[int]:
            rows = await admin.fetch(
                "SELECT pid FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return [row[0] for row in rows]

        figures = await _measure(args, setting, backend_pids, admin)
        figures["postgres_version"] = await admin.fetchval("SHOW server_version")
    finally:
        await admin.close()
    figures["postgres_server"] = "external" if args.server_url else "embedded"
    return figures


def _describe(args: argparse.Namespace, setting: Setting) -> dict[str, Any]:
    window = setting.window
    return {
        "scale": setting.scale.name,
        "users": setting.dataset.users,
        "tasks": setting.dataset.tasks,
        "completed_tasks": setting.dataset.completed,
        "users_to_process": len(setting.eligible),
        "batches": len(setting.batches),
        "batch_size": BATCH_SIZE,
        "max_tasks": MAX_TASKS,
        "window_start": window.start.isoformat(),
        "window_end": window.end.isoformat(),
        "data_reused": setting.dataset.reused,
        "generation_s": round(setting.dataset.generation_s, 2),
        "seconds_per_phase": setting.seconds,
        "rounds": setting.rounds,
        "workers": args.workers,
        "concurrency": args.concurrency,
        "pool_size": args.pool_size,
        "sql_connections": SQL_CONNECTIONS,
    }


async def _measure(
    args: argparse.Namespace,
    setting: Setting,
    backend_pids: Callable[[], Awaitable[list[int]]],
    admin: asyncpg.Connection,
) -> dict[str, Any]:
    window = setting.window
    figures = _describe(args, setting)
    connections = [await asyncpg.connect(setting.dataset.url) for _ in range(SQL_CONNECTIONS)]
    app = ServedApp(setting.dataset.url, workers=args.workers, pool_size=args.pool_size)
    clients: list[SchedulerClient] = []
    try:
        async with app:
            say(f"server up on port {app.port} with {app.workers} workers")
            assert app.rss is not None
            figures["server_idle_rss_mb"] = _mb(app.rss.current_bytes())
            clients = [SchedulerClient(app.connection(), window) for _ in range(args.concurrency)]

            await _check_answers(setting, clients[0], connections[0])
            say("all designs agree with the product on the sample batches")
            figures |= await _bytes_moved(setting, clients[0])

            _spare_the_collector()
            race, plan_use = await _race(setting, connections, clients, app, backend_pids)
            figures |= race
            figures["http_client_decode_ms_per_batch"] = await _decode_cost(clients[0], setting)

            producer = await time_producer(
                connections[0], window, setting.eligible, setting.scale.producer_repetitions
            )
            figures |= _producer_figures(producer)
            say(
                f"producer: first {producer.first_page_ms:.2f} ms, deep "
                f"{producer.deep_page_ms:.2f} ms, offset {producer.offset_deep_page_ms:.2f} ms"
            )
            figures |= await _nightly_passes(setting, app, clients)
            app.check_alive()
    finally:
        for client in clients:
            await client.close()
        for connection in connections:
            await connection.close()

    plans_path = RESULTS_DIR / f"explain-{setting.scale.name}.txt"
    await _write_plans(admin, setting, plans_path, plan_use, producer)
    say(f"plans written to {plans_path.relative_to(PROJECT_ROOT)}")
    figures["explain_file"] = str(plans_path.relative_to(PROJECT_ROOT))
    figures |= _ratios(figures)
    return figures


async def _race(
    setting: Setting,
    connections: Sequence[asyncpg.Connection],
    clients: Sequence[SchedulerClient],
    app: ServedApp,
    backend_pids: Callable[[], Awaitable[list[int]]],
) -> tuple[dict[str, Any], list[str]]:
    """Time the four designs; they take turns, a slice each per round, so a neighbour's
    load on the machine falls on all of them alike rather than on whichever ran then.

    Returns the figures, and how PostgreSQL planned the report statement meanwhile.
    """
    window = setting.window
    contenders: dict[str, tuple[list[BatchRunner], int | None]] = {
        "ceiling": ([await _single_runner(c, window) for c in connections], None),
        "http": ([_http_runner(client, window) for client in clients], app.pid),
        "n_plus_one": (
            [_design_runner(await NPlusOne.prepare(c), window) for c in connections],
            None,
        ),
        "raw_rows": (
            [_design_runner(await RawRows.prepare(c), window) for c in connections],
            None,
        ),
    }
    slices: dict[str, list[Throughput]] = {name: [] for name in contenders}
    spreads = []
    for round_number in range(1, setting.rounds + 1):
        for name, (runners, server_pid) in contenders.items():
            slices[name].append(
                await run_batches(
                    runners,
                    setting.batches,
                    seconds=setting.seconds / setting.rounds,
                    meter=CpuMeter(backend_pids, server_pid),
                )
            )
            app.check_alive()
            if name == "http":
                spreads.append(app.spread({c.local_port for c in clients if c.local_port}))
        say(f"round {round_number} of {setting.rounds} done")

    # Idle keep-alive connections are closed by the server, so each turn the clients
    # connect again and may be spread over the workers differently.
    figures: dict[str, Any] = {"http_connections_per_worker": spreads}
    for name, parts in slices.items():
        result = Throughput.combined(parts)
        say(
            f"{name}: {result.reports_per_s:,.0f} reports/s over {result.batches} batches, "
            f"p50 {result.latency_ms(50):.1f} ms, p99 {result.latency_ms(99):.1f} ms"
        )
        figures |= _throughput_figures(name, result)
    # Asked now: the driver drops its prepared statements once the designs are gone.
    return figures, await _plan_use(connections)


async def _nightly_passes(
    setting: Setting,
    app: ServedApp,
    clients: Sequence[SchedulerClient],
) -> dict[str, Any]:
    """The pass in SQL and over HTTP, in turns; the medians, and the server's memory."""
    assert app.rss is not None
    sql_walls, http_walls = [], []
    app.rss.start_phase()
    for _ in range(setting.rounds):
        sql = await _sql_pass(setting)
        producer = SchedulerClient(app.connection(), setting.window)
        try:
            http = await http_pass(producer, clients, setting.window, MAX_TASKS)
        finally:
            await producer.close()
        _check_pass("HTTP", http, setting.eligible)
        sql_walls.append(sql.wall_s)
        http_walls.append(http.wall_s)

    sql_s, http_s = statistics.median(sql_walls), statistics.median(http_walls)
    say(f"nightly pass (median of {setting.rounds}): SQL {sql_s:.2f} s, HTTP {http_s:.2f} s")
    return {
        "sql_pass_s": round(sql_s, 3),
        "http_pass_s": round(http_s, 3),
        "pass_repetitions": setting.rounds,
        "pass_pages": http.pages,
        "server_pass_peak_rss_mb": _mb(app.rss.phase_peak_bytes),
        "server_pss_after_pass_mb": _mb(app.rss.proportional_bytes()),
        "server_peak_rss_mb": _mb(app.rss.peak_bytes),
    }


async def _check_answers(
    setting: Setting,
    client: SchedulerClient,
    connection: asyncpg.Connection,
) -> None:
    """Every design must give the product's answer, or its speed means nothing."""
    samples = {
        "the first batch of the walk": setting.batches[0],
        "the heaviest users and an id with no user": [
            *setting.heavy[: BATCH_SIZE - 1],
            setting.missing_id,
        ],
    }
    designs: dict[str, ReportDesign] = {
        "single statement": await SingleStatement.prepare(connection),
        "N+1": await NPlusOne.prepare(connection),
        "raw rows": await RawRows.prepare(connection),
    }
    for sample, user_ids in samples.items():
        reply = await client.reports(reports_body(user_ids, setting.window, MAX_TASKS))
        expected = reports_of(reply.answer)
        missing = sorted(set(user_ids) - {report.user_id for report in expected})
        if reply.answer.missing_user_ids != missing or len(expected) != len(set(user_ids)) - len(
            missing
        ):
            raise WrongAnswer(f"the product's answer for {sample} does not add up")
        if not any(report.completed_count for report in expected):
            raise WrongAnswer(f"no completed task in {sample}: the window misses the data")
        for name, design in designs.items():
            got = await design.reports(user_ids, setting.window, MAX_TASKS)
            if got != expected:
                raise WrongAnswer(
                    f"{name} differs from the product for {sample}: {_diff(got, expected)}"
                )


def _diff(got: list[Report], expected: list[Report]) -> str:
    if len(got) != len(expected):
        return f"{len(got)} reports instead of {len(expected)}"
    for mine, theirs in zip(got, expected, strict=True):
        if mine != theirs:
            return f"{mine} instead of {theirs}"
    return "no difference found"


async def _bytes_moved(setting: Setting, client: SchedulerClient) -> dict[str, Any]:
    sample = setting.batches[:BYTES_SAMPLE_BATCHES]
    figures: dict[str, Any] = {}
    proxy = CountingProxy(setting.dataset.url)
    await proxy.start()
    try:
        for name, prepare in (
            ("ceiling", SingleStatement.prepare),
            ("n_plus_one", NPlusOne.prepare),
            ("raw_rows", RawRows.prepare),
        ):
            connection = await proxy.connect()
            try:
                design = await prepare(connection)
                for batch in sample:
                    await design.reports(batch, setting.window, MAX_TASKS)
                proxy.reset()
                reports = 0
                for batch in sample:
                    reports += len(await design.reports(batch, setting.window, MAX_TASKS))
                traffic = proxy.traffic()
            finally:
                await connection.close()
            figures |= _traffic_figures(name, traffic, reports)
    finally:
        await proxy.close()

    body_bytes = reports = 0
    for batch in sample:
        reply = await client.reports(reports_body(batch, setting.window, MAX_TASKS))
        body_bytes += reply.body_bytes
        reports += len(reply.answer.reports)
    figures["http_bytes_per_report"] = round(body_bytes / reports, 1)
    return figures


def _traffic_figures(name: str, traffic: Traffic, reports: int) -> dict[str, Any]:
    return {
        f"{name}_bytes_per_report": round(traffic.to_client / reports, 1),
        f"{name}_bytes_up_per_report": round(traffic.to_server / reports, 1),
    }


async def _single_runner(connection: asyncpg.Connection, window: ReportWindow) -> BatchRunner:
    design = await SingleStatement.prepare(connection)

    async def run(batch: Sequence[int]) -> int:
        return len(await design.rows(batch, window, MAX_TASKS))

    return run


def _http_runner(client: SchedulerClient, window: ReportWindow) -> BatchRunner:
    async def run(batch: Sequence[int]) -> int:
        reply = await client.reports(reports_body(batch, window, MAX_TASKS))
        return len(reply.answer.reports)

    return run


def _design_runner(design: ReportDesign, window: ReportWindow) -> BatchRunner:
    async def run(batch: Sequence[int]) -> int:
        return len(await design.reports(batch, window, MAX_TASKS))

    return run


def _throughput_figures(name: str, result: Throughput) -> dict[str, Any]:
    figures: dict[str, Any] = {
        f"{name}_reports_per_s": round(result.reports_per_s, 1),
        f"{name}_batch_p50_ms": round(result.latency_ms(50), 2),
        f"{name}_batch_p99_ms": round(result.latency_ms(99), 2),
        f"{name}_batches_timed": result.batches,
    }
    if result.cpu is not None:
        figures[f"{name}_cpu_cores"] = _cores(result.cpu)
        # CPU time a batch cost each party: unlike rates, barely moved by a busy machine.
        for party, seconds in (
            ("client", result.cpu.client_s),
            ("server", result.cpu.server_s),
            ("postgres", result.cpu.postgres_s),
        ):
            per_batch = result.cpu_ms_per_batch(seconds)
            if per_batch is not None:
                figures[f"{name}_{party}_cpu_ms_per_batch"] = round(per_batch, 2)
    return figures


def _cores(cpu: CpuUse) -> dict[str, float | None]:
    """How many of the machine's cores each party kept busy on average."""

    def rounded(seconds: float | None) -> float | None:
        cores = cpu.cores(seconds)
        return None if cores is None else round(cores, 2)

    ours = cpu.client_s + (cpu.server_s or 0.0) + (cpu.postgres_s or 0.0)
    return {
        "client": rounded(cpu.client_s),
        "server": rounded(cpu.server_s),
        "postgres": rounded(cpu.postgres_s),
        # Everything else on the machine: PostgreSQL's background work, other programs.
        "others": rounded(max(0.0, cpu.machine_s - ours)),
        "machine": rounded(cpu.machine_s),
    }


async def _decode_cost(client: SchedulerClient, setting: Setting) -> float:
    """What reading one answer costs the client alone, measured apart from the server."""
    reply = await client.reports(reports_body(setting.batches[0], setting.window, MAX_TASKS))
    body = msgspec.json.encode(reply.answer)
    decoder = msgspec.json.Decoder(ReportsAnswer)
    costs = []
    for _ in range(20):
        started = time.thread_time()
        decoder.decode(body)
        costs.append(time.thread_time() - started)
    # The least is the cost itself; the rest is the neighbours and the collector.
    return round(min(costs) * 1000, 3)


def _producer_figures(producer: ProducerTimes) -> dict[str, Any]:
    return {
        "first_page_ms": round(producer.first_page_ms, 3),
        "deep_page_ms": round(producer.deep_page_ms, 3),
        "offset_deep_page_ms": round(producer.offset_deep_page_ms, 3),
        "deep_page_position": producer.deep_position,
        "producer_repetitions": producer.repetitions,
    }


async def _plan_use(connections: Sequence[asyncpg.Connection]) -> list[str]:
    """Which plans the product's statements ran with while timed, as PostgreSQL counted."""
    names = {REPORT_SQL.strip(): "report", USER_IDS_SQL.strip(): "producer"}
    lines = []
    for index, connection in enumerate(connections):
        rows = await connection.fetch(
            "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
        )
        for row in rows:
            name = names.get(row["statement"].strip())
            if name is not None:
                lines.append(
                    f"{name} statement on connection {index}: {row['generic_plans']} "
                    f"executions with the generic plan, {row['custom_plans']} with custom ones"
                )
    return lines


async def _sql_pass(setting: Setting) -> PassResult:
    pool = await asyncpg.create_pool(
        setting.dataset.url, min_size=SQL_CONNECTIONS, max_size=SQL_CONNECTIONS
    )
    try:
        # One untimed pass fills the statement caches, as the HTTP pass's warm pools are.
        await sql_pass(pool, setting.window, MAX_TASKS, consumers=SQL_CONNECTIONS)
        result = await sql_pass(pool, setting.window, MAX_TASKS, consumers=SQL_CONNECTIONS)
    finally:
        await pool.close()
    _check_pass("SQL", result, setting.eligible)
    return result


def _check_pass(name: str, result: PassResult, eligible: list[int]) -> None:
    if result.user_ids != eligible or result.reports != len(eligible):
        raise WrongAnswer(
            f"the {name} pass walked {len(result.user_ids)} users and got {result.reports} "
            f"reports; the walk in SQL has {len(eligible)}"
        )


async def _write_plans(
    connection: asyncpg.Connection,
    setting: Setting,
    path: Path,
    plan_use: list[str],
    producer: ProducerTimes,
) -> None:
    window = setting.window
    deep_after = setting.eligible[producer.deep_position - 1] if producer.deep_position else 0
    version = await connection.fetchval("SHOW server_version")
    header = [
        f"EXPLAIN (ANALYZE, BUFFERS) at scale {setting.scale.name}: "
        f"{setting.dataset.users} users, {setting.dataset.tasks} tasks, PostgreSQL {version}",
        f"window [{window.start.isoformat()}, {window.end.isoformat()}), "
        f"maxTasks {MAX_TASKS}, batches of {BATCH_SIZE}, {len(setting.eligible)} users to process",
        "Written by bench/run.py; each plan is from a warm second execution.",
        "Plans the timed prepared statements ran with (pg_prepared_statements):",
        *(f"  {line}" for line in plan_use),
        f"  producer statement: {producer.generic_plans} executions with the generic plan, "
        f"{producer.custom_plans} with custom ones",
    ]
    limit = BATCH_SIZE + 1
    cases = [
        PlanCase(
            "report, a typical batch (the walk's first)",
            "bench_report",
            [setting.batches[0], window.start, window.end, MAX_TASKS],
            generic_too=True,
        ),
        PlanCase(
            "report, the heaviest users by open tasks",
            "bench_report",
            [setting.heavy, window.start, window.end, MAX_TASKS],
        ),
        PlanCase("producer, first page", "bench_user_ids", [0, window.start, window.end, limit]),
        PlanCase(
            f"producer, page after {producer.deep_position} users (90 %)",
            "bench_user_ids",
            [deep_after, window.start, window.end, limit],
            generic_too=True,
        ),
    ]
    await write_plans(connection, path, header, cases)


def _ratios(figures: dict[str, Any]) -> dict[str, Any]:
    return {
        "product_over_ceiling": round(
            figures["http_reports_per_s"] / figures["ceiling_reports_per_s"], 3
        ),
        "single_over_n_plus_one": round(
            figures["ceiling_reports_per_s"] / figures["n_plus_one_reports_per_s"], 2
        ),
        "single_over_raw_rows": round(
            figures["ceiling_reports_per_s"] / figures["raw_rows_reports_per_s"], 2
        ),
        "deep_over_first_page": round(figures["deep_page_ms"] / figures["first_page_ms"], 3),
        "offset_over_keyset_deep_page": round(
            figures["offset_deep_page_ms"] / figures["deep_page_ms"], 2
        ),
        "http_pass_over_sql_pass": round(figures["http_pass_s"] / figures["sql_pass_s"], 3),
    }


def _spare_the_collector() -> None:
    """Move everything alive now out of the cyclic collector's reach.

    Each batch allocates thousands of rows, records and structs, and every so often they
    set off a full collection, which would otherwise walk every module and object the
    benchmark has loaded: the client's CPU time per batch then grows several times over
    and is taken from the server and PostgreSQL on the same cores.
    """
    gc.collect()
    gc.freeze()


def _mb(size: int) -> float:
    return round(size / 2**20, 1)


def render_table(figures: dict[str, Any]) -> str:
    f = figures

    def target(key: str) -> str:
        if key not in TARGETS:
            return ""
        sign, bound = TARGETS[key]
        value = f[key]
        met = value >= bound if sign == ">=" else value <= bound
        return f"{sign} {bound:g}  {'met' if met else 'MISSED'}"

    def per_batch(name: str) -> str:
        parties = ("client", "server", "postgres")
        found = [(who, f.get(f"{name}_{who}_cpu_ms_per_batch")) for who in parties]
        return " + ".join(f"{who} {ms:.1f}" for who, ms in found if ms is not None)

    def cores(name: str) -> str:
        c = f.get(f"{name}_cpu_cores")
        if not c:
            return ""
        parties = ("client", "server", "postgres", "others")
        return ", ".join(f"{who} {c[who]:.2f}" for who in parties if c[who] is not None)

    rows = [
        ("figure", "value", "ratio", "target"),
        (
            f"ceiling: REPORT_SQL via asyncpg, {f['sql_connections']} connections",
            f"{f['ceiling_reports_per_s']:,.0f} reports/s",
            "",
            "",
        ),
        (
            f"product: HTTP, {f['workers']} workers, {f['concurrency']} clients",
            f"{f['http_reports_per_s']:,.0f} reports/s",
            f"{f['product_over_ceiling']:.2f} of ceiling",
            target("product_over_ceiling"),
        ),
        (
            "  per batch p50 / p99",
            f"{f['http_batch_p50_ms']:.1f} / {f['http_batch_p99_ms']:.1f} ms",
            "",
            "",
        ),
        (
            "  client connections per worker, each turn",
            " ".join("/".join(map(str, spread)) for spread in f["http_connections_per_worker"]),
            "",
            "",
        ),
        (
            "N+1: 5 prepared queries a user",
            f"{f['n_plus_one_reports_per_s']:,.0f} reports/s",
            f"single ÷ N+1 = {f['single_over_n_plus_one']:.1f}",
            target("single_over_n_plus_one"),
        ),
        (
            "raw rows grouped in Python",
            f"{f['raw_rows_reports_per_s']:,.0f} reports/s",
            f"single ÷ raw = {f['single_over_raw_rows']:.1f}",
            "",
        ),
        (
            "bytes from PostgreSQL per report",
            f"{f['ceiling_bytes_per_report']:.0f} single, "
            f"{f['n_plus_one_bytes_per_report']:.0f} N+1, "
            f"{f['raw_rows_bytes_per_report']:.0f} raw",
            "",
            "",
        ),
        (
            "bytes to PostgreSQL per report",
            f"{f['ceiling_bytes_up_per_report']:.1f} single, "
            f"{f['n_plus_one_bytes_up_per_report']:.0f} N+1, "
            f"{f['raw_rows_bytes_up_per_report']:.1f} raw",
            "",
            "",
        ),
        (
            "producer: first page",
            f"{f['first_page_ms']:.2f} ms",
            "",
            "",
        ),
        (
            f"producer: page after {f['deep_page_position']} users (90 %)",
            f"{f['deep_page_ms']:.2f} ms",
            f"deep ÷ first = {f['deep_over_first_page']:.2f}",
            target("deep_over_first_page"),
        ),
        (
            "producer: same depth with OFFSET",
            f"{f['offset_deep_page_ms']:.2f} ms",
            f"OFFSET ÷ keyset = {f['offset_over_keyset_deep_page']:.1f}",
            "",
        ),
        ("nightly pass in SQL", f"{f['sql_pass_s']:.2f} s", "", ""),
        (
            "nightly pass over HTTP",
            f"{f['http_pass_s']:.2f} s",
            f"HTTP ÷ SQL = {f['http_pass_over_sql_pass']:.2f}",
            target("http_pass_over_sql_pass"),
        ),
        (
            "server peak RSS (process tree)",
            f"{f['server_peak_rss_mb']:.0f} MB",
            f"idle {f['server_idle_rss_mb']:.0f}, PSS {f['server_pss_after_pass_mb']:.0f} MB",
            target("server_peak_rss_mb"),
        ),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))

    lines += [
        "",
        f"scale {f['scale']}: {f['users']:,} users, {f['tasks']:,} tasks, "
        f"{f['users_to_process']:,} to process in {f['batches']} batches of {f['batch_size']}; "
        f"window [{f['window_start']}, {f['window_end']}), maxTasks {f['max_tasks']}; "
        f"PostgreSQL {f['postgres_version']} ({f['postgres_server']}).",
        "Bytes moved: every protocol message PostgreSQL sent (from) or received (to), counted "
        f"by a loopback proxy over {BYTES_SAMPLE_BATCHES} batches with prepared statements; "
        f"the HTTP answer is {f['http_bytes_per_report']:.0f} bytes of JSON per report.",
        f"Cores kept busy while timed (of {os.cpu_count()}; 'others': the rest of the machine):",
        f"  ceiling: {cores('ceiling')}; product: {cores('http')};",
        f"  N+1: {cores('n_plus_one')}; raw rows: {cores('raw_rows')}.",
        "CPU milliseconds per batch of 1000 reports, by party:",
        f"  ceiling: {per_batch('ceiling')}; product: {per_batch('http')} "
        f"(the client's decoding alone: {f['http_client_decode_ms_per_batch']:.2f});",
        f"  N+1: {per_batch('n_plus_one')}; raw rows: {per_batch('raw_rows')}.",
        f"Timed phases took {f['rounds']} turns each; nightly passes are medians of "
        f"{f['pass_repetitions']}. Targets are those of issue 6: reported, not judged.",
    ]
    busiest = max(f[f"{name}_cpu_cores"]["others"] or 0.0 for name in _TIMED)
    if busiest > _BUSY_MACHINE_CORES:
        lines.append(
            f"WARNING: other programs kept up to {busiest:.2f} cores busy while timing; "
            "rates and ratios are lower and noisier than on a quiet machine."
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
