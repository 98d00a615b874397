"""What the run store keeps and hands out: runs, their steps, outcomes and usage."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from planning.plan import Plan, Step
from planning.status import RunStatus, StepStatus
from planning.usage import Usage

__all__ = ["RunStatus", "StepStatus", "Usage"]  # defined apart, so the CLI's argument parser imports no pydantic


StepErrorKind = Literal[
    "timeout",  # the step ran past its time limit
    "transient",  # a failure that may pass (network, rate limit) persisted through the retries
    "tool_error",  # the tool (or the agent using it) refused or failed; the message says why
    "invalid_args",  # arguments that do not fit the tool, or a reference the results cannot fill
    "llm_error",  # the LLM failed for a reason retrying does not fix (configuration, reply)
    "dependency",  # skipped: a step it depends on did not succeed
    "cancelled",  # the run was cancelled before the step finished
    "internal",  # a bug, or the step's worker failed on the cluster
]


class StepError(BaseModel):
    """Why a step did not succeed. `kind` is machine-readable; `message` names the fix."""

    kind: StepErrorKind = Field(
        description="timeout | transient | tool_error | invalid_args | llm_error | dependency | cancelled | internal"
    )
    message: str


DETAILS = (
    "What the tool reported beyond the step's value, for inspection: for a code step the whole run of "
    "the program (stdout, stderr, exit code, limit hit, tier, bwrap, duration), also when it failed."
)


class StepOutcome(BaseModel):
    """What running one step produced (as JSON text, also the Flyte task output of a step)."""

    model_config = ConfigDict(ser_json_inf_nan="constants")  # JSON text keeps inf and NaN, as the store does

    status: StepStatus
    result: JsonValue = None
    summary: str | None = None
    error: StepError | None = None
    attempts: int = 1
    usage: Usage = Field(default_factory=Usage)
    details: JsonValue = Field(default=None, description=DETAILS)


class StepRecord(StepOutcome):
    """A step of a stored run: its outcome (a StepRecord is the StepOutcome it holds, no copy) plus
    which step it is and when it ran."""

    model_config = ConfigDict(ser_json_inf_nan="null")  # records go to JSON clients: inf and NaN as null

    id: int
    agent: str
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @classmethod
    def of(cls, step_id: int, agent: str, outcome: StepOutcome) -> StepRecord:
        """The record of a step with this outcome (no times: they are the store's)."""
        return cls.model_validate({**dict(outcome), "id": step_id, "agent": agent})

    @property
    def duration_s(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


AnswerSource = Literal["llm", "results"]


class RunSummary(BaseModel):
    id: str
    status: RunStatus
    request: str | None
    engine: str
    created_at: datetime
    finished_at: datetime | None = None
    step_count: int


VersionKind = Literal["planned", "replanned", "edited"]


class PlanVersion(BaseModel):
    """One version of a run's plan: the first, a revision the planner wrote after steps failed
    (`replanned`), or one a person edited when approving it (`edited`)."""

    version: int = Field(description="1 = the first plan; each revision adds one.")
    kind: VersionKind
    plan: Plan
    reason: str = Field(description="Why this version was written (for a revision: what it answers).")
    replaced: list[int] = Field(default_factory=list, description="Steps of the previous version it dropped.")
    created_at: datetime


Approval = Literal["required"]


class RunRecord(RunSummary):
    plan: Plan
    versions: list[PlanVersion] = Field(
        default_factory=list, description="The plan's versions, oldest first; empty while it was never revised."
    )
    max_replans: int | None = Field(
        default=None, description="Revisions the planner may write for this run; None: the server's setting."
    )
    approval: Approval | None = Field(default=None, description="`required`: a person approves each plan version.")
    approved_version: int | None = Field(default=None, description="The plan version a person approved.")
    awaiting: str | None = Field(default=None, description="While awaiting approval: why the plan needs it.")
    answer: str | None = None
    answer_source: AnswerSource | None = Field(
        default=None, description="How the answer was made: `results` (stated from the final results) or `llm`."
    )
    error: str | None = None
    started_at: datetime | None = None
    usage: Usage = Field(default_factory=Usage, description="Planner and synthesis usage (steps: see each step).")
    steps: list[StepRecord]

    @property
    def version(self) -> int:
        """The current plan's version (1 until a revision)."""
        return self.versions[-1].version if self.versions else 1

    def planned_step(self, step_id: int) -> Step | None:
        """A step as planned: in the current plan, else in the version that last had it (a replaced step)."""
        for plan in (self.plan, *(v.plan for v in reversed(self.versions))):
            for step in plan.steps:
                if step.id == step_id:
                    return step
        return None

    def succeeded(self) -> dict[int, StepOutcome]:
        """The outcomes of the steps that succeeded (never run again), by step id."""
        return {step.id: step for step in self.steps if step.status is StepStatus.SUCCEEDED}

    def total_usage(self) -> Usage:
        total = self.usage
        for step in self.steps:
            total = total + step.usage
        return total


def now() -> datetime:
    return datetime.now(UTC)
