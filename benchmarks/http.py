"""Concurrent `execute_plan` calls over streamable HTTP against a real `planner-mcp serve --transport
http` subprocess on 127.0.0.1 (no LLM: the seed's three-step tool plan, so only orchestration, the
store and the protocol are measured)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from benchmarks.table import Row, percentile

ROOT = Path(__file__).resolve().parent.parent
PLAN: dict[str, Any] = json.loads((ROOT / "examples" / "seed_example.json").read_text(encoding="utf-8"))
CONCURRENCY = (50, 200)
SMOKE_CONCURRENCY = (5,)
SEQUENTIAL, SMOKE_SEQUENTIAL = 30, 3
SESSIONS = 10  # concurrent calls are spread over this many client sessions
STARTUP_S = 120
CALL_TIMEOUT_S = 600
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class Server:
    """A `planner-mcp serve --transport http` subprocess with its own home, read through /proc."""

    def __init__(self, home: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PLANNER_MCP_"))}
        env.update(PLANNER_MCP_HOME=str(home), PLANNER_MCP_LLM="none")
        self.log = home / "server.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "server.cli", "serve", "--transport", "http", "--port", str(self.port)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=log,
            )
        self.url = f"http://127.0.0.1:{self.port}/mcp"

    def wait_listening(self) -> None:
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: {self.log.read_text(errors='replace')[-2000:]}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=0.1)
        raise RuntimeError(f"the server did not listen on port {self.port} within {STARTUP_S} s")

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime

    def memory_mb(self, field: str) -> float:
        """VmRSS (now) or VmHWM (peak) in MB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        raise RuntimeError(f"no {field} in /proc/{self.process.pid}/status")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def running_server() -> Iterator[Server]:
    with tempfile.TemporaryDirectory(prefix="planner-bench-http-") as home:
        server = Server(Path(home))
        try:
            server.wait_listening()
            yield server
        finally:
            server.stop()


@contextlib.asynccontextmanager
async def session(url: str) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(timeout=CALL_TIMEOUT_S) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


async def execute(client: Client) -> tuple[float, str | None]:
    """One execute_plan call: (seconds, None) when the run succeeded, else (seconds, what went wrong)."""
    start = time.perf_counter()
    try:
        result = await client.call_tool("execute_plan", {"plan": PLAN})
    except Exception as exc:  # noqa: BLE001  # counted and shown, never raised: the benchmark reports errors
        return time.perf_counter() - start, f"{type(exc).__name__}: {exc}"
    elapsed = time.perf_counter() - start
    content = result.structured_content or {}
    if result.is_error or content.get("status") != "succeeded":
        return elapsed, str(content.get("error") or result.content)[:200]
    return elapsed, None


async def sequential(server: Server, calls: int) -> tuple[list[float], float]:
    """Latencies of `calls` runs one after another on one session, and server CPU per run."""
    async with session(server.url) as client:
        await execute(client)  # warm-up
        cpu = server.cpu_s()
        latencies = [(await execute(client))[0] for _ in range(calls)]
        return latencies, (server.cpu_s() - cpu) / calls


async def concurrent(server: Server, calls: int) -> tuple[list[float], list[str], float, float]:
    """`calls` runs issued at once over SESSIONS sessions: latencies, errors, makespan, server CPU."""
    latencies: list[float] = []
    errors: list[str] = []
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(session(server.url)) for _ in range(min(SESSIONS, calls))]
        cpu, start = server.cpu_s(), time.perf_counter()

        async def one(client: Client) -> None:
            elapsed, error = await execute(client)
            latencies.append(elapsed)
            if error is not None:
                errors.append(error)

        async with anyio.create_task_group() as group:
            for i in range(calls):
                group.start_soon(one, clients[i % len(clients)])
        return latencies, errors, time.perf_counter() - start, server.cpu_s() - cpu


def run(smoke: bool) -> list[Row]:
    rows = []
    with running_server() as server:
        idle_mb = server.memory_mb("VmRSS")
        calls = SMOKE_SEQUENTIAL if smoke else SEQUENTIAL
        latencies, cpu_per_run = anyio.run(sequential, server, calls)
        one_run = statistics.median(latencies)
        rows.append(
            Row(
                "http",
                "one 3-step run at a time",
                f"p50 {one_run * 1000:.0f} ms; server CPU {cpu_per_run * 1000:.1f} ms/run; idle RSS {idle_mb:.0f} MB",
                f"{calls} sequential execute_plan(seed plan, wait=true) on one session after a warm-up; "
                "server CPU from /proc/PID/stat (utime+stime) ÷ runs",
            )
        )
        for n in SMOKE_CONCURRENCY if smoke else CONCURRENCY:
            latencies, errors, makespan, cpu = anyio.run(concurrent, server, n)
            p50, p99 = statistics.median(latencies), percentile(latencies, 0.99)
            first_error = f" (first: {errors[0]})" if errors else ""
            rows.append(
                Row(
                    "http",
                    f"{n} concurrent 3-step runs",
                    f"errors {len(errors)}/{n}{first_error}; p50 {p50:.2f} s ({p50 / one_run:.0f}× one run), "
                    f"p99 {p99:.2f} s; all done in {makespan:.2f} s ({n / makespan:.0f} runs/s); server CPU {cpu * 1000 / n:.1f} ms/run; "
                    f"peak RSS {server.memory_mb('VmHWM'):.0f} MB",
                    f"{n} execute_plan(seed plan, wait=true) issued at once over {min(SESSIONS, n)} streamable-HTTP "
                    "sessions to `planner-mcp serve --transport http` on 127.0.0.1 (no LLM); latency per call; "
                    "RSS from /proc/PID/status VmHWM",
                )
            )
    return rows
