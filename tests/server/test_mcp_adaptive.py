"""Adaptive runs over MCP (in-memory client, both protocol eras): replanning after a failed step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from mcp import Client
from pydantic import BaseModel

from agents.llm import Message, ScriptedLLM
from tests.server.test_mcp_tools import MakeServer, call, step_results

pytestmark = pytest.mark.anyio

REQUEST = "Multiply 10 by 5, then pass it through the gate"
# Step 2 fails for good (the gate is never healed); step 3 needs it.
FIRST = {
    "steps": [
        {"id": 1, "agent": "math", "tool": "multiply", "args": {"a": 10, "b": 5}},
        {"id": 2, "agent": "gate", "tool": "flaky", "args": {"label": "got $1"}, "depends_on": [1]},
        {"id": 3, "agent": "math", "tool": "add", "args": {"a": "$2", "b": 1}, "depends_on": [2]},
    ]
}
# The revision goes around the gate, using kept step 1.
REVISION = {"steps": [{"id": 4, "agent": "math", "tool": "add", "args": {"a": "$1", "b": 1}, "depends_on": [1]}]}


def planner(plans: list[dict[str, Any]]) -> ScriptedLLM:
    """A model that writes these plans, in order, and is never asked anything else."""
    queue = list(plans)

    def reply(messages: Sequence[Message], output: type[BaseModel], role: str) -> dict[str, Any]:
        assert role == "planner", role
        return queue.pop(0)

    return ScriptedLLM(reply)


async def test_a_request_whose_step_fails_is_replanned_and_get_run_shows_both_versions(
    make_server: MakeServer, mode: str
) -> None:
    llm = planner([FIRST, REVISION])
    async with Client(make_server(llm), mode=mode) as client:
        run = await call(client, "execute_plan", request=REQUEST)
        shown = await call(client, "get_run", run_id=run["run_id"], detail=True)

    assert (run["status"], run["answer"]) == ("succeeded", "add(a=50, b=1) = 51")
    assert step_results(run) == {
        1: ("succeeded", 50),
        2: ("replaced", None),
        3: ("replaced", None),
        4: ("succeeded", 51),
    }
    assert [s["attempts"] for s in run["steps"]] == [1, 1, 0, 1]
    assert run["steps"][1]["tool"] == "flaky"  # a replaced step is still described
    assert shown["versions"] == [
        {"version": 1, "kind": "planned", "reason": "planned from the request", "replaced": []},
        {
            "version": 2,
            "kind": "replanned",
            "reason": "step 2 (gate) failed: the gate for 'got 50' is broken; heal it and resume the run",
            "replaced": [2, 3],
        },
    ]
    assert (shown["step_count"], shown["steps_done"]) == (2, 2)
    assert run["usage"]["calls"] == 2  # planning and replanning
    assert "s2 replaced" in shown["flowchart"].replace("class s2,s3 replaced", "s2 replaced")


async def test_max_replans_zero_keeps_the_failed_run_as_it_was(make_server: MakeServer, mode: str) -> None:
    llm = planner([FIRST])
    async with Client(make_server(llm), mode=mode) as client:
        run = await call(client, "execute_plan", request=REQUEST, max_replans=0)

    assert run["status"] == "partial"
    assert run["versions"] == []
    assert len(llm.calls) == 1
