"""What the MCP tools and resources return: runs, steps, plans and agents as pydantic views.

The views are the structured output of the tools (their JSON Schemas are the tools' output
schemas), so they are written for a model to read: each step carries what it was asked to do next
to what it produced, and a run carries Mermaid charts of its DAG and its timeline.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, JsonValue

from agents.llm.protocol import Usage
from planning.catalog import Catalog
from planning.mermaid import flowchart, gantt
from planning.plan import Plan
from planning.records import DETAILS, RunRecord, RunStatus, RunSummary, StepError, StepStatus
from planning.remote import FlyteRunSummary


class StepView(BaseModel):
    """One step of a run: what it was asked to do and what came of it."""

    id: int
    agent: str
    task: str | None = Field(default=None, description="Agent step: the instruction its LLM received.")
    tool: str | None = Field(default=None, description="Tool step: the tool called directly.")
    args: dict[str, JsonValue] | None = Field(default=None, description="Tool step: the arguments as planned.")
    depends_on: list[int] = Field(default_factory=list, description="Steps this one waited for.")
    wave: int = Field(description="Dependency depth (1 = no dependencies); for reading, never a barrier.")
    status: StepStatus
    result: JsonValue = Field(default=None, description="The step's result when it succeeded.")
    summary: str | None = None
    details: JsonValue = Field(default=None, description=DETAILS)
    error: StepError | None = Field(default=None, description="Why the step did not succeed.")
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_s: float | None = None
    usage: Usage = Field(default_factory=Usage, description="LLM calls and tokens this step used.")


class RunView(BaseModel):
    """A run: its status, answer, every step, total LLM usage, and Mermaid charts."""

    run_id: str
    status: RunStatus = Field(description="pending | running | succeeded | partial | failed | cancelled | interrupted.")
    finished: bool = Field(description="True once the status will not change (unless the run is resumed).")
    request: str | None = Field(default=None, description="The natural-language request, if the run came from one.")
    answer: str | None = Field(default=None, description="The final answer, once the run has finished.")
    error: str | None = Field(default=None, description="What went wrong, for runs that did not fully succeed.")
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    steps_done: int = Field(description="Steps that have finished (succeeded, failed, skipped or cancelled).")
    step_count: int
    usage: Usage = Field(description="Total LLM usage: planner, steps and synthesis.")
    steps: list[StepView]
    flowchart: str = Field(description="Mermaid flowchart of the plan's DAG, coloured by step status.")
    gantt: str = Field(description="Mermaid gantt chart of when each step ran.")
    next: str | None = Field(default=None, description="What to do next, when there is something to do.")


class RunSummaryView(BaseModel):
    """One line of the run listing."""

    run_id: str
    status: RunStatus
    request: str | None
    created_at: datetime
    finished_at: datetime | None = None
    step_count: int
    flyte_run: str | None = Field(default=None, description="The Flyte run's name (runs listed from the cluster).")
    flyte_phase: str | None = Field(default=None, description="Flyte's phase of that run.")
    url: str | None = Field(default=None, description="The Flyte console page of that run.")


class RunsPage(BaseModel):
    """A page of runs, newest first."""

    runs: list[RunSummaryView]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` to list_runs for the next page; null on the last page."
    )


class PlanView(BaseModel):
    """A validated plan, ready for execute_plan, with its DAG drawn in Mermaid."""

    plan: Plan = Field(description="The plan; pass it unchanged (or edited) as execute_plan's `plan`.")
    waves: dict[int, int] = Field(description="Step id -> dependency depth (1 = can start at once).")
    flowchart: str = Field(description="Mermaid flowchart of the plan's DAG.")


class ToolView(BaseModel):
    name: str
    description: str
    parameters: dict[str, Any] = Field(description="JSON Schema of the tool's `args`.")


class AgentView(BaseModel):
    name: str
    description: str
    tools: list[ToolView]


class AgentsView(BaseModel):
    """The specialist agents a plan may use, with their tools' argument schemas."""

    agents: list[AgentView]


_UNFINISHED_STEPS = (StepStatus.PENDING, StepStatus.RUNNING)


def run_view(record: RunRecord, *, finished: bool | None = None, next_hint: str | None = None) -> RunView:
    """The view of a run; `finished` overrides the status's own (a run about to be resumed is not)."""
    planned = {step.id: step for step in record.plan.steps}
    waves = record.plan.waves()
    steps = []
    for step in record.steps:
        plan_step = planned.get(step.id)
        steps.append(
            StepView(
                id=step.id,
                agent=step.agent,
                task=plan_step.task if plan_step else None,
                tool=plan_step.tool if plan_step else None,
                args=plan_step.args if plan_step else None,
                depends_on=sorted(plan_step.needs()) if plan_step else [],
                wave=waves.get(step.id, 1),
                status=step.status,
                result=step.result,
                summary=step.summary,
                details=step.details,
                error=step.error,
                attempts=step.attempts,
                started_at=step.started_at,
                finished_at=step.finished_at,
                duration_s=step.duration_s,
                usage=step.usage,
            )
        )
    statuses = {step.id: step.status for step in record.steps}
    return RunView(
        run_id=record.id,
        status=record.status,
        finished=record.status.finished if finished is None else finished,
        request=record.request,
        answer=record.answer,
        error=record.error,
        created_at=record.created_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        steps_done=sum(1 for step in record.steps if step.status not in _UNFINISHED_STEPS),
        step_count=record.step_count,
        usage=record.total_usage(),
        steps=steps,
        flowchart=flowchart(record.plan, statuses),
        gantt=gantt(record),
        next=next_hint,
    )


def summary_view(summary: RunSummary) -> RunSummaryView:
    flyte = summary if isinstance(summary, FlyteRunSummary) else None
    return RunSummaryView(
        run_id=summary.id,
        status=summary.status,
        request=summary.request,
        created_at=summary.created_at,
        finished_at=summary.finished_at,
        step_count=summary.step_count,
        flyte_run=flyte.flyte_run_name if flyte else None,
        flyte_phase=flyte.phase if flyte else None,
        url=flyte.url if flyte else None,
    )


def plan_view(plan: Plan) -> PlanView:
    return PlanView(plan=plan, waves=plan.waves(), flowchart=flowchart(plan))


def agents_view(catalog: Catalog) -> AgentsView:
    return AgentsView.model_validate({"agents": catalog.describe()})
