"""End to end on the real embedded model, through the CLI, as a user runs it (no key, no network)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agents.llm.embedded import llama_cpp_installed
from agents.llm.model_file import chunk_packages_installed

REPO_ROOT = Path(__file__).resolve().parents[1]
SEED_REQUEST = (
    "Calculate 10 times 5 and count words in 'Hello World', then multiply the word count by the calculation result"
)

pytestmark = [
    pytest.mark.model,
    pytest.mark.skipif(
        not (llama_cpp_installed() and chunk_packages_installed()), reason="needs the `local` extra (embedded model)"
    ),
]


@pytest.fixture
def home(tmp_path: Path, pytestconfig: pytest.Config) -> Path:
    # The assembled 1.1 GB model is kept in pytest's cache and shared with the other model tests.
    models = pytestconfig.cache.mkdir("planner-mcp-model") / "models"
    models.mkdir(exist_ok=True)
    (tmp_path / "models").symlink_to(models)
    return tmp_path


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PLANNER_MCP_"))}
    env |= {"PLANNER_MCP_HOME": str(home), "PLANNER_MCP_LLM": "local"}
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_the_seed_request_is_planned_and_executed_offline_to_100(home: Path) -> None:
    done = cli(home, "run", SEED_REQUEST, "--json")

    assert done.returncode == 0, done.stderr[-3000:]
    run = json.loads(done.stdout)  # stdout holds the run record and nothing else
    assert run["status"] == "succeeded"
    assert "100" in run["answer"]
    finals = [s for s in run["steps"] if s["id"] == max(step["id"] for step in run["plan"]["steps"])]
    assert finals[0]["result"] == 100
    steps = run["plan"]["steps"]
    assert {s.get("tool") for s in steps} >= {"multiply", "word_count"}
    # One planner call (tool steps need no agent LLM) and at most one synthesis call.
    assert 1 <= run["usage"]["calls"] <= 2


def test_plans_hold_the_requests_values_and_never_the_worked_examples(home: Path) -> None:
    done = cli(home, "plan", "How many letters r are in 'strawberry'?")

    assert done.returncode == 0, done.stderr[-3000:]
    plan_text = done.stdout.split("```mermaid")[0]
    plan = json.loads(plan_text)
    assert plan["steps"] == [
        {"id": 1, "agent": "string", "tool": "letter_count", "args": {"text": "strawberry", "letter": "r"}}
    ]
    assert "alpha beta gamma" not in done.stdout


def test_a_failed_step_is_replanned_by_the_embedded_model_keeping_what_succeeded(home: Path) -> None:
    # A planner's bad assumption, recorded as a run of the request: it divides by 0 where the request
    # says 2. Resuming it runs step 1, step 2 fails for good, and the embedded model revises the rest.
    from planning.plan import Plan
    from planning.store import RunStore

    request = "Multiply 10 by 5, then divide the result by 2"
    plan = Plan.model_validate(
        {
            "steps": [
                {"id": 1, "agent": "math", "tool": "multiply", "args": {"a": 10, "b": 5}},
                {"id": 2, "agent": "math", "tool": "divide", "args": {"a": "$1", "b": 0}, "depends_on": [1]},
            ]
        }
    )
    store = RunStore(home / "runs.sqlite3")
    run = store.create_run(plan, request=request)
    store.close()

    done = cli(home, "resume", run.id, "--json")

    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(done.stdout)
    assert record["status"] == "succeeded"
    assert [(v["version"], v["kind"]) for v in record["versions"]] == [(1, "planned"), (2, "replanned")]
    assert "division by zero" in record["versions"][1]["reason"]
    steps = {s["id"]: s for s in record["steps"]}
    assert (steps[1]["status"], steps[1]["attempts"]) == ("succeeded", 1)  # kept, never run again
    assert steps[2]["status"] == "replaced"
    assert 25 in [s["result"] for s in record["steps"] if s["id"] > 2]
