"""What every MCP tool handler shares: the server state its lifespan opens, the errors a model can
fix (raised as ToolErrors it can read), how a run is returned, and how a handler becomes a tool."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from planning.errors import UserFixableError
from planning.settings import Settings
from server.app import App
from server.supervisor import RunSupervisor
from server.views import (
    RunView,
    run_text,
)

_Handler = TypeVar("_Handler", bound=Callable[..., Any])

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


class StateSlot:
    """The state of the running lifespan, for handlers the SDK gives no Context (static resources)."""

    def __init__(self) -> None:
        self.state: ServerState | None = None

    def get(self) -> ServerState:
        if self.state is None:
            raise RuntimeError("the planner-mcp server is not running")
        return self.state


def run_result(view: RunView) -> CallToolResult:
    """A run for the host: a few lines of text for the model to read, the data as structured content."""
    return CallToolResult(
        content=[TextContent(type="text", text=run_text(view))],
        structured_content=view.model_dump(mode="json"),
    )


def register_tool(server: MCPServer[ServerState], *, annotations: ToolAnnotations) -> Callable[[_Handler], _Handler]:
    """Register a handler as a tool whose description is its docstring, dedented for the model."""

    def register(handler: _Handler) -> _Handler:
        return server.tool(annotations=annotations, description=inspect.getdoc(handler))(handler)

    return register


def server_state(ctx: Context[ServerState, Any]) -> ServerState:
    return ctx.request_context.lifespan_context


@contextmanager
def fixable_errors() -> Iterator[None]:
    """Failures the model can fix become ToolErrors it can read."""
    try:
        yield
    except UserFixableError as exc:  # the one root of what a caller can fix (planning.errors)
        raise ToolError(str(exc)) from None
