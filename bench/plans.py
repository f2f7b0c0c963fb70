"""`EXPLAIN (ANALYZE, BUFFERS)` of the two statements, written next to the benchmark.

Each statement is prepared under a name and explained through EXECUTE, with the plan made
for the given values (what the first five executions of a prepared statement get) and,
where asked, with the generic plan PostgreSQL may switch a prepared statement to after
them; a generic plan with the same nodes is not printed twice.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg

from adapters.reports import REPORT_SQL
from adapters.user_ids import USER_IDS_SQL

_PREPARED = {
    "bench_report": ("bigint[], timestamptz, timestamptz, bigint", REPORT_SQL),
    "bench_user_ids": ("bigint, timestamptz, timestamptz, bigint", USER_IDS_SQL),
}
# A custom plan prints the batch's array of ids; a thousand of them say nothing.
_LONG_ARRAY = re.compile(r"'\{(\d+,){8,}\d+\}'")
_NUMBERS = re.compile(r"\((cost=|actual )[^)]*\)")


@dataclass(frozen=True, slots=True)
class PlanCase:
    title: str
    statement: str
    arguments: Sequence[object]
    generic_too: bool = False


async def write_plans(
    connection: asyncpg.Connection,
    path: Path,
    header: Sequence[str],
    cases: Sequence[PlanCase],
) -> None:
    for name, (types, sql) in _PREPARED.items():
        await connection.execute(f"PREPARE {name} ({types}) AS {sql}")
    sections = ["\n".join(header)]
    try:
        for case in cases:
            custom = await _explain(connection, case, "force_custom_plan")
            sections.append(f"=== {case.title}\n{custom}")
            if case.generic_too:
                generic = await _explain(connection, case, "force_generic_plan")
                if _shape(generic) == _shape(custom):
                    generic = "(the same nodes as the plan for these values above)"
                sections.append(f"=== {case.title}, generic plan\n{generic}")
    finally:
        # By name: the driver's own cached statements on this connection must survive.
        for name in _PREPARED:
            await connection.execute(f"DEALLOCATE {name}")
        await connection.execute("RESET plan_cache_mode")

    _save(path, "\n\n".join(sections) + "\n")


async def _explain(connection: asyncpg.Connection, case: PlanCase, mode: str) -> str:
    await connection.execute(f"SET plan_cache_mode = {mode}")
    execute = f"EXECUTE {case.statement}({', '.join(_literal(a) for a in case.arguments)})"
    # Once untimed, so the plan shows the buffers of a warm run, as the benchmark sees them.
    await connection.execute(execute)
    rows = await connection.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {execute}")

    plan = "\n".join(row[0] for row in rows)
    return _LONG_ARRAY.sub(lambda match: f"'{{…{match[0].count(',') + 1} ids…}}'", plan)


def _shape(plan: str) -> list[str]:
    """The plan's nodes and subplans without their estimates, timings and conditions."""
    return [
        _NUMBERS.sub("", line)
        for line in plan.splitlines()
        if "(cost=" in line or line.strip().startswith("SubPlan")
    ]


def _save(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _literal(value: object) -> str:
    if isinstance(value, bool):
        raise TypeError("no boolean parameter is expected")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        return f"'{value.isoformat()}'::timestamptz"
    if isinstance(value, list | tuple):
        return "'{" + ",".join(str(int(item)) for item in value) + "}'::bigint[]"
    raise TypeError(f"no literal for {type(value).__name__}")
