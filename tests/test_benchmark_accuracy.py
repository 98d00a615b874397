"""The planner-accuracy benchmark's scoring, on a scripted model that plans each case right or wrong."""

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from agents.catalog import build_catalog
from agents.llm import Message, ScriptedLLM
from benchmarks.accuracy import (
    BUILTIN,
    CASES,
    FOREIGN,
    REF,
    SMOKE,
    Case,
    foreign_catalog,
    format_summary,
    plan_matches,
    run_cases,
)
from planning.plan import Plan
from planning.settings import Settings

pytestmark = pytest.mark.anyio


CATALOGS = {"builtin": build_catalog(Settings()), "foreign": foreign_catalog()}


def expected_plan(case: Case) -> dict[str, Any]:
    """The plan a perfect planner writes (nulls for optional parameters, as the reply schema asks)."""
    steps = []
    for index, (agent, tool, args) in enumerate(case.calls, start=1):
        refs = iter(range(1, index))
        written = {k: (f"${next(refs)}" if v == REF else v) for k, v in args.items()}
        fields = CATALOGS[case.catalog].agent(agent).tool(tool).args_model.model_fields
        for name, info in fields.items():
            if info.default is None and not info.is_required():
                written.setdefault(info.alias or name, None)
        steps.append({"id": index, "agent": agent, "tool": tool, "args": written})
    return {"steps": steps}


def planner_for(cases: Sequence[Case], wrong: set[str]) -> ScriptedLLM:
    by_request = {case.request: case for case in cases}

    def answer(messages: Sequence[Message], output: type[BaseModel], role: str) -> dict[str, Any]:
        request = messages[1].content.split("Request: ")[-1].removesuffix("\nPlan:")
        plan = expected_plan(by_request[request])
        if request in wrong:  # a different first value: the plan no longer matches
            step = plan["steps"][0]
            key = next(iter(step["args"]))
            step["args"][key] = 9 if not isinstance(step["args"][key], str) else "wrong"
        return plan

    return ScriptedLLM(answer)


def test_the_suite_has_at_least_sixty_requests_over_both_catalogs_and_every_category() -> None:
    assert len(CASES) >= 60
    assert {c.category for c in FOREIGN} >= {"simple", "multiple", "parallel", "parallel_multiple", "chain", "literal"}
    assert len(BUILTIN) >= 30 and len(FOREIGN) >= 30


async def test_plans_are_scored_against_the_expected_calls_and_answers() -> None:
    cases = (*SMOKE, BUILTIN[23])  # the last one is a chain, scored by its answer too
    wrong = {SMOKE[1].request}

    results = await run_cases(cases, planner_for(cases, wrong))

    assert [row["ok"] for row in results["rows"]] == [True, False, True, True]
    assert results["summary"]["all"]["passed"] == 3
    assert results["summary"]["all"]["llm_calls"] >= 4
    assert "foreign/simple" in format_summary(results["summary"])


def test_a_json_schema_tools_own_default_written_out_matches_it_left_out() -> None:
    case = next(c for c in FOREIGN if c.request.startswith("Book a flight from JFK"))
    written = {"_from": "JFK", "to": "LAX", "date": "2025-03-14", "cabin": "economy", "passengers": 1}
    plan = Plan.model_validate({"steps": [{"id": 1, "agent": "travel", "tool": "book_flight", "args": written}]})
    other = Plan.model_validate(
        {"steps": [{"id": 1, "agent": "travel", "tool": "book_flight", "args": {**written, "cabin": "first"}}]}
    )

    assert plan_matches(case, plan, CATALOGS["foreign"])
    assert not plan_matches(case, other, CATALOGS["foreign"])


@pytest.mark.model
@pytest.mark.timeout(1200)  # two prompt prefixes (one per catalog) are evaluated cold, ~1 min each here
def test_the_smoke_cases_plan_on_the_embedded_model(tmp_path: Path, pytestconfig: pytest.Config) -> None:
    pytest.importorskip("llama_cpp")
    # A data directory of its own; the assembled model is the one the other model tests share.
    models = pytestconfig.cache.mkdir("planner-mcp-model") / "models"
    models.mkdir(exist_ok=True)
    (tmp_path / "models").symlink_to(models)
    out = tmp_path / "results.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PLANNER_MCP_"))}
    child = subprocess.run(
        [sys.executable, "-m", "benchmarks.accuracy", "--smoke", "--json", str(out)],
        cwd=Path(__file__).parent.parent,
        env=env | {"PLANNER_MCP_HOME": str(tmp_path), "PLANNER_MCP_LLM": "local"},
        capture_output=True,
        timeout=1200,
        check=False,
    )

    assert child.returncode == 0, child.stderr.decode()[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == len(SMOKE)
    assert all(row["calls"] >= 1 and row["tokens"] > 0 for row in rows)
    assert any(row["ok"] for row in rows)
    assert "accuracy" in child.stdout.decode()
