"""What the faces (CLI, MCP server) know of Flyte clusters without importing Flyte: the name of the
orchestrator task every planner-mcp run is, the phases a listing filters on, and the root of the
remote engine's errors (the engine itself is planning.remote)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import get_args

from planning.errors import UserFixableError
from planning.records import RunSummary
from planning.status import FlytePhase

__all__ = ["PLAN_TASK", "FlytePhase", "FlyteRunSummary", "RemoteError", "phases_filter"]

PLAN_TASK = "planner_mcp.run_plan"  # the Flyte task name of every planner-mcp run


class RemoteError(UserFixableError):
    """Base of the remote engine's errors; every message says what to do."""


class FlyteRunSummary(RunSummary):
    """A run on the Flyte cluster, in the run store's terms plus Flyte's own.

    `id` is the planner-mcp run id when the run carries one (a run planner-mcp submitted), else
    the Flyte run name. `request` and `step_count` come from the local run store when it knows
    the run (0 steps otherwise).
    """

    flyte_run_name: str
    phase: str  # Flyte's phase: queued, running, succeeded, failed, aborted, timed_out, ...
    task_name: str | None
    url: str
    planner_run_id: str | None


def phases_filter(phase: FlytePhase | Sequence[FlytePhase] | None, limit: int) -> tuple[FlytePhase, ...]:
    """The phases a listing keeps, checked (with the limit) before any work: ValueError naming the fix."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit!r}")
    phases = (phase,) if isinstance(phase, str) else tuple(phase or ())
    unknown = [p for p in phases if p not in get_args(FlytePhase)]
    if unknown:
        raise ValueError(f"unknown Flyte phase(s) {unknown!r}; use {', '.join(get_args(FlytePhase))}")
    return phases
