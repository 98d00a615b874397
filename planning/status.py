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
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"  # some steps failed or were skipped, others succeeded
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"  # its process died; resume it

    @property
    def finished(self) -> bool:
        return self not in (RunStatus.PLANNING, RunStatus.PENDING, RunStatus.RUNNING)


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  # a dependency did not succeed
    CANCELLED = "cancelled"


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
