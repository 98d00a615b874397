"""The MCP server: planning and running plans of specialist agents, and inspecting their runs.

`build_server(settings)` returns an `MCPServer` whose lifespan opens the application (run store,
catalog, LLM, engine) and a task group for runs that continue after the tool call that started
them; `serve(...)` runs it over stdio (the default) or streamable HTTP.

Tools       plan, execute_plan, list_agents, math_agent, string_agent, web_search_agent,
            code_agent, weather_agent, list_runs, get_run, resume_run, cancel_run
Resources   runs://{run_id}, runs://recent, agents://catalog
Prompts     plan_and_execute

Every failure a model can fix is raised as `ToolError` with text naming the problem and the fix;
anything else reaches the client only as "Error executing tool ..." (the SDK logs it to stderr).
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

import anyio
import anyio.lowlevel
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError
from mcp.types import ToolAnnotations
from pydantic import AnyHttpUrl, Field

from agents.llm import LLMError, Usage
from agents.llm.errors import HOW_TO_CONFIGURE
from agents.llm.select import select_llm
from agents.planner import PlanningError, PlanResult
from planning.catalog import CatalogError
from planning.plan import Plan
from planning.records import RunRecord, RunStatus
from planning.remote import PLAN_TASK, FlytePhase, RemoteError
from planning.settings import EngineName, Settings
from planning.store import RunNotFoundError, StoreError
from planning.validate import PlanValidationError
from server.app import App, RunBusyError
from server.http_auth import BearerTokenVerifier, HostGuard, HttpConfigError, HttpSecurity, http_security
from server.sampling import client_sampling
from server.supervisor import RunAbortedError, RunActiveError, RunSupervisor
from server.views import AgentsView, PlanView, RunsPage, RunView, agents_view, plan_view, run_view, summary_view

logger = logging.getLogger(__name__)

AppFactory = Callable[[Settings], App]
_Handler = TypeVar("_Handler", bound=Callable[..., Any])

SERVER_NAME = "planner-mcp"
INSTRUCTIONS = (
    "planner-mcp plans requests into steps for specialist agents (math, string, web_search, code, weather) "
    "and runs them, each step as soon as its own dependencies are done. Write a plan yourself (list_agents "
    "gives every tool's arguments) or let `plan` write one; run it with execute_plan. Calls that may take "
    "longer than a minute should use execute_plan(wait=false) and poll get_run. Every run is recorded: "
    "list_runs, get_run, resume_run, cancel_run."
)

# What a model should do while a run executes in the server.
_POLL_HINT = (
    "The run continues in the server: call get_run(run_id={run_id!r}) every few seconds until `finished` is true."
)
_CANCEL_WAIT_S = 30.0

# Failures a model can read and fix; their messages name the problem and the fix.
_FIXABLE_ERRORS: tuple[type[Exception], ...] = (
    PlanValidationError,
    PlanningError,
    LLMError,
    StoreError,
    RunBusyError,
    RunActiveError,
    RunAbortedError,
    CatalogError,
    RemoteError,
)

_AGENT_TOOLS: dict[str, tuple[str, bool]] = {
    # agent -> (what it is for, reaches outside this machine)
    "math": ("Arithmetic: exact operations and expression evaluation.", False),
    "string": ("Text: count words, letters and characters; reverse, change case, replace, join.", False),
    "web_search": ("The web: search for pages and read a page's text.", True),
    "code": ("Python: run a short program in a sandbox (standard library only, no network).", False),
    "weather": ("Weather: current conditions and daily forecasts for a place (Open-Meteo).", True),
}

PlanDocument = Annotated[
    dict[str, Any] | list[Any] | str | None,
    Field(
        description='The plan to run, as a JSON object (a JSON string is accepted too): {"steps": [{"id": 1, '
        '"agent": "math", "tool": "multiply", "args": {"a": 10, "b": 5}}, {"id": 2, "agent": "string", '
        '"tool": "word_count", "args": {"text": "Hello World"}}, {"id": 3, "agent": "math", "tool": '
        '"multiply", "args": {"a": "$1", "b": "$2"}, "depends_on": [1, 2]}]}. Each step has a unique positive '
        "`id`, an `agent`, and either `task` (natural language; the agent's LLM chooses its tools) or `tool` + "
        '`args` (called directly, no LLM). "$N" as a whole argument value is step N\'s result (a number stays a '
        'number); $N inside a longer text is replaced by the result\'s text; "$N.name" picks a field of an object '
        'result (e.g. "$1.temperature_c" of a weather step). `depends_on` lists the steps a step '
        "waits for. list_agents gives every agent's tools and their arguments. Omit when giving `request`.",
    ),
]
RunId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=100,
        description="The run's id, as returned by execute_plan or list_runs (e.g. 'r0191...').",
    ),
]


@dataclass
class ServerState:
    """What the lifespan opens: the application and the runs executing in it."""

    settings: Settings
    app: App
    runs: RunSupervisor


class _StateSlot:
    """The state of the running lifespan, for handlers the SDK gives no Context (static resources)."""

    def __init__(self) -> None:
        self.state: ServerState | None = None

    def get(self) -> ServerState:
        if self.state is None:
            raise RuntimeError("the planner-mcp server is not running")
        return self.state


def _tool(server: MCPServer[ServerState], *, annotations: ToolAnnotations) -> Callable[[_Handler], _Handler]:
    """Register a handler as a tool whose description is its docstring, dedented for the model."""

    def register(handler: _Handler) -> _Handler:
        return server.tool(annotations=annotations, description=inspect.getdoc(handler))(handler)

    return register


def default_app_factory(settings: Settings) -> App:
    """The application with the LLM the environment selects (PLANNER_MCP_LLM, OPENAI_*)."""
    return App.open(settings, llm=select_llm(os.environ, settings.home))


def build_server(
    settings: Settings,
    *,
    app_factory: AppFactory | None = None,
    http: HttpSecurity | None = None,
) -> MCPServer[ServerState]:
    """The planner-mcp MCP server. `app_factory` opens the application in the lifespan (tests inject
    one with a scripted LLM); `http` adds bearer-token auth for the streamable-HTTP transport."""
    factory = app_factory or default_app_factory
    slot = _StateSlot()

    @asynccontextmanager
    async def lifespan(_: MCPServer[ServerState]) -> AsyncIterator[ServerState]:
        app = factory(settings)
        try:
            async with anyio.create_task_group() as task_group:
                state = ServerState(settings=settings, app=app, runs=RunSupervisor(app, task_group))
                slot.state = state
                try:
                    yield state
                finally:
                    if slot.state is state:
                        slot.state = None
                    with anyio.CancelScope(shield=True):
                        await state.runs.shutdown()
                    task_group.cancel_scope.cancel()
        finally:
            app.close()

    auth: dict[str, Any] = {}
    if http is not None and http.token is not None:
        auth = {
            "token_verifier": BearerTokenVerifier(http.token),
            # No OAuth server: the issuer is nominal; only the static bearer token is accepted.
            "auth": AuthSettings(issuer_url=AnyHttpUrl("http://127.0.0.1"), resource_server_url=None),
        }
    server: MCPServer[ServerState] = MCPServer(
        SERVER_NAME, instructions=INSTRUCTIONS, lifespan=lifespan, log_level="WARNING", **auth
    )
    _add_planning_tools(server)
    _add_agent_tools(server)
    _add_run_tools(server)
    _add_resources(server, slot)
    _add_prompts(server)
    return server


# -- tools ----------------------------------------------------------------------------------------


def _state(ctx: Context[ServerState, Any]) -> ServerState:
    return ctx.request_context.lifespan_context


@contextmanager
def _fixable_errors() -> Iterator[None]:
    """Failures the model can fix become ToolErrors it can read."""
    try:
        yield
    except _FIXABLE_ERRORS as exc:
        raise ToolError(str(exc)) from None


async def _plan_request(state: ServerState, ctx: Context[ServerState, Any], request: str) -> PlanResult:
    """The server's LLM plans the request; without one, the client's model through MCP sampling if it can."""
    app = state.app
    sampling = client_sampling(ctx) if app.llm is None else None
    if sampling is None:
        return await app.plan(request)
    return await app.plan(request, llm=sampling)


def _require_llm_for_agent_steps(app: App, plan: Plan) -> None:
    if app.llm is not None:
        return
    agent_steps = [step.id for step in plan.steps if step.task is not None]
    if agent_steps:
        raise ToolError(
            f"step(s) {', '.join(map(str, agent_steps))} are agent steps (`task`), which need an LLM, and this "
            f"server has none. Rewrite them as tool steps (`tool` + `args`; list_agents gives each tool's "
            f"arguments), or configure an LLM for the server. {HOW_TO_CONFIGURE}"
        )


async def _run_and_wait(
    state: ServerState, run_id: str, ctx: Context[ServerState, Any], *, synthesize: bool = True
) -> RunView:
    with _fixable_errors():
        record = await state.runs.run(run_id, ctx.report_progress, synthesize=synthesize)
    return run_view(record)


async def _polling_view(state: ServerState, run_id: str) -> RunView:
    """The run as it stands; a run still executing here is reported unfinished, with how to follow it."""
    record = await state.app.get_run(run_id)
    executing = state.runs.is_active(run_id)
    finished = record.status.finished and not executing
    return run_view(record, finished=finished, next_hint=None if finished else _POLL_HINT.format(run_id=run_id))


async def _start(state: ServerState, run_id: str, *, synthesize: bool = True) -> RunView:
    state.runs.start(run_id, synthesize=synthesize)
    # Let the run's task take the run (status `running`) before reporting it.
    await anyio.lowlevel.checkpoint()
    return await _polling_view(state, run_id)


async def _submit_and_run(
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
) -> RunView:
    runs = state.runs
    with _fixable_errors():
        record = state.app.submit(plan, request=request, idempotency_key=idempotency_key, engine=engine, usage=usage)
        if record.status is not RunStatus.PENDING or runs.is_active(record.id):
            # An earlier call with this idempotency key made the run: report it, never start it twice.
            if wait:
                await runs.wait(record.id, timeout_s=math.inf)
            return await _polling_view(state, record.id)
        if not wait:
            return await _start(state, record.id, synthesize=synthesize)
    return await _run_and_wait(state, record.id, ctx, synthesize=synthesize)


def _add_planning_tools(server: MCPServer[ServerState]) -> None:
    @_tool(
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
        state = _state(ctx)
        with _fixable_errors():
            planned = await _plan_request(state, ctx, request)
        return plan_view(planned.plan)

    @_tool(
        server,
        annotations=ToolAnnotations(
            title="Execute a plan",
            read_only_hint=False,
            destructive_hint=False,
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
                description="true: wait for the run to finish and return its result. false: return the run id "
                "at once and let the run continue in the server; poll get_run. Use false for anything that may "
                "take more than a minute."
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
                description="Any unique string; a retry with the same key returns the same run instead of starting "
                "another.",
            ),
        ] = None,
        engine: Annotated[
            EngineName | None,
            Field(
                description="Where the run executes: `local` (this machine, Flyte local mode) or `remote` (the "
                "configured Flyte cluster; returns once submitted, follow it with get_run). Default: the server's "
                "PLANNER_MCP_ENGINE, itself `local`."
            ),
        ] = None,
    ) -> RunView:
        """Run a plan of specialist agent steps and return the run: status, final answer, every step's
        result or error with timings and LLM usage, and Mermaid charts of the DAG and the timeline.

        Give exactly one of `plan` (written by you or returned by `plan`; validated first, and every problem
        is listed with its fix) or `request` (natural language; the server's LLM plans it first). Steps start
        as soon as their own dependencies are done; independent steps run in parallel; a failed step skips
        only the steps that depend on it. Progress notifications report each step's start and finish.

        Many hosts time out tool calls after 60 seconds. For anything that may be slower (web searches,
        code, LLM agent steps, long plans) call with wait=false: it returns the run id at once and the run
        continues in the server; then call get_run(run_id) every few seconds until `finished` is true.
        Every run is recorded: list_runs, get_run, resume_run (re-runs only unfinished steps), cancel_run.
        """
        state = _state(ctx)
        if (plan is None) == (request is None):
            raise ToolError(
                "give exactly one of `plan` (a plan object) or `request` (natural language), "
                f"not {'both' if plan is not None else 'neither'}"
            )
        usage = None
        with _fixable_errors():
            if plan is not None:
                parsed = state.app.parse(plan)
            else:
                planned = await _plan_request(state, ctx, request or "")
                parsed, usage = planned.plan, planned.usage
        if (engine or state.app.settings.engine) == "local":
            _require_llm_for_agent_steps(state.app, parsed)
        return await _submit_and_run(
            state,
            ctx,
            parsed,
            request=request,
            wait=wait,
            synthesize=synthesize,
            idempotency_key=idempotency_key,
            engine=engine,
            usage=usage,
        )

    @_tool(
        server,
        annotations=ToolAnnotations(
            title="List agents and tools", read_only_hint=True, idempotent_hint=True, open_world_hint=False
        ),
    )
    async def list_agents(ctx: Context[ServerState, Any]) -> AgentsView:
        """Every specialist agent with its description and its tools, each with the JSON Schema of its
        arguments: what you need to write tool steps (`tool` + `args`) in a plan for execute_plan, or to call
        an agent tool such as math_agent with `tool` + `args`."""
        return agents_view(_state(ctx).app.catalog)


def _add_agent_tools(server: MCPServer[ServerState]) -> None:
    for agent, (purpose, open_world) in _AGENT_TOOLS.items():
        server.add_tool(
            _agent_tool(agent),
            name=f"{agent}_agent",
            title=f"Ask the {agent} agent",
            description=(
                f"Run the {agent} specialist once and return the recorded one-step run: the result is in "
                f"`answer` and steps[0].result, a failure in steps[0].error. {purpose}\n\n"
                "Give either `task` in natural language (the agent's LLM chooses among its tools; needs an LLM on "
                "the server) or `tool` + `args` to call one of its tools directly (no LLM: exact and fast). "
                f"list_agents gives the {agent} agent's tools and the JSON Schema of their arguments. For several "
                "steps that depend on each other, use execute_plan instead."
            ),
            annotations=ToolAnnotations(
                read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=open_world
            ),
        )


def _agent_tool(agent: str) -> Callable[..., Any]:
    async def run_agent(
        ctx: Context[ServerState, Any],
        task: Annotated[
            str | None,
            Field(
                min_length=1,
                description="What to do, in natural language; the agent's LLM picks the tools. Omit with `tool`.",
            ),
        ] = None,
        tool: Annotated[
            str | None,
            Field(
                min_length=1,
                max_length=100,
                description="The name of one of the agent's tools, to call it directly. Omit with `task`.",
            ),
        ] = None,
        args: Annotated[
            dict[str, Any] | None,
            Field(description='With `tool`: the tool\'s arguments, e.g. {"a": 10, "b": 5}.'),
        ] = None,
    ) -> RunView:
        state = _state(ctx)
        if (task is None) == (tool is None):
            raise ToolError(
                f"give either `task` (natural language) or `tool` + `args` (a direct call), not "
                f"{'both' if task is not None else 'neither'}; list_agents gives the {agent} agent's tools"
            )
        if task is not None and args is not None:
            raise ToolError("`args` go with `tool`; with `task`, describe everything in the task text")
        step: dict[str, Any] = {"id": 1, "agent": agent}
        step.update({"task": task} if task is not None else {"tool": tool, "args": args or {}})
        with _fixable_errors():
            one_step = state.app.parse({"steps": [step]})
        _require_llm_for_agent_steps(state.app, one_step)
        return await _submit_and_run(state, ctx, one_step, request=task, wait=True, synthesize=False)

    run_agent.__name__ = f"{agent}_agent"
    return run_agent


def _add_run_tools(server: MCPServer[ServerState]) -> None:
    @_tool(
        server,
        annotations=ToolAnnotations(
            title="List runs", read_only_hint=True, idempotent_hint=True, open_world_hint=False
        ),
    )
    async def list_runs(
        ctx: Context[ServerState, Any],
        limit: Annotated[int, Field(ge=1, le=100, description="How many runs per page (1-100).")] = 20,
        status: Annotated[RunStatus | None, Field(description="Only runs with this status.")] = None,
        cursor: Annotated[
            str | None, Field(description="`next_cursor` from the previous page, for the next one.")
        ] = None,
        source: Annotated[
            Literal["store", "flyte"],
            Field(description="`store`: runs recorded by this server. `flyte`: runs on the configured Flyte cluster."),
        ] = "store",
        flyte_phase: Annotated[
            list[FlytePhase] | None, Field(description="source=flyte: only runs in these Flyte phases.")
        ] = None,
        task_name: Annotated[
            str | None,
            Field(description="source=flyte: only runs of this Flyte task (default: planner-mcp's orchestrator)."),
        ] = None,
        created_after: Annotated[datetime | None, Field(description="source=flyte: created at or after.")] = None,
        created_before: Annotated[datetime | None, Field(description="source=flyte: created before.")] = None,
    ) -> RunsPage:
        """The recorded runs, newest first, one page at a time: id, status, request, step count, times.
        Call get_run for a run's steps and results. With source="flyte", past and current runs on the
        Flyte cluster (filters: flyte_phase, task_name, created_after/before, limit; no cursor)."""
        state = _state(ctx)
        with _fixable_errors():
            if source == "flyte":
                flyte_runs = await state.app.remote.list_flyte_runs(
                    phase=flyte_phase,
                    task_name=task_name or PLAN_TASK,
                    created_after=created_after,
                    created_before=created_before,
                    limit=limit,
                )
                return RunsPage(runs=[summary_view(run) for run in flyte_runs])
            runs, next_cursor = state.app.store.list_runs(limit=limit, status=status, cursor=cursor)
        return RunsPage(runs=[summary_view(run) for run in runs], next_cursor=next_cursor)

    @_tool(
        server,
        annotations=ToolAnnotations(
            title="Get a run", read_only_hint=True, idempotent_hint=True, open_world_hint=False
        ),
    )
    async def get_run(run_id: RunId, ctx: Context[ServerState, Any]) -> RunView:
        """A run's status and answer, every step with its task or tool call, status, result, error,
        attempts, timings and LLM usage, the total usage, and Mermaid charts: the DAG coloured by status and a
        gantt of when each step ran. Poll this after execute_plan(wait=false) until `finished` is true."""
        state = _state(ctx)
        with _fixable_errors():
            return await _polling_view(state, run_id)

    @_tool(
        server,
        annotations=ToolAnnotations(
            title="Resume a run",
            read_only_hint=False,
            destructive_hint=False,
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
    ) -> RunView:
        """Run again the steps of a run that did not succeed (failed, skipped, cancelled or interrupted),
        keeping the results of the steps that did. A run that already succeeded is returned unchanged."""
        state = _state(ctx)
        with _fixable_errors():
            record = state.app.store.get_run(run_id)
            if record.status is RunStatus.SUCCEEDED:
                return run_view(record)
            if not wait:
                return await _start(state, run_id)
        return await _run_and_wait(state, run_id, ctx)

    @_tool(
        server,
        annotations=ToolAnnotations(
            title="Cancel a run",
            read_only_hint=False,
            destructive_hint=True,
            idempotent_hint=True,
            open_world_hint=False,
        ),
    )
    async def cancel_run(run_id: RunId, ctx: Context[ServerState, Any]) -> RunView:
        """Cancel a run: steps in flight stop, no new step starts, and the run is recorded `cancelled`
        (finished steps keep their results; resume_run can finish it later). A finished run is returned
        unchanged."""
        state = _state(ctx)
        with _fixable_errors():
            await state.runs.cancel(run_id)
            await state.runs.wait(run_id, timeout_s=_CANCEL_WAIT_S)
            record = state.app.store.get_run(run_id)
        return run_view(record)


# -- resources and prompts ------------------------------------------------------------------------


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)


def _add_resources(server: MCPServer[ServerState], slot: _StateSlot) -> None:
    @server.resource(
        "runs://{run_id}",
        name="run",
        title="A run",
        description="A run as JSON: status, answer, every step's result, error, timings and usage, Mermaid charts.",
        mime_type="application/json",
    )
    async def run_resource(run_id: str, ctx: Context[ServerState, Any]) -> str:
        try:
            record: RunRecord = _state(ctx).app.store.get_run(run_id)
        except RunNotFoundError as exc:
            raise ResourceNotFoundError(str(exc)) from None
        return run_view(record).model_dump_json(indent=2)

    @server.resource(
        "runs://recent",
        name="recent_runs",
        title="Recent runs",
        description="The 20 newest runs as JSON (id, status, request, step count, times).",
        mime_type="application/json",
    )
    async def recent_runs() -> str:
        runs, next_cursor = slot.get().app.store.list_runs(limit=20)
        return RunsPage(runs=[summary_view(run) for run in runs], next_cursor=next_cursor).model_dump_json(indent=2)

    @server.resource(
        "agents://catalog",
        name="agent_catalog",
        title="Agent catalog",
        description="Every agent with its tools and their argument JSON Schemas, as JSON.",
        mime_type="application/json",
    )
    async def agent_catalog() -> str:
        return agents_view(slot.get().app.catalog).model_dump_json(indent=2)


def _add_prompts(server: MCPServer[ServerState]) -> None:
    @server.prompt(title="Plan and execute a request")
    def plan_and_execute(
        request: Annotated[str, Field(description="What the user wants done, in natural language.")],
    ) -> str:
        """Answer a request with planner-mcp: plan it into specialist agent steps, run them, report the answer."""
        return (
            "Answer this request with the planner-mcp tools.\n\n"
            f"Request: {request}\n\n"
            "1. Call list_agents to see the specialists and their tools' arguments.\n"
            '2. Write a plan: {"steps": [...]}, each step with an `id`, an `agent`, and either `tool` + `args` '
            '(preferred when you know every argument) or `task`; use "$N" for step N\'s result and `depends_on` '
            "for the order. Or call `plan` with the request to have the server's LLM write it.\n"
            "3. Call execute_plan with the plan and wait=false, then poll get_run with the run id until "
            "`finished` is true. If execute_plan lists problems with the plan, fix them all and call it again.\n"
            "4. Answer from the run's `answer` and step results; mention failed or skipped steps and their errors."
        )


# -- transports -----------------------------------------------------------------------------------


def serve(
    settings: Settings,
    transport: Literal["stdio", "http"] = "stdio",
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Serve MCP over stdio (stdout carries only JSON-RPC) or streamable HTTP at http://HOST:PORT/mcp.

    Refuses to start (SystemExit with the reason) on an unsafe HTTP configuration or a bad LLM setting.
    """
    environ = os.environ if environ is None else environ
    try:
        security = http_security(host, environ) if transport == "http" else None
        llm = select_llm(environ, settings.home)
    except (HttpConfigError, LLMError) as exc:
        raise SystemExit(f"planner-mcp: {exc}") from None

    def factory(settings: Settings) -> App:
        return App.open(settings, llm=llm)

    server = build_server(settings, app_factory=factory, http=security)
    try:
        if security is None:
            anyio.run(server.run_stdio_async)
        else:
            _serve_http(server, security, host, port)
    except KeyboardInterrupt:
        logger.info("stopped")


def _serve_http(server: MCPServer[ServerState], security: HttpSecurity, host: str, port: int) -> None:
    import uvicorn

    app = server.streamable_http_app(transport_security=security.transport_security(), host=host)
    logger.warning(
        "serving MCP at http://%s:%d/mcp (%s)",
        host,
        port,
        "bearer token required" if security.token else "no token: loopback clients only",
    )
    # log_config=None: uvicorn logs through our stderr logging (its default config sends access logs to stdout).
    config = uvicorn.Config(
        HostGuard(app, security.allowed_hosts), host=host, port=port, log_config=None, access_log=False
    )
    anyio.run(uvicorn.Server(config).serve)
