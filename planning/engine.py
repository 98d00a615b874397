"""Runs plans as Flyte 2 tasks: the run is one `run_plan` task, each step one `run_step` action.

On a cluster that is one Flyte run whose actions are the plan's steps (grouped by wave for people
to read, never waited on by wave). Locally (the default) Flyte executes in-process on its own event
loop thread; the objects a run needs that cannot travel as task inputs (catalog, LLM, store, the
caller's progress callback) are handed to the task bodies through `_LOCAL_RUNS`, keyed by run id.

Flyte's stdout habits are tamed by `planning.flyte_setup`, imported before flyte itself.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, JsonValue

from planning import flyte_setup
from planning.ownership import this_process
from planning.plan import Plan, Step
from planning.records import RunRecord, RunStatus, StepOutcome, StepStatus, Usage
from planning.scheduler import execute, run_status
from planning.steps import StepRunner
from planning.store import RunStore

flyte = flyte_setup.import_flyte()
logger = logging.getLogger(__name__)


class StepEvent(BaseModel):
    """A step started or finished (what progress notifications are made of)."""

    run_id: str
    step_id: int
    agent: str
    status: StepStatus
    done: int
    total: int


OnEvent = Callable[[StepEvent], None]
Synthesize = Callable[[RunRecord], Awaitable[tuple[str, Usage]]]


@dataclass
class LocalRun:
    """What a local run's task bodies need from the process that started it."""

    store: RunStore | None
    steps: StepRunner
    synthesize: Synthesize
    max_concurrency: int
    on_event: OnEvent = lambda event: None
    cancel: Callable[[], object] | None = None  # set by run_plan once it runs
    cancel_requested: threading.Event = field(default_factory=threading.Event)


# Run id -> LocalRun, filled by LocalEngine.run for the duration of a run (not at import).
_LOCAL_RUNS: dict[str, LocalRun] = {}

env = flyte.TaskEnvironment(name="planner_mcp", description="planner-mcp: plans of specialist agent steps")


class StepRequest(BaseModel):
    run_id: str
    step: Step
    inputs: dict[int, JsonValue]


class PlanRequest(BaseModel):
    run_id: str
    plan: Plan
    succeeded: dict[int, StepOutcome] = {}


class RunResult(BaseModel):
    status: RunStatus
    answer: str | None = None
    outcomes: dict[int, StepOutcome] = {}


@env.task(retries=1)
async def run_step(request: StepRequest) -> StepOutcome:
    """One plan step: a tool call or a specialist agent's turn. Failures come back as outcomes."""
    return await _context(request.run_id).steps(request.step, request.inputs)


@env.task
async def run_plan(request: PlanRequest) -> RunResult:
    """The orchestrator: runs the plan eagerly, recording every change when a store is at hand."""
    run_id, plan = request.run_id, request.plan
    local = _context(run_id)
    store = local.store
    waves = plan.waves()
    total = len(plan.steps)
    done = len(request.succeeded)

    def report(step: Step, status: StepStatus) -> None:
        event = StepEvent(run_id=run_id, step_id=step.id, agent=step.agent, status=status, done=done, total=total)
        local.on_event(event)

    async def on_started(step: Step) -> None:
        if store:
            store.step_started(run_id, step.id)
        report(step, StepStatus.RUNNING)

    async def on_finished(step: Step, outcome: StepOutcome) -> None:
        nonlocal done
        if store:
            store.step_finished(run_id, step.id, outcome)
        done += 1
        report(step, outcome.status)

    async def one_step(step: Step, inputs: dict[int, JsonValue]) -> StepOutcome:
        with flyte.group(f"wave-{waves[step.id]}"):
            return await run_step(StepRequest(run_id=run_id, step=step, inputs=inputs))

    if store:
        store.start_run(run_id, this_process())
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    local.cancel = lambda: loop.call_soon_threadsafe(task.cancel)
    try:
        if local.cancel_requested.is_set():
            raise asyncio.CancelledError
        outcomes = await execute(
            plan,
            one_step,
            succeeded=request.succeeded,
            on_started=on_started,
            on_finished=on_finished,
            max_concurrency=local.max_concurrency,
            agent_caps={a.name: a.max_concurrency for a in local.steps.catalog.agents.values()},
        )
    except asyncio.CancelledError:
        if store:
            _cancel_pending(store, run_id)
            store.finish_run(run_id, RunStatus.CANCELLED, error="the run was cancelled; resume it to finish")
        return RunResult(status=RunStatus.CANCELLED)
    status = run_status(outcomes, total)
    answer = None
    if store:
        answer, usage = await local.synthesize(store.get_run(run_id))
        store.add_run_usage(run_id, usage)
        failures = [f"step {i}: {o.error.message}" for i, o in sorted(outcomes.items()) if o.error]
        store.finish_run(run_id, status, answer=answer, error="; ".join(failures) or None)
    return RunResult(status=status, answer=answer, outcomes=outcomes)


def _context(run_id: str) -> LocalRun:
    """The in-process objects of a local run. (A run on a cluster has none: see issue 7.)"""
    try:
        return _LOCAL_RUNS[run_id]
    except KeyError:
        raise RuntimeError(f"run {run_id!r} has no local context in this process") from None


def _cancel_pending(store: RunStore, run_id: str) -> None:
    cancelled = StepOutcome(status=StepStatus.CANCELLED, attempts=0)
    for step in store.get_run(run_id).steps:
        if step.status in (StepStatus.PENDING, StepStatus.RUNNING):
            store.step_finished(run_id, step.id, cancelled.model_copy(update={"attempts": step.attempts}))


class LocalEngine:
    """Executes stored runs with Flyte in local mode, in this process."""

    name = "local"

    def __init__(
        self, store: RunStore, steps: StepRunner, synthesize: Synthesize, *, home: Path, max_concurrency: int = 8
    ):
        self.store = store
        self.steps = steps
        self.synthesize = synthesize
        self.home = home
        self.max_concurrency = max_concurrency

    async def run(self, run_id: str, on_event: OnEvent | None = None) -> RunRecord:
        """Execute (or resume) a stored run to its end; cancelling the caller cancels the run."""
        local = LocalRun(
            store=self.store,
            steps=self.steps,
            synthesize=self.synthesize,
            max_concurrency=self.max_concurrency,
            on_event=on_event or (lambda event: None),
        )
        if run_id in _LOCAL_RUNS:
            raise RuntimeError(f"run {run_id!r} is already executing in this process")
        _LOCAL_RUNS[run_id] = local
        try:
            runner = flyte.with_runcontext(mode="local", raw_data_path=str(self.home / "flyte-data"), name=run_id)
            record = self.store.get_run(run_id)
            succeeded = {
                s.id: StepOutcome(
                    status=s.status, result=s.result, summary=s.summary, usage=s.usage, attempts=s.attempts
                )
                for s in record.steps
                if s.status is StepStatus.SUCCEEDED
            }
            request = PlanRequest(run_id=run_id, plan=record.plan, succeeded=succeeded)
            pending = asyncio.ensure_future(runner.run.aio(run_plan, request))
            try:
                await asyncio.shield(pending)
            except asyncio.CancelledError:
                self._request_cancel(local)
                await asyncio.wait_for(asyncio.shield(pending), timeout=30)
                raise
        finally:
            _LOCAL_RUNS.pop(run_id, None)
        return self.store.get_run(run_id)

    def cancel(self, run_id: str) -> bool:
        """Cancel a run executing in this process; False if it is not executing here."""
        local = _LOCAL_RUNS.get(run_id)
        if local is None:
            return False
        self._request_cancel(local)
        return True

    @staticmethod
    def _request_cancel(local: LocalRun) -> None:
        local.cancel_requested.set()
        if local.cancel is not None:
            local.cancel()
