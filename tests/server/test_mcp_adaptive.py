"""Adaptive runs over MCP (in-memory client, both protocol eras): replanning after a failed step,
and a person's approval of the plan through the client (elicitation; 2026: input required) or approve_run."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.types import CallToolResult, ElicitRequestFormParams, ElicitRequestParams, ElicitResult, InputRequiredResult
from pydantic import BaseModel

from agents.llm import Message, ScriptedLLM
from planning.catalog import AgentSpec, Catalog, ToolSpec
from planning.settings import Settings
from server.app import App
from server.mcp_server import build_server
from tests.server.test_mcp_tools import MakeServer, call, error_text, step_results, structured

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


# -- approval --------------------------------------------------------------------------------------

PLAN = {
    "steps": [
        {"id": 1, "agent": "math", "tool": "multiply", "args": {"a": 10, "b": 5}},
        {"id": 2, "agent": "math", "tool": "add", "args": {"a": "$1", "b": 1}, "depends_on": [1]},
    ]
}
EDITED = {"steps": [{"id": 1, "agent": "math", "tool": "multiply", "args": {"a": 6, "b": 7}}]}


class Person:
    """The client's user: answers each approval question in turn, and keeps what was asked."""

    def __init__(self, *answers: ElicitResult) -> None:
        self.answers = list(answers)
        self.asked: list[ElicitRequestParams] = []

    async def __call__(self, context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        self.asked.append(params)
        return self.answers.pop(0)


def accept(plan: dict[str, Any] | str | None = None) -> ElicitResult:
    text = plan if isinstance(plan, str) else json.dumps(plan) if plan is not None else ""
    return ElicitResult(action="accept", content={"plan": text})


async def test_a_person_accepts_the_plan_through_the_client_and_the_run_goes_on(
    make_server: MakeServer, mode: str
) -> None:
    person = Person(accept())
    async with Client(make_server(), mode=mode, elicitation_callback=person) as client:
        run = await call(client, "execute_plan", plan=PLAN, approval="required")

    assert (run["status"], run["answer"]) == ("succeeded", "51")
    [asked] = person.asked
    assert isinstance(asked, ElicitRequestFormParams)
    assert "waits for your approval: the run asked for approval of its plan (version 1)" in asked.message
    assert json.dumps(PLAN["steps"][0]["args"]).replace(" ", "") in asked.message.replace(" ", "")
    assert "flowchart TD" in asked.message
    assert list(asked.requested_schema["properties"]) == ["plan"]


async def test_an_edited_plan_is_validated_asked_again_when_invalid_and_run_when_valid(
    make_server: MakeServer, mode: str
) -> None:
    invalid = {"steps": [{"id": 1, "agent": "math", "tool": "nope", "args": {}}]}
    person = Person(accept(invalid), accept(EDITED))
    async with Client(make_server(), mode=mode, elicitation_callback=person) as client:
        run = await call(client, "execute_plan", plan=PLAN, approval="required")
        shown = await call(client, "get_run", run_id=run["run_id"])

    assert (run["status"], run["answer"]) == ("succeeded", "42")
    assert "step 1: agent 'math' has no tool 'nope'" in person.asked[1].message
    assert [(v["version"], v["kind"]) for v in shown["versions"]] == [(1, "planned"), (2, "edited")]


async def test_declining_rejects_the_plan_and_nothing_runs(make_server: MakeServer, mode: str) -> None:
    person = Person(ElicitResult(action="decline"))
    async with Client(make_server(), mode=mode, elicitation_callback=person) as client:
        run = await call(client, "execute_plan", plan=PLAN, approval="required")

    assert run["status"] == "cancelled"
    assert run["error"] == "plan version 1 was rejected at approval; resume the run to be asked again"
    assert {step["attempts"] for step in run["steps"]} == {0}


async def test_cancelling_the_question_leaves_the_run_awaiting_approve_run(make_server: MakeServer, mode: str) -> None:
    person = Person(ElicitResult(action="cancel"))
    async with Client(make_server(), mode=mode, elicitation_callback=person) as client:
        run = await call(client, "execute_plan", plan=PLAN, approval="required")

    assert (run["status"], run["finished"]) == ("awaiting_approval", False)
    assert f"call approve_run(run_id={run['run_id']!r})" in run["next"]


async def test_a_client_without_elicitation_gets_the_run_awaiting_and_approve_run_decides(
    make_server: MakeServer, mode: str
) -> None:
    async with Client(make_server(), mode=mode) as client:
        first = await call(client, "execute_plan", plan=PLAN, approval="required")
        second = await call(client, "execute_plan", plan=PLAN, approval="required")
        third = await call(client, "execute_plan", plan=PLAN, approval="required")
        approved = await call(client, "approve_run", run_id=first["run_id"])
        edited = await call(client, "approve_run", run_id=second["run_id"], plan=EDITED)
        rejected = await call(client, "approve_run", run_id=third["run_id"], reject=True)
        again = await client.call_tool("approve_run", {"run_id": first["run_id"]})

    assert first["status"] == "awaiting_approval"
    assert [step["status"] for step in first["steps"]] == ["pending", "pending"]
    assert first["next"] == (
        "The plan waits for approval (the run asked for approval of its plan (version 1)): call "
        f"approve_run(run_id={first['run_id']!r}) to run it as shown, with `plan` to run an edited plan instead, "
        "or with reject=true to reject it."
    )
    assert (approved["status"], approved["answer"]) == ("succeeded", "51")
    assert (edited["status"], edited["answer"]) == ("succeeded", "42")
    assert rejected["status"] == "cancelled"
    assert error_text(again) == (
        f"Error executing tool approve_run: run {first['run_id']!r} is succeeded, not awaiting approval: only a run "
        "whose plan waits for approval can be approved or rejected"
    )


async def test_a_request_with_approval_is_planned_then_asked_and_a_revised_plan_is_asked_again(
    make_server: MakeServer, mode: str
) -> None:
    llm = planner([FIRST, REVISION])
    person = Person(accept(), accept())
    async with Client(make_server(llm), mode=mode, elicitation_callback=person) as client:
        run = await call(client, "execute_plan", request=REQUEST, approval="required")

    assert (run["status"], run["answer"]) == ("succeeded", "add(a=50, b=1) = 51")
    assert [step["attempts"] for step in run["steps"]] == [1, 1, 0, 1]
    assert "(version 1)" in person.asked[0].message
    second = person.asked[1].message
    assert "approval of its revised plan (version 2)" in second
    assert "The planner revised the plan because step 2 (gate) failed" in second
    assert "Steps 1 already succeeded and are kept." in second


async def test_approval_survives_a_server_restart(make_server: MakeServer, mode: str) -> None:
    async with Client(make_server(), mode=mode) as client:
        waiting = await call(client, "execute_plan", plan=PLAN, approval="required")

    async with Client(make_server(), mode=mode) as client:  # a new server on the same store
        still = await call(client, "get_run", run_id=waiting["run_id"])
        approved = await call(client, "approve_run", run_id=waiting["run_id"])

    assert still["status"] == "awaiting_approval"
    assert approved["status"] == "succeeded"


async def test_each_era_asks_its_own_way_2026_by_input_required_2025_by_elicitation_request(
    make_server: MakeServer, mode: str
) -> None:
    person = Person(accept())
    async with Client(make_server(), mode=mode, elicitation_callback=person) as client:
        first = await client.session.call_tool(
            "execute_plan", {"plan": PLAN, "approval": "required"}, allow_input_required=True
        )
        if mode == "legacy":  # asked by an elicitation/create request while the call waited
            assert isinstance(first, CallToolResult) and len(person.asked) == 1
            result = first
        else:  # the call ended with the question; the answer comes with the same call, again
            assert isinstance(first, InputRequiredResult) and person.asked == []
            assert list(first.input_requests or {}) == ["approval"]
            result = await client.session.call_tool(
                "execute_plan",
                {"plan": PLAN, "approval": "required"},
                input_responses={"approval": accept()},
                request_state=first.request_state,
                allow_input_required=True,
            )

    assert isinstance(result, CallToolResult)
    assert (structured(result)["status"], structured(result)["answer"]) == ("succeeded", "51")


def forget(label: str) -> str:
    """Forget a label for good (a destructive tool)."""
    return f"forgot {label}"


async def test_a_planned_plan_with_a_destructive_tool_waits_for_approval_though_the_run_did_not_ask(
    settings: Settings, catalog: Catalog, mode: str
) -> None:
    memory = AgentSpec(name="memory", description="Memory.", tools=(ToolSpec.from_function(forget, destructive=True),))
    with_memory = Catalog([*catalog.agents.values(), memory])
    plan = {"steps": [{"id": 1, "agent": "memory", "tool": "forget", "args": {"label": "x"}}]}
    llm = planner([plan])
    server = build_server(
        settings, catalog=with_memory, app_factory=lambda s: App.open(s, llm=llm, catalog=with_memory)
    )
    async with Client(server, mode=mode) as client:
        planned = await call(client, "execute_plan", request="forget x")
        written = await call(client, "execute_plan", plan=plan)
        approved = await call(client, "approve_run", run_id=planned["run_id"])

    assert planned["status"] == "awaiting_approval"
    assert "the planner's plan uses destructive tools in step(s) 1" in planned["next"]
    assert (written["status"], written["answer"]) == ("succeeded", "forgot x")  # its author wrote it
    assert approved["status"] == "succeeded"
