"""`planner-mcp serve --transport http` as a real server on 127.0.0.1: bearer auth, Host checks, a run."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.server.fakes import ROOT, SEED_PLAN

TOKEN = "test-token-0123456789abcdef"
STARTUP_S = 120
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PLANNER_MCP_"))}
    env.update(PLANNER_MCP_HOME=str(home), PLANNER_MCP_LLM="none", **extra)
    return env


def wait_until_listening(process: subprocess.Popen[bytes], port: int, stderr: Path) -> None:
    """Poll the port (bounded) until the server accepts connections, or fail with its stderr."""
    with httpx.Client(timeout=1) as http:
        for _ in range(STARTUP_S * 10):
            if process.poll() is not None:
                raise AssertionError(f"the server exited: {stderr.read_text(errors='replace')}")
            try:
                http.get(f"http://127.0.0.1:{port}/health-probe")
                return
            except httpx.TransportError:
                process_wait(process, 0.1)
    raise AssertionError(f"the server did not listen on port {port} within {STARTUP_S} s")


def process_wait(process: subprocess.Popen[bytes], seconds: float) -> None:
    # Waiting on the process (not sleeping) ends the poll early if it exits.
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=seconds)


@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A token-protected server on 127.0.0.1:<free port>; yields its MCP URL."""
    port = free_port()
    home = tmp_path_factory.mktemp("http-home")
    stderr = home / "stderr.log"
    # Output goes to files, not pipes: nobody reads a pipe while tests run, and a full one blocks.
    with (home / "stdout.log").open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--transport", "http", "--port", str(port)],
            cwd=ROOT,
            env=serve_env(home, PLANNER_MCP_TOKEN=TOKEN),
            stdout=out,
            stderr=err,
        )
    try:
        wait_until_listening(process, port, stderr)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=30)
    # Logs go to stderr only, in HTTP mode too.
    assert (home / "stdout.log").read_bytes() == b""


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": TOKEN}],
    ids=["no token", "wrong token", "not a bearer header"],
)
def test_a_request_without_the_right_bearer_token_gets_401(http_server: str, headers: dict[str, str]) -> None:
    response = httpx.post(http_server, json=INITIALIZE, headers={**MCP_HEADERS, **headers})

    assert response.status_code == 401
    assert response.json() == {"error": "invalid_token", "error_description": "Authentication required"}


@pytest.mark.parametrize("token", [TOKEN, None], ids=["with token", "without token"])
def test_a_request_for_another_host_gets_421_token_or_not(http_server: str, token: str | None) -> None:
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.post(http_server, json=INITIALIZE, headers={**MCP_HEADERS, **auth, "Host": "evil.example:80"})

    assert (response.status_code, response.text) == (421, "Invalid Host header")


def test_a_request_from_a_foreign_origin_is_refused(http_server: str) -> None:
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {TOKEN}", "Origin": "http://evil.example"}
    response = httpx.post(http_server, json=INITIALIZE, headers=headers)

    assert response.status_code == 403


@pytest.mark.anyio
async def test_with_the_token_the_sdk_client_runs_a_plan_over_streamable_http(http_server: str) -> None:
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as http:
        with anyio.fail_after(60):
            async with Client(streamable_http_client(http_server, http_client=http)) as client:
                tools = {tool.name for tool in (await client.list_tools()).tools}
                result = await client.call_tool("execute_plan", {"plan": SEED_PLAN})

    assert "execute_plan" in tools
    assert result.structured_content is not None
    assert (result.structured_content["status"], result.structured_content["answer"]) == ("succeeded", "100")


@pytest.mark.parametrize(
    ("extra_env", "missing"),
    [
        ({}, "set PLANNER_MCP_TOKEN (a bearer token that clients must send) and PLANNER_MCP_ALLOWED_HOSTS ("),
        ({"PLANNER_MCP_TOKEN": TOKEN}, "set PLANNER_MCP_ALLOWED_HOSTS ("),
    ],
)
def test_a_non_loopback_bind_without_token_and_allowed_hosts_refuses_to_start(
    tmp_path: Path, extra_env: dict[str, str], missing: str
) -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--transport", "http", "--host", "0.0.0.0", "--port", "9"],
        cwd=ROOT,
        env=serve_env(tmp_path, **extra_env),
        capture_output=True,
        timeout=STARTUP_S,
    )

    assert finished.returncode == 1
    assert finished.stdout == b""
    assert "refusing to serve HTTP on '0.0.0.0'" in finished.stderr.decode()
    assert missing in finished.stderr.decode()
