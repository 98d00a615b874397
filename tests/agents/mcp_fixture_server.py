"""A small MCP server for tests, started for real over stdio: `python mcp_fixture_server.py`.

Its tools let tests see what a real child process sees (its environment, its pid), meet other
calls (proof that calls run concurrently), fail, hang and crash.
"""

from __future__ import annotations

import os
import sys

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

READ_ONLY = ToolAnnotations(read_only_hint=True)
server = MCPServer("fixture")
_arrived: dict[str, anyio.Event] = {}


@server.tool(annotations=READ_ONLY)
def echo(text: str) -> str:
    """Return the text."""
    return text


@server.tool(annotations=READ_ONLY)
async def meet(party: str, other: str) -> str:
    """Arrive as `party` and wait (at most 30 s) until `other` has arrived too."""
    _arrived.setdefault(party, anyio.Event()).set()
    with anyio.move_on_after(30):
        await _arrived.setdefault(other, anyio.Event()).wait()
        return f"{party} met {other}"
    return f"{party} waited for {other} in vain"


@server.tool(annotations=READ_ONLY)
def env_names() -> list[str]:
    """The names of this process's environment variables."""
    return sorted(os.environ)


@server.tool(annotations=READ_ONLY)
def env_value(name: str) -> str | None:
    """The value of one of this process's environment variables."""
    return os.environ.get(name)


@server.tool(annotations=READ_ONLY)
def pid() -> int:
    """This process's id."""
    return os.getpid()


@server.tool(annotations=READ_ONLY)
def fail(message: str) -> str:
    """Fail with the message."""
    raise ToolError(message)


@server.tool(annotations=READ_ONLY)
async def hang() -> str:
    """Never answer."""
    await anyio.sleep_forever()
    return "unreachable"


@server.tool()
def crash() -> str:
    """Exit the server process at once."""
    os._exit(3)


@server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True))
def delete_everything() -> str:
    """Pretend to delete everything."""
    return "deleted"


if __name__ == "__main__":
    sys.stderr.write("fixture server ready\n")
    sys.stderr.flush()
    server.run()
