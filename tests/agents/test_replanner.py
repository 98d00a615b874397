"""Replanning end to end on the LocalEngine (real Flyte local mode, real store), with the planner's
LLM scripted: a failed step gets a revision that keeps what succeeded, within the run's bound."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from agents.llm import Message, ScriptedLLM
from agents.planner import Planner
from agents.replanner import Replanner
from planning.answer import plain_answer
from planning.events import PhaseEvent, RunEvent
from planning.local import LocalEngine
from planning.records import RunStatus, StepStatus
from planning.replanning import replan_reason
from planning.steps import StepRunner
from planning.store import RunStore
from planning.validate import PlanLimits
from tests.planning.conftest import Kit, make_plan

pytestmark = pytest.mark.anyio

BROKEN = "the switch is broken; repair it and resume the run"
# Step 1 counts (tally), step 2 fails for good (switch), step 3 needs step 2.
FIRST = make_plan(
    {"id": 1, "agent": "ctl", "tool": "count", "args": {"value": 5}},
    {"id": 2, "agent": "ctl", "tool": "check", "args": {"value": "$1"}},
    {"id": 3, "agent": "math", "tool": "add", "args": {"a": "$2", "b": 1}},
)
# The revision: new steps numbered after every used id, one of them using kept step 1.
REVISION = {
    "steps": [
        {"id": 4, "agent": "math", "tool": "multiply", "args": {"a": "$1", "b": 2}, "depends_on": [1]},
        {"id": 5, "agent": "math", "tool": "add", "args": {"a": "$4", "b": 1}, "depends_on": [4]},
    ]
}


@pytest.fixture
def kit() -> Kit:
    return Kit()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RunStore]:
    run_store = RunStore(tmp_path / "runs.sqlite3")
    yield run_store
    run_store.close()


@pytest.fixture
def llm() -> ScriptedLLM:
    return ScriptedLLM([REVISION])


@pytest.fixture
def engine(store: RunStore, kit: Kit, tmp_path: Path, llm: ScriptedLLM) -> Iterator[LocalEngine]:
    catalog = kit.catalog()
    planner = Planner(llm, catalog, PlanLimits(), repair_rounds=1)
    yield LocalEngine(store, StepRunner(catalog), plain_answer, home=tmp_path, replan=Replanner(planner), max_replans=1)
    kit.thread_gates.open_all()


async def test_a_failed_step_is_replanned_and_the_run_succeeds_keeping_what_succeeded(
    engine: LocalEngine, store: RunStore, kit: Kit, llm: ScriptedLLM
) -> None:
    run = store.create_run(FIRST, request="count 5, check it, add one")
    events: list[RunEvent] = []

    record = await engine.run(run.id, events.append)

    assert (record.status, record.error, record.answer) == (RunStatus.SUCCEEDED, None, "add(a=10.0, b=1) = 11")
    assert kit.tally.calls == 1  # step 1 ran once: kept, never re-run
    assert [(s.id, s.status, s.attempts) for s in record.steps] == [
        (1, StepStatus.SUCCEEDED, 1),
        (2, StepStatus.REPLACED, 1),
        (3, StepStatus.REPLACED, 0),
        (4, StepStatus.SUCCEEDED, 1),
        (5, StepStatus.SUCCEEDED, 1),
    ]
    assert record.steps[1].error is not None and record.steps[1].error.message == BROKEN  # kept to read
    assert [(v.version, v.kind, v.replaced) for v in record.versions] == [(1, "planned", []), (2, "replanned", [2, 3])]
    assert record.versions[0].plan == FIRST
    assert record.versions[1].reason == f"step 2 (ctl) failed: {BROKEN}"
    assert record.plan == record.versions[1].plan
    assert [s.id for s in record.plan.steps] == [1, 4, 5]
    assert record.usage.calls == 1  # the replanning call counts
    assert PhaseEvent(run_id=run.id, phase="planning") in events
    assert PhaseEvent(run_id=run.id, phase="steps", total=3) in events
    # The planner saw the kept result as data and the failure, and was told where to number from.
    prompt = llm.calls[0].messages[-1].content
    assert f"step 2 (ctl) failed: {BROKEN}" in prompt
    assert '<data step="1">\n5\n</data>' in prompt
    assert "numbered from 4" in prompt


async def test_a_revision_is_validated_and_its_problems_go_back_to_the_planner(
    store: RunStore, kit: Kit, tmp_path: Path
) -> None:
    reused_id = {"steps": [{"id": 2, "agent": "math", "tool": "multiply", "args": {"a": "$1", "b": 2}}]}
    needs_failed = {"steps": [{"id": 4, "agent": "math", "tool": "add", "args": {"a": "$2", "b": 1}}]}
    llm = ScriptedLLM([reused_id, needs_failed, REVISION])
    catalog = kit.catalog()
    engine = LocalEngine(
        store,
        StepRunner(catalog),
        plain_answer,
        home=tmp_path,
        replan=Replanner(Planner(llm, catalog, PlanLimits(), repair_rounds=2)),
    )
    run = store.create_run(FIRST, request="count 5, check it, add one")

    record = await engine.run(run.id)

    assert record.status is RunStatus.SUCCEEDED
    assert record.usage.calls == 3  # every round counts
    second, third = (call.messages[-1].content for call in llm.calls[1:])
    assert "step 2: that id is already used by this run" in second
    assert "step 4:" in third and "2" in third  # a reference to a step the revision does not have


async def test_the_bound_is_reached_when_the_revision_fails_too(store: RunStore, kit: Kit, tmp_path: Path) -> None:
    again = {"steps": [{"id": 4, "agent": "ctl", "tool": "check", "args": {"value": 6}}]}
    llm = ScriptedLLM([again])  # a second replanning would exhaust the script and fail the test
    catalog = kit.catalog()
    replan = Replanner(Planner(llm, catalog, PlanLimits()))
    engine = LocalEngine(store, StepRunner(catalog), plain_answer, home=tmp_path, replan=replan, max_replans=1)
    run = store.create_run(FIRST, request="count 5, check it, add one")

    record = await engine.run(run.id)

    assert record.status is RunStatus.PARTIAL
    assert [(v.version, v.kind) for v in record.versions] == [(1, "planned"), (2, "replanned")]
    assert len(llm.calls) == 1
    assert record.error == f"step 4: {BROKEN}"
    assert replan_reason(record) is not None  # it still calls for one; the bound says no


async def test_a_revision_that_stays_invalid_ends_the_run_with_why(store: RunStore, kit: Kit, tmp_path: Path) -> None:
    repeat = {"steps": [{"id": 4, "agent": "ctl", "tool": "check", "args": {"value": "$1"}, "depends_on": [1]}]}
    llm = ScriptedLLM([repeat, repeat])
    catalog = kit.catalog()
    replan = Replanner(Planner(llm, catalog, PlanLimits(), repair_rounds=1))
    engine = LocalEngine(store, StepRunner(catalog), plain_answer, home=tmp_path, replan=replan)
    run = store.create_run(FIRST, request="count 5, check it, add one")

    record = await engine.run(run.id)

    assert record.status is RunStatus.PARTIAL
    assert record.versions == []  # nothing was revised
    assert record.usage.calls == 2
    assert record.error is not None
    assert "replanning failed: no valid revision of the plan after 1 repair round(s)" in record.error
    assert "it repeats a step that failed, unchanged" in record.error


async def test_a_hand_written_plan_replans_only_when_its_run_asks(
    engine: LocalEngine, store: RunStore, llm: ScriptedLLM
) -> None:
    plain = store.create_run(FIRST)
    asked = store.create_run(FIRST, max_replans=1)

    not_replanned = await engine.run(plain.id)
    replanned = await engine.run(asked.id)

    assert (not_replanned.status, not_replanned.versions) == (RunStatus.PARTIAL, [])
    assert replanned.status is RunStatus.SUCCEEDED
    assert "no request: the plan was written by hand" in llm.calls[0].messages[1].content


async def test_max_replans_zero_turns_replanning_off_for_a_run(
    engine: LocalEngine, store: RunStore, llm: ScriptedLLM
) -> None:
    run = store.create_run(FIRST, request="count 5, check it, add one", max_replans=0)

    record = await engine.run(run.id)

    assert (record.status, record.versions, llm.calls) == (RunStatus.PARTIAL, [], [])


async def test_a_run_whose_final_result_is_empty_is_replanned(store: RunStore, kit: Kit, tmp_path: Path) -> None:
    def reply(messages: Sequence[Message], output: type[BaseModel], role: str) -> dict[str, Any]:
        return {"steps": [{"id": 2, "agent": "string", "tool": "concat", "args": {"a": "found", "b": "!"}}]}

    catalog = kit.catalog()
    replan = Replanner(Planner(ScriptedLLM(reply), catalog, PlanLimits()))
    engine = LocalEngine(store, StepRunner(catalog), plain_answer, home=tmp_path, replan=replan)
    run = store.create_run(
        make_plan({"id": 1, "agent": "string", "tool": "concat", "args": {"a": "", "b": ""}}), request="find it"
    )

    record = await engine.run(run.id)

    assert (record.status, record.answer) == (
        RunStatus.SUCCEEDED,
        'concat(a="", b="") = ""\nconcat(a="found", b="!") = "found!"',
    )
    assert record.versions[1].reason == "step 1 succeeded with an empty result, which does not answer the request"
    assert [(s.id, s.status) for s in record.steps] == [(1, StepStatus.SUCCEEDED), (2, StepStatus.SUCCEEDED)]


async def test_a_revision_of_a_run_that_asked_for_approval_waits_for_it(
    engine: LocalEngine, store: RunStore, kit: Kit
) -> None:
    run = store.create_run(FIRST, request="count 5, check it, add one", approval="required")
    assert store.await_approval(run.id, "asked").status is RunStatus.AWAITING_APPROVAL
    assert store.approve(run.id, 1)

    waiting = await engine.run(run.id)

    assert waiting.status is RunStatus.AWAITING_APPROVAL
    assert waiting.awaiting == "the run asked for approval of its revised plan (version 2)"
    assert [(s.id, s.status) for s in waiting.steps if s.status is StepStatus.PENDING] == [
        (4, StepStatus.PENDING),
        (5, StepStatus.PENDING),
    ]
    assert store.approve(waiting.id, 2)

    done = await engine.run(run.id)

    assert done.status is RunStatus.SUCCEEDED
    assert kit.tally.calls == 1
    assert done.approved_version == 2
