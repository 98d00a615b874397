"""Real `planner-mcp` processes for the fault tests: the CLI against a data dir and an LLM server."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Mapping
from contextlib import closing
from pathlib import Path
from typing import Any

from tests.durability.harness import REPO_ROOT, clean_environ

# The most any fault test waits for a process: a broken build fails instead of hanging.
BOUND_S = 120.0

# The seed's request as the planner answers it: three tool steps, then a multiply of the two results.
PLAN = {
    "steps": [
        {"id": 1, "agent": "math", "tool": "multiply", "args": {"a": 10, "b": 5}, "depends_on": []},
        {"id": 2, "agent": "string", "tool": "word_count", "args": {"text": "Hello World"}, "depends_on": []},
        {"id": 3, "agent": "math", "tool": "multiply", "args": {"a": "$1", "b": "$2"}, "depends_on": [1, 2]},
    ]
}
REQUEST = "Calculate 10 times 5 and count words in 'Hello World', then multiply the two"


def env(home: Path, llm_url: str | None = None, **extra: str) -> dict[str, str]:
    """A child's environment: this data dir, the fake LLM (fast retries) or none, no inherited settings."""
    settings = {**clean_environ(), "PLANNER_MCP_HOME": str(home), "COLUMNS": "240"}
    if llm_url is None:
        settings["PLANNER_MCP_LLM"] = "none"
    else:
        settings |= {
            "PLANNER_MCP_LLM": "openai",
            "OPENAI_BASE_URL": llm_url,
            "OPENAI_API_KEY": "sk-fault-test",
            "PLANNER_MCP_LLM_RETRY_BASE_S": "0.01",
        }
    return settings | extra


def cli(
    home: Path, *args: str, llm_url: str | None = None, extra: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`planner-mcp ARGS` to the end (bounded)."""
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        cwd=REPO_ROOT,
        env=env(home, llm_url, **(extra or {})),
        capture_output=True,
        text=True,
        timeout=BOUND_S,
    )


def run_record(home: Path, run_id: str | None = None) -> dict[str, Any]:
    """A run as `planner-mcp show --json` prints it (the newest run when no id is given)."""
    if run_id is None:
        run_id = newest_run_id(home)
    shown = cli(home, "show", run_id, "--json")
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


def newest_run_id(home: Path) -> str:
    with closing(sqlite3.connect(f"file:{home / 'runs.sqlite3'}?mode=ro", uri=True)) as db:
        row = db.execute("SELECT id FROM runs ORDER BY created_at DESC LIMIT 1").fetchone()
    assert row is not None, "no run was recorded"
    return row[0]


def integrity(db: Path) -> str:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]


def one_error_line(stderr: str) -> str:
    """The CLI's error: exactly one line starting with `error:`, and no traceback anywhere."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    return errors[0]
