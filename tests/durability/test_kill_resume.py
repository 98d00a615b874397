"""Crash-safe resume, proved with real processes.

`planner-mcp run --plan` is SIGKILLed at chosen moments (mid-step, right after a step's commit) and
at seeded random ones (also while it resumes), restarted with `planner-mcp resume`, and judged by the
ledger its steps write, the oracle outside the store: no step that had succeeded when a process was
killed ever starts again, nothing of a killed process runs on, the run ends `succeeded` with exactly
the results and answer of an uninterrupted run, and the store passes its integrity check after
every kill.
"""

from __future__ import annotations

import json
import random
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from planning.ownership import is_alive, this_process
from planning.plan import Plan
from planning.records import RunRecord, RunStatus, StepStatus
from planning.settings import Settings
from planning.store import RunStore
from server import app as app_module
from server.app import App
from tests.durability.harness import LedgerLine, StoreView, Workspace, finish, kill, wait_until
from tests.durability.ledger_catalog import GATE_ENV, GATED_STEPS_ENV, SCALE_ENV

# A 7-step DAG with parallel branches and $N chains; the critical path 2 -> 4 -> 5 -> 7 takes 1.3 s.
TAG = "k"
DELAYS = {1: 0.3, 2: 0.5, 3: 0.3, 4: 0.2, 5: 0.3, 6: 0.4, 7: 0.3}
INPUTS = {1: [], 2: [], 3: [1], 4: [1, 2], 5: [3, 4], 6: [2], 7: [5, 6]}
EXPECTED = {
    1: "1()",
    2: "2()",
    3: "3(1())",
    4: "4(1(),2())",
    5: "5(3(1()),4(1(),2()))",
    6: "6(2())",
    7: "7(5(3(1()),4(1(),2())),6(2()))",
}
# Random kills land this long after a process started its first step (the plan takes ~1.3 s)...
STEPS_WINDOW_S = 1.2
# ... or this long after it was launched (importing, recovering, claiming the run).
LAUNCH_WINDOW_S = 3.0
CHAINS = 4
KILLS_PER_CHAIN = 3
SEED = 6


def write_plan(workspace: Workspace) -> Path:
    steps = [
        {
            "id": step,
            "agent": "ledger",
            "tool": "work",
            "args": {"tag": TAG, "step": step, "inputs": [f"${n}" for n in INPUTS[step]], "delay_s": delay},
        }
        for step, delay in DELAYS.items()
    ]
    path = workspace.root / "plan.json"
    path.write_text(json.dumps({"steps": steps}), encoding="utf-8")
    return path


def record_of(done: subprocess.CompletedProcess[str]) -> RunRecord:
    assert done.returncode == 0, done.stderr
    return RunRecord.model_validate_json(done.stdout)


def results(record: RunRecord) -> dict[int, object]:
    return {step.id: step.result for step in record.steps}


def starts(lines: list[LedgerLine]) -> list[int]:
    return sorted(line.step for line in lines if line.event == "start")


@dataclass(frozen=True)
class Kill:
    pid: int
    exit_status: int
    ledger_len: int  # ledger lines written before the kill
    succeeded: frozenset[int]  # steps the store had recorded as succeeded when the process died


@dataclass
class KillLog:
    """The kills of one run, and the checks that the run survived all of them."""

    workspace: Workspace
    kills: list[Kill] = field(default_factory=list)

    def killed(self, process: subprocess.Popen[str]) -> StoreView:
        """SIGKILL the process; check the store; remember what had succeeded."""
        exit_status = kill(process)
        assert exit_status in (-9, 0), process.stderr  # 0: it had finished before the kill
        assert self.workspace.integrity() == "ok"
        view = self.workspace.view()
        assert view is not None
        succeeded = frozenset(view.with_status(StepStatus.SUCCEEDED))
        if self.kills:
            assert self.kills[-1].succeeded <= succeeded, "a step that had succeeded was lost"
        self.kills.append(Kill(process.pid, exit_status, len(self.workspace.ledger_lines()), succeeded))
        return view

    def resume_to_end(self, run_id: str) -> RunRecord:
        return record_of(self.workspace.cli("resume", run_id, "--json"))

    def check(self, final: RunRecord, reference: RunRecord) -> None:
        """The oracle: what the ledger says ran, against what the store said had succeeded."""
        lines = self.workspace.ledger_lines()
        for k in self.kills:
            later = lines[k.ledger_len :]
            assert [line for line in later if line.pid == k.pid] == [], "a killed process kept running steps"
            rerun = sorted({line.step for line in later if line.event == "start"} & k.succeeded)
            assert rerun == [], f"steps {rerun} had succeeded before pid {k.pid} was killed and ran again"
        assert (final.status, final.error) == (RunStatus.SUCCEEDED, None)
        assert (results(final), final.answer) == (results(reference), reference.answer)
        # Every step's last run in the ledger finished (the stored result is the one it computed).
        for step in DELAYS:
            last = [line.event for line in lines if line.step == step][-1]
            assert last == "end", f"step {step} never finished in the ledger"


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, RunRecord]:
    """The plan run once without interruption (instant steps: the results do not depend on time)."""
    workspace = Workspace(tmp_path_factory.mktemp("reference"))
    record = record_of(workspace.cli("run", "--plan", str(write_plan(workspace)), "--json", env={SCALE_ENV: "0"}))
    return workspace, record


def test_an_uninterrupted_run_runs_each_step_once_and_resuming_it_again_is_a_no_op(
    reference: tuple[Workspace, RunRecord],
) -> None:
    workspace, record = reference
    assert (record.status, results(record), record.answer) == (RunStatus.SUCCEEDED, EXPECTED, EXPECTED[7])
    ledger = workspace.ledger_lines()
    assert sorted((line.event, line.step) for line in ledger) == sorted(
        (event, step) for step in DELAYS for event in ("start", "end")
    )

    again = record_of(workspace.cli("resume", record.id, "--json"))

    assert again == record
    assert workspace.ledger_lines() == ledger


def test_a_run_killed_mid_step_is_interrupted_after_a_restart_and_resumes_to_the_same_result(
    workspace: Workspace, reference: tuple[Workspace, RunRecord]
) -> None:
    log = KillLog(workspace)
    # Step 4 waits at a gate nobody opens: the kill surely lands while it runs.
    gate = {GATE_ENV: str(workspace.root / "never"), GATED_STEPS_ENV: "4"}
    process = workspace.start("run", "--plan", str(write_plan(workspace)), env=gate)

    wait_until("step 4 to start", lambda: 4 in starts(workspace.ledger_lines()))
    view = log.killed(process)

    assert (view.status, view.steps[4]) == (RunStatus.RUNNING, StepStatus.RUNNING)
    shown = record_of(workspace.cli("show", view.run_id, "--json"))
    assert shown.status is RunStatus.INTERRUPTED
    assert shown.error == "its process ended before the run finished; resume it"
    assert {s.id: s.status for s in shown.steps}[4] is StepStatus.PENDING
    listed = workspace.cli("runs", "--status", "interrupted")
    assert listed.returncode == 0, listed.stderr
    assert view.run_id in listed.stdout

    final = log.resume_to_end(view.run_id)

    log.check(final, reference[1])
    assert 4 in starts(workspace.ledger_lines()[log.kills[0].ledger_len :])


def test_a_run_killed_right_after_a_step_commit_never_runs_that_step_again(
    workspace: Workspace, reference: tuple[Workspace, RunRecord]
) -> None:
    log = KillLog(workspace)
    process = workspace.start("run", "--plan", str(write_plan(workspace)))

    def step_2_committed() -> bool:
        view = workspace.view()
        return view is not None and view.steps.get(2) == StepStatus.SUCCEEDED

    wait_until("step 2 to be committed", step_2_committed)
    view = log.killed(process)
    assert view.status == RunStatus.RUNNING
    assert 2 in log.kills[0].succeeded

    final = log.resume_to_end(view.run_id)

    log.check(final, reference[1])
    resumed = starts(workspace.ledger_lines()[log.kills[0].ledger_len :])
    assert resumed == sorted(set(DELAYS) - log.kills[0].succeeded)


def kill_chain(workspace: Workspace, moments: list[tuple[str, float]], reference: RunRecord) -> KillLog:
    """Run the plan and kill it at the first moment, resume and kill that at the next, ...; then
    resume to the end. A moment is `("launch", s)`: s seconds after the process started (it may
    still be starting, recovering or claiming the run), or `("steps", s)`: s seconds after it
    started its first step (or after it ended, when nothing was left to run)."""
    log = KillLog(workspace)
    process = workspace.start("run", "--plan", str(write_plan(workspace)))
    run_id = ""
    for anchor, delay in moments:
        if anchor == "steps":

            def stepping_or_over(process: subprocess.Popen[str] = process) -> bool:
                ran = any(line.pid == process.pid for line in workspace.ledger_lines())
                return ran or process.poll() is not None

            wait_until(f"pid {process.pid} to start a step", stepping_or_over)
        time.sleep(delay)  # the random moment of the kill (the test's input, not a synchronisation)
        if not run_id:
            view = wait_until("the run to be recorded", workspace.view)  # a kill before it exists: no run
            run_id = view.run_id
        log.killed(process)
        process = workspace.start("resume", run_id, "--json")
    status, stdout, stderr = finish(process)
    assert status == 0, stderr
    log.check(RunRecord.model_validate_json(stdout), reference)
    return log


def random_moments(rng: random.Random) -> list[tuple[str, float]]:
    """Mostly while steps run, sometimes while the process starts up."""
    return [
        ("launch", rng.uniform(0, LAUNCH_WINDOW_S))
        if rng.random() < 0.25
        else ("steps", rng.uniform(0, STEPS_WINDOW_S))
        for _ in range(KILLS_PER_CHAIN)
    ]


def test_runs_killed_again_and_again_at_random_moments_resume_to_the_uninterrupted_result(
    tmp_path: Path, reference: tuple[Workspace, RunRecord]
) -> None:
    rng = random.Random(SEED)
    chains = [random_moments(rng) for _ in range(CHAINS)]

    # The chains are independent runs in their own homes: run them side by side.
    with ThreadPoolExecutor(CHAINS) as pool:
        futures = [
            pool.submit(kill_chain, Workspace(tmp_path / f"chain-{n}"), moments, reference[1])
            for n, moments in enumerate(chains)
        ]
        logs = [future.result() for future in futures]

    kills = [k for log in logs for k in log.kills]
    assert len(kills) == CHAINS * KILLS_PER_CHAIN
    # The moments really fell inside runs: most kills hit a live process with work still to do.
    assert sum(k.exit_status == -9 and len(k.succeeded) < len(DELAYS) for k in kills) >= len(kills) // 2


def test_two_processes_resuming_one_run_at_once_exactly_one_executes_it(
    workspace: Workspace, reference: tuple[Workspace, RunRecord]
) -> None:
    gate = workspace.root / "gate"  # while it does not exist, started steps wait
    log = KillLog(workspace)
    process = workspace.start("run", "--plan", str(write_plan(workspace)), env={GATE_ENV: str(gate)})
    wait_until("steps 1 and 2 to start", lambda: starts(workspace.ledger_lines()) == [1, 2])
    run_id = log.killed(process).run_id

    first, second = (workspace.start("resume", run_id, env={GATE_ENV: str(gate)}) for _ in range(2))
    loser = wait_until(
        "one resume to give up", lambda: next((p for p in (first, second) if p.poll() is not None), None)
    )
    winner = second if loser is first else first
    status, _, stderr = finish(loser)
    gate.touch()
    winner_status, _, winner_stderr = finish(winner)

    assert status == 1
    assert f"run {run_id!r} is executing in another live process; wait for it or cancel it there" in stderr
    assert "Traceback" not in stderr
    assert winner_status == 0, winner_stderr
    resumed = workspace.ledger_lines()[log.kills[0].ledger_len :]
    assert {line.pid for line in resumed} == {winner.pid}
    assert starts(resumed) == sorted(DELAYS)
    log.check(record_of(workspace.cli("show", run_id, "--json")), reference[1])


def test_recovery_leaves_alone_a_run_that_a_live_process_claimed_after_its_owner_was_found_dead(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(home=workspace.home, catalog="tests.durability.ledger_catalog:build")
    store = RunStore(settings.db_path)
    plan = Plan.model_validate(json.loads(write_plan(workspace).read_text(encoding="utf-8")))
    run = store.create_run(plan)
    host, pid, start = this_process().rsplit(":", 2)
    store.start_run(run.id, f"{host}:{pid}:{int(start) + 1}")  # this pid, but an earlier process: dead
    store.step_started(run.id, 1)

    def found_dead_then_claimed(owner: str) -> bool:
        # Between this liveness check and the recovery's write, another (live) process claims the run.
        assert store.claim_run(run.id, this_process(), is_alive)
        return False

    monkeypatch.setattr(app_module, "is_alive", found_dead_then_claimed)
    app = App.open(settings)
    try:
        record = app.store.get_run(run.id)
    finally:
        app.close()
        store.close()

    assert record.status is RunStatus.RUNNING
    assert record.steps[0].status is StepStatus.RUNNING
