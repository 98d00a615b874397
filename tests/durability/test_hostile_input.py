"""Hostile input through the CLI: every bad plan file, run id, cursor or option ends with a non-zero
exit and a readable message on stderr (never a traceback), and the store keeps working afterwards.

Most cases call `server.cli.main` in this process (the console script is `sys.exit(main())`), so a
crash would surface here as the exception itself; the nastiest also go through real processes.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from planning.records import RunRecord, RunStatus
from server.cli import main
from tests.durability.harness import Workspace

PRODUCT_CATALOG = "agents.catalog:build_catalog"


def tool_step(step_id: int = 1, **overrides: object) -> dict[str, object]:
    return {"id": step_id, "agent": "string", "tool": "upper", "args": {"text": "ok"}, **overrides}


def plan_text(*steps: dict[str, object]) -> str:
    return json.dumps({"steps": list(steps)})


def nested(depth: int) -> str:
    """A plan whose only argument is `depth` lists deep, written by hand (json.dumps would recurse)."""
    return (
        '{"steps": [{"id": 1, "agent": "string", "tool": "upper", "args": {"text": '
        + "[" * depth
        + "]" * depth
        + "}}]}"
    )


@dataclass(frozen=True)
class Case:
    """A hostile invocation: the plan file's content (for `run --plan`) or the argv itself."""

    argv: tuple[str, ...]
    plan: str | bytes | None
    exit_code: int
    says: str  # what stderr must contain


def run_plan(plan: str | bytes, says: str, exit_code: int = 2) -> Case:
    return Case(("run", "--plan", "{plan}"), plan, exit_code, says)


def command(*argv: str, says: str, exit_code: int = 1) -> Case:
    return Case(argv, None, exit_code, says)


def cursor(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


NOT_A_CURSOR = "is not one this store handed out; pass next_cursor from the last page"

CASES: dict[str, Case] = {
    "10,000 steps": run_plan(
        plan_text(*(tool_step(i) for i in range(1, 10_001))), "the plan has 10000 steps, more than the limit of 100"
    ),
    "a cycle": run_plan(
        plan_text(tool_step(1, depends_on=[3]), tool_step(2, depends_on=[1]), tool_step(3, depends_on=[2])),
        "dependency cycle 1 -> 3 -> 2 -> 1",
    ),
    "a step depending on itself": run_plan(plan_text(tool_step(depends_on=[1])), "the step depends on itself"),
    "a step referring to its own result": run_plan(
        plan_text(tool_step(args={"text": "${1}"})), "${1} refers to the step's own result"
    ),
    "a reference to a missing step": run_plan(
        plan_text(tool_step(args={"text": "${7}"})), "${7} refers to step 7, which does not exist"
    ),
    "a 5 MB string": run_plan(
        plan_text(tool_step(args={"text": "x" * 5_000_000})),
        "a text of 5000000 characters exceeds the limit of 100000",
    ),
    "10,000 nested lists": run_plan(nested(10_000), "the plan is not valid JSON"),
    "50 nested lists": run_plan(nested(50), "args are nested deeper than 20 levels"),
    "a NUL and a right-to-left mark in an agent name": run_plan(
        plan_text(tool_step(agent="str\u0000ing\u202e")), "unknown agent 'str\\x00ing\\u202e'"
    ),
    "a lone surrogate escaped in JSON": run_plan(
        '{"steps": [{"id": 1, "agent": "string", "tool": "upper", "args": {"text": "a\\ud800b"}}]}',
        "holds a lone surrogate, which is not valid Unicode",
    ),
    "a lone surrogate in an argument name": run_plan(
        '{"steps": [{"id": 1, "agent": "string", "tool": "upper", "args": {"te\\udfffxt": "a"}}]}',
        "holds a lone surrogate",
    ),
    "rich markup in an agent name": run_plan(plan_text(tool_step(agent="[/]")), "unknown agent '[/]'"),
    "steps that are a string": run_plan('{"steps": "many"}', "steps: Input should be a valid list"),
    "fields of the wrong types": run_plan(
        '{"steps": [{"id": "one", "agent": 5, "tool": [], "args": [1], "depends_on": "x"}]}',
        "id: Input should be a valid integer",
    ),
    "a step id beyond 64 bits": run_plan(
        plan_text(tool_step(100_000_000_000_000_000_000_000)), "ids go up to 1,000,000,000"
    ),
    "a bare number": run_plan("42", "Input should be a valid dictionary"),
    "null": run_plan("null", "Input should be a valid dictionary"),
    "an unknown field": run_plan(plan_text(tool_step(priority="high")), "priority: Extra inputs are not permitted"),
    "arguments of the wrong type": run_plan(plan_text(tool_step(args={"text": 5})), "arguments do not match upper"),
    "an empty plan": run_plan('{"steps": []}', "the plan has no steps"),
    "an empty file": run_plan("", "the plan is not valid JSON"),
    "truncated JSON": run_plan('{"steps": [', "the plan is not valid JSON"),
    "bytes that are not UTF-8": run_plan(b"\x80\x81{\xfe\xff", "the plan is not valid JSON"),
    "a plan file that does not exist": command(
        "run", "--plan", "/nonexistent/plan.json", says="No such file or directory", exit_code=2
    ),
    "a directory as plan file": command("run", "--plan", "/", says="Is a directory", exit_code=2),
    "show of an unknown run": command("show", "r-unknown", says="no run with id 'r-unknown'; call list_runs"),
    "resume of an unknown run": command("resume", "r-unknown", says="no run with id 'r-unknown'; call list_runs"),
    "cancel of an unknown run": command("cancel", "r-unknown", says="no run with id 'r-unknown'; call list_runs"),
    "a run id with rich markup": command("show", "[/]", "--json", says="no run with id '[/]'"),
    "a run id with a lone surrogate": command("show", "r\udcff", says="no run with id 'r\\udcff'"),
    "a run id of 100,000 characters": command("resume", "r" * 100_000, says="no run with id 'rrrr"),
    "a cursor that is not base64": command("runs", "--cursor", "%%%", says=NOT_A_CURSOR),
    "a cursor of the wrong shape": command("runs", "--cursor", cursor(b'{"a": 1}'), says=NOT_A_CURSOR),
    "a cursor nested 50,000 deep": command("runs", "--cursor", cursor(b"[" * 50_000), says=NOT_A_CURSOR),
    "a cursor holding a lone surrogate": command(
        "runs", "--cursor", cursor(b'[1e300, "\\ud800"]'), says="", exit_code=0
    ),
    "a limit of 0": command("runs", "--limit", "0", says="'0' is not a whole number of 1 or more", exit_code=2),
    "a negative limit": command("runs", "--limit", "-5", says="'-5' is not a whole number of 1 or more", exit_code=2),
    "an unknown status": command("runs", "--status", "sideways", says="invalid choice: 'sideways'", exit_code=2),
}


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """A workspace whose settings this process's `main` reads (the product catalog, no LLM)."""
    workspace = Workspace(tmp_path)
    for name, value in workspace.env(catalog=PRODUCT_CATALOG).items():
        if name.startswith(("PLANNER_MCP_", "COLUMNS")):
            monkeypatch.setenv(name, value)
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    return workspace


Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """`cli(*argv)`: planner-mcp's main in this process; its exit status, stdout and stderr."""

    def call(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            status = main(list(argv))
        except SystemExit as exc:  # argparse's own refusals
            status = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return call


def materialize(case: Case, root: Path) -> list[str]:
    """The argv of a case, with its plan written to a file."""
    if case.plan is None:
        return list(case.argv)
    path = root / "plan.json"
    path.write_bytes(case.plan if isinstance(case.plan, bytes) else case.plan.encode("utf-8", "surrogatepass"))
    return [str(path) if arg == "{plan}" else arg for arg in case.argv]


def store_is_intact(workspace: Workspace) -> bool:
    if not workspace.db.exists():
        return True
    with closing(sqlite3.connect(workspace.db)) as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_hostile_input_is_refused_with_a_readable_message_and_the_store_keeps_working(
    case: Case, workspace: Workspace, cli: Cli
) -> None:
    status, _, stderr = cli(*materialize(case, workspace.root))

    assert (status, "Traceback" not in stderr) == (case.exit_code, True), stderr
    assert case.says in stderr
    assert len(stderr) < 20_000  # an echo of the whole hostile input is not a readable message
    assert cli("runs")[0] == 0
    assert store_is_intact(workspace)


def test_text_with_nul_bidi_marks_markup_and_emoji_codes_is_kept_exactly(workspace: Workspace, cli: Cli) -> None:
    text = "a\u0000b \u202eevil\u202c \u200f [/] [bold]x[/bold] :smile: \U0001f600 \ufeff"
    plan = workspace.root / "plan.json"
    plan.write_text(plan_text(tool_step(args={"text": text})), encoding="utf-8")

    status, stdout, stderr = cli("run", "--plan", str(plan), "--json")
    assert status == 0, stderr
    record = RunRecord.model_validate_json(stdout)
    assert (record.status, record.steps[0].result, record.answer) == (RunStatus.SUCCEEDED, text.upper(), text.upper())

    assert RunRecord.model_validate_json(cli("show", record.id, "--json")[1]) == record
    status, stdout, _ = cli("run", "--plan", str(plan))  # the answer, printed as plain text
    assert (status, stdout) == (0, text.upper() + "\n")
    status, stdout, _ = cli("show", record.id)  # the table
    assert status == 0
    assert "[/]" in stdout
    assert ":SMILE:" in stdout


def test_integers_beyond_64_bits_flow_between_steps_exactly(workspace: Workspace, cli: Cli) -> None:
    plan = workspace.root / "plan.json"
    big = 10**30
    plan.write_text(
        json.dumps(
            {
                "steps": [
                    {"id": 1, "agent": "math", "tool": "factorial", "args": {"n": 25}},
                    {"id": 2, "agent": "math", "tool": "add", "args": {"a": "$1", "b": big}},
                ]
            }
        ),
        encoding="utf-8",
    )

    status, stdout, stderr = cli("run", "--plan", str(plan), "--json")

    assert status == 0, stderr
    record = RunRecord.model_validate_json(stdout)
    assert [s.result for s in record.steps] == [15511210043330985984000000, 15511210043330985984000000 + big]


def test_the_installed_cli_refuses_the_nastiest_inputs_in_real_processes_and_then_runs_a_good_plan(
    tmp_path: Path,
) -> None:
    workspace = Workspace(tmp_path)
    names = [
        "10,000 nested lists",
        "bytes that are not UTF-8",
        "rich markup in an agent name",
        "a run id with a lone surrogate",
    ]

    def attempt(n: int, case: Case) -> tuple[int, str]:
        folder = tmp_path / f"case-{n}"
        folder.mkdir()
        done = workspace.cli(*materialize(case, folder), env={"PLANNER_MCP_CATALOG": PRODUCT_CATALOG})
        return done.returncode, done.stderr

    with ThreadPoolExecutor(len(names)) as pool:
        outcomes = list(pool.map(attempt, range(len(names)), [CASES[name] for name in names]))

    for name, (status, stderr) in zip(names, outcomes, strict=True):
        assert (status, "Traceback" not in stderr) == (CASES[name].exit_code, True), f"{name}: {stderr}"
        assert CASES[name].says in stderr, name
    good = tmp_path / "good.json"
    good.write_text(plan_text(tool_step()), encoding="utf-8")
    done = workspace.cli("run", "--plan", str(good), env={"PLANNER_MCP_CATALOG": PRODUCT_CATALOG})
    assert (done.returncode, done.stdout) == (0, "OK\n"), done.stderr
    assert workspace.integrity() == "ok"
