"""The run tools (list_runs, get_run, resume_run, cancel_run) and the run plumbing every tool that
starts a run shares: record, start in the server, wait up to the call deadline or return a run to poll."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import anyio
import anyio.lowlevel
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import Field

from agents.llm import Usage
from agents.llm.errors import HOW_TO_CONFIGURE
from planning.catalog import Catalog
from planning.cluster import PLAN_TASK, FlytePhase
from planning.plan import Plan
from planning.records import Approval, RunRecord, RunStatus
from planning.settings import EngineName
from server.app import App
from server.mcp_state import RunId, ServerState, fixable_errors, register_tool, run_result, server_state
from server.views import (
    RunsPage,
    RunView,
    run_view,
    summary_view,
)

# What a model should do while a run executes in the server.
_POLL_HINT = (
    "The run continues in the server: call get_run(run_id={run_id!r}) every few seconds until `finished` is true."
)
_APPROVAL_HINT = (
    "The plan waits for approval ({why}): call approve_run(run_id={run_id!r}) to run it as shown, with `plan` to "
    "run an edited plan instead, or with reject=true to reject it."
)
_CANCEL_WAIT_S = 30.0


def require_llm_for_agent_steps(app: App, plan: Plan) -> None:
    if app.llm is not None:
        return
    agent_steps = [step.id for step in plan.steps if step.task is not None]
    if agent_steps:
        raise ToolError(
            f"step(s) {', '.join(map(str, agent_steps))} are agent steps (`task`), which need an LLM, and this "
            f"server has none. Rewrite them as tool steps (`tool` + `args`; list_agents gives each tool's "
            f"arguments), or configure an LLM for the server. {HOW_TO_CONFIGURE}"
        )


async def run_and_wait(
    state: ServerState, run_id: str, ctx: Context[ServerState, Any], *, synthesize: bool = True
) -> RunView:
    """Run and wait, at most the call deadline: then the run, still going, is returned to poll."""
    with fixable_errors():
        record = await state.runs.run(
            run_id, ctx.report_progress, synthesize=synthesize, deadline_s=state.settings.call_deadline_s
        )
    if record is None or record.status is RunStatus.AWAITING_APPROVAL:
        return await polling_view(state, run_id)
    return run_view(record)


async def polling_view(state: ServerState, run_id: str, *, detail: bool = False) -> RunView:
    """The run as it stands; a run still executing here is reported unfinished, with how to follow it."""
    record = await state.app.get_run(run_id)
    executing = state.runs.is_active(run_id)
    finished = record.status.finished and not executing
    hint = None if finished else _POLL_HINT.format(run_id=run_id)
    if record.status is RunStatus.AWAITING_APPROVAL and not executing:
        hint = _APPROVAL_HINT.format(run_id=run_id, why=record.awaiting or "it needs one")
    return run_view(record, finished=finished, next_hint=hint, detail=detail)


async def start_in_background(state: ServerState, run_id: str, *, synthesize: bool = True) -> RunView:
    state.runs.start(run_id, synthesize=synthesize)
    # Let the run's task take the run (status `running`) before reporting it.
    await anyio.lowlevel.checkpoint()
    return await polling_view(state, run_id)


async def submit_and_run(
    state: ServerState,
    ctx: Context[ServerState, Any],
    plan: Plan,
    *,
    request: str | None,
    wait: bool,
    synthesize: bool = True,
    idempotency_key: str | None = None,
    engine: EngineName | None = None,
    usage: Usage | None = None,
    max_replans: int | None = None,
    approval: Approval | None = None,
) -> RunView:
    with fixable_errors():
        record = state.app.submit(
            plan,
            request=request,
            idempotency_key=idempotency_key,
            engine=engine,
            usage=usage,
            max_replans=max_replans,
            approval=approval,
        )
    return await run_recorded(state, ctx, record, wait=wait, synthesize=synthesize)


async def run_recorded(
    state: ServerState, ctx: Context[ServerState, Any], record: RunRecord, *, wait: bool, synthesize: bool = True
) -> RunView:
    """Run a just-recorded run (pending, or a request to plan) in the server, waiting for it or not."""
    runs = state.runs
    with fixable_errors():
        if record.status not in (RunStatus.PENDING, RunStatus.PLANNING) or runs.is_active(record.id):
            # An earlier call with this idempotency key made the run: report it, never start it twice.
            if wait:
                await runs.wait(record.id, timeout_s=state.settings.call_deadline_s)
            return await polling_view(state, record.id)
        if not wait:
            return await start_in_background(state, record.id, synthesize=synthesize)
    return await run_and_wait(state, record.id, ctx, synthesize=synthesize)


def add_run_tools(server: MCPServer[ServerState], catalog: Catalog) -> None:
    """list_runs, get_run, resume_run and cancel_run; resume_run is marked destructive as execute_plan
    is (`Catalog.has_person_only_tools`): it runs again the steps of a plan that may call such tools."""

    @register_tool(
        server,
        annotations=ToolAnnotations(
            title="List runs", read_only_hint=True, idempotent_hint=True, open_world_hint=False
        ),
    )
    async def list_runs(
        ctx: Context[ServerState, Any],
        limit: Annotated[int, Field(ge=1, le=100, description="Runs per page.")] = 20,
        status: Annotated[RunStatus | None, Field(description="Only runs with this status.")] = None,
        cursor: Annotated[str | None, Field(description="`next_cursor` of the previous page.")] = None,
        source: Annotated[
            Literal["store", "flyte"],
            Field(description="`store`: runs recorded by this server; `flyte`: runs on the configured cluster."),
        ] = "store",
        flyte_phase: Annotated[list[FlytePhase] | None, Field(description="source=flyte: only these phases.")] = None,
        task_name: Annotated[
            str | None, Field(description="source=flyte: only this Flyte task (default: planner-mcp's).")
        ] = None,
        created_after: Annotated[datetime | None, Field(description="source=flyte: created at or after.")] = None,
        created_before: Annotated[datetime | None, Field(description="source=flyte: created before.")] = None,
    ) -> RunsPage:
        """The recorded runs, newest first, one page at a time: id, status, request, step count, times.
        Call get_run for a run's steps and results. With source="flyte", past and current runs on the
        Flyte cluster (filters: flyte_phase, task_name, created_after/before, limit; no cursor)."""
        state = server_state(ctx)
        with fixable_errors():
            if source == "flyte":
                flyte_runs = await state.app.list_flyte_runs(
                    phase=flyte_phase,
                    task_name=task_name or PLAN_TASK,
                    created_after=created_after,
                    created_before=created_before,
                    limit=limit,
                )
                return RunsPage(runs=[summary_view(run) for run in flyte_runs])
            runs, next_cursor = state.app.store.list_runs(limit=limit, status=status, cursor=cursor)
        return RunsPage(runs=[summary_view(run) for run in runs], next_cursor=next_cursor)

    @register_tool(
        server,
        annotations=ToolAnnotations(
            title="Get a run", read_only_hint=True, idempotent_hint=True, open_world_hint=False
        ),
    )
    async def get_run(
        run_id: RunId,
        ctx: Context[ServerState, Any],
        detail: Annotated[
            bool,
            Field(description="true: every step's whole result and Mermaid charts of the DAG and the timeline."),
        ] = False,
    ) -> Annotated[CallToolResult, RunView]:
        """A run's status and answer, every step with its task or tool call, status, result (long ones
        as a preview unless detail=true), error, attempts, timings and LLM usage, and the total usage.
        Poll this after execute_plan(wait=false) until `finished` is true."""
        state = server_state(ctx)
        with fixable_errors():
            return run_result(await polling_view(state, run_id, detail=detail))

    @register_tool(
        server,
        annotations=ToolAnnotations(
            title="Resume a run",
            read_only_hint=False,
            destructive_hint=catalog.has_person_only_tools,
            idempotent_hint=True,
            open_world_hint=True,
        ),
    )
    async def resume_run(
        run_id: RunId,
        ctx: Context[ServerState, Any],
        wait: Annotated[
            bool, Field(description="false: return at once and poll get_run (for runs that may take over a minute).")
        ] = True,
    ) -> CallToolResult:  # the run; no output schema: see server.mcp_server
        """Run again the steps of a run that did not succeed (failed, skipped, cancelled or interrupted),
        keeping the results of the steps that did. A run that already succeeded is returned unchanged."""
        state = server_state(ctx)
        with fixable_errors():
            record = state.app.store.get_run(run_id)
            if record.status is RunStatus.SUCCEEDED:
                return run_result(run_view(record))
            if not wait:
                return run_result(await start_in_background(state, run_id))
        return run_result(await run_and_wait(state, run_id, ctx))

    @register_tool(
        server,
        annotations=ToolAnnotations(
            title="Cancel a run",
            read_only_hint=False,
            destructive_hint=True,
            idempotent_hint=True,
            open_world_hint=False,
        ),
    )
    async def cancel_run(run_id: RunId, ctx: Context[ServerState, Any]) -> CallToolResult:  # as resume_run
        """Cancel a run: steps in flight stop, no new step starts, and the run is recorded `cancelled`
        (finished steps keep their results; resume_run can finish it later). A finished run is returned
        unchanged."""
        state = server_state(ctx)
        with fixable_errors():
            await state.runs.cancel(run_id)
            await state.runs.wait(run_id, timeout_s=_CANCEL_WAIT_S)
            record = state.app.store.get_run(run_id)
        return run_result(run_view(record))
