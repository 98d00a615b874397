"""Reading a cluster run back: one snapshot of the Flyte run and its step actions, and writing
what it says into the run store (steps' phases first, then how the run ended, if it did).

A plan step's action is named `step-<id>`; `run_plan`'s output, once the run succeeds, is the whole
result: statuses, values, the answer.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import cast

from flyteidl2.common import phase_pb2
from flyteidl2.workflow import run_definition_pb2

from planning import flyte_setup
from planning.engine import RunResult
from planning.records import RunStatus, StepError, StepOutcome, StepStatus
from planning.store import FlyteRunRef, RunStore

flyte = flyte_setup.import_flyte()

# After flyte_setup has tamed Flyte's stdout habits (the MCP wire in stdio mode).
from flyte.remote import Action, ActionDetails, RunDetails  # noqa: E402

_STEP_NAME = re.compile(r"^step-(\d+)$")
ACTIVE = frozenset(
    {
        phase_pb2.ACTION_PHASE_QUEUED,
        phase_pb2.ACTION_PHASE_WAITING_FOR_RESOURCES,
        phase_pb2.ACTION_PHASE_INITIALIZING,
        phase_pb2.ACTION_PHASE_RUNNING,
        phase_pb2.ACTION_PHASE_PAUSED,
    }
)
FAILED = frozenset({phase_pb2.ACTION_PHASE_FAILED, phase_pb2.ACTION_PHASE_TIMED_OUT})


@dataclass
class StepView:
    phase: int
    attempts: int
    outcome: StepOutcome | None = None
    error: str | None = None


@dataclass
class Snapshot:
    phase: int
    error: str | None = None
    result: RunResult | None = None
    steps: dict[int, StepView] = field(default_factory=dict)


async def read_snapshot(name: str, finished: set[int]) -> Snapshot:
    """The Flyte run `name` now: its phase, its result or error, each step action's phase, and the
    outcomes of steps that finished since (those in `finished` are stored already)."""
    details = await RunDetails.get.aio(name=name)
    snapshot = Snapshot(phase=details.action_details.raw_phase)
    if snapshot.phase == phase_pb2.ACTION_PHASE_SUCCEEDED:
        outputs = await details.typed_outputs({"o0": str})  # task I/O is JSON text (planning.engine)
        snapshot.result = RunResult.model_validate_json(outputs["o0"])
    elif snapshot.phase in FAILED:
        root = await ActionDetails.get_details.aio(details.action_id)
        snapshot.error = root.error_message or None
    async for action in cast(AsyncIterator[Action], Action.listall.aio(for_run_name=name)):
        step_id = _step_id(action.pb2)
        if step_id is None:
            continue
        view = StepView(phase=action.raw_phase, attempts=action.pb2.status.attempts)
        snapshot.steps[step_id] = view  # actions come oldest first: a later attempt wins
        if step_id in finished or snapshot.result is not None:
            continue  # nothing more to learn: stored already, or in the run's result
        if view.phase == phase_pb2.ACTION_PHASE_SUCCEEDED:
            action_details = ActionDetails(run_definition_pb2.ActionDetails(id=action.action_id))
            outputs = await action_details.typed_outputs({"o0": str})
            view.outcome = StepOutcome.model_validate_json(outputs["o0"])
        elif view.phase in FAILED:
            view.error = (await action.details()).error_message or None
    return snapshot


def apply_snapshot(store: RunStore, run_id: str, ref: FlyteRunRef, snapshot: Snapshot) -> None:
    """Write what Flyte reported: the steps' phases first, then how the run ended (if it did)."""
    _apply_steps(store, run_id, ref, snapshot.steps)
    result = snapshot.result
    if result is not None:
        unfinished = {s.id for s in store.get_run(run_id).steps if not s.status.finished}
        for step_id, outcome in sorted(result.outcomes.items()):
            if step_id in unfinished:
                store.step_finished(run_id, step_id, outcome)
        # A cancelled orchestrator returns no outcomes for the steps it never finished.
        _cancel_unfinished(store, run_id, f"the run ended {result.status.value} before this step finished")
        steps = store.get_run(run_id).steps
        problems = [f"step {s.id}: {s.error.message}" for s in steps if s.error and s.error.kind != "cancelled"]
        if result.status is RunStatus.CANCELLED:
            problems.append(f"the Flyte run {ref.name} was cancelled; resume the run to finish it")
        store.add_run_usage(run_id, result.usage)
        store.finish_run(
            run_id,
            result.status,
            answer=result.answer,
            answer_source=result.answer_source,
            error="; ".join(problems) or None,
        )
    elif snapshot.phase in FAILED:
        how = "ran past its Flyte timeout" if snapshot.phase == phase_pb2.ACTION_PHASE_TIMED_OUT else "failed"
        detail = f": {snapshot.error}" if snapshot.error else ""
        reason = f"the Flyte run {ref.name} {how}{detail}; see {ref.url}, then resume the run"
        _cancel_unfinished(store, run_id, reason)
        store.finish_run(run_id, RunStatus.FAILED, error=reason)
    elif snapshot.phase == phase_pb2.ACTION_PHASE_ABORTED:
        reason = f"the Flyte run {ref.name} was aborted; resume the run to finish it"
        _cancel_unfinished(store, run_id, reason)
        store.finish_run(run_id, RunStatus.CANCELLED, error=reason)
    # Still queued or running: the run stays `running` in the store.


def _apply_steps(store: RunStore, run_id: str, ref: FlyteRunRef, views: dict[int, StepView]) -> None:
    steps = {s.id: s for s in store.get_run(run_id).steps}
    for step_id, view in sorted(views.items()):
        step = steps.get(step_id)
        if step is None or step.status.finished:
            continue
        if view.outcome is not None:
            store.step_finished(run_id, step_id, view.outcome)
        elif view.phase in ACTIVE:
            if step.status is StepStatus.PENDING:
                store.step_started(run_id, step_id)
        elif view.phase in FAILED:
            timed_out = view.phase == phase_pb2.ACTION_PHASE_TIMED_OUT
            what = "ran past its Flyte timeout" if timed_out else "failed on Flyte"
            detail = f": {view.error}" if view.error else ""
            error = StepError(
                kind="timeout" if timed_out else "internal",
                message=f"step {step_id} ({step.agent}) {what}{detail}; see {ref.url}",
            )
            outcome = StepOutcome(status=StepStatus.FAILED, error=error, attempts=max(view.attempts, 1))
            store.step_finished(run_id, step_id, outcome)
        elif view.phase == phase_pb2.ACTION_PHASE_ABORTED:
            store.step_finished(run_id, step_id, _cancelled("the Flyte action was aborted", view.attempts))


def _cancel_unfinished(store: RunStore, run_id: str, reason: str) -> None:
    for step in store.get_run(run_id).steps:
        if not step.status.finished:
            store.step_finished(run_id, step.id, _cancelled(reason, step.attempts))


def _cancelled(reason: str, attempts: int) -> StepOutcome:
    return StepOutcome(
        status=StepStatus.CANCELLED, error=StepError(kind="cancelled", message=reason), attempts=attempts
    )


def _step_id(action: run_definition_pb2.Action) -> int | None:
    """The plan step an action ran (its short name is `step-<id>`); None for the orchestrator."""
    if not action.metadata.parent:
        return None
    match = _STEP_NAME.match(action.metadata.task.short_name)
    return int(match.group(1)) if match else None
