"""When a run's plan needs a person's approval before it runs.

A run that asked for approval (`approval="required"`) waits before every version of its plan: the
first, and each replanned remainder. A plan the planner wrote (from a request, or a revision) that
uses a destructive tool waits too, whatever the run asked: a tool step calling it, or an agent step
of an agent that has one. A version a person approved (or edited) does not wait again.
"""

from __future__ import annotations

from planning.catalog import Catalog
from planning.records import RunRecord, StepStatus


def approval_reason(record: RunRecord, catalog: Catalog) -> str | None:
    """Why the run's current plan must be approved before it runs; None when it need not be."""
    if record.approved_version == record.version:
        return None
    if record.approval == "required":
        kind = "its revised plan" if record.version > 1 else "its plan"
        return f"the run asked for approval of {kind} (version {record.version})"
    current = record.versions[-1].kind if record.versions else "planned"
    planner_wrote = current == "replanned" or (current == "planned" and record.request is not None)
    if not planner_wrote:
        return None
    destructive = destructive_steps(record, catalog)
    if destructive:
        return (
            f"the planner's plan uses destructive tools in step(s) {', '.join(map(str, destructive))}; "
            "a person approves such a plan before it runs"
        )
    return None


def destructive_steps(record: RunRecord, catalog: Catalog) -> list[int]:
    """Steps still to run that call a destructive tool (or may: an agent step of an agent with one)."""
    done = {step.id for step in record.steps if step.status is StepStatus.SUCCEEDED}
    found = []
    for step in record.plan.steps:
        agent = catalog.agents.get(step.agent)
        if step.id in done or agent is None:
            continue
        tools = [agent.tool_by_name.get(step.tool)] if step.tool else list(agent.tools)
        if any(tool is not None and tool.destructive for tool in tools):
            found.append(step.id)
    return found
