"""What the MCP tools and resources return: runs, steps, plans and agents as pydantic views.

The views are the structured output of the tools (their JSON Schemas are the tools' output
schemas), so they are written for a model to read: each step carries what it was asked to do next
to what it produced, and a run in detail carries Mermaid charts of its DAG and its timeline.
A run is compact unless asked in detail: long step results are cut to a preview and the charts
are left out, so polling a run costs a few hundred bytes per step, not the whole record again.
`run_text` is the same run as a few lines of text (what a host shows beside the structured data).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from pydantic import BaseModel, Field, JsonValue

from agents.llm.protocol import Usage
from planning.catalog import Catalog
from planning.cluster import FlyteRunSummary
from planning.mermaid import flowchart, gantt, run_flowchart
from planning.plan import Plan, result_text
from planning.records import (
    DETAILS,
    AnswerSource,
    RunRecord,
    RunStatus,
    RunSummary,
    StepError,
    StepStatus,
    VersionKind,
)

# A compact run shows results up to this many characters of text; longer ones become previews.
RESULT_PREVIEW_CHARS = 500
ANSWER_PREVIEW_CHARS = 2_000
_V = TypeVar("_V")


class StepView(BaseModel):
    """One step of a run: what it was asked to do and what came of it."""

    id: int
    agent: str
    task: str | None = Field(default=None, description="Agent step: its instruction.")
    tool: str | None = Field(default=None, description="Tool step: the tool called.")
    args: dict[str, JsonValue] | None = None
    depends_on: list[int] = Field(default_factory=list)
    wave: int = Field(description="Dependency depth (1 = none); never a barrier.")
    status: StepStatus
    result: JsonValue = None
    result_preview: str | None = Field(
        default=None, description="Instead of `result` when long: its start; get_run(detail=true) for all."
    )
    summary: str | None = None
    details: JsonValue = Field(default=None, description=DETAILS)
    error: StepError | None = None
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_s: float | None = None
    usage: Usage = Field(default_factory=Usage)


class RunTimings(BaseModel):
    """Seconds: wall = creation to end (or now); planning (runs of a request) = creation to the
    first step's start; steps = first step's start to the last one's end; synthesis = from there
    to the answer."""

    wall_s: float | None = None
    planning_s: float | None = None
    steps_s: float | None = None
    synthesis_s: float | None = None


class RunBrief(BaseModel):
    """A run's id, status and answer; the run carries every step too, as get_run describes."""

    run_id: str
    status: RunStatus
    finished: bool = Field(description="The status will not change (unless resumed).")
    answer: str | None = None
    error: str | None = None
    steps_done: int
    step_count: int
    next: str | None = Field(default=None, description="What to do next, if anything.")


class PlanVersionView(BaseModel):
    # No docstring: it would be the schema's description, repeated in tools/list (see test_mcp_tools).

    version: int
    kind: VersionKind
    reason: str
    replaced: list[int] = Field(default_factory=list)


class RunView(RunBrief):
    """A run: status, answer, every step, timings, total LLM usage; in detail, Mermaid charts."""

    request: str | None = None
    answer_source: AnswerSource | None = Field(
        default=None, description="`results`: stated from the final steps' results; `llm`: written by the LLM."
    )
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    timings: RunTimings
    usage: Usage = Field(description="Total LLM usage: planner, steps and synthesis.")
    steps: list[StepView]
    versions: list[PlanVersionView] = Field(default_factory=list)  # once revised
    flowchart: str | None = Field(default=None, description="detail=true: Mermaid flowchart of the DAG.")
    gantt: str | None = Field(default=None, description="detail=true: Mermaid gantt of when steps ran.")


class RunSummaryView(BaseModel):
    """One line of the run listing."""

    run_id: str
    status: RunStatus
    request: str | None
    created_at: datetime
    finished_at: datetime | None = None
    step_count: int
    flyte_run: str | None = Field(default=None, description="source=flyte: the Flyte run's name.")
    flyte_phase: str | None = None
    url: str | None = Field(default=None, description="source=flyte: its Flyte console page.")


class RunsPage(BaseModel):
    """A page of runs, newest first."""

    runs: list[RunSummaryView]
    next_cursor: str | None = Field(default=None, description="`cursor` for the next page; null on the last.")


class PlanView(BaseModel):
    """A validated plan, ready for execute_plan, with its DAG drawn in Mermaid."""

    plan: Plan = Field(description="The plan; pass it unchanged (or edited) as execute_plan's `plan`.")
    waves: dict[int, int] = Field(description="Step id -> dependency depth (1 = can start at once).")
    flowchart: str = Field(description="Mermaid flowchart of the plan's DAG.")


class ToolView(BaseModel):
    name: str
    description: str
    parameters: dict[str, Any] = Field(description="JSON Schema of the tool's `args`.")
    person_only: bool = Field(
        default=False,
        description="It changes or deletes things: only a plan written by a person (tool steps) may call it, "
        "never the planner or an agent's LLM.",
    )


class AgentView(BaseModel):
    name: str
    description: str
    unavailable: str | None = Field(
        default=None, description="Why the agent cannot run now (e.g. its MCP server failed to start)."
    )
    tools: list[ToolView]


class AgentsView(BaseModel):
    """The specialist agents a plan may use, with their tools' argument schemas."""

    agents: list[AgentView]


_NOT_COUNTED = (StepStatus.REPLACED,)


def run_timings(record: RunRecord, *, now: datetime | None = None) -> RunTimings:
    """Where the run's time went, from its recorded times (an unfinished run's wall time runs to `now`)."""
    ran = [s for s in record.steps if s.started_at]
    first_step = min((s.started_at for s in ran if s.started_at), default=None)
    last_step = max((s.finished_at for s in ran if s.finished_at), default=None)
    steps_over = all(s.finished_at for s in ran)

    def seconds(start: datetime | None, stop: datetime | None) -> float | None:
        return max(0.0, (stop - start).total_seconds()) if start and stop else None

    return RunTimings(
        wall_s=seconds(record.created_at, record.finished_at or now),
        # Only a request is planned; a plan's run spends this time starting up.
        planning_s=seconds(record.created_at, first_step or record.started_at) if record.request else None,
        steps_s=seconds(first_step, last_step) if steps_over else None,
        synthesis_s=seconds(last_step, record.finished_at) if steps_over else None,
    )


def _result_and_preview(result: JsonValue, detail: bool) -> tuple[JsonValue, str | None]:
    """`result` whole, or (compact and long) a text preview instead."""
    if detail or result is None:
        return result, None
    text = result_text(result)
    if len(text) <= RESULT_PREVIEW_CHARS:
        return result, None
    return None, text[:RESULT_PREVIEW_CHARS] + "…"


def _shortened(value: _V, detail: bool) -> _V:
    """`value` with (compact) every text longer than a preview cut to one."""
    if detail:
        return value
    if isinstance(value, str) and len(value) > RESULT_PREVIEW_CHARS:
        return cast(_V, value[:RESULT_PREVIEW_CHARS] + "…")
    if isinstance(value, dict):
        return cast(_V, {key: _shortened(item, detail) for key, item in value.items()})
    if isinstance(value, list):
        return cast(_V, [_shortened(item, detail) for item in value])
    return value


def run_view(
    record: RunRecord, *, finished: bool | None = None, next_hint: str | None = None, detail: bool = False
) -> RunView:
    """The view of a run; `finished` overrides the status's own (a run about to be resumed is not).

    `detail`: every result whole and the Mermaid charts; otherwise long results are previews
    and long texts in tasks and arguments are cut."""
    waves = record.plan.waves()
    steps = []
    for step in record.steps:
        plan_step = record.planned_step(step.id)
        result, preview = _result_and_preview(step.result, detail)
        steps.append(
            StepView.model_validate(
                {
                    **dict(step),  # the record's fields as they are; the view adds the plan's side
                    "task": _shortened(plan_step.task, detail) if plan_step else None,
                    "tool": plan_step.tool if plan_step else None,
                    "args": _shortened(plan_step.args, detail) if plan_step else None,
                    "depends_on": sorted(plan_step.needs()) if plan_step else [],
                    "wave": waves.get(step.id, 1),
                    "result": result,
                    "result_preview": preview,
                    "details": _shortened(step.details, detail),
                    "duration_s": step.duration_s,
                }
            )
        )
    return RunView(
        run_id=record.id,
        status=record.status,
        finished=record.status.finished if finished is None else finished,
        request=record.request,
        answer=record.answer,
        answer_source=record.answer_source,
        error=record.error,
        created_at=record.created_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        steps_done=sum(1 for step in record.steps if step.status.finished and step.status not in _NOT_COUNTED),
        step_count=len(record.plan.steps) if record.plan.steps else record.step_count,
        timings=run_timings(record, now=datetime.now(UTC)),
        usage=record.total_usage(),
        steps=steps,
        versions=[
            PlanVersionView(version=v.version, kind=v.kind, reason=v.reason, replaced=v.replaced)
            for v in record.versions
        ],
        flowchart=run_flowchart(record) if detail else None,
        gantt=gantt(record) if detail else None,
        next=next_hint,
    )


def run_text(view: RunView) -> str:
    """The run in a few lines: status, answer, one line per step (what a host shows beside the data).

    Long texts are previews: the whole run is the structured content and the runs://{id} resource."""
    lines = [f"run {view.run_id}: {view.status.value} ({view.steps_done}/{view.step_count} steps done)"]
    if view.answer:
        answer = view.answer
        if len(answer) > ANSWER_PREVIEW_CHARS:
            answer = (
                f"{answer[:ANSWER_PREVIEW_CHARS]}… ({len(answer):,} characters: the whole answer is in the "
                f"structured content and at runs://{view.run_id})"
            )
        lines.append(f"answer: {answer}")
    if view.error:
        lines.append(f"error: {view.error}")
    for version in view.versions[1:]:
        dropped = f"; replaced step(s) {', '.join(map(str, version.replaced))}" if version.replaced else ""
        lines.append(f"plan version {version.version} ({version.kind}): {_one_line(version.reason)}{dropped}")
    for step in view.steps:
        what = f"{step.agent}.{step.tool}" if step.tool else step.agent
        line = f"step {step.id} {what}: {step.status.value}"
        if step.error is not None:
            line += f" ({step.error.kind}: {step.error.message})"
        elif step.result_preview is not None:
            line += f" -> {step.result_preview}"
        elif step.status is StepStatus.SUCCEEDED:
            line += f" -> {_one_line(result_text(step.result))}"
        lines.append(line)
    if view.next:
        lines.append(f"next: {view.next}")
    return "\n".join(lines)


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= RESULT_PREVIEW_CHARS else text[:RESULT_PREVIEW_CHARS] + "…"


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
