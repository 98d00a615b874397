"""The MCP server: planning and running plans of specialist agents, and inspecting their runs.

`build_server(settings)` returns an `MCPServer` whose lifespan opens the application (run store,
catalog, LLM, engine) and a task group for runs that continue after the tool call that started
them; `serve(...)` runs it over stdio (the default) or streamable HTTP.

Tools       plan, execute_plan, list_agents, <agent>_agent for each agent of the catalog (math,
            string, web_search, code, weather by default, and one per configured MCP server),
            list_runs, get_run, resume_run, cancel_run
Resources   runs://{run_id}, runs://recent, agents://catalog
Prompts     plan_and_execute

Every failure a model can fix is raised as `ToolError` with text naming the problem and the fix;
anything else reaches the client only as "Error executing tool ..." (the SDK logs it to stderr).

What hosts receive is kept small (`tools/list` was 71 KB when nine tools repeated the whole run
schema): get_run publishes the whole `RunView` as its output schema and execute_plan the short
`RunBrief`; the other tools that return a run (resume_run, cancel_run, the per-agent tools) publish
none. All of them return the run as a few lines of text beside its structured content (compact
unless get_run is asked for detail), never the same data twice. The listing leaves out pydantic's
generated titles and null defaults.
"""

from __future__ import annotations

import inspect
import itertools
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from types import FrameType
from typing import Annotated, Any, Literal, TypeVar

import anyio
import anyio.lowlevel
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage
from mcp.types import INVALID_PARAMS, CallToolResult, TextContent, ToolAnnotations
from mcp.types import Tool as MCPTool
from mcp_types import INVALID_REQUEST, PARSE_ERROR, ErrorData, JSONRPCError
from pydantic import AnyHttpUrl, Field

from agents.llm import LLMError, Usage
from agents.llm.errors import HOW_TO_CONFIGURE
from agents.llm.select import select_llm
from agents.planner import PlanningError, PlanResult
from planning.catalog import AgentSpec, Catalog, CatalogError, CatalogFactoryError, load_catalog
from planning.cluster import PLAN_TASK, FlytePhase, RemoteError
from planning.plan import Plan
from planning.records import RunRecord, RunStatus
from planning.settings import EngineName, Settings
from planning.store import RunNotFoundError, StoreError
from planning.validate import PlanValidationError
from server.app import App, RunBusyError
from server.http_auth import BearerTokenVerifier, HostGuard, HttpConfigError, HttpSecurity, http_security
from server.http_limits import BodyDeadline, HttpLimits, HttpLimitsError, SessionQuota, header_timeout_protocol
from server.sampling import client_sampling
from server.supervisor import RunAbortedError, RunActiveError, RunSupervisor
from server.views import (
    AgentsView,
    PlanView,
    RunBrief,
    RunsPage,
    RunView,
    agents_view,
    plan_view,
    run_text,
    run_view,
    summary_view,
)

logger = logging.getLogger(__name__)

AppFactory = Callable[[Settings], App]
_Handler = TypeVar("_Handler", bound=Callable[..., Any])

SERVER_NAME = "planner-mcp"
_INSTRUCTIONS = (
    "planner-mcp plans requests into steps for specialist agents ({agents}) "
    "and runs them, each step as soon as its own dependencies are done. Write a plan yourself (list_agents "
    "gives every tool's arguments) or let `plan` write one; run it with execute_plan. Calls that may take "
    "longer than a minute should use execute_plan(wait=false) and poll get_run. Every run is recorded: "
    "list_runs, get_run, resume_run, cancel_run."
)
# The run execute_plan returns, as it publishes it (get_run publishes the whole RunView).
RunResult = Annotated[CallToolResult, RunBrief]

# What a model should do while a run executes in the server.
_POLL_HINT = (
    "The run continues in the server: call get_run(run_id={run_id!r}) every few seconds until `finished` is true."
)
_CANCEL_WAIT_S = 30.0

# Failures a model can read and fix; their messages name the problem and the fix.
# Failures of opening the application that leave the server up, reporting them on every tool call.
_OPEN_ERRORS: tuple[type[Exception], ...] = (StoreError, OSError, LLMError, CatalogFactoryError)

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

PlanDocument = Annotated[
    dict[str, Any] | list[Any] | str | None,
    Field(
        description='The plan (JSON object or text): {"steps": [{"id": 1, "agent": "math", "tool": "multiply", '
        '"args": {"a": 10, "b": 5}}, {"id": 2, "agent": "string", "tool": "word_count", "args": {"text": '
        '"Hello World"}}, {"id": 3, "agent": "math", "tool": "multiply", "args": {"a": "$1", "b": "$2"}, '
        '"depends_on": [1, 2]}]}. Each step: a unique positive `id`, an `agent`, and either `task` (natural '
        "language; the agent's LLM picks tools) or `tool` + `args` (called directly, no LLM; list_agents "
        'gives the arguments). "$N" as a whole value is step N\'s result (typed); $N inside text is its text; '
        '"$N.name" picks a field of an object result ("$1.temperature_c" of a weather step). `depends_on`: the steps a '
        "step waits for.",
    ),
]
RunId = Annotated[
    str,
    Field(min_length=1, max_length=100, description="The run's id, from execute_plan or list_runs."),
]


@dataclass
class ServerState:
    """What the lifespan opens: the application and the runs executing in it, or, when the
    application could not open (a store on a full disk, a damaged file), the problem, which every
    tool call then reports: the server still answers `initialize` and lists its tools."""

    settings: Settings
    opened: App | None
    supervisor: RunSupervisor | None
    problem: str | None = None

    @property
    def app(self) -> App:
        if self.opened is None:
            raise ToolError(self.problem or "the planner-mcp application is not open")
        return self.opened

    @property
    def runs(self) -> RunSupervisor:
        if self.supervisor is None:
            raise ToolError(self.problem or "the planner-mcp application is not open")
        return self.supervisor


def server_version() -> str:
    """This installation's version (serverInfo.version), from the package metadata."""
    try:
        return package_version(SERVER_NAME)
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


class _StateSlot:
    """The state of the running lifespan, for handlers the SDK gives no Context (static resources)."""

    def __init__(self) -> None:
        self.state: ServerState | None = None

    def get(self) -> ServerState:
        if self.state is None:
            raise RuntimeError("the planner-mcp server is not running")
        return self.state


class _Server(MCPServer[ServerState]):
    """The MCP server, listing its tools' schemas without what pydantic generates that says nothing:
    the `title` of every field and model (the name again) and `"default": null` (an optional field
    is one that is not `required`). Validation uses the models, never the listed schemas."""

    async def get_prompt(self, name: str, arguments: dict[str, Any] | None = None, context: Any = None) -> Any:
        """prompts/get failures (unknown prompt, missing or invalid arguments) are JSON-RPC
        invalid-params errors, as the MCP spec lists them, not a bare code 0."""
        try:
            return await super().get_prompt(name, arguments, context)
        except ValueError as exc:
            raise MCPError(INVALID_PARAMS, str(exc)) from None

    async def list_tools(self) -> list[MCPTool]:
        return [
            tool.model_copy(
                update={
                    "input_schema": _lean(tool.input_schema),
                    "output_schema": _lean(tool.output_schema) if tool.output_schema else None,
                }
            )
            for tool in await super().list_tools()
        ]


def _lean(node: Any) -> Any:
    """A JSON Schema without `title` strings and null defaults (a property *named* "title" stays)."""
    if isinstance(node, dict):
        return {
            key: _lean(value)
            for key, value in node.items()
            if not ((key == "title" and isinstance(value, str)) or (key == "default" and value is None))
        }
    if isinstance(node, list):
        return [_lean(item) for item in node]
    return node


def _run_result(view: RunView) -> CallToolResult:
    """A run for the host: a few lines of text for the model to read, the data as structured content."""
    return CallToolResult(
        content=[TextContent(type="text", text=run_text(view))],
        structured_content=view.model_dump(mode="json"),
    )


def _tool(server: MCPServer[ServerState], *, annotations: ToolAnnotations) -> Callable[[_Handler], _Handler]:
    """Register a handler as a tool whose description is its docstring, dedented for the model."""

    def register(handler: _Handler) -> _Handler:
        return server.tool(annotations=annotations, description=inspect.getdoc(handler))(handler)

    return register


def build_server(
    settings: Settings,
    *,
    catalog: Catalog | None = None,
    app_factory: AppFactory | None = None,
    http: HttpSecurity | None = None,
) -> MCPServer[ServerState]:
    """The planner-mcp MCP server. `catalog` (default: the one settings name) gives the per-agent
    tools; `app_factory` opens the application in the lifespan (default: on that catalog with the
    LLM the environment selects; tests inject one with a scripted LLM and the same catalog); `http`
    adds bearer-token auth for the streamable-HTTP transport.

    Raises CatalogFactoryError when the settings name no usable catalog."""
    catalog = catalog or load_catalog(settings)

    def default_factory(settings: Settings) -> App:
        return App.open(settings, llm=select_llm(os.environ, settings.home), catalog=catalog)

    factory = app_factory or default_factory
    slot = _StateSlot()

    @asynccontextmanager
    async def lifespan(_: MCPServer[ServerState]) -> AsyncIterator[ServerState]:
        try:
            app = factory(settings)
        except _OPEN_ERRORS as exc:
            problem = f"planner-mcp cannot serve: {exc}"
            logger.error("%s", problem)
            broken = ServerState(settings=settings, opened=None, supervisor=None, problem=problem)
            slot.state = broken
            try:
                yield broken
            finally:
                slot.state = None
            return
        try:
            async with anyio.create_task_group() as task_group:
                state = ServerState(settings=settings, opened=app, supervisor=RunSupervisor(app, task_group))
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
    instructions = _INSTRUCTIONS.format(agents=", ".join(catalog.agents))
    server = _Server(
        SERVER_NAME,
        version=server_version(),
        instructions=instructions,
        lifespan=lifespan,
        log_level="WARNING",
        **auth,
    )
    _add_planning_tools(server)
    _add_agent_tools(server, catalog)
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
        await anyio.sleep(_state(ctx).settings.progress_interval_s)
        await ctx.report_progress(beat, None, f"{what} ({anyio.current_time() - started:.0f} s)")


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
    """Run and wait, at most the call deadline: then the run, still going, is returned to poll."""
    with _fixable_errors():
        record = await state.runs.run(
            run_id, ctx.report_progress, synthesize=synthesize, deadline_s=state.settings.call_deadline_s
        )
    if record is None:
        return await _polling_view(state, run_id)
    return run_view(record)


async def _polling_view(state: ServerState, run_id: str, *, detail: bool = False) -> RunView:
    """The run as it stands; a run still executing here is reported unfinished, with how to follow it."""
    record = await state.app.get_run(run_id)
    executing = state.runs.is_active(run_id)
    finished = record.status.finished and not executing
    hint = None if finished else _POLL_HINT.format(run_id=run_id)
    return run_view(record, finished=finished, next_hint=hint, detail=detail)


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
    with _fixable_errors():
        record = state.app.submit(plan, request=request, idempotency_key=idempotency_key, engine=engine, usage=usage)
    return await _run_recorded(state, ctx, record, wait=wait, synthesize=synthesize)


async def _run_recorded(
    state: ServerState, ctx: Context[ServerState, Any], record: RunRecord, *, wait: bool, synthesize: bool = True
) -> RunView:
    """Run a just-recorded run (pending, or a request to plan) in the server, waiting for it or not."""
    runs = state.runs
    with _fixable_errors():
        if record.status not in (RunStatus.PENDING, RunStatus.PLANNING) or runs.is_active(record.id):
            # An earlier call with this idempotency key made the run: report it, never start it twice.
            if wait:
                await runs.wait(record.id, timeout_s=state.settings.call_deadline_s)
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
                description="true: wait for the run to finish and return its result, with progress notifications; "
                "a run still going after about 45 s is returned unfinished (finished=false) and goes on in the "
                "server. false: return the run id at once (a request is planned in the server); poll get_run."
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
    ) -> RunResult:
        """Run a plan of specialist agent steps; returns the run: status, answer, each step's result or
        error, timings and LLM usage.

        Give exactly one of `plan` (yours or from `plan`; validated first, every problem listed with its
        fix) or `request` (natural language; the server's LLM plans it). Each step starts as soon as its
        own dependencies are done; a failed step skips only the steps that depend on it.

        Many hosts time out tool calls after 60 seconds: a waiting call returns by its deadline (about
        45 s) with `finished` false while the run goes on; wait=false returns the run id at once (a
        request is planned in the server). Then call get_run(run_id) every few seconds until `finished`.
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
            elif state.app.llm is not None:
                # Recorded at once and planned in the server: the call never waits on the planner
                # beyond its deadline, and a planning that fails stays listed as a failed run.
                record = state.app.submit_request(request or "", idempotency_key=idempotency_key, engine=engine)
                return _run_result(await _run_recorded(state, ctx, record, wait=wait, synthesize=synthesize))
            else:
                planned = await _plan_request(state, ctx, request or "")
                parsed, usage = planned.plan, planned.usage
        if (engine or state.app.settings.engine) == "local":
            _require_llm_for_agent_steps(state.app, parsed)
        view = await _submit_and_run(
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
        return _run_result(view)

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


def _add_agent_tools(server: MCPServer[ServerState], catalog: Catalog) -> None:
    for agent in catalog.agents.values():
        server.add_tool(
            _agent_tool(agent.name),
            name=f"{agent.name}_agent",
            title=f"Ask the {agent.name} agent",
            description=agent_tool_description(agent),
            annotations=ToolAnnotations(
                read_only_hint=False,
                # An MCP server's destructive tools are callable here (by tool steps: only the planner may not).
                destructive_hint=any(not tool.planner_may_call for tool in agent.tools),
                idempotent_hint=False,
                open_world_hint=agent.open_world,
            ),
        )


def agent_tool_description(agent: AgentSpec) -> str:
    """What `<agent>_agent` does, with the agent's tools named (their arguments: list_agents)."""
    if agent.unavailable:
        return f"{agent.description} Unavailable now: {agent.unavailable}"
    return (
        f"{agent.description} Tools: {', '.join(tool.name for tool in agent.tools)}. "
        "Call one with `tool` + `args` (no LLM; list_agents has the arguments) or give a `task` (the "
        "server's LLM picks tools). One step, recorded as a run; dependent steps: use execute_plan."
    )


def _agent_tool(agent: str) -> Callable[..., Any]:
    async def run_agent(
        ctx: Context[ServerState, Any],
        task: Annotated[
            str | None,
            Field(min_length=1, description="Instead of `tool`: what to do, in natural language."),
        ] = None,
        tool: Annotated[
            str | None,
            Field(min_length=1, max_length=128, description="One of the agent's tools, to call directly."),
        ] = None,
        args: Annotated[
            dict[str, Any] | None,
            Field(description='The tool\'s arguments, e.g. {"a": 10, "b": 5}.'),
        ] = None,
    ) -> CallToolResult:  # the run; no output schema: see the module docstring
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
        return _run_result(await _submit_and_run(state, ctx, one_step, request=task, wait=True, synthesize=False))

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
        state = _state(ctx)
        with _fixable_errors():
            return _run_result(await _polling_view(state, run_id, detail=detail))

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
    ) -> CallToolResult:  # the run; no output schema: see the module docstring
        """Run again the steps of a run that did not succeed (failed, skipped, cancelled or interrupted),
        keeping the results of the steps that did. A run that already succeeded is returned unchanged."""
        state = _state(ctx)
        with _fixable_errors():
            record = state.app.store.get_run(run_id)
            if record.status is RunStatus.SUCCEEDED:
                return _run_result(run_view(record))
            if not wait:
                return _run_result(await _start(state, run_id))
        return _run_result(await _run_and_wait(state, run_id, ctx))

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
    async def cancel_run(run_id: RunId, ctx: Context[ServerState, Any]) -> CallToolResult:  # as resume_run
        """Cancel a run: steps in flight stop, no new step starts, and the run is recorded `cancelled`
        (finished steps keep their results; resume_run can finish it later). A finished run is returned
        unchanged."""
        state = _state(ctx)
        with _fixable_errors():
            await state.runs.cancel(run_id)
            await state.runs.wait(run_id, timeout_s=_CANCEL_WAIT_S)
            record = state.app.store.get_run(run_id)
        return _run_result(run_view(record))


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
        return run_view(record, detail=True).model_dump_json(indent=2)

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
        limits = HttpLimits.from_env(environ)
        llm = select_llm(environ, settings.home)
        catalog = load_catalog(settings)
    except (HttpConfigError, HttpLimitsError, LLMError, CatalogFactoryError) as exc:
        raise SystemExit(f"planner-mcp: {exc}") from None

    def factory(settings: Settings) -> App:
        return App.open(settings, llm=llm, catalog=catalog)

    server = build_server(settings, catalog=catalog, app_factory=factory, http=security)
    try:
        if security is None:
            if sys.stdin.isatty():
                _exit_soon_after_interrupt()
            anyio.run(run_stdio, server)
        else:
            _serve_http(server, security, limits, host, port)
    except KeyboardInterrupt:
        logger.info("stopped")
    finally:
        catalog.close()  # stops the MCP servers it started


def _exit_soon_after_interrupt(grace_s: float = 3.0) -> None:
    """Ctrl-C in a terminal stops the stdio server: the SDK reads stdin in a thread that sits in a
    blocking read until Enter, which would hold the exit. The shutdown gets `grace_s` (runs are
    cancelled and recorded), then the process ends; a run cut short is `interrupted`, never lost."""

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        threading.Timer(grace_s, os._exit, args=(130,)).start()
        signal.default_int_handler(signum, frame)

    signal.signal(signal.SIGINT, on_interrupt)


async def run_stdio(server: MCPServer[ServerState]) -> None:
    """Serve over stdio like `MCPServer.run_stdio_async`, except that a line that is no JSON-RPC
    message (malformed JSON, a batch, nesting too deep) gets an error reply with `id: null`
    (-32700 parse error or -32600 invalid request) and a log line, instead of silence."""
    lowlevel = server._lowlevel_server  # mcp 2.3 has no public way to run it on our own streams
    async with stdio_server() as (read_stream, write_stream):
        screened_send, screened = anyio.create_memory_object_stream[SessionMessage | Exception](0)

        async def screen() -> None:
            async with screened_send:
                async for item in read_stream:
                    if isinstance(item, Exception):
                        await write_stream.send(SessionMessage(_malformed_line_error(item)))
                        continue
                    await screened_send.send(item)

        async with anyio.create_task_group() as task_group:
            task_group.start_soon(screen)
            await lowlevel.run(screened, write_stream, lowlevel.create_initialization_options())
            task_group.cancel_scope.cancel()


def _malformed_line_error(exc: Exception) -> JSONRPCError:
    invalid_json = any(e.get("type") == "json_invalid" for e in getattr(exc, "errors", lambda: [])())
    code, message = (PARSE_ERROR, "Parse error") if invalid_json else (INVALID_REQUEST, "Invalid Request")
    logger.warning("stdin: a line that is not a JSON-RPC message (%s); answered %d %s", str(exc)[:300], code, message)
    detail = "the line is not valid JSON" if invalid_json else "the line is not one JSON-RPC request or notification"
    return JSONRPCError(jsonrpc="2.0", id=None, error=ErrorData(code=code, message=f"{message}: {detail}"))


def _serve_http(
    server: MCPServer[ServerState], security: HttpSecurity, limits: HttpLimits, host: str, port: int
) -> None:
    import uvicorn

    app = server.streamable_http_app(
        transport_security=security.transport_security(),
        host=host,
        session_idle_timeout=limits.session_idle_s,
        max_sessions=limits.max_sessions,
    )
    logger.warning(
        "serving MCP at http://%s:%d/mcp (%s)",
        host,
        port,
        "bearer token required" if security.token else "no token: loopback clients only",
    )
    # log_config=None: uvicorn logs through our stderr logging (its default config sends access logs to stdout).
    bounded = BodyDeadline(SessionQuota(app, limits), limits.read_timeout_s)
    config = uvicorn.Config(
        HostGuard(bounded, security.allowed_hosts),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        http=header_timeout_protocol(limits.read_timeout_s),
    )
    anyio.run(uvicorn.Server(config).serve)
