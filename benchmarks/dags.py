"""Eager scheduling against wave barriers on random planner-shaped DAGs, on a virtual clock.

Each DAG has 3–12 steps; each step depends on 0–3 earlier ones (most on one or none, like the plans
a planner writes: a few independent lookups, then steps that combine them); durations are
lognormal (median 2 s, sigma 0.8, LLM-call-like). The eager run is the real scheduler
(planning.scheduler.execute) whose steps sleep their durations; the wave-barrier run starts each wave
(dependency depth) only when the whole previous wave is done, as the seed did. Both run on anyio's
trio backend with trio's MockClock (autojump): time is virtual, so the makespans are exact and the
benchmark takes no real time. Concurrency is unbounded, so the only difference is the barrier.
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass

import anyio
from pydantic import JsonValue
from trio.testing import MockClock

from benchmarks.table import Row, spread
from planning.plan import Plan, Step
from planning.records import StepOutcome, StepStatus
from planning.scheduler import execute

DAGS = 30
SMOKE_DAGS = 5
SEED = 20_260_101
MEDIAN_S, SIGMA = 2.0, 0.8


@dataclass(frozen=True)
class Dag:
    plan: Plan
    durations: dict[int, float]

    def critical_path(self) -> float:
        """The longest chain of durations: no executor can finish sooner."""
        finish: dict[int, float] = {}
        for step in self.plan.steps:  # ids ascend and steps depend only on earlier ones
            finish[step.id] = self.durations[step.id] + max((finish[n] for n in step.depends_on), default=0.0)
        return max(finish.values())


def random_dag(rng: random.Random) -> Dag:
    count = rng.randint(3, 12)
    steps = []
    for i in range(1, count + 1):
        fan_in = min(i - 1, rng.choices((0, 1, 2, 3), weights=(3, 4, 2, 1))[0])
        needs = sorted(rng.sample(range(1, i), fan_in))
        steps.append(Step(id=i, agent="work", task=f"step {i}", depends_on=needs))
    durations = {s.id: rng.lognormvariate(math.log(MEDIAN_S), SIGMA) for s in steps}
    return Dag(Plan(steps=steps), durations)


async def eager_makespan(dag: Dag) -> float:
    async def sleep_step(step: Step, inputs: dict[int, JsonValue]) -> StepOutcome:
        await anyio.sleep(dag.durations[step.id])
        return StepOutcome(status=StepStatus.SUCCEEDED, result=step.id)

    start = anyio.current_time()
    outcomes = await execute(dag.plan, sleep_step, max_concurrency=len(dag.plan.steps))
    assert all(o.status is StepStatus.SUCCEEDED for o in outcomes.values())
    return anyio.current_time() - start


async def wave_makespan(dag: Dag) -> float:
    waves = dag.plan.waves()
    start = anyio.current_time()
    for wave in sorted(set(waves.values())):
        async with anyio.create_task_group() as group:
            for step_id in (i for i, w in waves.items() if w == wave):
                group.start_soon(anyio.sleep, dag.durations[step_id])
    return anyio.current_time() - start


async def simulate(count: int) -> list[tuple[float, float]]:
    """(eager ÷ critical path, wave barriers ÷ critical path) for `count` random DAGs."""
    rng = random.Random(SEED)
    ratios = []
    for _ in range(count):
        dag = random_dag(rng)
        critical = dag.critical_path()
        ratios.append((await eager_makespan(dag) / critical, await wave_makespan(dag) / critical))
    return ratios


def run(smoke: bool) -> list[Row]:
    count = SMOKE_DAGS if smoke else DAGS
    ratios = anyio.run(simulate, count, backend="trio", backend_options={"clock": MockClock(autojump_threshold=0)})
    eager = [e for e, _ in ratios]
    waves = [w for _, w in ratios]
    method = (
        f"{count} random DAGs (3–12 steps, seed {SEED}), lognormal durations (median {MEDIAN_S:g} s, "
        f"sigma {SIGMA:g}); real scheduler driving sleeps on a virtual clock (trio MockClock), unbounded concurrency"
    )
    saved = statistics.median(w / e for e, w in ratios)
    return [
        Row("dags", "eager makespan ÷ critical path", spread(eager), method),
        Row("dags", "wave barriers makespan ÷ critical path", spread(waves), method + "; each wave waits for the last"),
        Row("dags", "wave barriers ÷ eager", f"median {saved:.2f}×", "same DAGs and durations"),
    ]
