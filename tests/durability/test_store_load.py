"""The run store under load: 8 processes executing runs on the engine and threads of this process
writing raw runs, all at once, against one SQLite file that starts at the first schema version
(every process migrates it on open, at the same moment). No `database is locked` (or any other
error) surfaces, every run and step is recorded, no step runs twice, and the file stays intact.

The upgrade path itself (runs kept, later columns working) is tested in tests/planning/test_store.py.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from contextlib import closing
from pathlib import Path

from planning.plan import Plan
from planning.records import RunStatus, StepOutcome, StepStatus
from planning.store import MIGRATIONS, RunStore
from tests.durability.harness import BOUND_S, REPO_ROOT, Workspace, wait_until

PROCESSES = 8
RUNS_PER_PROCESS = 3
MIN_RUNS_PER_THREAD = 10
STEPS = 4

# A worker: ready once imported; at the gate, opens the store (migrating it) and executes its runs
# concurrently on the engine; prints their ids and statuses.
WORKER = """
import asyncio, json, os, sys, time
from pathlib import Path
from planning.settings import Settings
from server.app import App

worker, ready, gate, runs, steps = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
ready.touch()
deadline = time.monotonic() + 60
while not gate.exists():
    if time.monotonic() > deadline:
        sys.exit("the gate never opened")
    time.sleep(0.002)
app = App.open(Settings())

def plan(tag):
    return app.parse({"steps": [
        {"id": i, "agent": "ledger", "tool": "work", "args": {"tag": tag, "step": i, "inputs": [f"${i - 1}"] if i > 1 else []}}
        for i in range(1, steps + 1)
    ]})

async def main():
    records = [app.submit(plan(f"{worker}-{n}")) for n in range(runs)]
    done = await asyncio.gather(*(app.execute(r.id) for r in records))
    return [[d.id, d.status.value] for d in done]

sys.stdout.write("\\n" + json.dumps(asyncio.run(main())) + "\\n")
app.close()
"""

PLAN = Plan.model_validate(
    {
        "steps": [
            {"id": i, "agent": "ledger", "tool": "work", "args": {"tag": "t", "step": i}} for i in range(1, STEPS + 1)
        ]
    }
)


def first_schema_store(path: Path) -> None:
    """A store as the first planner-mcp wrote it, with one finished run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(path)) as db:
        db.executescript(MIGRATIONS[0])
        db.execute("PRAGMA user_version = 1")
        db.execute(
            "INSERT INTO runs (id, created_at, plan, status, engine) VALUES ('r-old', 1700000000.0, ?, 'succeeded', 'local')",
            (PLAN.model_dump_json(),),
        )
        db.commit()


def raw_writer(store: RunStore, stop: threading.Event, written: list[str], failures: list[BaseException]) -> None:
    """What the engine writes for a run, as fast as it goes with reads in between, until `stop`
    (and at least MIN_RUNS_PER_THREAD runs)."""
    try:
        while len(written) < MIN_RUNS_PER_THREAD or not stop.is_set():
            run = store.create_run(PLAN)
            store.start_run(run.id, "thread")
            for step in PLAN.steps:
                store.step_started(run.id, step.id)
                store.step_finished(run.id, step.id, StepOutcome(status=StepStatus.SUCCEEDED, result=step.id))
            store.list_runs(limit=5)
            store.finish_run(run.id, RunStatus.SUCCEEDED, answer=str(STEPS))
            written.append(run.id)
    except BaseException as exc:  # noqa: BLE001 - handed to the test thread, which fails with it
        failures.append(exc)


def test_concurrent_processes_and_threads_record_every_run_without_database_locked(workspace: Workspace) -> None:
    first_schema_store(workspace.db)
    gate = workspace.root / "gate"
    ready = [workspace.root / f"ready-{n}" for n in range(PROCESSES)]
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, f"w{n}", str(ready[n]), str(gate), str(RUNS_PER_PROCESS), str(STEPS)],
            cwd=REPO_ROOT,
            env=workspace.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(PROCESSES)
    ]
    try:
        wait_until("every worker to be ready", lambda: all(path.exists() for path in ready))
        # Threads of this process: two on their own connections, two sharing one (as the server does).
        failures: list[BaseException] = []
        gate.touch()
        shared = RunStore(workspace.db)
        stores = [RunStore(workspace.db), RunStore(workspace.db), shared, shared]
        # The threads write for as long as the workers run, so the two kinds of writers overlap.
        stop = threading.Event()
        written: list[list[str]] = [[] for _ in stores]
        threads = [
            threading.Thread(target=raw_writer, args=(store, stop, ids, failures))
            for store, ids in zip(stores, written, strict=True)
        ]
        for thread in threads:
            thread.start()
        outputs = [worker.communicate(timeout=BOUND_S) for worker in workers]
        stop.set()
        for thread in threads:
            thread.join(BOUND_S)
        for store in stores[:3]:
            store.close()
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.communicate()

    assert failures == []
    assert not any(thread.is_alive() for thread in threads)
    for worker, (_, stderr) in zip(workers, outputs, strict=True):
        assert (worker.returncode, "database is locked" in stderr, "Traceback" in stderr) == (0, False, False), stderr
    executed = [run for stdout, _ in outputs for run in json.loads(stdout.strip().splitlines()[-1])]
    assert [status for _, status in executed] == ["succeeded"] * PROCESSES * RUNS_PER_PROCESS

    store = RunStore(workspace.db)
    try:
        assert store.integrity_check() == "ok"
        assert store.schema_version == len(MIGRATIONS)
        runs, cursor = store.list_runs(limit=100_000)
        assert cursor is None
        assert Counter(run.status for run in runs) == {
            RunStatus.SUCCEEDED: 1 + PROCESSES * RUNS_PER_PROCESS + sum(map(len, written))
        }
        for run_id, _ in executed:
            record = store.get_run(run_id)
            assert [(s.status, s.attempts) for s in record.steps] == [(StepStatus.SUCCEEDED, 1)] * STEPS
            assert record.answer == "(".join(str(i) for i in range(STEPS, 0, -1)) + "()" + ")" * (STEPS - 1)
    finally:
        store.close()
    # The oracle outside the store: each step of each engine run started and ended exactly once.
    events = Counter((line.event, line.tag, line.step) for line in workspace.ledger_lines())
    expected = {
        (event, f"w{w}-{n}", step)
        for w in range(PROCESSES)
        for n in range(RUNS_PER_PROCESS)
        for step in range(1, STEPS + 1)
        for event in ("start", "end")
    }
    assert (set(events), set(events.values())) == (expected, {1})
