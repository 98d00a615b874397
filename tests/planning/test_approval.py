"""When a plan waits for a person: the run asked, or the planner wrote a plan with a destructive tool."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from planning.approval import approval_reason, destructive_steps
from planning.catalog import AgentSpec, Catalog, ToolSpec
from planning.plan import Plan
from planning.records import PlanVersion, RunRecord, RunStatus, StepRecord, StepStatus
from tests.planning.conftest import make_plan


def read(path: str) -> str:
    """Read a file."""
    return path


def delete(path: str) -> str:
    """Delete a file."""
    return path


CATALOG = Catalog(
    [
        AgentSpec(
            name="files",
            description="Files.",
            tools=(ToolSpec.from_function(read), ToolSpec.from_function(delete, destructive=True)),
        ),
        AgentSpec(name="reader", description="Reads.", tools=(ToolSpec.from_function(read),)),
    ]
)
DELETES = make_plan(
    {"id": 1, "agent": "reader", "tool": "read", "args": {"path": "a"}},
    {"id": 2, "agent": "files", "tool": "delete", "args": {"path": "a"}},
)
AGENT_STEP = make_plan({"id": 1, "agent": "files", "task": "tidy up"})


def record(plan: Plan = DELETES, *, request: str | None = "tidy", **fields: Any) -> RunRecord:
    return RunRecord.model_validate(
        {
            "id": "r1",
            "status": RunStatus.PENDING,
            "request": request,
            "engine": "local",
            "created_at": datetime.now(UTC),
            "step_count": len(plan.steps),
            "plan": plan,
            "steps": [StepRecord(id=s.id, agent=s.agent, status=StepStatus.PENDING) for s in plan.steps],
            **fields,
        }
    )


def test_a_planned_plan_with_a_destructive_tool_step_waits_for_approval() -> None:
    assert approval_reason(record(), CATALOG) == (
        "the planner's plan uses destructive tools in step(s) 2; a person approves such a plan before it runs"
    )


def test_an_agent_step_of_an_agent_with_a_destructive_tool_counts_as_destructive() -> None:
    assert destructive_steps(record(AGENT_STEP), CATALOG) == [1]


def test_a_hand_written_plan_with_a_destructive_tool_runs_as_its_author_wrote_it() -> None:
    assert approval_reason(record(request=None), CATALOG) is None


def test_a_revision_the_planner_wrote_for_a_hand_written_plan_waits_when_destructive() -> None:
    now = datetime.now(UTC)
    versions = [
        PlanVersion(version=1, kind="planned", plan=AGENT_STEP, reason="written by hand", created_at=now),
        PlanVersion(version=2, kind="replanned", plan=DELETES, reason="step 1 failed", created_at=now),
    ]
    assert approval_reason(record(request=None, versions=versions), CATALOG) is not None


def test_an_approved_version_never_waits_again_and_an_asked_run_waits_for_each_version() -> None:
    assert approval_reason(record(approved_version=1), CATALOG) is None
    asked = record(make_plan({"id": 1, "agent": "reader", "tool": "read", "args": {"path": "a"}}), approval="required")
    assert approval_reason(asked, CATALOG) == "the run asked for approval of its plan (version 1)"
