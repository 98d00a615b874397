"""What the run store keeps and hands out: runs, their steps, outcomes and usage."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from agents.llm.protocol import Usage
from planning.plan import Plan


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"  # some steps failed or were skipped, others succeeded
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"  # its process died; resume it

    @property
    def finished(self) -> bool:
        return self not in (RunStatus.PENDING, RunStatus.RUNNING)


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  # a dependency did not succeed
    CANCELLED = "cancelled"


class StepError(BaseModel):
    """Why a step did not succeed. `kind` is machine-readable; `message` names the fix."""

    kind: str = Field(description="timeout | tool_error | invalid_args | llm_error | dependency | cancelled | internal")
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


class StepRecord(BaseModel):
    id: int
    agent: str
    status: StepStatus
    attempts: int = 0
    result: JsonValue = None
    summary: str | None = None
    error: StepError | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    usage: Usage = Field(default_factory=Usage)
    details: JsonValue = Field(default=None, description=DETAILS)

    @property
    def duration_s(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class RunSummary(BaseModel):
    id: str
    status: RunStatus
    request: str | None
    engine: str
    created_at: datetime
    finished_at: datetime | None = None
    step_count: int


class RunRecord(RunSummary):
    plan: Plan
    answer: str | None = None
    error: str | None = None
    started_at: datetime | None = None
    usage: Usage = Field(default_factory=Usage, description="Planner and synthesis usage (steps: see each step).")
    steps: list[StepRecord]

    def total_usage(self) -> Usage:
        total = self.usage
        for step in self.steps:
            total = total + step.usage
        return total


def now() -> datetime:
    return datetime.now(UTC)
