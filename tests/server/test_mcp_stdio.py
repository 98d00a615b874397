"""`planner-mcp serve` as a real stdio subprocess: a full plan runs and stdout carries only JSON-RPC."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import ByteReceiveStream, Process
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp import Client, StdioServerParameters

from tests.server.fakes import ROOT, SEED_PLAN

pytestmark = pytest.mark.anyio
STARTUP_S = 120  # a cold start imports Flyte and the SDK


def server_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PLANNER_MCP_"))}
    env.update(PLANNER_MCP_HOME=str(home), PLANNER_MCP_LLM="none")
    return env


SERVE = [sys.executable, "-m", "server.cli", "serve"]


class RawSession:
    """Newline-delimited JSON-RPC over a process's pipes, keeping every stdout line it reads."""

    def __init__(self, process: Process) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.process = process
        self.stdout = BufferedByteReceiveStream(process.stdout)
        self.lines: list[bytes] = []

    async def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send(json.dumps(message).encode() + b"\n")

    async def response(self, request_id: int) -> dict[str, Any]:
        """Read lines until the response to `request_id`; the lines before it are kept too."""
        while True:
            line = await self.stdout.receive_until(b"\n", max_bytes=16 << 20)
            self.lines.append(line)
            message = json.loads(line)
            if message.get("id") == request_id and "method" not in message:
                return message

    async def rest(self) -> None:
        """Read stdout to its end (after stdin was closed)."""
        tail = b""
        try:
            while True:
                tail += await self.stdout.receive()
        except (anyio.EndOfStream, anyio.IncompleteRead):
            pass
        self.lines += [line for line in tail.split(b"\n") if line]


async def drain(stream: ByteReceiveStream | None, into: bytearray) -> None:
    if stream is None:
        return
    async for chunk in stream:
        into.extend(chunk)


async def test_a_full_run_over_stdio_writes_nothing_but_json_rpc_to_stdout(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    stderr = bytearray()
    initialized: dict[str, Any] = {}
    called: dict[str, Any] = {}
    async with await anyio.open_process(SERVE, cwd=ROOT, env=server_env(tmp_path / "home")) as process:
        session = RawSession(process)
        async with anyio.create_task_group() as group:
            group.start_soon(drain, process.stderr, stderr)
            with anyio.fail_after(STARTUP_S):
                await session.send(
                    {
                        "jsonrpc": "2.0",
                        "id": 1,
                        "method": "initialize",
                        "params": {
                            "protocolVersion": "2025-11-25",
                            "capabilities": {},
                            "clientInfo": {"name": "raw-stdio-test", "version": "0"},
                        },
                    }
                )
                initialized = await session.response(1)
                await session.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
                await session.send(
                    {
                        "jsonrpc": "2.0",
                        "id": 2,
                        "method": "tools/call",
                        "params": {
                            "name": "execute_plan",
                            "arguments": {"plan": SEED_PLAN},
                            "_meta": {"progressToken": "seed"},
                        },
                    }
                )
                called = await session.response(2)
                assert process.stdin is not None
                await process.stdin.aclose()
                await session.rest()
                await process.wait()

    assert initialized["result"]["serverInfo"]["name"] == "planner-mcp"
    result = called["result"]
    assert not result.get("isError"), result
    assert (result["structuredContent"]["status"], result["structuredContent"]["answer"]) == ("succeeded", "100")
    messages = [json.loads(line) for line in session.lines]  # every stdout line is JSON ...
    assert all(message["jsonrpc"] == "2.0" for message in messages)  # ... and JSON-RPC
    progress = [m["params"] for m in messages if m.get("method") == "notifications/progress"]
    assert len(progress) == 8 and progress[-1] == {
        "progressToken": "seed",
        "progress": 4.0,
        "total": 4.0,
        "message": "run succeeded",
    }
    assert process.returncode == 0, stderr.decode(errors="replace")
    # Recorded in Flyte's local run store (on by default) of the test's own HOME, not the machine's.
    home = Path(os.environ["HOME"])
    assert home.is_relative_to(tmp_path_factory.getbasetemp()) and (home / ".flyte/local-cache/cache.db").is_file()


async def test_the_sdk_client_drives_the_stdio_server_in_the_current_protocol_era(tmp_path: Path) -> None:
    parameters = StdioServerParameters(
        command=SERVE[0], args=SERVE[1:], cwd=str(ROOT), env=server_env(tmp_path / "home")
    )
    with anyio.fail_after(STARTUP_S):
        async with Client(parameters) as client:
            tools = {tool.name for tool in (await client.list_tools()).tools}
            result = await client.call_tool("string_agent", {"tool": "reverse", "args": {"text": "stdio"}})

    assert {"plan", "execute_plan", "get_run"} <= tools
    assert result.structured_content is not None
    assert (result.structured_content["status"], result.structured_content["answer"]) == ("succeeded", "oidts")


async def test_a_run_awaiting_approval_outlives_a_killed_server_and_approve_run_finishes_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    stderr = bytearray()
    waiting: dict[str, Any] = {}
    async with await anyio.open_process(SERVE, cwd=ROOT, env=server_env(home)) as process:
        session = RawSession(process)
        async with anyio.create_task_group() as group:
            group.start_soon(drain, process.stderr, stderr)
            with anyio.fail_after(STARTUP_S):
                await session.send(
                    {
                        "jsonrpc": "2.0",
                        "id": 1,
                        "method": "initialize",
                        "params": {  # no elicitation: the run waits for approve_run
                            "protocolVersion": "2025-11-25",
                            "capabilities": {},
                            "clientInfo": {"name": "raw-stdio-test", "version": "0"},
                        },
                    }
                )
                await session.response(1)
                await session.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
                arguments = {"plan": SEED_PLAN, "approval": "required"}
                await session.send(
                    {
                        "jsonrpc": "2.0",
                        "id": 2,
                        "method": "tools/call",
                        "params": {"name": "execute_plan", "arguments": arguments},
                    }
                )
                waiting = (await session.response(2))["result"]["structuredContent"]
            process.kill()  # a crash: no shutdown, no cleanup
            await process.wait()
            group.cancel_scope.cancel()

    parameters = StdioServerParameters(command=SERVE[0], args=SERVE[1:], cwd=str(ROOT), env=server_env(home))
    with anyio.fail_after(STARTUP_S):
        async with Client(parameters) as client:
            after = await client.call_tool("get_run", {"run_id": waiting["run_id"]})
            approved = await client.call_tool("approve_run", {"run_id": waiting["run_id"]})

    assert waiting["status"] == "awaiting_approval"
    assert after.structured_content is not None and after.structured_content["status"] == "awaiting_approval"
    assert approved.structured_content is not None
    assert (approved.structured_content["status"], approved.structured_content["answer"]) == ("succeeded", "100")
