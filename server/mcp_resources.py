"""The MCP resources (runs://{run_id}, runs://recent, agents://catalog) and the plan_and_execute prompt."""

from __future__ import annotations

import json
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError
from pydantic import Field

from planning.records import RunRecord
from planning.store import RunNotFoundError
from server.mcp_state import ServerState, StateSlot, server_state
from server.views import (
    RunsPage,
    agents_view,
    run_view,
    summary_view,
)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)


def add_resources(server: MCPServer[ServerState], slot: StateSlot) -> None:
    @server.resource(
        "runs://{run_id}",
        name="run",
        title="A run",
        description="A run as JSON: status, answer, every step's result, error, timings and usage, Mermaid charts.",
        mime_type="application/json",
    )
    async def run_resource(run_id: str, ctx: Context[ServerState, Any]) -> str:
        try:
            record: RunRecord = server_state(ctx).app.store.get_run(run_id)
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


def add_prompts(server: MCPServer[ServerState]) -> None:
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
