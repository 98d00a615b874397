"""The CLI as a user drives it: real `planner-mcp` processes (piped, 80 columns) against a fake
OpenAI-compatible server on 127.0.0.1 where an LLM is needed; `main` in this process for the rest."""

from __future__ import annotations

import argparse
import io
import json
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import anyio
import pytest

from agents.llm import LLMNotConfiguredError
from planning import engine as engine_module
from planning.local import LocalEngine
from planning.records import RunRecord
from planning.steps import StepRunner
from server import cli as cli_module
from server import commands as commands_module
from server.app import App
from server.cli import main
from tests.durability.harness import BOUND_S, Workspace, clean_environ, finish, wait_until
from tests.durability.ledger_catalog import GATE_ENV

PRODUCT_CATALOG = "agents.catalog:build_catalog"
SEED_PLAN = {
    "steps": [
        {"id": 1, "agent": "math", "tool": "multiply", "args": {"a": 10, "b": 5}},
        {"id": 2, "agent": "string", "tool": "word_count", "args": {"text": "Hello World"}},
        {"id": 3, "agent": "math", "tool": "multiply", "args": {"a": "$1", "b": "$2"}, "depends_on": [1, 2]},
    ]
}
# What the fake LLM answers to any planning request.
PLANNED = {"steps": [{"id": 1, "agent": "math", "tool": "multiply", "args": {"a": 10, "b": 5}, "depends_on": []}]}


class _ChatHandler(BaseHTTPRequestHandler):
    failures_left = 0  # requests to answer with a server error first (the SDK retries them)
    replies: ClassVar[list[dict[str, object]]] = []  # replies to give first, in order (then PLANNED)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if _ChatHandler.failures_left > 0:
            _ChatHandler.failures_left -= 1
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = json.dumps(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1,
                "model": "fake",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {
                            "role": "assistant",
                            "content": json.dumps(_ChatHandler.replies.pop(0) if _ChatHandler.replies else PLANNED),
                        },
                    }
                ],
                "usage": {"prompt_tokens": 40, "completion_tokens": 20, "total_tokens": 60},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def llm_url() -> Iterator[str]:
    """A fake OpenAI-compatible server that answers every chat completion with PLANNED."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ChatHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    thread.join(timeout=10)


Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def planner_mcp(tmp_path: Path, llm_url: str) -> Run:
    """`planner_mcp(*args, input=None)`: the CLI in a real process, piped, 80 columns wide."""
    env = {
        **clean_environ(),
        "PLANNER_MCP_HOME": str(tmp_path / "home"),
        "PLANNER_MCP_CATALOG": PRODUCT_CATALOG,
        "PLANNER_MCP_LLM": "openai",
        "OPENAI_BASE_URL": llm_url,
        "OPENAI_API_KEY": "test-key",
        "PLANNER_MCP_SYNTHESIZE": "false",
        "COLUMNS": "80",
    }

    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "server.cli", *args],
            input=input,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )

    return run


def test_a_plan_printed_as_json_runs_unchanged_when_piped_into_run(planner_mcp: Run) -> None:
    planned = planner_mcp("plan", "--json", "What is 10 times 5?")
    assert planned.returncode == 0, planned.stderr
    assert json.loads(planned.stdout) == {
        "steps": [{"id": 1, "agent": "math", "tool": "multiply", "args": {"a": 10, "b": 5}}]
    }

    ran = planner_mcp("run", "--plan", "-", "--json", input=planned.stdout)

    assert ran.returncode == 0, ran.stderr
    record = RunRecord.model_validate_json(ran.stdout)
    assert (record.status, record.answer, record.steps[0].result) == ("succeeded", "50", 50)


def test_plan_without_json_still_prints_only_the_plan_on_stdout(planner_mcp: Run, tmp_path: Path) -> None:
    planned = planner_mcp("plan", "What is 10 times 5?")
    saved = tmp_path / "plan.json"
    saved.write_text(planned.stdout)

    ran = planner_mcp("run", "--plan", str(saved))

    assert json.loads(planned.stdout)["steps"][0]["tool"] == "multiply"
    assert "wave 1: 1 math.multiply" in planned.stderr and "run --plan plan.json" in planned.stderr
    assert (ran.returncode, ran.stdout) == (0, "50\n")


def test_every_data_command_prints_one_json_document_with_json(planner_mcp: Run, tmp_path: Path) -> None:
    plan = tmp_path / "seed.json"
    plan.write_text(json.dumps(SEED_PLAN))
    run = json.loads(planner_mcp("run", "--plan", str(plan), "--json").stdout)
    run_id = run["id"]

    outputs = {
        "runs": planner_mcp("runs", "--json").stdout,
        "show": planner_mcp("show", run_id, "--json").stdout,
        "resume": planner_mcp("resume", run_id, "--json").stdout,
        "cancel": planner_mcp("cancel", run_id, "--json").stdout,
        "schema": planner_mcp("schema", "--json").stdout,
    }

    documents = {name: json.loads(text) for name, text in outputs.items()}
    assert [r["run_id"] for r in documents["runs"]["runs"]] == [run_id]
    assert documents["runs"]["next_cursor"] is None
    assert documents["show"] == documents["resume"] == documents["cancel"] == run  # finished: unchanged
    assert documents["schema"]["title"] == "Plan"


def test_version_names_the_package_and_its_version(planner_mcp: Run) -> None:
    done = planner_mcp("--version")

    assert (done.returncode, done.stdout.split()[0]) == (0, "planner-mcp")
    assert done.stdout.split()[1][0].isdigit()


def test_at_80_columns_piped_runs_shows_whole_ids_and_the_next_page_keeps_the_filter(
    planner_mcp: Run, tmp_path: Path
) -> None:
    long_request = "Calculate 10 times 5, then tell me about it in some detail, " * 3
    ids = [json.loads(planner_mcp("run", long_request, "--json").stdout)["id"] for _ in range(2)]

    listed = planner_mcp("runs", "--status", "succeeded", "--limit", "1")

    assert listed.returncode == 0, listed.stderr
    assert ids[1] in listed.stdout and ids[0] not in listed.stdout
    assert "✓ succeeded" in listed.stdout and "Calculate 10" in listed.stdout  # the request cut, not the id
    assert max(len(line) for line in listed.stdout.splitlines()) <= 80
    assert "more: planner-mcp runs --status succeeded --limit 1 --cursor " in listed.stderr
    cursor = listed.stderr.split("--cursor ")[1].split()[0]
    second = planner_mcp("runs", "--status", "succeeded", "--limit", "1", "--cursor", cursor)
    assert ids[0] in second.stdout


def test_show_at_80_columns_has_the_timings_the_usage_and_whole_results(planner_mcp: Run, tmp_path: Path) -> None:
    text = "abcdefghij" * 15
    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps(
            {
                "steps": [
                    {"id": 1, "agent": "string", "tool": "upper", "args": {"text": text}},
                    {"id": 2, "agent": "math", "tool": "divide", "args": {"a": 1, "b": 0}},
                    {"id": 3, "agent": "math", "tool": "add", "args": {"a": "$2", "b": 1}},
                ]
            }
        )
    )
    run_id = json.loads(planner_mcp("run", "--plan", str(plan), "--json").stdout)["id"]

    shown = planner_mcp("show", run_id).stdout

    assert run_id in shown and "◐ partial" in shown
    assert "in all: planning" in shown and "steps" in shown and "answer" in shown
    assert " ".join(shown.split()).count("LLM no calls") == 1
    assert text.upper() in "".join(shown.split())  # wrapped, never cut
    assert "✗ failed" in shown and "↷ skipped" in shown  # a skipped step is not marked failed
    assert max(len(line) for line in shown.splitlines()) <= 80


def test_a_missing_plan_file_is_bad_input_named_in_the_message(planner_mcp: Run) -> None:
    done = planner_mcp("run", "--plan", "nowhere.json")

    assert done.returncode == 2
    assert done.stderr.strip() == "error: cannot read the plan file 'nowhere.json': No such file or directory"
    assert done.stdout == ""


def test_an_llm_that_cannot_be_had_still_lets_tool_steps_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """PLANNER_MCP_LLM=local without the `local` extra: planning says why; tool-only plans run."""

    def no_local_model(*_: object) -> None:
        raise LLMNotConfiguredError("PLANNER_MCP_LLM=local needs llama-cpp-python: run `uv sync --extra local`.")

    monkeypatch.setattr(commands_module, "select_llm", no_local_model)
    monkeypatch.setenv("PLANNER_MCP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PLANNER_MCP_CATALOG", PRODUCT_CATALOG)
    plan = tmp_path / "seed.json"
    plan.write_text(json.dumps(SEED_PLAN))

    ran = main(["run", "--plan", str(plan)])
    out = capsys.readouterr().out
    planned = main(["plan", "What is 2 + 2?"])

    assert (ran, out) == (0, "100\n")
    assert planned == 1
    assert "PLANNER_MCP_LLM=local needs llama-cpp-python" in capsys.readouterr().err


@pytest.fixture
def sigint_ignored() -> Iterator[None]:
    """This process ignores SIGINT, as a non-interactive shell starts its background jobs
    (`.ci/run > log &`); its children inherit that unless the harness undoes it."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("sigint_ignored")
def test_ctrl_c_on_run_prints_the_run_id_and_the_resume_command(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path)
    plan = tmp_path / "plan.json"
    step = {"tag": "ctrl-c", "step": 1, "inputs": [], "delay_s": 0}
    plan.write_text(json.dumps({"steps": [{"id": 1, "agent": "ledger", "tool": "work", "args": step}]}))
    # The step waits at a gate nobody opens: Ctrl-C surely lands while it runs.
    process = workspace.start("run", "--plan", str(plan), env={GATE_ENV: str(tmp_path / "never")})
    wait_until("the step to start", lambda: workspace.ledger_lines() or None)

    process.send_signal(signal.SIGINT)
    status, stdout, stderr = finish(process)

    view = workspace.view()
    assert view is not None
    assert (status, stdout) == (130, "")
    assert f"interrupted: run {view.run_id} stopped; finish it with:\n  planner-mcp resume {view.run_id}" in stderr
    assert "Traceback" not in stderr


@pytest.fixture
def interruptible() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt in this process (as in a terminal), even if it was started
    ignoring it (as a shell's background job)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def press_ctrl_c() -> None:
    """SIGINT to the main thread, where Python handles it, from whichever thread calls this."""
    signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)


def main_on_ctrl_c(argv: list[str]) -> int:
    """`main(argv)`, where a KeyboardInterrupt that escapes it (a traceback for the user) fails the
    test instead of stopping the whole test session."""
    try:
        return main(argv)
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C escaped main() as KeyboardInterrupt")


# Where a Ctrl-C can land while `planner-mcp run` executes a request (the functions are patched to
# press it once, then wait to be cancelled).
INTERRUPT_POINTS: dict[str, tuple[object, str]] = {
    "planning": (App, "plan"),
    "starting Flyte": (LocalEngine, "_init_flyte"),
    "a step": (StepRunner, "__call__"),
    "the answer": (engine_module, "_synthesize"),
}


@pytest.mark.usefixtures("interruptible")
@pytest.mark.parametrize("point", INTERRUPT_POINTS)
def test_ctrl_c_anywhere_in_a_run_leaves_it_cancelled_and_resume_finishes_it(
    point: str, llm_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PLANNER_MCP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PLANNER_MCP_CATALOG", PRODUCT_CATALOG)
    monkeypatch.setenv("PLANNER_MCP_LLM", "openai")
    monkeypatch.setenv("OPENAI_BASE_URL", llm_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("PLANNER_MCP_SYNTHESIZE", "false")
    owner, name = INTERRUPT_POINTS[point]
    original = getattr(owner, name)
    pressed: list[str] = []

    async def ctrl_c_the_first_time(*args: object, **kwargs: object) -> object:
        if not pressed:
            pressed.append(point)
            press_ctrl_c()
            await anyio.sleep(BOUND_S)  # the Ctrl-C cancels this
        return await original(*args, **kwargs)

    monkeypatch.setattr(owner, name, ctrl_c_the_first_time)

    status = main_on_ctrl_c(["run", "What is 10 times 5?"])
    said = capsys.readouterr().err
    run_id = said.split("interrupted: run ")[1].split()[0]
    main(["show", run_id, "--json"])
    stopped = last_run(capsys)

    assert (pressed, status) == ([point], 130)
    assert f"stopped; finish it with:\n  planner-mcp resume {run_id}\n" in said
    assert stopped.status.value == "cancelled"  # not `running`, owned by this process: resume could not take it
    assert all(step.status.finished for step in stopped.steps)
    assert main(["resume", run_id, "--json"]) == 0
    finished = last_run(capsys)
    assert (finished.status.value, finished.answer) == ("succeeded", "multiply(a=10, b=5) = 50")


@pytest.mark.usefixtures("interruptible")
def test_ctrl_c_before_the_run_starts_exits_130_quietly(
    in_process: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Stdin:
        class buffer:  # sys.stdin.buffer
            @staticmethod
            def read() -> bytes:
                press_ctrl_c()
                return b"{}"

    monkeypatch.setattr(sys, "stdin", Stdin)

    status = main_on_ctrl_c(["run", "--plan", "-"])  # while the plan is read from stdin

    assert (status, capsys.readouterr().out) == (130, "")


@pytest.mark.usefixtures("interruptible")
def test_ctrl_c_while_starting_is_never_dropped_by_a_finalizer(
    in_process: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Raised in a __del__ or a weakref callback (imports run plenty of them), KeyboardInterrupt is
    printed as "Exception ignored" and dropped: the run would go on."""

    class PressesCtrlCWhenCollected:
        def __del__(self) -> None:
            press_ctrl_c()

    parser = cli_module._parser

    def parser_amid_a_collection() -> argparse.ArgumentParser:
        PressesCtrlCWhenCollected()  # collected at once
        return parser()

    monkeypatch.setattr(cli_module, "_parser", parser_amid_a_collection)

    status = main_on_ctrl_c(["run", "--plan", str(in_process)])

    assert (status, capsys.readouterr().out) == (130, "")


def test_a_failing_llm_call_is_retried_in_view_and_counted_as_an_attempt(planner_mcp: Run) -> None:
    _ChatHandler.failures_left = 1

    done = planner_mcp("run", "What is 10 times 5?")

    assert (done.returncode, done.stdout) == (0, "multiply(a=10, b=5) = 50\n"), done.stderr
    said = " ".join(done.stderr.split())  # the log line wraps at the terminal's width
    assert "answered HTTP 503" in said and "; retry 1 of 2 in" in said


def test_a_failed_step_is_replanned_and_show_gives_both_plan_versions_with_the_reason(planner_mcp: Run) -> None:
    _ChatHandler.replies = [
        {
            "steps": [
                {"id": 1, "agent": "math", "tool": "multiply", "args": {"a": 10, "b": 5}, "depends_on": []},
                {"id": 2, "agent": "math", "tool": "divide", "args": {"a": "$1", "b": 0}, "depends_on": [1]},
            ]
        },
        {"steps": [{"id": 3, "agent": "math", "tool": "divide", "args": {"a": "$1", "b": 2}, "depends_on": [1]}]},
    ]

    done = planner_mcp("run", "Multiply 10 by 5, then halve it")
    run_id = done.stderr.split("details: planner-mcp show ")[1].split()[0]
    shown = planner_mcp("show", run_id).stdout
    record = RunRecord.model_validate_json(planner_mcp("show", run_id, "--json").stdout)

    assert (done.returncode, done.stdout) == (0, "divide(a=50, b=2) = 25\n"), done.stderr
    assert [(s.id, s.status.value, s.attempts) for s in record.steps] == [
        (1, "succeeded", 1),
        (2, "replaced", 1),
        (3, "succeeded", 1),
    ]
    assert [(v.version, v.kind) for v in record.versions] == [(1, "planned"), (2, "replanned")]
    assert record.total_usage().calls == 2
    flat = " ".join(shown.split())
    assert "plan v2 replanned: step 2 (math) failed: division by zero" in flat
    assert "(replaced step 2)" in flat and "⤳ replaced" in flat


# -- approval on the terminal ----------------------------------------------------------------------

APPROVE_PLAN = {
    "steps": [
        {"id": 1, "agent": "math", "tool": "multiply", "args": {"a": 10, "b": 5}},
        {"id": 2, "agent": "math", "tool": "add", "args": {"a": "$1", "b": 1}, "depends_on": [1]},
    ]
}
EDITED_PLAN = {"steps": [{"id": 1, "agent": "math", "tool": "multiply", "args": {"a": 6, "b": 7}}]}


class Terminal(io.StringIO):
    """stdin as a person at a terminal who types these lines."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`main` in this process, without an LLM, on a fresh home; returns the plan file APPROVE_PLAN."""
    monkeypatch.setattr(commands_module, "select_llm", lambda *_: None)
    monkeypatch.setenv("PLANNER_MCP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PLANNER_MCP_CATALOG", PRODUCT_CATALOG)
    monkeypatch.delenv("EDITOR", raising=False)
    monkeypatch.delenv("VISUAL", raising=False)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(APPROVE_PLAN))
    return plan


def last_run(capsys: pytest.CaptureFixture[str]) -> RunRecord:
    return RunRecord.model_validate_json(capsys.readouterr().out)


def test_approve_without_a_terminal_is_refused(in_process: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--approve", "--plan", str(in_process)]) == 2
    assert "--approve asks on the terminal, and stdin is not one" in capsys.readouterr().err


def test_a_person_approves_the_plan_on_the_terminal(
    in_process: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", Terminal("y\n"))

    assert main(["run", "--approve", "--plan", str(in_process), "--json"]) == 0

    record = last_run(capsys)
    assert (record.status.value, record.answer, record.approved_version) == ("succeeded", "51", 1)


def test_a_person_rejects_the_plan_on_the_terminal(
    in_process: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", Terminal("n\n"))

    assert main(["run", "--approve", "--plan", str(in_process), "--json"]) == 1

    record = last_run(capsys)
    assert record.status.value == "cancelled"
    assert {step.attempts for step in record.steps} == {0}


def test_a_person_edits_the_plan_in_their_editor_and_an_invalid_edit_is_refused_first(
    in_process: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    edits = tmp_path / "edits"
    edits.mkdir()
    (edits / "1.json").write_text('{"steps": [{"id": 1, "agent": "math", "tool": "nope", "args": {}}]}')
    (edits / "2.json").write_text(json.dumps(EDITED_PLAN))
    editor = tmp_path / "editor.py"  # each call writes the next edit over the file it is given
    editor.write_text(
        "import pathlib, sys\n"
        f"edits = sorted(pathlib.Path({str(edits)!r}).glob('*.json'))\n"
        "pathlib.Path(sys.argv[1]).write_text(edits[0].read_text())\n"
        "edits[0].unlink()\n"
    )
    monkeypatch.setenv("EDITOR", f"{sys.executable} {editor}")
    monkeypatch.setattr(sys, "stdin", Terminal("e\ne\n"))

    assert main(["run", "--approve", "--plan", str(in_process), "--json"]) == 0

    captured = capsys.readouterr()
    record = RunRecord.model_validate_json(captured.out)
    assert "agent 'math' has no tool 'nope'" in captured.err
    assert (record.status.value, record.answer) == ("succeeded", "42")
    assert [(v.version, v.kind) for v in record.versions] == [(1, "planned"), (2, "edited")]


@pytest.mark.usefixtures("interruptible")
def test_ctrl_c_at_the_approval_prompt_exits_at_once_and_says_how_to_decide(
    in_process: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class PressesCtrlC(Terminal):
        def readline(self, size: int | None = -1) -> str:
            press_ctrl_c()
            return "y\n"  # what asyncio's handler alone let through: the plan ran

    monkeypatch.setattr(sys, "stdin", PressesCtrlC())

    status = main_on_ctrl_c(["run", "--approve", "--plan", str(in_process)])
    said = capsys.readouterr().err
    run_id = said.split("interrupted: run ")[1].split()[0]
    main(["show", run_id, "--json"])

    assert status == 130
    assert f"still waits for approval; decide with:\n  planner-mcp approve {run_id}" in said
    assert last_run(capsys).status.value == "awaiting_approval"


@pytest.mark.usefixtures("interruptible")
def test_ctrl_c_in_the_editor_is_the_editors_and_the_edited_plan_runs(
    in_process: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    editor = tmp_path / "editor.py"  # a terminal's Ctrl-C reaches its whole foreground group: us too
    editor.write_text(
        "import os, pathlib, signal, sys\n"
        f"pathlib.Path(sys.argv[1]).write_text({json.dumps(EDITED_PLAN)!r})\n"
        "os.kill(os.getppid(), signal.SIGINT)\n"
    )
    monkeypatch.setenv("EDITOR", f"{sys.executable} {editor}")
    monkeypatch.setattr(sys, "stdin", Terminal("e\n"))

    assert main_on_ctrl_c(["run", "--approve", "--plan", str(in_process), "--json"]) == 0

    record = last_run(capsys)
    assert (record.status.value, record.answer) == ("succeeded", "42")


def test_a_plan_left_for_later_waits_across_processes_until_approve_decides(
    in_process: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", Terminal("l\n"))
    assert main(["run", "--approve", "--plan", str(in_process), "--json"]) == 1
    waiting = last_run(capsys)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # no terminal from here on
    (tmp_path / "edited.json").write_text(json.dumps(EDITED_PLAN))

    assert main(["resume", waiting.id]) == 1  # still waiting: resume never runs an unapproved plan
    resumed = capsys.readouterr().err
    assert main(["approve", waiting.id, "--plan", str(tmp_path / "edited.json"), "--json"]) == 0
    approved = last_run(capsys)

    assert waiting.status.value == "awaiting_approval"
    assert f"planner-mcp approve {waiting.id}" in resumed
    assert (approved.status.value, approved.answer) == ("succeeded", "42")
