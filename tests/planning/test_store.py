"""The SQLite run store: round trips, listing and pagination, idempotency, migrations, durability."""

from __future__ import annotations

import base64
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agents.llm.protocol import Usage
from planning.plan import Plan
from planning.records import RunRecord, RunStatus, StepError, StepOutcome, StepRecord, StepStatus
from planning.store import MIGRATIONS, BadCursorError, RunNotFoundError, RunStore, StoreError
from tests.planning.conftest import make_plan

REPO_ROOT = Path(__file__).resolve().parents[2]

PLAN = make_plan(
    {"id": 1, "agent": "math", "tool": "add", "args": {"a": 1, "b": 2}},
    {"id": 2, "agent": "string", "task": "Describe $1", "timeout_s": 5},
)


def pending_steps(plan: Plan) -> list[StepRecord]:
    return [StepRecord(id=s.id, agent=s.agent, status=StepStatus.PENDING) for s in plan.steps]


def test_a_created_run_reads_back_whole_with_pending_steps(store: RunStore) -> None:
    before = datetime.now(UTC)
    usage = Usage(calls=1, prompt_tokens=100, completion_tokens=20, latency_s=1.5)

    created = store.create_run(PLAN, request="add then describe", usage=usage)

    assert created == RunRecord(
        id=created.id,
        status=RunStatus.PENDING,
        request="add then describe",
        engine="local",
        created_at=created.created_at,
        step_count=2,
        plan=PLAN,
        usage=usage,
        steps=pending_steps(PLAN),
    )
    assert before <= created.created_at <= datetime.now(UTC)
    assert store.get_run(created.id) == created


def test_a_finished_run_keeps_every_step_outcome_and_the_usage(store: RunStore) -> None:
    run = store.create_run(PLAN, request="r", usage=Usage(calls=1))
    step_usage = Usage(calls=2, prompt_tokens=30, completion_tokens=7, latency_s=0.5)
    store.start_run(run.id, owner="me")
    store.step_started(run.id, 1)
    store.step_finished(run.id, 1, StepOutcome(status=StepStatus.SUCCEEDED, result={"sum": [3, 3.5]}))
    store.step_started(run.id, 2)
    store.step_finished(
        run.id,
        2,
        StepOutcome(
            status=StepStatus.FAILED,
            error=StepError(kind="llm_error", message="no model"),
            summary="tried",
            usage=step_usage,
        ),
    )
    store.add_run_usage(run.id, Usage(calls=1, prompt_tokens=5))
    store.finish_run(run.id, RunStatus.PARTIAL, answer="3", error="step 2: no model")

    record = store.get_run(run.id)

    steps = record.steps
    assert record == RunRecord(
        id=run.id,
        status=RunStatus.PARTIAL,
        request="r",
        engine="local",
        created_at=run.created_at,
        finished_at=record.finished_at,
        started_at=record.started_at,
        step_count=2,
        plan=PLAN,
        answer="3",
        error="step 2: no model",
        usage=Usage(calls=2, prompt_tokens=5),
        steps=[
            StepRecord(
                id=1,
                agent="math",
                status=StepStatus.SUCCEEDED,
                attempts=1,
                result={"sum": [3, 3.5]},
                started_at=steps[0].started_at,
                finished_at=steps[0].finished_at,
            ),
            StepRecord(
                id=2,
                agent="string",
                status=StepStatus.FAILED,
                attempts=1,
                summary="tried",
                error=StepError(kind="llm_error", message="no model"),
                started_at=steps[1].started_at,
                finished_at=steps[1].finished_at,
                usage=step_usage,
            ),
        ],
    )
    stamps = [
        record.started_at,
        steps[0].started_at,
        steps[0].finished_at,
        steps[1].started_at,
        steps[1].finished_at,
        record.finished_at,
    ]
    present = [t for t in stamps if t is not None]
    assert present == sorted(present)
    assert len(present) == len(stamps)
    assert record.total_usage() == Usage(calls=4, prompt_tokens=35, completion_tokens=7, latency_s=0.5)


def test_each_start_of_a_step_counts_as_an_attempt(store: RunStore) -> None:
    run = store.create_run(PLAN)
    store.step_started(run.id, 1)
    store.step_started(run.id, 1)
    store.step_finished(run.id, 1, StepOutcome(status=StepStatus.SUCCEEDED, result=3, attempts=1))

    assert store.get_run(run.id).steps[0].attempts == 2


def test_runs_are_listed_newest_first(store: RunStore) -> None:
    ids = [store.create_run(PLAN, request=f"run {i}").id for i in range(3)]

    page, cursor = store.list_runs()

    assert [(s.id, s.request, s.step_count, s.status) for s in page] == [
        (ids[2], "run 2", 2, RunStatus.PENDING),
        (ids[1], "run 1", 2, RunStatus.PENDING),
        (ids[0], "run 0", 2, RunStatus.PENDING),
    ]
    assert cursor is None


def test_runs_can_be_listed_by_status(store: RunStore) -> None:
    done, failed, _pending = (store.create_run(PLAN).id for _ in range(3))
    store.finish_run(done, RunStatus.SUCCEEDED)
    store.finish_run(failed, RunStatus.FAILED)

    page, _ = store.list_runs(status=RunStatus.SUCCEEDED)

    assert [s.id for s in page] == [done]
    assert page[0].finished_at is not None


def test_cursor_pagination_visits_every_run_once_newest_first(store: RunStore) -> None:
    ids = [store.create_run(PLAN).id for _ in range(7)]
    pages: list[list[str]] = []
    cursor: str | None = None

    while True:
        page, cursor = store.list_runs(limit=3, cursor=cursor)
        pages.append([s.id for s in page])
        if cursor is None:
            break

    assert pages == [ids[6:3:-1], ids[3:0:-1], ids[0:1]]


def test_cursor_pagination_respects_the_status_filter(store: RunStore) -> None:
    ids = [store.create_run(PLAN).id for _ in range(5)]
    for run_id in ids[::2]:
        store.finish_run(run_id, RunStatus.SUCCEEDED)

    first, cursor = store.list_runs(limit=2, status=RunStatus.SUCCEEDED)
    second, last_cursor = store.list_runs(limit=2, status=RunStatus.SUCCEEDED, cursor=cursor)

    assert ([s.id for s in first], [s.id for s in second], last_cursor) == ([ids[4], ids[2]], [ids[0]], None)


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        base64.urlsafe_b64encode(b'"just a string"').decode(),
        base64.urlsafe_b64encode(b"[1, 2, 3]").decode(),
        base64.urlsafe_b64encode(b'["not a time", "r1"]').decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_a_cursor_the_store_did_not_hand_out_is_refused_with_the_fix(store: RunStore, cursor: str) -> None:
    with pytest.raises(BadCursorError) as info:
        store.list_runs(cursor=cursor)

    assert str(info.value) == (
        f"cursor {cursor!r:.60} is not one this store handed out; pass next_cursor from the last page"
    )


def test_an_unknown_run_id_is_refused_with_where_to_find_the_ids(store: RunStore) -> None:
    expected = "no run with id 'r-missing'; call list_runs (or `planner-mcp runs`) for the ids"

    with pytest.raises(RunNotFoundError) as info:
        store.get_run("r-missing")
    assert str(info.value) == expected

    with pytest.raises(RunNotFoundError):
        store.finish_run("r-missing", RunStatus.FAILED)


def test_the_same_idempotency_key_returns_the_same_run(store: RunStore) -> None:
    first = store.create_run(PLAN, request="once", idempotency_key="key-1")

    again = store.create_run(make_plan({"id": 1, "agent": "math", "task": "other"}), idempotency_key="key-1")
    other = store.create_run(PLAN, request="once", idempotency_key="key-2")

    assert again == first
    assert other.id != first.id
    assert {s.id for s in store.list_runs()[0]} == {first.id, other.id}


def test_the_store_uses_write_ahead_logging(store: RunStore) -> None:
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.integrity_check() == "ok"


def test_a_database_at_schema_version_1_is_upgraded_on_open_and_keeps_its_runs(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    plan = make_plan({"id": 1, "agent": "math", "tool": "add", "args": {"a": 1, "b": 2}})
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0])
    db.execute("PRAGMA user_version = 1")
    db.execute(
        "INSERT INTO runs (id, created_at, finished_at, request, plan, status, answer, engine)"
        " VALUES ('r-old', 1700000000.0, 1700000002.5, 'old request', ?, 'succeeded', '3', 'local')",
        (plan.model_dump_json(),),
    )
    db.execute(
        "INSERT INTO steps (run_id, step_id, agent, status, attempts, result, started_at, finished_at)"
        " VALUES ('r-old', 1, 'math', 'succeeded', 1, '3', 1700000001.0, 1700000002.0)"
    )
    db.commit()
    db.close()

    store = RunStore(path)
    try:
        assert store.schema_version == len(MIGRATIONS)
        assert store.get_run("r-old") == RunRecord(
            id="r-old",
            status=RunStatus.SUCCEEDED,
            request="old request",
            engine="local",
            created_at=datetime.fromtimestamp(1700000000.0, UTC),
            finished_at=datetime.fromtimestamp(1700000002.5, UTC),
            step_count=1,
            plan=plan,
            answer="3",
            steps=[
                StepRecord(
                    id=1,
                    agent="math",
                    status=StepStatus.SUCCEEDED,
                    attempts=1,
                    result=3,
                    started_at=datetime.fromtimestamp(1700000001.0, UTC),
                    finished_at=datetime.fromtimestamp(1700000002.0, UTC),
                )
            ],
        )
        # The later migrations' columns work: idempotency keys, status listing.
        new = store.create_run(plan, idempotency_key="k")
        assert store.create_run(plan, idempotency_key="k").id == new.id
        assert [s.id for s in store.list_runs(status=RunStatus.SUCCEEDED)[0]] == ["r-old"]
    finally:
        store.close()


def test_opening_a_store_again_changes_nothing(tmp_path: Path) -> None:
    first = RunStore(tmp_path / "runs.sqlite3")
    run = first.create_run(PLAN)
    first.close()

    second = RunStore(tmp_path / "runs.sqlite3")
    try:
        assert (second.schema_version, second.get_run(run.id)) == (len(MIGRATIONS), run)
    finally:
        second.close()


def test_a_database_from_a_newer_planner_mcp_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "newer.sqlite3"
    newer = len(MIGRATIONS) + 1
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {newer}")
    db.close()

    with pytest.raises(StoreError) as info:
        RunStore(path)

    assert str(info.value) == (
        f"{path} has schema version {newer}, newer than this planner-mcp ({len(MIGRATIONS)}); "
        "upgrade planner-mcp or point PLANNER_MCP_HOME elsewhere"
    )


WRITER = """
import os, sys
from pathlib import Path
from planning.plan import Plan
from planning.records import RunStatus, StepOutcome, StepStatus
from planning.store import RunStore

store = RunStore(Path(sys.argv[1]))
plan = Plan.model_validate({"steps": [{"id": 1, "agent": "math", "tool": "add", "args": {"a": 1, "b": 2}}]})
run = store.create_run(plan, request="survive a restart")
store.start_run(run.id, "writer")
store.step_started(run.id, 1)
store.step_finished(run.id, 1, StepOutcome(status=StepStatus.SUCCEEDED, result=3))
store.finish_run(run.id, RunStatus.SUCCEEDED, answer="3")
sys.stdout.write(run.id)
sys.stdout.flush()
os._exit(0)  # no close, no cleanup: only what was committed counts
"""

READER = """
import sys
from pathlib import Path
from planning.store import RunStore

sys.stdout.write(RunStore(Path(sys.argv[1])).get_run(sys.argv[2]).model_dump_json())
"""


def run_python(code: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_run_written_by_one_process_is_read_by_later_processes(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite3"

    run_id = run_python(WRITER, str(path))
    read_elsewhere = RunRecord.model_validate_json(run_python(READER, str(path), run_id))

    store = RunStore(path)
    try:
        record = store.get_run(run_id)
    finally:
        store.close()
    assert read_elsewhere == record
    assert (record.status, record.request, record.answer) == (RunStatus.SUCCEEDED, "survive a restart", "3")
    assert [(s.status, s.result, s.attempts) for s in record.steps] == [(StepStatus.SUCCEEDED, 3, 1)]


def test_a_run_is_claimed_unless_a_live_owner_runs_it(store: RunStore) -> None:
    alive = {"live-owner"}
    run = store.create_run(PLAN)

    assert store.claim_run(run.id, "live-owner", alive.__contains__) is True
    assert store.get_run(run.id).status is RunStatus.RUNNING
    assert store.claim_run(run.id, "second", alive.__contains__) is False
    assert store.running_owners() == {"live-owner": [run.id]}

    alive.clear()  # the owner died
    assert store.claim_run(run.id, "second", alive.__contains__) is True
    assert store.running_owners() == {"second": [run.id]}

    with pytest.raises(RunNotFoundError):
        store.claim_run("r-missing", "second", alive.__contains__)


def test_runs_of_a_dead_process_become_interrupted_with_their_running_steps_pending(store: RunStore) -> None:
    run = store.create_run(PLAN)
    finished = store.create_run(PLAN)
    store.start_run(run.id, "dead")
    store.step_started(run.id, 1)
    store.step_finished(run.id, 1, StepOutcome(status=StepStatus.SUCCEEDED, result=3))
    store.step_started(run.id, 2)
    store.finish_run(finished.id, RunStatus.SUCCEEDED)

    store.mark_interrupted([run.id, finished.id])

    record = store.get_run(run.id)
    assert (record.status, record.error) == (
        RunStatus.INTERRUPTED,
        "its process ended before the run finished; resume it",
    )
    assert [(s.id, s.status, s.result) for s in record.steps] == [
        (1, StepStatus.SUCCEEDED, 3),
        (2, StepStatus.PENDING, None),
    ]
    assert store.get_run(finished.id).status is RunStatus.SUCCEEDED


def test_before_a_resume_every_step_that_did_not_succeed_is_pending_again(store: RunStore) -> None:
    plan = make_plan(
        {"id": 1, "agent": "math", "task": "a"},
        {"id": 2, "agent": "math", "task": "b"},
        {"id": 3, "agent": "math", "task": "c", "depends_on": [2]},
    )
    run = store.create_run(plan)
    store.step_started(run.id, 1)
    store.step_finished(run.id, 1, StepOutcome(status=StepStatus.SUCCEEDED, result=1))
    store.step_started(run.id, 2)
    store.step_finished(
        run.id, 2, StepOutcome(status=StepStatus.FAILED, error=StepError(kind="tool_error", message="no"))
    )
    store.step_finished(
        run.id, 3, StepOutcome(status=StepStatus.SKIPPED, attempts=0, error=StepError(kind="dependency", message="2"))
    )
    store.finish_run(run.id, RunStatus.PARTIAL, answer="half", error="step 2: no")
    succeeded = store.get_run(run.id).steps[0]

    store.reset_unfinished_steps(run.id)

    record = store.get_run(run.id)
    assert (record.answer, record.error) == (None, None)
    assert record.steps == [
        succeeded,
        StepRecord(id=2, agent="math", status=StepStatus.PENDING, attempts=1),
        StepRecord(id=3, agent="math", status=StepStatus.PENDING, attempts=0),
    ]


# -- plan versions and approval --------------------------------------------------------------------

THREE = make_plan(
    {"id": 1, "agent": "math", "tool": "add", "args": {"a": 1, "b": 2}},
    {"id": 2, "agent": "math", "tool": "add", "args": {"a": "$1", "b": 1}},
    {"id": 3, "agent": "math", "tool": "add", "args": {"a": "$2", "b": 1}},
)


def _partial(store: RunStore) -> RunRecord:
    """A run of THREE whose step 1 succeeded, step 2 failed and step 3 was skipped."""
    run = store.create_run(THREE, request="add")
    store.step_finished(run.id, 1, StepOutcome(status=StepStatus.SUCCEEDED, result=3))
    failed = StepError(kind="tool_error", message="broken")
    store.step_finished(run.id, 2, StepOutcome(status=StepStatus.FAILED, error=failed))
    store.step_finished(run.id, 3, StepOutcome(status=StepStatus.SKIPPED, attempts=0))
    store.finish_run(run.id, RunStatus.PARTIAL)
    return store.get_run(run.id)


def test_a_revision_keeps_succeeded_steps_marks_the_dropped_ones_replaced_and_records_both_versions(
    store: RunStore,
) -> None:
    run = _partial(store)
    revised_plan = make_plan(
        {"id": 1, "agent": "math", "tool": "add", "args": {"a": 1, "b": 2}},
        {"id": 4, "agent": "string", "task": "describe $1", "depends_on": [1]},
    )

    revised = store.revise_plan(
        run.id, revised_plan, kind="replanned", reason="step 2 failed", usage=Usage(calls=1, prompt_tokens=9)
    )

    assert revised.plan == revised_plan
    assert revised.version == 2
    assert [(s.id, s.agent, s.status) for s in revised.steps] == [
        (1, "math", StepStatus.SUCCEEDED),
        (2, "math", StepStatus.REPLACED),
        (3, "math", StepStatus.REPLACED),
        (4, "string", StepStatus.PENDING),
    ]
    assert [(v.version, v.kind, v.plan, v.reason, v.replaced) for v in revised.versions] == [
        (1, "planned", THREE, "planned from the request", []),
        (2, "replanned", revised_plan, "step 2 failed", [2, 3]),
    ]
    assert revised.usage == Usage(calls=1, prompt_tokens=9)
    assert revised.planned_step(2) == THREE.steps[1]  # a replaced step is still described
    store.reset_unfinished_steps(run.id)  # a resume leaves replaced steps alone
    assert [s.status for s in store.get_run(run.id).steps][1:3] == [StepStatus.REPLACED, StepStatus.REPLACED]


def test_a_revision_may_neither_change_a_succeeded_step_nor_reuse_a_replaced_id(store: RunStore) -> None:
    run = _partial(store)
    first = make_plan(
        {"id": 1, "agent": "math", "tool": "add", "args": {"a": 1, "b": 2}},
        {"id": 4, "agent": "math", "tool": "add", "args": {"a": "$1", "b": 5}},
    )
    store.revise_plan(run.id, first, kind="replanned", reason="step 2 failed")

    with pytest.raises(StoreError, match=r"drops or changes succeeded step\(s\) \[1\]"):
        store.revise_plan(
            run.id,
            make_plan({"id": 1, "agent": "math", "tool": "add", "args": {"a": 2, "b": 2}}),
            kind="edited",
            reason="x",
        )
    with pytest.raises(StoreError, match=r"step id\(s\) \[2\] .* belong to replaced steps; number new steps after 4"):
        store.revise_plan(
            run.id,
            make_plan(
                *[s.model_dump() for s in first.steps],
                {"id": 2, "agent": "math", "tool": "add", "args": {"a": 1, "b": 1}},
            ),
            kind="edited",
            reason="x",
        )
    assert store.get_run(run.id).version == 2


def test_an_edit_of_a_pending_plan_replaces_its_steps_without_leaving_replaced_ones(store: RunStore) -> None:
    run = store.create_run(THREE, request="add", approval="required")
    edited = make_plan({"id": 1, "agent": "math", "tool": "add", "args": {"a": 5, "b": 5}})

    record = store.revise_plan(run.id, edited, kind="edited", reason="edited by a person at approval")

    assert [(s.id, s.status) for s in record.steps] == [(1, StepStatus.PENDING)]
    assert [(v.kind, v.replaced) for v in record.versions] == [("planned", []), ("edited", [2, 3])]


def test_approval_state_survives_reopening_the_store_and_each_decision_is_taken_once(tmp_path: Path) -> None:
    first = RunStore(tmp_path / "runs.sqlite3")
    run = first.create_run(THREE, request="add", approval="required")
    first.await_approval(run.id, "the run asked for approval of its plan (version 1)")
    first.close()

    second = RunStore(tmp_path / "runs.sqlite3")
    try:
        waiting = second.get_run(run.id)
        assert (waiting.status, waiting.approval, waiting.awaiting, waiting.approved_version) == (
            RunStatus.AWAITING_APPROVAL,
            "required",
            "the run asked for approval of its plan (version 1)",
            None,
        )
        assert not second.approve(run.id, 2)  # not the version awaiting approval
        assert second.approve(run.id, 1)
        assert not second.approve(run.id, 1)  # decided already
        assert not second.reject(run.id)
        approved = second.get_run(run.id)
        assert (approved.status, approved.approved_version, approved.awaiting) == (RunStatus.PENDING, 1, None)
    finally:
        second.close()


def test_a_rejected_plan_ends_the_run_cancelled_saying_so(store: RunStore) -> None:
    run = store.create_run(THREE, approval="required")
    store.await_approval(run.id, "asked")

    assert store.reject(run.id)

    record = store.get_run(run.id)
    assert record.status is RunStatus.CANCELLED
    assert record.error == "plan version 1 was rejected at approval; resume the run to be asked again"
    assert {s.status for s in record.steps} == {StepStatus.CANCELLED}
