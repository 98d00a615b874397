"""Calls that take long never block the host: a request is a run at once, planning happens in the
server, waiting calls get progress in every phase and return at their deadline with the run going on."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel

from agents.llm import LLM, Message, ScriptedLLM
from planning.catalog import Catalog
from planning.settings import Settings
from server.app import App
from server.mcp_server import ServerState, build_server
from tests.server.fakes import BOUND_S, SEED_PLAN, Gate
from tests.server.test_mcp_tools import call, poll_run

pytestmark = pytest.mark.anyio

REQUEST = (
    "Calculate 10 times 5 and count words in 'Hello World', then multiply the word count by the calculation result"
)
GATE_PLAN = {"steps": [{"id": 1, "agent": "gate", "tool": "block", "args": {"label": "opened"}}]}


class HeldPlanner:
    """A scripted planner that answers only once the test lets it (the server stays free meanwhile)."""

    def __init__(self, plan: dict[str, Any] = SEED_PLAN) -> None:
        self.plan = plan
        self.may_answer = anyio.Event()
        self.asked = anyio.Event()

    async def __call__(self, messages: Sequence[Message], output: type[BaseModel], role: str) -> dict[str, Any]:
        assert role == "planner", role
        self.asked.set()
        await self.may_answer.wait()
        return self.plan


@pytest.fixture
def quick_settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", step_retries=0, call_deadline_s=0.5, progress_interval_s=0.05)


@pytest.fixture
def serve(quick_settings: Settings, catalog: Catalog) -> Callable[[LLM | None], MCPServer[ServerState]]:
    def make(llm: LLM | None) -> MCPServer[ServerState]:
        return build_server(quick_settings, app_factory=lambda s: App.open(s, llm=llm, catalog=catalog))

    return make


async def test_a_request_without_waiting_is_a_run_at_once_while_the_planner_works(serve: Any, mode: str) -> None:
    planner = HeldPlanner()
    llm = ScriptedLLM(planner)
    async with Client(serve(llm), mode=mode) as client:
        run = await call(client, "execute_plan", request=REQUEST, wait=False)
        assert (run["status"], run["finished"], run["steps"]) == ("planning", False, [])
        assert "get_run" in run["next"]
        listed = await call(client, "list_runs")
        assert [(r["run_id"], r["status"]) for r in listed["runs"]] == [(run["run_id"], "planning")]

        planner.may_answer.set()
        done = await poll_run(client, run["run_id"], lambda r: r["finished"])

    assert done["status"] == "succeeded"
    assert done["answer"] == "multiply(a=2, b=50) = 100"
    assert done["usage"]["calls"] == 1  # the planner; the answer is stated from the results
    assert [call.role for call in llm.calls] == ["planner"]


async def test_a_request_that_cannot_be_planned_is_a_failed_run_with_the_planners_error(serve: Any, mode: str) -> None:
    not_a_plan = {"steps": [{"id": 1, "agent": "math", "tool": "add", "args": {"a": 1, "b": 2}, "depends_on": [7]}]}
    llm = ScriptedLLM(lambda messages, output, role: not_a_plan)
    async with Client(serve(llm), mode=mode) as client:
        run = await call(client, "execute_plan", request="What do the stars say?", wait=False)
        failed = await poll_run(client, run["run_id"], lambda r: r["finished"])
        listed = await call(client, "list_runs", status="failed")

    assert failed["status"] == "failed"
    assert failed["error"].startswith("planning failed: the planner could not make a valid plan")
    assert "step 7" in failed["error"]
    assert failed["usage"]["calls"] == len(llm.calls) == 2  # a repair round that repeats the reply ends the rounds
    assert [r["run_id"] for r in listed["runs"]] == [run["run_id"]]


async def test_a_waiting_call_past_its_deadline_returns_the_run_which_goes_on(
    serve: Any, gate: Gate, mode: str
) -> None:
    async with Client(serve(None), mode=mode) as client:
        run = await call(client, "execute_plan", plan=GATE_PLAN, wait=True)
        assert (run["status"], run["finished"]) == ("running", False)
        assert "get_run" in run["next"]

        gate.opened.set()
        done = await poll_run(client, run["run_id"], lambda r: r["finished"])

    assert done["status"] == "succeeded"
    assert done["steps"][0]["result"] == "opened"


async def test_resume_honours_the_deadline_too(serve: Any, gate: Gate, mode: str) -> None:
    async with Client(serve(None), mode=mode) as client:
        run = await call(client, "execute_plan", plan=GATE_PLAN, wait=False)
        await call(client, "cancel_run", run_id=run["run_id"])

        resumed = await call(client, "resume_run", run_id=run["run_id"])
        assert (resumed["status"], resumed["finished"]) == ("running", False)
        gate.opened.set()
        done = await poll_run(client, run["run_id"], lambda r: r["finished"])

    assert done["status"] == "succeeded"


async def test_a_waiting_request_gets_progress_while_the_planner_works_and_then_per_step(
    quick_settings: Settings, catalog: Catalog, mode: str
) -> None:
    # The call waits as long as the test allows: the planner answers only after three heartbeats,
    # which a loaded machine may deliver after the quick settings' 0.5 s deadline.
    settings = quick_settings.model_copy(update={"call_deadline_s": BOUND_S})
    planner = HeldPlanner()
    notes: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        notes.append((progress, total, message))
        if sum(1 for _, _, m in notes if m and "planning" in m) >= 3:
            planner.may_answer.set()  # a quiet planner still sent heartbeats

    server = build_server(settings, app_factory=lambda s: App.open(s, llm=ScriptedLLM(planner), catalog=catalog))
    async with Client(server, mode=mode) as client:
        with anyio.fail_after(BOUND_S + 5):
            result = await client.call_tool(
                "execute_plan", {"request": REQUEST, "wait": True}, progress_callback=on_progress
            )
        assert result.structured_content is not None
        run_id = result.structured_content["run_id"]
        done = await poll_run(client, run_id, lambda r: r["finished"])

    assert done["status"] == "succeeded"
    progresses = [p for p, _, _ in notes]
    assert progresses == sorted(set(progresses))  # strictly rising, as MCP requires
    messages = [m or "" for _, _, m in notes]
    assert any("planning the request (" in m for m in messages)
    assert {total for _, total, _ in notes} - {None} == {4}  # then per step: 3 steps + the answer


async def test_cancelling_a_run_while_it_is_planned_records_it_cancelled(serve: Any, mode: str) -> None:
    planner = HeldPlanner()
    async with Client(serve(ScriptedLLM(planner)), mode=mode) as client:
        run = await call(client, "execute_plan", request=REQUEST, wait=False)
        with anyio.fail_after(BOUND_S):
            await planner.asked.wait()
        cancelled = await call(client, "cancel_run", run_id=run["run_id"])

    assert cancelled["status"] == "cancelled"
    assert "while planning" in cancelled["error"]
