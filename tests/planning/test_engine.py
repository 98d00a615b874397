"""LocalEngine: plans run through real Flyte local mode and every change lands in the run store.

Task bodies run on Flyte's own loop thread, so the controllable tools here wait on threading
events (tests.planning.conftest.ThreadGates) and the test waits for them off its loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from agents.llm.protocol import Usage
from planning.answer import RunAnswer
from planning.errors import RunBusyError
from planning.events import PhaseEvent, RunEvent, StepEvent
from planning.local import SCRATCH_DIR, LocalEngine
from planning.records import RunRecord, RunStatus, StepError, StepOutcome, StepRecord, StepStatus
from planning.steps import StepRunner
from planning.store import RunStore, StoreUnavailableError
from tests.planning.conftest import Kit, make_plan

SYNTHESIS_USAGE = Usage(calls=1, prompt_tokens=12, completion_tokens=3, latency_s=0.5)


async def synthesize(record: RunRecord) -> RunAnswer:
    """Stands in for the synthesis LLM: the answer lists each step's result."""
    return RunAnswer(text=", ".join(f"{s.id}={s.result}" for s in record.steps), source="llm", usage=SYNTHESIS_USAGE)


@pytest.fixture
def engine(store: RunStore, kit: Kit, tmp_path: Path) -> Iterator[LocalEngine]:
    yield LocalEngine(store, StepRunner(kit.catalog()), synthesize, home=tmp_path)
    kit.thread_gates.open_all()  # never leave a tool thread waiting


def without_times(step: StepRecord) -> StepRecord:
    return step.model_copy(update={"started_at": None, "finished_at": None})


def event(run_id: str, step_id: int, agent: str, status: StepStatus, done: int, total: int) -> StepEvent:
    return StepEvent(run_id=run_id, step_id=step_id, agent=agent, status=status, done=done, total=total)


@pytest.mark.anyio
async def test_a_tool_plan_runs_on_flyte_and_its_results_and_timings_are_recorded(
    engine: LocalEngine, store: RunStore
) -> None:
    plan = make_plan(
        {"id": 1, "agent": "math", "tool": "add", "args": {"a": 2, "b": 3}},
        {"id": 2, "agent": "math", "tool": "multiply", "args": {"a": "$1", "b": 1.5}},
        {"id": 3, "agent": "string", "tool": "concat", "args": {"a": "result: ${2}", "b": "!"}},
    )
    run = store.create_run(plan, request="compute")

    record = await engine.run(run.id)

    assert record == store.get_run(run.id)
    assert record.model_copy(update={"started_at": None, "finished_at": None, "steps": []}) == RunRecord(
        id=run.id,
        status=RunStatus.SUCCEEDED,
        request="compute",
        engine="local",
        created_at=run.created_at,
        step_count=3,
        plan=plan,
        answer="1=5, 2=7.5, 3=result: 7.5!",
        answer_source="llm",
        usage=SYNTHESIS_USAGE,
        steps=[],
    )
    assert [without_times(s) for s in record.steps] == [
        StepRecord(id=1, agent="math", status=StepStatus.SUCCEEDED, attempts=1, result=5),
        StepRecord(id=2, agent="math", status=StepStatus.SUCCEEDED, attempts=1, result=7.5),
        StepRecord(id=3, agent="string", status=StepStatus.SUCCEEDED, attempts=1, result="result: 7.5!"),
    ]
    stamps = [record.started_at]
    for step in record.steps:
        stamps += [step.started_at, step.finished_at]
    stamps.append(record.finished_at)
    present = [t for t in stamps if t is not None]
    assert len(present) == len(stamps)
    assert present == sorted(present)


@pytest.mark.anyio
async def test_integers_beyond_64_bits_and_infinity_cross_the_flyte_task_boundary_exactly(
    engine: LocalEngine, store: RunStore
) -> None:
    big = 10**30
    plan = make_plan(
        {"id": 1, "agent": "math", "tool": "add", "args": {"a": big, "b": 1}},
        {"id": 2, "agent": "math", "tool": "add", "args": {"a": "$1", "b": 1}},
        {"id": 3, "agent": "math", "tool": "multiply", "args": {"a": 1e308, "b": 10}},
        {"id": 4, "agent": "math", "tool": "kind_of", "args": {"value": "$3"}},
    )
    run = store.create_run(plan)

    record = await engine.run(run.id)

    assert [(s.status, s.result) for s in record.steps] == [
        (StepStatus.SUCCEEDED, big + 1),
        (StepStatus.SUCCEEDED, big + 2),
        (StepStatus.SUCCEEDED, float("inf")),
        (StepStatus.SUCCEEDED, "float"),
    ]


@pytest.mark.anyio
async def test_every_step_start_and_finish_and_the_answer_phase_are_reported(
    engine: LocalEngine, store: RunStore
) -> None:
    plan = make_plan(
        {"id": 1, "agent": "math", "tool": "add", "args": {"a": 1, "b": 1}},
        {"id": 2, "agent": "math", "tool": "fail", "args": {"message": "boom"}, "depends_on": [1]},
        {"id": 3, "agent": "math", "tool": "add", "args": {"a": "$2", "b": 1}},
    )
    run = store.create_run(plan)
    events: list[RunEvent] = []

    record = await engine.run(run.id, events.append)

    assert events == [
        event(run.id, 1, "math", StepStatus.RUNNING, 0, 3),
        event(run.id, 1, "math", StepStatus.SUCCEEDED, 1, 3),
        event(run.id, 2, "math", StepStatus.RUNNING, 1, 3),
        event(run.id, 2, "math", StepStatus.FAILED, 2, 3),
        event(run.id, 3, "math", StepStatus.SKIPPED, 3, 3),
        PhaseEvent(run_id=run.id, phase="answer"),
    ]
    assert (record.status, record.error) == (RunStatus.PARTIAL, "step 2: boom; step 3: step 2 failed: boom")
    assert [without_times(s) for s in record.steps] == [
        StepRecord(id=1, agent="math", status=StepStatus.SUCCEEDED, attempts=1, result=2),
        StepRecord(
            id=2, agent="math", status=StepStatus.FAILED, attempts=1, error=StepError(kind="tool_error", message="boom")
        ),
        StepRecord(
            id=3,
            agent="math",
            status=StepStatus.SKIPPED,
            attempts=0,
            error=StepError(kind="dependency", message="step 2 failed: boom"),
        ),
    ]


@pytest.mark.anyio
async def test_cancelling_the_awaiting_task_leaves_the_run_and_its_steps_cancelled(
    engine: LocalEngine, store: RunStore, kit: Kit
) -> None:
    plan = make_plan(
        {"id": 1, "agent": "ctl", "tool": "hold_thread", "args": {"name": "slow"}},
        {"id": 2, "agent": "string", "tool": "concat", "args": {"a": "$1", "b": "!"}},
    )
    run = store.create_run(plan)

    task = asyncio.create_task(engine.run(run.id))
    await kit.thread_gates.wait_started("slow")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    record = store.get_run(run.id)
    assert (record.status, record.error) == (RunStatus.CANCELLED, "the run was cancelled; resume it to finish")
    assert [without_times(s) for s in record.steps] == [
        StepRecord(
            id=1,
            agent="ctl",
            status=StepStatus.CANCELLED,
            attempts=1,
            error=StepError(kind="cancelled", message="the run was cancelled"),
        ),
        StepRecord(id=2, agent="string", status=StepStatus.CANCELLED, attempts=0),
    ]
    assert not engine.executing(run.id)
    assert await engine.cancel(run.id) == record  # finished: nothing to cancel


@pytest.mark.anyio
async def test_cancel_by_run_id_stops_a_run_executing_in_this_process(
    engine: LocalEngine, store: RunStore, kit: Kit
) -> None:
    plan = make_plan({"id": 1, "agent": "ctl", "tool": "hold_thread", "args": {"name": "slow"}})
    run = store.create_run(plan)

    task = asyncio.create_task(engine.run(run.id))
    await kit.thread_gates.wait_started("slow")
    assert engine.executing(run.id)
    await engine.cancel(run.id)
    record = await asyncio.wait_for(task, timeout=30)

    assert record.status is RunStatus.CANCELLED
    assert [s.status for s in record.steps] == [StepStatus.CANCELLED]


@pytest.mark.anyio
async def test_a_run_cannot_execute_twice_at_once_in_one_process(
    engine: LocalEngine, store: RunStore, kit: Kit
) -> None:
    run = store.create_run(make_plan({"id": 1, "agent": "ctl", "tool": "hold_thread", "args": {"name": "slow"}}))
    task = asyncio.create_task(engine.run(run.id))
    await kit.thread_gates.wait_started("slow")

    with pytest.raises(RunBusyError, match="is already executing in this process"):
        await engine.run(run.id)

    kit.thread_gates.open("slow")
    assert (await asyncio.wait_for(task, timeout=30)).status is RunStatus.SUCCEEDED


@pytest.mark.anyio
async def test_resuming_a_partial_run_reruns_only_the_steps_that_did_not_succeed(
    engine: LocalEngine, store: RunStore, kit: Kit
) -> None:
    plan = make_plan(
        {"id": 1, "agent": "ctl", "tool": "count", "args": {"value": 5}},
        {"id": 2, "agent": "ctl", "tool": "check", "args": {"value": "$1"}},
        {"id": 3, "agent": "math", "tool": "add", "args": {"a": "$2", "b": 1}},
        {"id": 4, "agent": "math", "tool": "add", "args": {"a": 1, "b": 1}},
    )
    run = store.create_run(plan)
    broken = "the switch is broken; repair it and resume the run"

    first = await engine.run(run.id)

    assert (first.status, first.answer) == (RunStatus.PARTIAL, "1=5, 2=None, 3=None, 4=2")
    assert [(s.id, s.status) for s in first.steps] == [
        (1, StepStatus.SUCCEEDED),
        (2, StepStatus.FAILED),
        (3, StepStatus.SKIPPED),
        (4, StepStatus.SUCCEEDED),
    ]
    assert first.error == f"step 2: {broken}; step 3: step 2 failed: {broken}"

    kit.switch.broken = False
    events: list[RunEvent] = []
    second = await engine.run(run.id, events.append)

    assert kit.tally.calls == 1
    assert (second.status, second.error, second.answer) == (RunStatus.SUCCEEDED, None, "1=5, 2=5, 3=6, 4=2")
    assert second.steps[0] == first.steps[0]  # not run again: same record, same timestamps
    assert second.steps[3] == first.steps[3]
    assert [without_times(s) for s in second.steps[1:3]] == [
        StepRecord(id=2, agent="ctl", status=StepStatus.SUCCEEDED, attempts=2, result=5),
        StepRecord(id=3, agent="math", status=StepStatus.SUCCEEDED, attempts=1, result=6),
    ]
    assert events == [
        event(run.id, 2, "ctl", StepStatus.RUNNING, 2, 4),
        event(run.id, 2, "ctl", StepStatus.SUCCEEDED, 3, 4),
        event(run.id, 3, "math", StepStatus.RUNNING, 3, 4),
        event(run.id, 3, "math", StepStatus.SUCCEEDED, 4, 4),
        PhaseEvent(run_id=run.id, phase="answer"),
    ]


class FailsOnce(RunStore):
    """A store whose first `add_run_usage` breaks like a bug would: Flyte retries the orchestrator."""

    failed = False

    def add_run_usage(self, run_id: str, usage: Usage) -> None:
        if not self.failed:
            self.failed = True
            raise RuntimeError("injected orchestrator failure after the steps succeeded")
        super().add_run_usage(run_id, usage)


@pytest.mark.anyio
async def test_a_flyte_retry_of_the_orchestrator_starts_from_the_stored_outcomes(kit: Kit, tmp_path: Path) -> None:
    store = FailsOnce(tmp_path / "once.sqlite3")
    engine = LocalEngine(store, StepRunner(kit.catalog()), synthesize, home=tmp_path)
    run = store.create_run(make_plan({"id": 1, "agent": "ctl", "tool": "count", "args": {"value": 7}}))

    record = await engine.run(run.id)

    assert store.failed  # the first attempt of run_plan did fail
    assert (record.status, record.steps[0].status, record.steps[0].attempts) == (
        RunStatus.SUCCEEDED,
        StepStatus.SUCCEEDED,
        1,
    )
    assert kit.tally.calls == 1  # the succeeded step never ran again
    store.close()


class FullAfter(RunStore):
    """A store whose disk fills once `writes` step results have been written."""

    def __init__(self, path: Path, writes: int) -> None:
        super().__init__(path)
        self.writes = writes

    def step_finished(self, run_id: str, step_id: int, outcome: StepOutcome) -> None:
        if self.writes == 0:
            raise StoreUnavailableError(f"{self.path}: the disk is full (injected)", disk_full=True)
        self.writes -= 1
        super().step_finished(run_id, step_id, outcome)


@pytest.mark.anyio
async def test_a_store_that_fills_mid_run_stops_the_run_records_why_and_leaves_no_step_running(
    kit: Kit, tmp_path: Path
) -> None:
    store = FullAfter(tmp_path / "full.sqlite3", writes=1)
    engine = LocalEngine(store, StepRunner(kit.catalog()), synthesize, home=tmp_path)
    run = store.create_run(
        make_plan(
            {"id": 1, "agent": "ctl", "tool": "count", "args": {"value": 1}},
            {"id": 2, "agent": "ctl", "tool": "count", "args": {"value": "$1"}},
            {"id": 3, "agent": "ctl", "tool": "count", "args": {"value": "$2"}},
        )
    )

    record = await engine.run(run.id)

    assert record.status is RunStatus.FAILED
    assert record.error is not None and "the disk is full" in record.error and "Resume it" in record.error
    assert [s.status for s in record.steps] == [StepStatus.SUCCEEDED, StepStatus.PENDING, StepStatus.PENDING]
    assert kit.tally.calls == 2  # step 3 never started unrecorded

    store.writes = 10  # space is free again: resume finishes the run without step 1
    store.reset_unfinished_steps(run.id)
    resumed = await engine.run(run.id)
    assert resumed.status is RunStatus.SUCCEEDED
    assert [s.attempts for s in resumed.steps] == [1, 2, 1]
    assert store.integrity_check() == "ok"
    store.close()


@pytest.mark.anyio
async def test_flyte_keeps_its_local_scratch_in_the_data_dir_and_removes_it_after_the_run(
    engine: LocalEngine, store: RunStore, tmp_path: Path
) -> None:
    run = store.create_run(make_plan({"id": 1, "agent": "math", "tool": "add", "args": {"a": 1, "b": 2}}))
    outside = Path("/tmp/flyte/metadata") / run.id

    record = await engine.run(run.id)

    assert record.status is RunStatus.SUCCEEDED
    assert not outside.exists()
    assert not (tmp_path / SCRATCH_DIR / run.id).exists()


@pytest.mark.anyio
async def test_two_engines_in_one_process_run_their_steps_with_their_own_runners(
    store: RunStore, kit: Kit, tmp_path: Path
) -> None:
    async def answer_a(record: RunRecord) -> RunAnswer:
        return RunAnswer(text="engine A", source="results")

    async def answer_b(record: RunRecord) -> RunAnswer:
        return RunAnswer(text="engine B", source="results")

    engine_a = LocalEngine(store, StepRunner(kit.catalog()), answer_a, home=tmp_path / "a")
    engine_b = LocalEngine(store, StepRunner(kit.catalog()), answer_b, home=tmp_path / "b")
    plan = make_plan({"id": 1, "agent": "ctl", "tool": "hold_thread", "args": {"name": "shared"}})
    run_a, run_b = store.create_run(plan), store.create_run(plan)

    both = asyncio.gather(engine_a.run(run_a.id), engine_b.run(run_b.id))
    await kit.thread_gates.wait_started("shared")
    assert (engine_a.executing(run_a.id), engine_a.executing(run_b.id)) == (True, False)
    kit.thread_gates.open("shared")
    record_a, record_b = await asyncio.wait_for(both, timeout=60)

    assert (record_a.answer, record_b.answer) == ("engine A", "engine B")
    assert (record_a.status, record_b.status) == (RunStatus.SUCCEEDED, RunStatus.SUCCEEDED)


@pytest.fixture
def flyte_local_run_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Flyte's local run store in a private HOME, with Flyte set up afresh (and put back after)."""
    from flyte import _initialize
    from flyte._persistence._db import LocalDB

    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)  # no Flyte config file of the project is found
    saved = _initialize._init_config
    _initialize._init_config = None
    LocalDB.close_sync()
    yield home / ".flyte" / "local-cache" / "cache.db"
    LocalDB.close_sync()
    _initialize._init_config = saved


@pytest.mark.anyio
async def test_a_local_run_is_recorded_in_flytes_own_local_run_store_and_listed_from_it(
    store: RunStore, kit: Kit, tmp_path: Path, flyte_local_run_store: Path
) -> None:
    engine = LocalEngine(store, StepRunner(kit.catalog()), synthesize, home=tmp_path, flyte_persistence=True)
    run = store.create_run(
        make_plan({"id": 1, "agent": "math", "tool": "add", "args": {"a": 2, "b": 3}}), request="two plus three"
    )

    record = await engine.run(run.id)
    listed = await engine.list_runs()

    assert await anyio.Path(flyte_local_run_store).is_file()
    assert [(r.id, r.flyte_run_name, r.phase, r.task_name, r.status, r.request, r.step_count) for r in listed] == [
        (run.id, run.id, "succeeded", "planner_mcp.run_plan", RunStatus.SUCCEEDED, "two plus three", 1)
    ]
    assert listed[0].planner_run_id == run.id and listed[0].engine == "local"
    assert record.status is RunStatus.SUCCEEDED
    assert await engine.list_runs(phase="failed") == []
    assert await engine.list_runs(task_name="other.task") == []


class CountingStore(RunStore):
    """Counts how often the whole run is read back."""

    reads = 0

    def get_run(self, run_id: str) -> RunRecord:
        self.reads += 1
        return super().get_run(run_id)


@pytest.mark.anyio
async def test_a_run_reads_itself_back_from_the_store_once_before_and_once_after(kit: Kit, tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "runs.sqlite3")
    engine = LocalEngine(store, StepRunner(kit.catalog()), synthesize, home=tmp_path)
    plan = make_plan(
        {"id": 1, "agent": "math", "tool": "add", "args": {"a": 2, "b": 3}},
        {"id": 2, "agent": "math", "tool": "multiply", "args": {"a": "$1", "b": 2}},
        {"id": 3, "agent": "string", "tool": "concat", "args": {"a": "x", "b": "y"}},
    )
    run = store.create_run(plan, request="compute")

    record = await engine.run(run.id)

    assert (record.status, record.answer) == (RunStatus.SUCCEEDED, "1=5, 2=10.0, 3=xy")
    assert store.reads == 2  # the plan and what succeeded before; the finished run
    store.close()


@pytest.mark.anyio
async def test_a_local_run_store_that_cannot_be_opened_leaves_runs_unrecorded_there_and_running(
    store: RunStore, kit: Kit, tmp_path: Path, flyte_local_run_store: Path
) -> None:
    flyte_local_run_store.parent.parent.parent.mkdir(parents=True)
    flyte_local_run_store.parent.parent.write_text("not a directory")  # ~/.flyte is a file
    engine = LocalEngine(store, StepRunner(kit.catalog()), synthesize, home=tmp_path, flyte_persistence=True)
    run = store.create_run(make_plan({"id": 1, "agent": "math", "tool": "add", "args": {"a": 2, "b": 3}}))

    record = await engine.run(run.id)

    assert (record.status, engine.flyte_persistence) == (RunStatus.SUCCEEDED, False)
