"""Runs plans as Flyte 2 tasks: the run is one `run_plan` task, each step one `run_step` action.

On a cluster that is one Flyte run whose actions are the plan's steps (grouped by wave for people
to read, never waited on by wave; each action is named `step-<id>`). Locally (the default) Flyte
executes in-process on its own event loop thread; the objects a run needs that cannot travel as task
inputs (catalog, LLM, store, the caller's progress callback) are handed to the task bodies through
`_LOCAL_RUNS`, keyed by run id. On a cluster there is no such entry: the task bodies build those
objects from the container's environment (settings, injected secrets) and keep no store; the run's
result comes back as `run_plan`'s output (see planning.remote). The environments are in
planning.flyte_env.

Flyte's stdout habits are tamed by `planning.flyte_setup`, imported before flyte itself.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from pydantic import BaseModel, ConfigDict, JsonValue

from planning import flyte_setup
from planning.answer import RunAnswer, plain_answer
from planning.events import OnEvent, Phase, PhaseEvent, StepEvent
from planning.flyte_env import PLAN_RETRIES, PLAN_TIMEOUT, STEP_RETRIES, STEP_TIMEOUT, agents_env, code_env, env
from planning.ownership import this_process
from planning.plan import Plan, Step
from planning.records import AnswerSource, RunRecord, RunStatus, StepOutcome, StepRecord, StepStatus, Usage, now
from planning.scheduler import execute, run_status
from planning.steps import StepRunner
from planning.store import RunStore

flyte = flyte_setup.import_flyte()
logger = logging.getLogger(__name__)


Synthesize = Callable[[RunRecord], Awaitable[RunAnswer]]


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

    def on_phase(self, run_id: str, phase: Phase) -> None:
        self.on_event(PhaseEvent(run_id=run_id, phase=phase))


# Run id -> LocalRun, filled by LocalEngine.run for the duration of a run (not at import).
_LOCAL_RUNS: dict[str, LocalRun] = {}


# Task I/O crosses the Flyte boundary as JSON text (`str`), parsed with these models: Flyte's
# pydantic transformer rebuilds a model's JSON Schema on every submission (61% of a step's CPU),
# while a `str` costs it nothing. JSON text also carries integers beyond 64 bits (factorial(25),
# 10**30), which Flyte's msgpack cannot, and NaN/infinity as the run store keeps them.
_WIRE = ConfigDict(ser_json_inf_nan="constants")


class StepRequest(BaseModel):
    """`run_step`'s input."""

    model_config = _WIRE

    run_id: str
    step: Step
    inputs: dict[int, JsonValue]


class PlanRequest(BaseModel):
    """`run_plan`'s input."""

    model_config = _WIRE

    run_id: str
    plan: Plan
    succeeded: dict[int, StepOutcome] = {}
    request: str | None = None  # the user's words, for the answer when no store holds them


class RunResult(BaseModel):
    """`run_plan`'s output."""

    model_config = _WIRE

    status: RunStatus
    answer: str | None = None
    answer_source: AnswerSource | None = None
    outcomes: dict[int, StepOutcome] = {}
    usage: Usage = Usage()  # synthesis usage, when the answer was written here (no store)


@agents_env.task(retries=STEP_RETRIES, timeout=STEP_TIMEOUT)
async def run_step(request: str) -> str:
    """One plan step: a tool call or a specialist agent's turn. Failures come back as outcomes.

    `request` is a StepRequest as JSON text; the result a StepOutcome as JSON text.
    """
    return await _run_one(request)


@code_env.task(retries=STEP_RETRIES, timeout=STEP_TIMEOUT)
async def run_code_step(request: str) -> str:
    """A code agent step, in the code environment's own isolated pods. Same contract as run_step."""
    return await _run_one(request)


async def _run_one(text: str) -> str:
    request = StepRequest.model_validate_json(text)
    outcome = await _context(request.run_id).steps(request.step, request.inputs)
    return outcome.model_dump_json()


@env.task(retries=PLAN_RETRIES, timeout=PLAN_TIMEOUT)
async def run_plan(request: str) -> str:
    """The orchestrator: runs the plan eagerly, recording every change when a store is at hand.

    `request` is a PlanRequest as JSON text; the result a RunResult as JSON text.
    """
    return (await _orchestrate(PlanRequest.model_validate_json(request))).model_dump_json()


async def _orchestrate(request: PlanRequest) -> RunResult:
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
        task = run_code_step if step.agent == "code" else run_step
        with flyte.group(f"wave-{waves[step.id]}"):
            # The short name labels the action, so a step's phase can be read back from Flyte.
            named = task.override(short_name=f"step-{step.id}")
            outcome = await named(StepRequest(run_id=run_id, step=step, inputs=inputs).model_dump_json())
            return StepOutcome.model_validate_json(outcome)

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
    local.on_phase(run_id, "answer")
    if not store:
        answer = await local.synthesize(_record_of(request, status, outcomes))
        return RunResult(
            status=status, answer=answer.text, answer_source=answer.source, outcomes=outcomes, usage=answer.usage
        )
    answer = await local.synthesize(store.get_run(run_id))
    store.add_run_usage(run_id, answer.usage)
    failures = [f"step {i}: {o.error.message}" for i, o in sorted(outcomes.items()) if o.error]
    store.finish_run(run_id, status, answer=answer.text, answer_source=answer.source, error="; ".join(failures) or None)
    return RunResult(status=status, answer=answer.text, outcomes=outcomes)


def _context(run_id: str) -> LocalRun:
    """The objects a run's task bodies use: the local run's, else (on a cluster) a fresh context
    built from this container's environment, with no store."""
    local = _LOCAL_RUNS.get(run_id)
    if local is not None:
        return local
    steps, synthesize, max_concurrency = _cluster_parts()
    return LocalRun(store=None, steps=steps, synthesize=synthesize, max_concurrency=max_concurrency)


@functools.cache
def _cluster_parts() -> tuple[StepRunner, Synthesize, int]:
    """Catalog, LLM and synthesis from settings and the injected secrets; built once per process
    (a reused container serves many steps). Agents are imported here: planning does not depend on
    them at import time."""
    from agents.llm.select import select_llm
    from agents.specialist import SpecialistRunner
    from agents.synthesis import Synthesizer
    from planning.catalog import load_catalog
    from planning.settings import Settings

    settings = Settings()
    llm = select_llm(os.environ, settings.home)
    steps = StepRunner(
        load_catalog(settings),
        run_agent=SpecialistRunner(llm) if llm is not None else None,
        retries=settings.step_retries,
        retry_base_s=settings.retry_base_s,
    )
    return steps, Synthesizer(llm if settings.synthesize else None), settings.max_concurrency


def _record_of(request: PlanRequest, status: RunStatus, outcomes: dict[int, StepOutcome]) -> RunRecord:
    """The run as synthesis reads it, made from the outcomes when no store holds it."""
    steps = []
    for step in request.plan.steps:
        outcome = outcomes.get(step.id) or StepOutcome(status=StepStatus.PENDING, attempts=0)
        steps.append(
            StepRecord(
                id=step.id,
                agent=step.agent,
                status=outcome.status,
                attempts=outcome.attempts,
                result=outcome.result,
                summary=outcome.summary,
                error=outcome.error,
                usage=outcome.usage,
            )
        )
    return RunRecord(
        id=request.run_id,
        status=status,
        request=request.request,
        engine="remote",
        created_at=now(),
        step_count=len(steps),
        plan=request.plan,
        steps=steps,
    )


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

    async def run(self, run_id: str, on_event: OnEvent | None = None, *, synthesize: bool = True) -> RunRecord:
        """Execute (or resume) a stored run to its end; cancelling the caller cancels the run.

        `synthesize=False` gives the run the deterministic answer instead of an LLM-written one.
        """
        local = LocalRun(
            store=self.store,
            steps=self.steps,
            synthesize=self.synthesize if synthesize else plain_answer,
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
            pending = asyncio.ensure_future(runner.run.aio(run_plan, request.model_dump_json()))
            try:
                await asyncio.shield(pending)
            except asyncio.CancelledError:
                # Shielded so an anyio cancel scope cannot cut the wait short: the run must be
                # recorded `cancelled` before the caller hears it ended.
                self._request_cancel(local)
                with anyio.CancelScope(shield=True), anyio.move_on_after(30):
                    await pending
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
