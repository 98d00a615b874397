"""The eager scheduler: each step starts the moment all of *its* dependencies have succeeded.

No waves, no barriers. A global cap and per-agent caps bound how many steps run at once. Results
flow only along declared edges (a step sees the results of the steps it needs, nothing else). A
step that does not succeed marks everything downstream `skipped` with the reason, while
independent branches run to the end. Engine-agnostic: the caller says how one step runs.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

import anyio
from pydantic import JsonValue

from planning.plan import Plan, Step
from planning.records import RunStatus, StepError, StepOutcome, StepStatus

logger = logging.getLogger(__name__)

RunStep = Callable[[Step, dict[int, JsonValue]], Awaitable[StepOutcome]]
OnStarted = Callable[[Step], Awaitable[None]]
OnFinished = Callable[[Step, StepOutcome], Awaitable[None]]


async def _nothing(*_: object) -> None:
    return None


async def execute(
    plan: Plan,
    run_step: RunStep,
    *,
    succeeded: Mapping[int, StepOutcome] | None = None,
    on_started: OnStarted = _nothing,
    on_finished: OnFinished = _nothing,
    max_concurrency: int = 8,
    agent_caps: Mapping[str, int] | None = None,
) -> dict[int, StepOutcome]:
    """Run a validated plan; return every step's outcome.

    `succeeded` holds outcomes from an earlier attempt (resume): those steps are not run again.
    `on_started`/`on_finished` are awaited before the scheduler moves on (persist state there).
    On cancellation, in-flight steps are reported `cancelled` and the cancellation propagates.
    """
    outcomes: dict[int, StepOutcome] = {i: o for i, o in (succeeded or {}).items() if o.status is StepStatus.SUCCEEDED}
    by_id = {step.id: step for step in plan.steps}
    needs = {step.id: step.needs() for step in plan.steps}
    dependents: dict[int, list[int]] = {step.id: [] for step in plan.steps}
    for step_id, step_needs in needs.items():
        for need in step_needs:
            dependents[need].append(step_id)

    everyone = anyio.CapacityLimiter(max_concurrency)
    caps = agent_caps or {}
    per_agent = {agent: anyio.CapacityLimiter(cap) for agent, cap in caps.items()}

    def ready(step_id: int) -> bool:
        return step_id not in outcomes and all(
            outcomes.get(n, _PENDING).status is StepStatus.SUCCEEDED for n in needs[step_id]
        )

    async def skip_downstream(step_id: int, reason: str) -> None:
        for child in dependents[step_id]:
            if child in outcomes:
                continue
            outcome = StepOutcome(
                status=StepStatus.SKIPPED, attempts=0, error=StepError(kind="dependency", message=reason)
            )
            outcomes[child] = outcome
            await on_finished(by_id[child], outcome)
            await skip_downstream(child, f"step {step_id} did not succeed, so its dependent step {child} was skipped")

    async def run(step: Step, group: anyio.abc.TaskGroup) -> None:
        agent_limit = per_agent.get(step.agent)
        async with everyone:
            if agent_limit is not None:
                await agent_limit.acquire()
            try:
                await on_started(step)
                inputs = {n: outcomes[n].result for n in sorted(needs[step.id])}
                try:
                    outcome = await run_step(step, inputs)
                except anyio.get_cancelled_exc_class():
                    with anyio.CancelScope(shield=True):
                        cancelled = StepOutcome(
                            status=StepStatus.CANCELLED,
                            error=StepError(kind="cancelled", message="the run was cancelled"),
                        )
                        outcomes[step.id] = cancelled
                        await on_finished(step, cancelled)
                    raise
                except Exception as exc:
                    logger.exception("step %s crashed", step.id)
                    outcome = StepOutcome(
                        status=StepStatus.FAILED,
                        error=StepError(kind="internal", message=f"{type(exc).__name__}: {exc}"),
                    )
            finally:
                if agent_limit is not None:
                    agent_limit.release()
        outcomes[step.id] = outcome
        await on_finished(step, outcome)
        if outcome.status is StepStatus.SUCCEEDED:
            for child in dependents[step.id]:
                if ready(child):
                    group.start_soon(run, by_id[child], group, name=f"step {child}")
        else:
            await skip_downstream(step.id, f"step {step.id} {outcome.status.value}: {_reason(outcome)}")

    async with anyio.create_task_group() as group:
        # Resume: dependents of already-failed steps are handled when those steps rerun.
        for step in plan.steps:
            if ready(step.id):
                group.start_soon(run, step, group, name=f"step {step.id}")
    return outcomes


_PENDING = StepOutcome(status=StepStatus.PENDING)


def _reason(outcome: StepOutcome) -> str:
    return outcome.error.message if outcome.error else "no reason given"


def run_status(outcomes: Mapping[int, StepOutcome], step_count: int) -> RunStatus:
    """succeeded: every step did; failed: none did; partial: some did."""
    statuses = [o.status for o in outcomes.values()]
    if StepStatus.CANCELLED in statuses:
        return RunStatus.CANCELLED
    done = statuses.count(StepStatus.SUCCEEDED)
    if done == step_count:
        return RunStatus.SUCCEEDED
    return RunStatus.PARTIAL if done else RunStatus.FAILED
