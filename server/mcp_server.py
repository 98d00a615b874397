"""The MCP server: planning and running plans of specialist agents, and inspecting their runs.

`build_server(settings)` returns an `MCPServer` whose lifespan opens the application (run store,
catalog, LLM, engine) and a task group for runs that continue after the tool call that started
them; `serve(...)` runs it over stdio (the default) or streamable HTTP.

Tools       plan, execute_plan                                           server/mcp_planning.py
            list_agents, <agent>_agent for each agent of the catalog     server/mcp_agents.py
            (math, string, web_search, code, weather by default, and one per configured MCP server)
            list_runs, get_run, resume_run, cancel_run                   server/mcp_runs.py
            approve_run (and asking a person within the call)           server/approval.py
Resources   runs://{run_id}, runs://recent, agents://catalog             server/mcp_resources.py
Prompts     plan_and_execute                                             server/mcp_resources.py
Shared      the server state, fixable errors, how a run is returned      server/mcp_state.py
Transports  stdio and streamable HTTP                                    server/mcp_transport.py

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

import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

import anyio
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS
from mcp.types import Tool as MCPTool
from pydantic import AnyHttpUrl

from agents.llm.select import select_llm
from planning.catalog import Catalog, load_catalog
from planning.errors import UserFixableError
from planning.settings import Settings
from server.app import App
from server.approval import add_approval_tools
from server.http_auth import BearerTokenVerifier, HttpSecurity
from server.mcp_agents import add_agent_tools
from server.mcp_planning import add_planning_tools
from server.mcp_resources import add_prompts, add_resources
from server.mcp_runs import add_run_tools
from server.mcp_state import ServerState, StateSlot
from server.supervisor import RunSupervisor

AppFactory = Callable[[Settings], App]
logger = logging.getLogger(__name__)

# Failures of opening the application that leave the server up, reporting them on every tool call.
OPEN_ERRORS: tuple[type[Exception], ...] = (UserFixableError, OSError)

SERVER_NAME = "planner-mcp"
_INSTRUCTIONS = (
    "planner-mcp plans requests into steps for specialist agents ({agents}) "
    "and runs them, each step as soon as its own dependencies are done. Write a plan yourself (list_agents "
    "gives every tool's arguments) or let `plan` write one; run it with execute_plan. Calls that may take "
    "longer than a minute should use execute_plan(wait=false) and poll get_run. Every run is recorded: "
    "list_runs, get_run, resume_run, cancel_run."
)


def server_version() -> str:
    """This installation's version (serverInfo.version), from the package metadata."""
    try:
        return package_version(SERVER_NAME)
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


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
                    # Output schemas only: hosts build argument forms from input schemas, and some
                    # handle `type` lists poorly there.
                    "output_schema": _lean(tool.output_schema, nullable_types=True) if tool.output_schema else None,
                }
            )
            for tool in await super().list_tools()
        ]


def _lean(node: Any, *, nullable_types: bool = False) -> Any:
    """A JSON Schema without `title` strings and null defaults (a property *named* "title" stays);
    with `nullable_types`, `anyOf: [{"type": T, ...}, {"type": "null"}]` written as `type: [T, "null"], ...` (the
    same meaning: keywords such as format or minimum apply only to values of their type)."""
    if isinstance(node, dict):
        lean = {
            key: _lean(value, nullable_types=nullable_types)
            for key, value in node.items()
            if not ((key == "title" and isinstance(value, str)) or (key == "default" and value is None))
        }
        nullable = _nullable(lean.get("anyOf")) if nullable_types else None
        if nullable is not None:
            del lean["anyOf"]
            lean.update(nullable, type=[nullable["type"], "null"])
        return lean
    if isinstance(node, list):
        return [_lean(item, nullable_types=nullable_types) for item in node]
    return node


def _nullable(options: Any) -> dict[str, Any] | None:
    """X when `options` is exactly X and {"type": "null"} (either order) and X is one plain type
    whose other keywords (format, items, bounds) hold for null too (no enum or const)."""
    if not (isinstance(options, list) and len(options) == 2 and {"type": "null"} in options):
        return None
    other = options[1] if options[0] == {"type": "null"} else options[0]
    plain = isinstance(other, dict) and isinstance(other.get("type"), str) and not {"enum", "const"} & other.keys()
    return other if plain else None


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
    slot = StateSlot()

    @asynccontextmanager
    async def lifespan(_: MCPServer[ServerState]) -> AsyncIterator[ServerState]:
        try:
            app = factory(settings)
        except OPEN_ERRORS as exc:
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
    add_planning_tools(server, catalog)
    add_agent_tools(server, catalog)
    add_run_tools(server, catalog)
    add_approval_tools(server, catalog)
    add_resources(server, slot)
    add_prompts(server)
    return server
