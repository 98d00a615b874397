"""What the faces (CLI, MCP server) know of Flyte clusters without importing Flyte: the name of the
orchestrator task every planner-mcp run is, the phases a listing filters on, and the root of the
remote engine's errors (the engine itself is planning.remote)."""

from __future__ import annotations

from planning.errors import UserFixableError
from planning.records import RunSummary
from planning.status import FlytePhase

__all__ = ["PLAN_TASK", "FlytePhase", "FlyteRunSummary", "RemoteError"]

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
