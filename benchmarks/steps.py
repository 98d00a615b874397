"""Per-step orchestration CPU: no-op tool steps through the real LocalEngine (Flyte local mode, the
eager scheduler, the SQLite run store), as a chain and as independent steps."""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.table import Row
from planning.answer import plain_answer
from planning.catalog import AgentSpec, Catalog, ToolSpec
from planning.local import LocalEngine
from planning.plan import Plan, Step
from planning.records import RunStatus
from planning.steps import StepRunner
from planning.store import RunStore

SIZES = (10, 100, 1_000)
SMOKE_SIZES = (3, 10)
SHAPES = ("chain", "independent")
METHOD = (
    "process CPU (time.process_time: every thread, Flyte's loop included) around LocalEngine.run of a plan "
    "of no-op tool steps, ÷ steps; SQLite store on disk, no LLM, one warm-up run first"
)


def noop() -> int:
    """Does nothing; returns 0."""
    return 0


def noop_catalog() -> Catalog:
    return Catalog([AgentSpec(name="noop", description="Does nothing.", tools=(ToolSpec.from_function(noop),))])


def noop_plan(steps: int, shape: str) -> Plan:
    """`steps` no-op tool steps: each depending on the one before (chain), or on nothing."""
    return Plan(
        steps=[
            Step(id=i, agent="noop", tool="noop", args={}, depends_on=[i - 1] if shape == "chain" and i > 1 else [])
            for i in range(1, steps + 1)
        ]
    )


@dataclass(frozen=True)
class StepCost:
    shape: str
    steps: int
    cpu_s: float
    wall_s: float

    @property
    def cpu_ms_per_step(self) -> float:
        return self.cpu_s * 1000 / self.steps


class StepBench:
    """One engine and store in a scratch directory, reused across measurements."""

    def __init__(self, home: Path) -> None:
        self.store = RunStore(home / "runs.sqlite3")
        self.engine = LocalEngine(self.store, StepRunner(noop_catalog(), retries=0), plain_answer, home=home)

    async def measure(self, steps: int, shape: str) -> StepCost:
        run = self.store.create_run(noop_plan(steps, shape), request=f"{steps} no-op steps ({shape})")
        wall, cpu = time.perf_counter(), time.process_time()
        record = await self.engine.run(run.id, synthesize=False)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        if record.status is not RunStatus.SUCCEEDED:
            raise RuntimeError(f"the {steps}-step {shape} run ended {record.status.value}: {record.error}")
        return StepCost(shape=shape, steps=steps, cpu_s=cpu, wall_s=wall)


async def measure_all(sizes: tuple[int, ...]) -> list[StepCost]:
    with tempfile.TemporaryDirectory(prefix="planner-bench-") as scratch:
        bench = StepBench(Path(scratch))
        try:
            await bench.measure(3, "chain")  # warm-up: imports, Flyte's first run
            return [await bench.measure(n, shape) for shape in SHAPES for n in sizes]
        finally:
            bench.store.close()


def run(smoke: bool) -> list[Row]:
    costs = asyncio.run(measure_all(SMOKE_SIZES if smoke else SIZES))
    return [
        Row(
            "steps",
            f"{c.steps:,} no-op steps, {c.shape}",
            f"{c.cpu_ms_per_step:.2f} ms CPU/step ({c.wall_s:.2f} s wall)",
            METHOD,
        )
        for c in costs
    ]
