"""One `<agent>_agent` tool per agent of the catalog (a one-step run: a direct tool call or a task for
the agent's LLM), and list_agents: every agent with its tools' argument schemas."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import Field

from planning.catalog import AgentSpec, Catalog
from server.mcp_runs import require_llm_for_agent_steps, submit_and_run
from server.mcp_state import ServerState, fixable_errors, register_tool, run_result, server_state
from server.views import AgentsView, agents_view


def add_agent_tools(server: MCPServer[ServerState], catalog: Catalog) -> None:
    @register_tool(
        server,
        annotations=ToolAnnotations(
            title="List agents and tools", read_only_hint=True, idempotent_hint=True, open_world_hint=False
        ),
    )
    async def list_agents(ctx: Context[ServerState, Any]) -> AgentsView:
        """Every specialist agent with its description and its tools, each with the JSON Schema of its
        arguments: what you need to write tool steps (`tool` + `args`) in a plan for execute_plan, or to call
        an agent tool such as math_agent with `tool` + `args`."""
        return agents_view(server_state(ctx).app.catalog)

    for agent in catalog.agents.values():
        server.add_tool(
            agent_tool(agent.name),
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


def agent_tool(agent: str) -> Callable[..., Any]:
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
    ) -> CallToolResult:  # the run; no output schema: see server.mcp_server
        state = server_state(ctx)
        if (task is None) == (tool is None):
            raise ToolError(
                f"give either `task` (natural language) or `tool` + `args` (a direct call), not "
                f"{'both' if task is not None else 'neither'}; list_agents gives the {agent} agent's tools"
            )
        if task is not None and args is not None:
            raise ToolError("`args` go with `tool`; with `task`, describe everything in the task text")
        step: dict[str, Any] = {"id": 1, "agent": agent}
        step.update({"task": task} if task is not None else {"tool": tool, "args": args or {}})
        with fixable_errors():
            one_step = await state.app.parse_reviving({"steps": [step]})
        require_llm_for_agent_steps(state.app, one_step)
        # One step the caller chose: never replanned into other agents' steps.
        view = await submit_and_run(state, ctx, one_step, request=task, wait=True, synthesize=False, max_replans=0)
        return run_result(view)

    run_agent.__name__ = f"{agent}_agent"
    return run_agent
