"""Code steps in real runs (real sandbox, store and Flyte local engine): a failed program fails its
step with the program's error and its dependents are skipped; a tool step and an agent step of the
code agent have the same value (the program's `result`, else its output) and keep the whole run of
the program as the step's details.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agents.catalog import build_catalog
from agents.llm import ScriptedLLM
from planning.records import RunRecord, RunStatus, StepStatus
from planning.settings import Settings
from server.app import App
from tools.code import ENV_TIER, Sandbox, SandboxLimits, tiers

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the code sandbox is Linux only"),
]


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    monkeypatch.delenv(ENV_TIER, raising=False)
    if tiers.probe("bubblewrap").setup is None:
        pytest.skip("bubblewrap does not work here")
    settings = Settings(home=tmp_path / "home", step_retries=0, synthesize=False)
    sandbox = Sandbox(SandboxLimits(wall_time_s=5, cpu_time_s=5))
    app = App.open(settings, llm=ScriptedLLM(scripted_code), catalog=build_catalog(settings, sandbox=sandbox))
    yield app
    app.close()


PROGRAMS: dict[str, str] = {}  # task -> the program the scripted code agent writes for it


def scripted_code(messages: Any, output: Any, role: str) -> dict[str, Any]:
    task = str(messages[1].content).rsplit("Task: ", 1)[-1]  # the first user message: data, then the task
    return {"calls": [{"tool": "run_python", "args": {"code": PROGRAMS[task], "timeout_s": None}}]}


def code_step(step_id: int, code: str, **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "agent": "code", "tool": "run_python", "args": {"code": code, **extra}}


async def run(app: App, steps: list[dict[str, Any]]) -> RunRecord:
    record = app.submit(app.parse({"steps": steps}))
    await app.execute(record.id, synthesize=False)
    return app.store.get_run(record.id)  # as stored: what get_run and the CLI show


@pytest.mark.parametrize(
    ("code", "args", "starts", "ends"),
    [
        (
            "def check(n):\n    raise ValueError(f'bad input {n}')\n\ncheck(42)\n",
            {},
            "the program failed with exit code 1; its stderr ends:\nTraceback (most recent call last):",
            "ValueError: bad input 42",
        ),
        ("import sys\nprint('oops', file=sys.stderr)\nsys.exit(3)", {}, "the program failed with exit code 3", "oops"),
        (
            "while True:\n    pass",
            {"timeout_s": 0.5},
            "the program was stopped at its wall-clock limit after",
            "stderr)",
        ),
        ("x = bytearray(3 * 1024**3)", {}, "the program ran out of memory (its memory limit)", "MemoryError"),
        ("import os\nos.kill(os.getpid(), 9)", {}, "the program was killed by SIGKILL", "stderr)"),
        ("result = {1, 2}", {}, "the program ran, but `result` holds a set, which is not JSON", "dicts)"),
    ],
)
async def test_a_failed_program_fails_its_tool_step_and_its_dependents_are_skipped(
    app: App, code: str, args: dict[str, Any], starts: str, ends: str
) -> None:
    add = {"id": 2, "agent": "math", "tool": "add", "args": {"a": "$1", "b": 1}, "depends_on": [1]}

    record = await run(app, [code_step(1, code, **args), add])

    failed, skipped = record.steps
    assert (record.status, failed.status, skipped.status) == (RunStatus.FAILED, StepStatus.FAILED, StepStatus.SKIPPED)
    assert failed.error is not None and failed.error.kind == "tool_error"
    assert failed.error.message.startswith(starts)
    assert failed.error.message.endswith(ends)
    assert failed.result is None
    assert isinstance(failed.details, dict) and failed.details["tier"] == "bubblewrap"  # the whole run is kept
    assert skipped.error is not None and skipped.error.kind == "dependency"


async def test_a_failed_programs_message_keeps_the_last_lines_of_a_long_stderr(app: App) -> None:
    code = "import sys\nfor i in range(500):\n    print(f'noise {i}', file=sys.stderr)\nraise SystemExit('giving up')"

    record = await run(app, [code_step(1, code)])

    message = record.steps[0].error.message if record.steps[0].error else ""
    assert message.startswith("the program failed with exit code 1; its stderr ends:\nnoise 489\n")
    assert message.endswith("noise 499\ngiving up")


@pytest.mark.parametrize(
    ("code", "value"),
    [
        ("print('working')\nresult = {'total': 2**70, 'items': [1, 2]}", {"total": 2**70, "items": [1, 2]}),
        ("print('  the answer is 42  ')", "the answer is 42"),
        ("result = None\nprint('printed')", "printed"),
    ],
)
async def test_a_code_tool_step_and_a_code_agent_step_have_the_same_value_and_details(
    app: App, code: str, value: object
) -> None:
    task = f"task {len(PROGRAMS)}"
    PROGRAMS[task] = code

    record = await run(app, [code_step(1, code), {"id": 2, "agent": "code", "task": task}])

    tool, agent = record.steps
    assert (record.status, tool.status, agent.status) == (
        RunStatus.SUCCEEDED,
        StepStatus.SUCCEEDED,
        StepStatus.SUCCEEDED,
    )
    assert tool.result == agent.result == value
    for step in (tool, agent):
        assert isinstance(step.details, dict)
        assert (step.details["exit_code"], step.details["tier"]) == (0, "bubblewrap")
        assert {"stdout", "stderr", "duration_s", "bwrap"} <= step.details.keys()


async def test_a_dependent_step_gets_the_programs_value_not_the_run(app: App) -> None:
    add = {"id": 2, "agent": "math", "tool": "add", "args": {"a": "$1", "b": 1}, "depends_on": [1]}

    record = await run(app, [code_step(1, "result = 41"), add])

    assert [s.result for s in record.steps] == [41, 42]


async def test_a_code_agent_whose_programs_keep_failing_fails_with_the_programs_error(app: App) -> None:
    PROGRAMS["always fails"] = "raise RuntimeError('no luck')"

    record = await run(app, [{"id": 1, "agent": "code", "task": "always fails"}])

    (step,) = record.steps
    assert (record.status, step.status) == (RunStatus.FAILED, StepStatus.FAILED)
    assert step.error is not None and step.error.message.startswith("the code agent could not complete the task:")
    assert step.error.message.endswith("RuntimeError: no luck")
    assert isinstance(step.details, dict) and step.details["exit_code"] == 1


async def test_without_a_working_sandbox_a_code_step_fails_with_the_fix_and_other_agents_still_work(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tiers, "_working", {})
    monkeypatch.setattr(tiers, "find_bwraps", list)
    llm = ScriptedLLM(scripted_code)
    broken = App.open(app.settings, llm=llm, catalog=build_catalog(app.settings, sandbox=Sandbox()))
    PROGRAMS["needs the sandbox"] = "result = 1"
    try:
        steps = [
            code_step(1, "result = 1"),
            {"id": 2, "agent": "code", "task": "needs the sandbox"},
            {"id": 3, "agent": "math", "tool": "multiply", "args": {"a": 6, "b": 7}},
        ]
        record = await run(broken, steps)
    finally:
        broken.close()

    tool, agent, math = record.steps
    assert (record.status, tool.status, agent.status, math.status) == (
        RunStatus.PARTIAL,
        StepStatus.FAILED,
        StepStatus.FAILED,
        StepStatus.SUCCEEDED,
    )
    assert math.result == 42
    for step in (tool, agent):
        assert step.error is not None
        assert "the bubblewrap sandbox does not work on this server" in step.error.message
        assert "run `uv sync`" in step.error.message
    assert (agent.attempts, len(llm.calls)) == (1, 1)  # no retries, no more rounds of the model
