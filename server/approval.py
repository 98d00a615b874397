"""Asking a person to approve a plan over MCP, in whichever way the client can be asked, and the
approve_run tool.

A run whose plan needs approval stops in status `awaiting_approval` (planning.approval says when).
Where the client declares form elicitation, the tool call that ran it asks at once, with the plan,
its Mermaid picture and why it needs approval: in a 2025-era session by a server-initiated
`elicitation/create` request while the call waits; in the 2026 era (2026-07-28, no server-initiated
requests) by answering the call with an `InputRequiredResult` that the client answers by calling
the tool again with the answer (`request_state` names the run). Accept runs the plan (as shown, or
the edited plan in the answer's `plan`), decline rejects it, cancel leaves the run waiting. Clients
without elicitation get the run in status `awaiting_approval` and decide with `approve_run`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from mcp.server.elicitation import (
    AcceptedElicitation,
    CancelledElicitation,
    DeclinedElicitation,
    render_elicitation_schema,
)
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import (
    CallToolResult,
    ElicitRequest,
    ElicitRequestFormParams,
    ElicitResult,
    InputRequiredResult,
    ToolAnnotations,
)
from mcp_types.version import is_version_at_least
from pydantic import BaseModel, Field, ValidationError

from planning.catalog import Catalog
from planning.mermaid import flowchart
from planning.records import RunRecord, RunStatus, StepStatus
from planning.store import RunNotFoundError, StoreError
from planning.validate import PlanValidationError
from server.mcp_runs import polling_view, run_and_wait, start_in_background
from server.mcp_state import RunId, ServerState, fixable_errors, register_tool, run_result, server_state
from server.views import RunView, run_view

# The first protocol revision that asks through InputRequiredResult instead of elicitation/create.
INPUT_REQUIRED_VERSION = "2026-07-28"
KEY = "approval"  # the input request's key, and what request_state is tagged with
MAX_PLAN_CHARS = 100_000


class ApprovalAnswer(BaseModel):
    """The form a person fills in: nothing to run the plan as shown, or the edited plan."""

    plan: str = Field(
        default="",
        max_length=MAX_PLAN_CHARS,
        description="Leave empty to run the plan as shown; to change it, the whole edited plan as JSON.",
    )


Action = Literal["accept", "decline", "cancel"]


@dataclass(frozen=True)
class Decision:
    """What the person answered: accept (with an edited plan or none), decline, or cancel."""

    action: Action
    plan: str | None = None


def can_elicit(ctx: Context[Any, Any]) -> bool:
    """Whether the client declared form elicitation (a bare `elicitation: {}` counts as form)."""
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


def asks_by_input_required(ctx: Context[Any, Any]) -> bool:
    """2026-era session: the question goes back as the call's result, never as a request."""
    version = ctx.protocol_version
    return version is not None and is_version_at_least(version, INPUT_REQUIRED_VERSION)


def message(record: RunRecord, problems: str | None = None) -> str:
    """The question: why the plan needs approval, the plan (JSON and Mermaid), how to answer."""
    kept = [step.id for step in record.steps if step.status is StepStatus.SUCCEEDED]
    lines = [f"Run {record.id} waits for your approval: {record.awaiting or 'its plan needs it'}."]
    if record.request:
        lines.append(f"Request: {record.request}")
    if record.versions and record.versions[-1].kind == "replanned":
        lines.append(f"The planner revised the plan because {record.versions[-1].reason}.")
    if kept:
        lines.append(f"Steps {', '.join(map(str, kept))} already succeeded and are kept.")
    if problems:
        lines.append(f"The edited plan was not accepted:\n{problems}\nCorrect it, or leave it empty.")
    lines += [
        f"Plan (version {record.version}):",
        record.plan.model_dump_json(exclude_defaults=True),
        "```mermaid",
        flowchart(record.plan),
        "```",
        "Accept to run it (put an edited plan's JSON in `plan` to run that instead); decline to reject it.",
    ]
    return "\n".join(lines)


def input_required(record: RunRecord, *, synthesize: bool, problems: str | None = None) -> InputRequiredResult:
    """The 2026-era question: the call ends here, and the client calls again with the answer."""
    params = ElicitRequestFormParams(
        message=message(record, problems), requested_schema=render_elicitation_schema(ApprovalAnswer)
    )
    state = json.dumps({"tag": KEY, "run_id": record.id, "version": record.version, "synthesize": synthesize})
    return InputRequiredResult(input_requests={KEY: ElicitRequest(params=params)}, request_state=state)


@dataclass(frozen=True)
class Resumed:
    """A tool call that answers an earlier approval question (2026 era)."""

    run_id: str
    version: int
    synthesize: bool
    decision: Decision


def resumed(ctx: Context[Any, Any]) -> Resumed | None:
    """The approval answer this call carries, if it answers our question; else None."""
    if ctx.request_state is None:
        return None
    try:
        state = json.loads(ctx.request_state)
    except ValueError:
        return None
    if not isinstance(state, dict) or state.get("tag") != KEY:
        return None
    answer = (ctx.input_responses or {}).get(KEY)
    decision = Decision(action="cancel")
    if isinstance(answer, ElicitResult):
        decision = _decision(answer.action, answer.content)
    return Resumed(
        run_id=str(state.get("run_id")),
        version=int(state.get("version", 0)),
        synthesize=bool(state.get("synthesize", True)),
        decision=decision,
    )


async def ask(ctx: Context[Any, Any], record: RunRecord, problems: str | None = None) -> Decision:
    """The 2025-era question: asked while the call waits."""
    outcome = await ctx.elicit(message(record, problems), ApprovalAnswer)
    if isinstance(outcome, AcceptedElicitation):
        return Decision(action="accept", plan=outcome.data.plan.strip() or None)
    if isinstance(outcome, DeclinedElicitation):
        return Decision(action="decline")
    assert isinstance(outcome, CancelledElicitation)
    return Decision(action="cancel")


def _decision(action: str, content: Any) -> Decision:
    if action == "accept":
        try:
            answer = ApprovalAnswer.model_validate(content or {})
        except ValidationError:
            return Decision(action="cancel")
        return Decision(action="accept", plan=answer.plan.strip() or None)
    return Decision(action="decline" if action == "decline" else "cancel")


# -- in the tool calls -----------------------------------------------------------------------------

_MAX_ASKS = 5  # approval questions one call asks (2025 era; an invalid edit asks again)


async def settle(
    state: ServerState,
    ctx: Context[ServerState, Any],
    view: RunView,
    *,
    synthesize: bool = True,
    problems: str | None = None,
) -> CallToolResult | InputRequiredResult:
    """A run that stopped for approval: where the client can be asked, ask now (2025 era: within this
    call, again after an invalid edit or for a revised plan; 2026 era: as this call's result);
    otherwise, or when the person cancels, the run as it stands (approve_run decides later)."""
    for _ in range(_MAX_ASKS):
        if view.status is not RunStatus.AWAITING_APPROVAL or not can_elicit(ctx):
            break
        record = state.app.store.get_run(view.run_id)
        if asks_by_input_required(ctx):
            return input_required(record, synthesize=synthesize, problems=problems)
        decision = await ask(ctx, record, problems)
        view, problems = await _decide(state, ctx, record, decision, synthesize=synthesize)
        if decision.action == "cancel":
            break
    return run_result(view)


async def _decide(
    state: ServerState, ctx: Context[ServerState, Any], record: RunRecord, decision: Decision, *, synthesize: bool
) -> tuple[RunView, str | None]:
    """Apply a person's answer: the run afterwards (run to its end or the call's deadline) and, for
    an edited plan that cannot run, its problems (the run still waits)."""
    app = state.app
    if decision.action == "cancel":
        return await polling_view(state, record.id), None
    with fixable_errors():
        if decision.action == "decline":
            return run_view(app.reject(record.id)), None
        try:
            app.approve(record.id, await app.parse_reviving(decision.plan) if decision.plan else None)
        except (PlanValidationError, StoreError) as exc:
            if isinstance(exc, RunNotFoundError):
                raise
            return await polling_view(state, record.id), str(exc)
    return await run_and_wait(state, record.id, ctx, synthesize=synthesize), None


async def answered(state: ServerState, ctx: Context[ServerState, Any]) -> CallToolResult | InputRequiredResult | None:
    """A 2026-era call that brings the answer to our approval question: apply it and go on; None
    for any other call."""
    answer = resumed(ctx)
    if answer is None:
        return None
    with fixable_errors():
        record = state.app.store.get_run(answer.run_id)
    if record.status is not RunStatus.AWAITING_APPROVAL or record.version != answer.version:
        return run_result(await polling_view(state, record.id))  # decided meanwhile
    view, problems = await _decide(state, ctx, record, answer.decision, synthesize=answer.synthesize)
    if answer.decision.action == "cancel":
        return run_result(view)
    return await settle(state, ctx, view, synthesize=answer.synthesize, problems=problems)


def add_approval_tools(server: MCPServer[ServerState], catalog: Catalog) -> None:
    """approve_run, marked destructive as execute_plan is (`Catalog.has_person_only_tools`): the plan
    it runs, as shown or edited, may call tools only a person's plan may."""

    @register_tool(
        server,
        annotations=ToolAnnotations(
            title="Approve a run's plan",
            read_only_hint=False,
            destructive_hint=catalog.has_person_only_tools,
            idempotent_hint=False,
            open_world_hint=True,
        ),
    )
    async def approve_run(
        run_id: RunId,
        ctx: Context[ServerState, Any],
        plan: Annotated[
            dict[str, Any] | str | None,
            Field(description="An edited plan to run instead (keep the steps that succeeded)."),
        ] = None,
        reject: Annotated[bool, Field(description="true: reject the plan; the run ends cancelled.")] = False,
        wait: Annotated[bool, Field(description="false: return at once and poll get_run.")] = True,
    ) -> CallToolResult | InputRequiredResult:  # the run, as resume_run
        """Decide on a run in status awaiting_approval: run its plan as shown, run an edited `plan`
        instead, or reject it (reject=true). Then it runs as resume_run does."""
        state = server_state(ctx)
        result = await answered(state, ctx)
        if result is not None:
            return result
        if reject and plan is not None:
            raise ToolError("give an edited `plan` to run, or reject=true, not both")
        with fixable_errors():
            if reject:
                return run_result(run_view(state.app.reject(run_id)))
            state.app.approve(run_id, await state.app.parse_reviving(plan) if plan is not None else None)
            if not wait:
                return run_result(await start_in_background(state, run_id))
        return await settle(state, ctx, await run_and_wait(state, run_id, ctx))
