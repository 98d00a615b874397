"""The embedded planner end to end, as an MCP host sees it: natural-language requests sent as
`execute_plan(request=...)` over one stdio session to a real `planner-mcp serve` subprocess running
the embedded model (the `local` extra), then one more process on the same data directory.

Cold: the first request of a process with a new data directory (model load and every prompt
evaluated from scratch). Restart: the first request of a second process on the same directory
(whatever prompt state the first persisted). Warm: the later requests of the first process.
LLM calls and tokens are the run's own usage record (planner, steps and answer).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

from benchmarks.table import Row

ROOT = Path(__file__).resolve().parent.parent
SEED_REQUEST = (
    "Calculate 10 times 5 and count words in 'Hello World', then multiply the word count by the calculation result"
)
REQUESTS = (
    SEED_REQUEST,
    "How many words are in 'the quick brown fox jumps over the lazy dog'?",
    "What is 17 squared minus 40?",
    "Reverse the text 'planner' and make it upper case",
    "Write and run Python code that sums the squares of the numbers from 1 to 10",
)
REQUEST_BOUND_S = 900  # the most one request may take before the benchmark gives up on it
POLL_S = 1.0
FINISHED = {"succeeded", "partial", "failed", "cancelled", "interrupted"}


def model_path() -> Path | None:
    """The GGUF file to run: PLANNER_MCP_MODEL_PATH, else the packaged model in the user's data
    directory (assembled there once, as the first real run would). None: not installed."""
    from agents.llm.embedded import EmbeddedLLM, llama_cpp_installed
    from agents.llm.model_file import packaged_source
    from planning.settings import Settings

    own = os.environ.get("PLANNER_MCP_MODEL_PATH", "").strip()
    if not llama_cpp_installed() or not (own or packaged_source()):
        return None
    return EmbeddedLLM.from_env(os.environ, Settings().home).prepare_file()


async def ask(client: Client, request: str) -> dict[str, Any]:
    """One request to its finished run (polling get_run if the call returned before the end)."""
    with anyio.fail_after(REQUEST_BOUND_S):
        result = await client.call_tool("execute_plan", {"request": request, "wait": True})
        view = result.structured_content or {}
        if result.is_error or "run_id" not in view:
            return {"status": "error", "error": str(result.content)[:200], "usage": {}}
        while view.get("status") not in FINISHED:
            await anyio.sleep(POLL_S)
            view = (await client.call_tool("get_run", {"run_id": view["run_id"]})).structured_content or {}
        return view


async def session(home: Path, model: Path, requests: tuple[str, ...]) -> list[tuple[str, float, dict[str, Any]]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PLANNER_MCP_"))}
    env.update(PLANNER_MCP_HOME=str(home), PLANNER_MCP_LLM="local", PLANNER_MCP_MODEL_PATH=str(model))
    server = StdioServerParameters(command=sys.executable, args=["-m", "server.cli", "serve"], env=env, cwd=ROOT)
    answers = []
    async with Client(server) as client:
        for request in requests:
            start = time.perf_counter()
            view = await ask(client, request)
            answers.append((request, time.perf_counter() - start, view))
    return answers


def _row(case: str, request: str, seconds: float, view: dict[str, Any], method: str) -> Row:
    usage = view.get("usage") or {}
    answer = (view.get("answer") or view.get("error") or "").replace("\n", " ")[:80]
    return Row(
        "planner",
        f"{case}: {request}",
        f"{seconds:.1f} s, {view.get('status')}; {usage.get('calls', 0)} LLM calls, "
        f"{usage.get('prompt_tokens', 0)} prompt + {usage.get('completion_tokens', 0)} completion tokens; "
        f"answer: {answer!r}",
        method,
    )


def run(smoke: bool) -> list[Row]:
    if smoke:
        return [Row("planner", "embedded planner", "skipped in --smoke", "loads the 1.1 GB model; run without --smoke")]
    model = model_path()
    if model is None:
        return [
            Row(
                "planner",
                "embedded planner",
                "skipped: the embedded model is not installed",
                "install it with `uv sync --extra local` (llama-cpp-python and the model packages)",
            )
        ]
    method = (
        f"execute_plan(request, wait=true) over one stdio session to `planner-mcp serve` (embedded model "
        f"{model.name}, default threads); wall time to the finished run; usage from the run record"
    )
    with tempfile.TemporaryDirectory(prefix="planner-bench-llm-") as scratch:
        home = Path(scratch)
        first = anyio.run(session, home, model, REQUESTS)
        again = anyio.run(session, home, model, (SEED_REQUEST,))
    rows = [_row("cold (new process, new data directory)", *first[0], method)]
    rows.append(_row("restart (second process, same data directory)", *again[0], method))
    rows += [_row("warm (same process)", *answer, method) for answer in first[1:]]
    warm = [seconds for _, seconds, _ in first[1:]]
    rows.append(Row("planner", "warm median", f"{statistics.median(warm):.1f} s", f"requests 2–{len(first)} above"))
    return rows
