"""The statuses a run and its steps go through, and the phases Flyte reports for a cluster run.

Plain enumerations with no dependencies: the CLI builds its argument parser from them before it
imports anything else.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal


class RunStatus(StrEnum):
    PLANNING = "planning"  # the planner LLM is writing the plan of a request
    PENDING = "pending"
    AWAITING_APPROVAL = "awaiting_approval"  # its plan waits for a person's approval (approve_run)
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"  # some steps failed or were skipped, others succeeded
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"  # its process died; resume it

    @property
    def finished(self) -> bool:
        return self not in (RunStatus.PLANNING, RunStatus.PENDING, RunStatus.RUNNING, RunStatus.AWAITING_APPROVAL)


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  # a dependency did not succeed
    CANCELLED = "cancelled"
    REPLACED = "replaced"  # dropped by a revision of the plan (replanning); never runs again

    @property
    def finished(self) -> bool:
        """The step has its outcome (it will not run again unless the run is resumed)."""
        return self not in (StepStatus.PENDING, StepStatus.RUNNING)


FlytePhase = Literal[
    "queued",
    "waiting_for_resources",
    "initializing",
    "running",
    "paused",
    "succeeded",
    "failed",
    "aborted",
    "timed_out",
]
