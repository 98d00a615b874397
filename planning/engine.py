"""Runs plans as Flyte 2 tasks: the run is one `run_plan` task, each step one `run_step` action.

On a cluster that is one Flyte run whose actions are the plan's steps (grouped by wave for people
to read, never waited on by wave; each action is named `step-<id>`). Locally (the default) Flyte
executes in-process on its own event loop thread; the objects a run needs that cannot travel as
task inputs (catalog, LLM, store, the caller's progress callback) reach the task bodies as a
`LocalRun` in a context variable (`CURRENT_RUN`) that `LocalEngine.run` (planning.local) sets
around its Flyte run: Flyte local mode carries the caller's context into every task body it
starts. On a cluster there is none: the task bodies build those objects with the composition root
named by `Settings.runtime` from the container's environment (settings, injected secrets) and keep
no store; the run's result comes back as `run_plan`'s output (see planning.remote). The
environments are in planning.flyte_env.

Flyte's stdout habits are tamed by `planning.flyte_setup`, imported before flyte itself.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import logging
import threading
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field

import anyio
from pydantic import BaseModel, ConfigDict, JsonValue

from planning import flyte_setup
from planning.answer import RunAnswer, plain_answer
from planning.approval import approval_reason
from planning.events import OnEvent, Phase, PhaseEvent, StepEvent
from planning.flyte_env import PLAN_RETRIES, PLAN_TIMEOUT, STEP_RETRIES, STEP_TIMEOUT, agents_env, code_env, env
from planning.plan import Plan, Step
from planning.records import AnswerSource, RunRecord, RunStatus, StepOutcome, StepRecord, StepStatus, Usage, now
from planning.replanning import ReplanError, Replanner, replan_reason, replans_left
from planning.scheduler import execute, run_status
from planning.steps import StepRunner
from planning.store import RunStore, StoreUnavailableError

flyte = flyte_setup.import_flyte()
logger = logging.getLogger(__name__)


Synthesize = Callable[[RunRecord], Awaitable[RunAnswer]]


@dataclass(frozen=True)
class RunParts:
    """What executing a run needs besides the plan: how to run a step, how to write the answer,
    how many steps may run at once, and who revises a plan whose steps failed (None: nobody) within
    how many revisions. Built by the composition root (agents.runtime)."""

    steps: StepRunner
    synthesize: Synthesize
    max_concurrency: int
    replan: Replanner | None = None
    max_replans: int = 0  # for a run of a request that sets none itself


@dataclass
class LocalRun:
    """What a local run's task bodies need from the process that started it."""

    run_id: str
    store: RunStore | None
    steps: StepRunner
    synthesize: Synthesize
    max_concurrency: int
    on_event: OnEvent = lambda event: None
    replan: Replanner | None = None  # writes revisions of a plan whose steps failed (with a store only)
    max_replans: int = 0  # revisions a run of a request may make when the run sets none itself
    cancel: Callable[[], object] | None = None  # set by run_plan once it runs
    cancel_requested: threading.Event = field(default_factory=threading.Event)
    attempted: bool = False  # run_plan has started once: a Flyte retry reads the stored outcomes

    def on_phase(self, run_id: str, phase: Phase) -> None:
        self.on_event(PhaseEvent(run_id=run_id, phase=phase))


# The local run whose task bodies execute in this context: set by LocalEngine.run for the length of
# its Flyte run, read by the task bodies; unset (None) on a cluster.
CURRENT_RUN: ContextVar[LocalRun | None] = ContextVar("planner_mcp_local_run", default=None)

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
    synthesize: bool = True  # False: the answer is stated from the results, never written by the LLM


class RunResult(BaseModel):
    """`run_plan`'s output."""

    model_config = _WIRE

    status: RunStatus
    answer: str | None = None
    answer_source: AnswerSource | None = None
    outcomes: dict[int, StepOutcome] = {}
    usage: Usage = Usage()  # synthesis usage, when the answer was written here (no store)
    unrecorded: str | None = None  # a store fault that kept the run's end from being recorded


@agents_env.task(retries=STEP_RETRIES, timeout=STEP_TIMEOUT)
async def run_step(request: str) -> str:
    """One plan step: a tool call or a specialist agent's turn. Failures come back as outcomes.

    `request` is a StepRequest as JSON text; the result a StepOutcome as JSON text.
    """
    return await _run_one(request)


@code_env.task(retries=STEP_RETRIES, timeout=STEP_TIMEOUT)
async def run_code_step(request: str) -> str:
    """A step of an isolated agent (the code agent's), in the code environment's own pods. Same
    contract as run_step."""
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
    """With a store, every attempt of run_plan (a Flyte retry included) starts from the outcomes the
    store holds, so a step that succeeded never runs again. A store that cannot be written (disk
    full) stops the run: it is recorded failed with the cause and no step is left `running`.

    With a store and a replanner, a run whose steps failed for good (or whose final results are
    empty) gets a revised plan within its bound (planning.replanning) and runs on: the kept steps
    count as done, the new ones run. A revision that needs a person's approval stops the run in
    `awaiting_approval` (approving it resumes the run)."""
    run_id, plan = request.run_id, request.plan
    local = _context(run_id)
    store = local.store
    # A Flyte retry of run_plan reads what the store holds since; the first attempt has it in the request.
    succeeded = _stored_successes(store, run_id) if store and local.attempted else request.succeeded
    local.attempted = True
    waves = plan.waves()
    total = len(plan.steps)
    done = len(succeeded)
    faults: list[StoreUnavailableError] = []
    notes: list[str] = []  # why replanning did not help, for the run's error
    scope = anyio.CancelScope()

    def report(step: Step, status: StepStatus) -> None:
        event = StepEvent(run_id=run_id, step_id=step.id, agent=step.agent, status=status, done=done, total=total)
        local.on_event(event)

    def record(write: Callable[[], None]) -> None:
        """Write to the store; on a fault, remember it and stop the run: steps in flight are cancelled
        and none starts unrecorded."""
        try:
            write()
        except StoreUnavailableError as exc:
            if not faults:
                logger.error("run %s stops: %s", run_id, exc)
            faults.append(exc)
            scope.cancel()

    async def on_started(step: Step) -> None:
        if store:
            record(functools.partial(store.step_started, run_id, step.id))
        report(step, StepStatus.RUNNING)

    async def on_finished(step: Step, outcome: StepOutcome) -> None:
        nonlocal done
        if store and not faults:
            record(functools.partial(store.step_finished, run_id, step.id, outcome))
        done += 1
        report(step, outcome.status)

    async def one_step(step: Step, inputs: dict[int, JsonValue]) -> StepOutcome:
        task = run_code_step if local.steps.catalog.agent(step.agent).isolated else run_step
        with flyte.group(f"wave-{waves[step.id]}"):
            # The short name labels the action, so a step's phase can be read back from Flyte.
            named = task.override(short_name=f"step-{step.id}")
            outcome = await named(StepRequest(run_id=run_id, step=step, inputs=inputs).model_dump_json())
            return StepOutcome.model_validate_json(outcome)

    try:
        # The run is marked running by the engine's claim, before Flyte starts (LocalEngine.run).
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        local.cancel = lambda: loop.call_soon_threadsafe(task.cancel)
        outcomes: dict[int, StepOutcome] | None = None
        try:
            if local.cancel_requested.is_set():
                raise asyncio.CancelledError
            while True:
                scope = anyio.CancelScope()  # a scope is entered once: one per version of the plan
                with scope:
                    outcomes = await execute(
                        plan,
                        one_step,
                        succeeded=succeeded,
                        on_started=on_started,
                        on_finished=on_finished,
                        max_concurrency=local.max_concurrency,
                        agent_caps={a.name: a.max_concurrency for a in local.steps.catalog.agents.values()},
                    )
                if faults or store is None or local.replan is None:
                    break
                revised = await _revise(local, store, run_id, notes)
                if revised is None:
                    break
                if revised.status is RunStatus.AWAITING_APPROVAL:
                    return RunResult(status=RunStatus.AWAITING_APPROVAL)
                plan, waves, total = revised.plan, revised.plan.waves(), len(revised.plan.steps)
                succeeded = _stored_successes(store, run_id)
                done = len(succeeded)
                local.on_event(PhaseEvent(run_id=run_id, phase="steps", total=total))
        except asyncio.CancelledError:
            if faults:
                raise faults[0] from None
            if store:
                record_cancelled(store, run_id)
            return RunResult(status=RunStatus.CANCELLED)
        if faults:
            raise faults[0]
        assert outcomes is not None  # only a store fault cancels the scope
        status = run_status(outcomes, total)
        local.on_phase(run_id, "answer")
        # The answer reads the run as this attempt holds it in memory, no need to read it back;
        # after a revision of the plan, the store's record (it keeps the replaced steps).
        held = store.get_run(run_id) if store and plan is not request.plan else None
        answer = await _synthesize(local, held or _record_of(request, status, outcomes), request.synthesize)
        if not store:
            return RunResult(
                status=status, answer=answer.text, answer_source=answer.source, outcomes=outcomes, usage=answer.usage
            )
        store.add_run_usage(run_id, answer.usage)
        failures = [f"step {i}: {o.error.message}" for i, o in sorted(outcomes.items()) if o.error] + notes
        store.finish_run(
            run_id, status, answer=answer.text, answer_source=answer.source, error="; ".join(failures) or None
        )
        return RunResult(status=status, answer=answer.text, outcomes=outcomes)
    except StoreUnavailableError as exc:
        assert store is not None
        return _stop_on_store_fault(store, run_id, exc)


async def _revise(local: LocalRun, store: RunStore, run_id: str, notes: list[str]) -> RunRecord | None:
    """The run with a revised plan when it calls for one and may still have one; else None (and,
    when the replanner failed, why in `notes`). The revision's cost counts in the run's usage."""
    assert local.replan is not None
    record = store.get_run(run_id)
    reason = replan_reason(record)
    if reason is None or replans_left(record, local.max_replans) == 0:
        return None
    logger.info("run %s: replanning (%s)", run_id, reason)
    local.on_phase(run_id, "planning")
    try:
        revision = await local.replan(record, reason)
    except ReplanError as exc:
        store.add_run_usage(run_id, exc.usage)
        logger.warning("run %s: replanning failed: %s", run_id, exc)
        notes.append(f"replanning failed: {exc}")
        return None
    revised = store.revise_plan(run_id, revision.plan, kind="replanned", reason=reason, usage=revision.usage)
    why = approval_reason(revised, local.steps.catalog)
    return store.await_approval(run_id, why) if why else revised


def _stored_successes(store: RunStore, run_id: str) -> dict[int, StepOutcome]:
    """The steps of a run that the store holds as succeeded: never to be run again."""
    return store.get_run(run_id).succeeded()


def _stop_on_store_fault(store: RunStore, run_id: str, fault: StoreUnavailableError) -> RunResult:
    """Record the run failed with the store's fault (steps in flight back to pending, for resume);
    if even that cannot be written, say so in the result for the caller to raise."""
    message = f"the run stopped: {fault} Resume it once that is fixed; finished steps keep their results."
    try:
        store.abandon_run(run_id, message)
    except StoreUnavailableError as again:
        logger.error("run %s: could not record its failure either: %s", run_id, again)
        return RunResult(status=RunStatus.FAILED, unrecorded=message)
    return RunResult(status=RunStatus.FAILED)


async def _synthesize(local: LocalRun, record: RunRecord, enabled: bool) -> RunAnswer:
    """The run's answer (stated from the results unless `enabled`); a synthesis that breaks gives
    the deterministic answer, never a failed orchestrator (which Flyte would retry)."""
    if not enabled:
        return await plain_answer(record)
    try:
        return await local.synthesize(record)
    except Exception:  # the answer is optional; the steps' results are what count
        logger.exception("run %s: writing the answer failed; stating the results instead", record.id)
        return await plain_answer(record)


def _context(run_id: str) -> LocalRun:
    """The objects a run's task bodies use: the local run's, else (on a cluster) a fresh context
    built from this container's environment, with no store."""
    local = CURRENT_RUN.get()
    if local is not None and local.run_id == run_id:
        return local
    parts = _cluster_parts()
    return LocalRun(
        run_id=run_id,
        store=None,
        steps=parts.steps,
        synthesize=parts.synthesize,
        max_concurrency=parts.max_concurrency,
    )


@functools.cache
def _cluster_parts() -> RunParts:
    """The composition root named by `Settings.runtime` (`module:function`, called with the
    settings), built once per process: a reused container serves many steps. Imported by name, so
    planning depends on no agent code."""
    from planning.settings import Settings

    settings = Settings()
    module_name, _, function_name = settings.runtime.partition(":")
    build = getattr(importlib.import_module(module_name), function_name)
    return build(settings)


def _record_of(request: PlanRequest, status: RunStatus, outcomes: dict[int, StepOutcome]) -> RunRecord:
    """The run as synthesis reads it (request, plan, steps' outcomes), made from the outcomes."""
    steps = []
    for step in request.plan.steps:
        outcome = outcomes.get(step.id) or StepOutcome(status=StepStatus.PENDING, attempts=0)
        steps.append(StepRecord.of(step.id, step.agent, outcome))
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


def record_cancelled(store: RunStore, run_id: str) -> None:
    """Record a run cancelled: its steps that did not finish too (resume runs them again)."""
    cancelled = StepOutcome(status=StepStatus.CANCELLED, attempts=0)
    for step in store.get_run(run_id).steps:
        if not step.status.finished:
            store.step_finished(run_id, step.id, cancelled.model_copy(update={"attempts": step.attempts}))
    store.finish_run(run_id, RunStatus.CANCELLED, error="the run was cancelled; resume it to finish")
