"""When a run may replan, and the one small protocol the engine calls to do it.

After a run's steps have ended, the planner may write a revision of the plan for what remains: the
steps that succeeded are kept (never run again), the rest is replaced by new steps that may use the
kept steps' results. Two things call for it: a step that failed for good (its retries spent, not a
transient fault, not a cancellation), or final results that are empty (the run "succeeded" without
an answer). A run replans at most `max_replans` times (its own, else the server's setting); a run
of a hand-written plan replans only when it asked to (its own `max_replans`).

The planner lives in `agents/` (agents.replanner implements `Replanner`); this package never
imports it: the engine receives the replanner.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, Field

from planning.answer import final_steps
from planning.plan import Plan
from planning.records import RunRecord, StepRecord, StepStatus, Usage

# Failures a revision cannot mend: a transient one wants a later resume, a cancelled one was asked for.
_NOT_REPLANNED = frozenset({"transient", "cancelled"})


class Revision(BaseModel):
    """A revised plan: the kept (succeeded) steps unchanged, then the new steps."""

    plan: Plan
    usage: Usage = Field(default_factory=Usage, description="What writing it cost (LLM calls).")


class ReplanError(Exception):
    """No valid revision could be written; `usage` is what trying cost."""

    def __init__(self, message: str, usage: Usage | None = None) -> None:
        super().__init__(message)
        self.usage = usage or Usage()


class Replanner(Protocol):
    """Writes the revision of a run's plan (`reason`: what it answers). Raises ReplanError."""

    async def __call__(self, record: RunRecord, reason: str) -> Revision: ...


def failed_for_good(record: RunRecord) -> list[StepRecord]:
    """The current plan's steps that failed for good (retries spent, not transient, not cancelled)."""
    current = {step.id for step in record.plan.steps}
    return [
        step
        for step in record.steps
        if step.id in current
        and step.status is StepStatus.FAILED
        and (step.error is None or step.error.kind not in _NOT_REPLANNED)
    ]


def _empty(value: object) -> bool:
    return value is None or (isinstance(value, str | list | dict) and not value)


def replan_reason(record: RunRecord) -> str | None:
    """Why the run's plan should be revised, or None: steps that failed for good, else (all steps
    succeeded) final results that are empty."""
    failed = failed_for_good(record)
    if failed:
        return "; ".join(
            f"step {s.id} ({s.agent}) failed: {s.error.message if s.error else 'no reason given'}" for s in failed
        )
    if any(step.status is not StepStatus.SUCCEEDED for step in record.steps if step.status is not StepStatus.REPLACED):
        return None  # cancelled, transient or skipped: resume, not replan
    results = {step.id: step.result for step in record.steps}
    empty = [i for i in final_steps(record) if _empty(results.get(i))]
    if empty:
        return "; ".join(f"step {i} succeeded with an empty result, which does not answer the request" for i in empty)
    return None


def replans_left(record: RunRecord, default: int) -> int:
    """Revisions the run may still make: its own `max_replans`, else `default` for a run that came
    from a request (a hand-written plan replans only when asked), less those already made."""
    limit = record.max_replans if record.max_replans is not None else (default if record.request else 0)
    made = sum(1 for version in record.versions if version.kind == "replanned")
    return max(0, limit - made)
