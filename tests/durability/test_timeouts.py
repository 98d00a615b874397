"""Timeouts and cancellation of a sandboxed step that never ends (`while True: pass` in the code
agent's real sandbox): the step times out as `timeout`, a cancelled run is recorded `cancelled`,
and in every case no process of the sandbox outlives the step.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from agents.catalog import build_catalog
from planning.records import RunRecord, RunStatus, StepError, StepStatus
from planning.settings import Settings
from server.app import App
from tools.code import SANDBOX_UID, Sandbox

pytestmark = [pytest.mark.anyio, pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc")]

BOUND_S = 60
SPIN = {"id": 1, "agent": "code", "tool": "run_python", "args": {"code": "while True:\n    pass\n"}}


def sandbox_processes() -> set[int]:
    """Processes descending from this one that belong to a sandbox (its uid, or its runner)."""
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_bytes()
            except OSError:
                continue  # gone meanwhile
            parents[int(entry.name)] = int(stat[stat.rindex(b")") + 2 :].split()[1])
    found: set[int] = set()
    for pid in parents:
        ancestor = parents.get(pid)
        while ancestor and ancestor != os.getpid():
            ancestor = parents.get(ancestor)
        if ancestor != os.getpid():
            continue
        try:
            uid = os.stat(f"/proc/{pid}").st_uid
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if uid == SANDBOX_UID or b"runner.py" in cmdline:
            found.add(pid)
    return found


async def wait_for_sandbox() -> set[int]:
    """Bounded poll until the spinning program's sandbox is up; its processes."""
    with anyio.fail_after(BOUND_S):
        # The kernel's process table has no event to wait on: poll it.
        while not (pids := await anyio.to_thread.run_sync(sandbox_processes)):  # noqa: ASYNC110
            await anyio.sleep(0.02)
    return pids


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    settings = Settings(home=tmp_path / "home", step_retries=0)
    app = App.open(settings, catalog=build_catalog(settings, sandbox=Sandbox(settings.sandbox)))
    yield app
    app.close()


def alive(pids: set[int]) -> set[int]:
    """Those of `pids` still running (a zombie has ended; only its parent's wait is missing)."""
    running = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if state != b"Z":
            running.add(pid)
    return running


async def test_a_sandboxed_step_past_its_time_limit_fails_as_timeout_and_its_sandbox_is_killed(app: App) -> None:
    # Long enough for the sandbox to start on a busy machine, far below its own 10 s wall clock.
    record = app.submit(app.parse({"steps": [{**SPIN, "timeout_s": 2}]}))
    done: list[RunRecord] = []

    async def execute() -> None:
        done.append(await app.execute(record.id))

    spinning: set[int] = set()
    with anyio.fail_after(BOUND_S):
        async with anyio.create_task_group() as group:
            group.start_soon(execute)
            spinning = await wait_for_sandbox()

    step = done[0].steps[0]
    assert (done[0].status, step.status, step.attempts) == (RunStatus.FAILED, StepStatus.FAILED, 1)
    assert step.error == StepError(kind="timeout", message="the step took longer than its limit of 2 s")
    assert alive(spinning) == set()
    assert alive(sandbox_processes()) == set()


async def test_cancelling_the_task_awaiting_a_run_cancels_it_and_kills_its_sandbox(app: App) -> None:
    record = app.submit(app.parse({"steps": [SPIN]}))

    spinning: set[int] = set()
    with anyio.fail_after(BOUND_S):
        async with anyio.create_task_group() as group:
            group.start_soon(app.execute, record.id)
            spinning = await wait_for_sandbox()
            group.cancel_scope.cancel()

    cancelled = app.store.get_run(record.id)
    assert (cancelled.status, cancelled.steps[0].status) == (RunStatus.CANCELLED, StepStatus.CANCELLED)
    assert alive(spinning) == set()
    assert alive(sandbox_processes()) == set()


async def test_cancel_by_run_id_stops_the_sandboxed_step_and_the_waiting_caller_gets_the_cancelled_run(
    app: App,
) -> None:
    record = app.submit(app.parse({"steps": [SPIN, {**SPIN, "id": 2, "depends_on": [1]}]}))
    done: list[RunRecord] = []

    async def execute() -> None:
        done.append(await app.execute(record.id))

    spinning: set[int] = set()
    with anyio.fail_after(BOUND_S):
        async with anyio.create_task_group() as group:
            group.start_soon(execute)
            spinning = await wait_for_sandbox()
            await app.cancel(record.id)

    assert done[0].status is RunStatus.CANCELLED
    assert [s.status for s in done[0].steps] == [StepStatus.CANCELLED, StepStatus.CANCELLED]
    assert [s.started_at is None for s in done[0].steps] == [False, True]  # step 2 never started
    assert alive(spinning) == set()
    assert alive(sandbox_processes()) == set()
