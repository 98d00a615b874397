"""The planning tools: `plan` (a request into a plan, nothing run) and `execute_plan` (a plan, or a
request planned in the server, run as a recorded run)."""

from __future__ import annotations

import itertools
from typing import Annotated, Any, Literal

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, InputRequiredResult, ToolAnnotations
from pydantic import Field

from agents.planner import PlanResult
from planning.catalog import Catalog
from planning.settings import EngineName
from server.approval import answered, settle
from server.mcp_runs import require_llm_for_agent_steps, run_recorded, submit_and_run
from server.mcp_state import ServerState, fixable_errors, register_tool, server_state
from server.sampling import client_sampling
from server.views import (
    PlanView,
    RunBrief,
    plan_view,
)

# The run execute_plan returns, as it publishes it (get_run publishes the whole RunView).
RunResult = Annotated[CallToolResult, RunBrief]

PlanDocument = Annotated[
    dict[str, Any] | list[Any] | str | None,
    Field(
        description='The plan (JSON object or text): {"steps": [{"id": 1, "agent": "math", "tool": "multiply", '
        '"args": {"a": 10, "b": 5}}, {"id": 2, "agent": "string", "tool": "word_count", "args": {"text": '
        '"Hello World"}}, {"id": 3, "agent": "math", "tool": "multiply", "args": {"a": "$1", "b": "$2"}, '
        '"depends_on": [1, 2]}]}. Each step: a unique positive `id`, an `agent`, and either `task` (natural '
        "language; the agent's LLM picks tools) or `tool` + `args` (called directly, no LLM; list_agents "
        'gives the arguments). "$N" as a whole value is step N\'s result (typed); ${N} inside text is its text; '
        '"$N.name" picks a field of an object result ("$1.temperature_c" of a weather step); any other "$" is '
        'literal ("$10"). `depends_on`: the steps a step waits for.',
    ),
]


async def plan_request(state: ServerState, ctx: Context[ServerState, Any], request: str) -> PlanResult:
    """The server's LLM plans the request; without one, the client's model through MCP sampling if it can.
    Progress notifications flow while the model works."""
    app = state.app
    sampling = client_sampling(ctx) if app.llm is None else None
    outcome: list[PlanResult | Exception] = []
    async with anyio.create_task_group() as beating:
        beating.start_soon(_heartbeat, ctx, "planning the request")
        try:
            outcome.append(await (app.plan(request) if sampling is None else app.plan(request, llm=sampling)))
        except Exception as exc:  # noqa: BLE001 - raised below, outside the task group (which would wrap it)
            outcome.append(exc)
        beating.cancel_scope.cancel()
    if isinstance(outcome[0], Exception):
        raise outcome[0]
    return outcome[0]


async def _heartbeat(ctx: Context[ServerState, Any], what: str) -> None:
    """Progress notifications while a call works on something with no steps to count."""
    started = anyio.current_time()
    for beat in itertools.count(1):
        await anyio.sleep(server_state(ctx).settings.progress_interval_s)
        await ctx.report_progress(beat, None, f"{what} ({anyio.current_time() - started:.0f} s)")


def add_planning_tools(server: MCPServer[ServerState], catalog: Catalog) -> None:
    """plan and execute_plan; execute_plan is marked destructive when the catalog has tools only a
    person's plan may call (an MCP server's destructive tools): a plan written by hand can call them."""
    destructive = catalog.has_person_only_tools

    @register_tool(
        server,
        annotations=ToolAnnotations(title="Plan a request", read_only_hint=True, open_world_hint=False),
    )
    async def plan(
        request: Annotated[str, Field(min_length=1, description="What the user wants done, in natural language.")],
        ctx: Context[ServerState, Any],
    ) -> PlanView:
        """Turn a natural-language request into a validated, dependency-aware plan of specialist agent steps,
        without running anything.

        Returns the plan (pass it to execute_plan as `plan`, edited or not), each step's wave (dependency
        depth), and a Mermaid flowchart of its DAG. Needs an LLM on the server (or a client that lets the
        server sample its model over MCP); without one, write the plan yourself (list_agents gives the
        agents and their tools' arguments) and call execute_plan.
        """
        state = server_state(ctx)
        with fixable_errors():
            planned = await plan_request(state, ctx, request)
        return plan_view(planned.plan)

    @register_tool(
        server,
        annotations=ToolAnnotations(
            title="Execute a plan",
            read_only_hint=False,
            destructive_hint=destructive,
            idempotent_hint=False,
            open_world_hint=True,
        ),
    )
    async def execute_plan(
        ctx: Context[ServerState, Any],
        plan: PlanDocument = None,
        request: Annotated[
            str | None,
            Field(
                min_length=1,
                description="Instead of `plan`: what to do, in natural language; the server's LLM plans it first.",
            ),
        ] = None,
        wait: Annotated[
            bool,
            Field(
                description="true: wait (with progress) up to about 45 s; a run still going then comes back with "
                "finished=false and goes on. false: return the run id at once; poll get_run."
            ),
        ] = True,
        synthesize: Annotated[
            bool,
            Field(description="Write the final answer with the LLM (when the server has one and a request was given)."),
        ] = True,
        idempotency_key: Annotated[
            str | None,
            Field(
                max_length=200,
                description="A retry with the same key returns the same run, never a second one.",
            ),
        ] = None,
        engine: Annotated[
            EngineName | None,
            Field(
                description="`local` (this machine, Flyte local mode) or `remote` (the configured Flyte cluster; "
                "returns once submitted: poll get_run). Default: PLANNER_MCP_ENGINE, else `local`."
            ),
        ] = None,
        approval: Annotated[
            Literal["required"] | None,
            Field(
                description="required: a person approves the plan (and each revision) before it runs, through "
                "your client or approve_run."
            ),
        ] = None,
        max_replans: Annotated[
            int | None,
            Field(
                ge=0,
                le=5,
                description="Revisions after steps fail (succeeded ones are kept); default: the server's for a "
                "request, 0 for a plan.",
            ),
        ] = None,
    ) -> RunResult | InputRequiredResult:
        """Run a plan of specialist agent steps; returns the run: status, answer, each step's result or
        error, timings and LLM usage.

        Give exactly one of `plan` (yours or from `plan`; validated first, every problem listed with its
        fix) or `request` (natural language; the server's LLM plans it). Each step starts as soon as its
        own dependencies are done; a failed step skips only the steps that depend on it.

        Many hosts time out tool calls after 60 seconds: a waiting call returns by its deadline (about
        45 s) with `finished` false while the run goes on; wait=false returns the run id at once (a
        request is planned in the server). Then call get_run(run_id) every few seconds until `finished`.
        """
        state = server_state(ctx)
        result = await answered(state, ctx)  # a 2026-era answer to our approval question
        if result is not None:
            return result
        if (plan is None) == (request is None):
            raise ToolError(
                "give exactly one of `plan` (a plan object) or `request` (natural language), "
                f"not {'both' if plan is not None else 'neither'}"
            )
        usage = None
        with fixable_errors():
            if plan is not None:
                parsed = await state.app.parse_reviving(plan)
            elif state.app.llm is not None:
                # Recorded at once and planned in the server: the call never waits on the planner
                # beyond its deadline, and a planning that fails stays listed as a failed run.
                record = state.app.submit_request(
                    request or "",
                    idempotency_key=idempotency_key,
                    engine=engine,
                    max_replans=max_replans,
                    approval=approval,
                )
                view = await run_recorded(state, ctx, record, wait=wait, synthesize=synthesize)
                return await settle(state, ctx, view, synthesize=synthesize)
            else:
                planned = await plan_request(state, ctx, request or "")
                parsed, usage = planned.plan, planned.usage
        if (engine or state.app.settings.engine) == "local":
            require_llm_for_agent_steps(state.app, parsed)
        view = await submit_and_run(
            state,
            ctx,
            parsed,
            request=request,
            wait=wait,
            synthesize=synthesize,
            idempotency_key=idempotency_key,
            engine=engine,
            usage=usage,
            max_replans=max_replans,
            approval=approval,
        )
        return await settle(state, ctx, view, synthesize=synthesize)
