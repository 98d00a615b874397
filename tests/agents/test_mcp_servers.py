"""Specialists from MCP servers, against real servers started for real: mcp-server-time and
mcp-server-git from the dev dependencies, a fixture server, and planner-mcp itself over HTTP."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from pydantic import BaseModel

from agents import mcp_servers
from agents.catalog import build_catalog
from agents.llm import Message, ScriptedLLM
from agents.mcp_servers import ServersConfigError, read_servers
from agents.planner import system_prompt
from planning.catalog import Catalog
from planning.plan import Step
from planning.records import RunRecord, RunStatus, StepStatus
from planning.remote import RemoteError
from planning.settings import Settings
from planning.steps import StepRunner
from planning.validate import PlanValidationError
from server import cli
from server.app import App
from server.mcp_server import build_server
from tests.agents.dotted_catalog import GCD, SUM_OF_MULTIPLES
from tools.errors import ToolError, ToolUnavailableError, TransientToolError

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FIXTURE = Path(__file__).with_name("mcp_fixture_server.py")
GIT_READ_ONLY = ["git_status", "git_log", "git_show", "git_diff_unstaged", "git_branch"]


def fixture_entry(**keys: Any) -> dict[str, Any]:
    return {"command": sys.executable, "args": [str(FIXTURE)], **keys}


def servers_file(tmp_path: Path, servers: dict[str, Any]) -> Path:
    path = tmp_path / "servers.json"
    path.write_text(json.dumps({"mcpServers": servers}))
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "GIT_AUTHOR_NAME": "T",
        "GIT_AUTHOR_EMAIL": "t@example.org",
    }
    env |= {"GIT_COMMITTER_NAME": "T", "GIT_COMMITTER_EMAIL": "t@example.org"}
    (repo / "notes.txt").write_text("first line\n")
    for command in (["init", "-q"], ["add", "notes.txt"], ["commit", "-q", "-m", "Add the notes"]):
        subprocess.run(["git", *command], cwd=repo, env=env, check=True)
    return repo


@pytest.fixture
def catalog(tmp_path: Path, repo: Path) -> Iterator[Catalog]:
    servers = {
        "time": {"command": str(BIN / "mcp-server-time"), "description": "Clock and time zones."},
        "git": {
            "command": str(BIN / "mcp-server-git"),
            "args": ["--repository", str(repo)],
            "allowed_tools": GIT_READ_ONLY,
        },
        "fixture": fixture_entry(timeout_s=5),
    }
    catalog = build_catalog(Settings(home=tmp_path, servers=servers_file(tmp_path, servers)))
    yield catalog
    catalog.close()


def test_each_server_becomes_an_agent_whose_tools_are_the_servers_own(catalog: Catalog) -> None:
    described = {agent["name"]: agent for agent in catalog.describe()}

    assert list(described)[-3:] == ["time", "git", "fixture"]
    assert described["time"]["description"] == "Clock and time zones."
    assert [tool["name"] for tool in described["time"]["tools"]] == ["get_current_time", "convert_time"]
    assert described["time"]["tools"][0]["parameters"]["required"] == ["timezone"]
    assert sorted(tool["name"] for tool in described["git"]["tools"]) == sorted(GIT_READ_ONLY)
    person_only = sorted(tool["name"] for tool in described["fixture"]["tools"] if tool.get("person_only"))
    # No annotations means destructive (MCP's default); read-only tools are the LLMs' to call.
    assert person_only == ["crash", "delete_everything"]
    assert "stdio" in (catalog.agent("time").local_only or "")


async def test_a_result_is_the_structured_content_or_else_the_text(catalog: Catalog, repo: Path) -> None:
    now = await catalog.agent("time").tool("get_current_time").call({"timezone": "Asia/Tokyo"})
    status = await catalog.agent("git").tool("git_status").call({"repo_path": str(repo)})

    assert isinstance(now, dict) and now["timezone"] == "Asia/Tokyo" and "datetime" in now
    assert isinstance(status, str) and "nothing to commit, working tree clean" in status


async def test_an_error_result_fails_with_the_servers_message(catalog: Catalog) -> None:
    with pytest.raises(ToolError, match=r"fixture.fail failed: .*the disk is on fire"):
        await catalog.agent("fixture").tool("fail").call({"message": "the disk is on fire"})
    with pytest.raises(ToolError, match="Invalid timezone"):
        await catalog.agent("time").tool("get_current_time").call({"timezone": "Mars/Olympus_Mons"})


async def test_calls_share_one_session_and_run_concurrently(catalog: Catalog) -> None:
    meet = catalog.agent("fixture").tool("meet")
    pids: list[object] = []

    async with anyio.create_task_group() as group:
        for party, other in (("a", "b"), ("b", "a")):
            group.start_soon(lambda p=party, o=other: _append(pids, meet.call({"party": p, "other": o})))
        group.start_soon(lambda: _append(pids, catalog.agent("fixture").tool("pid").call({})))

    values = [result["result"] for result in pids if isinstance(result, dict)]
    assert sorted(v for v in values if isinstance(v, str)) == ["a met b", "b met a"]  # each waited for the other


async def _append(into: list[object], call: Any) -> None:
    into.append(await call)


async def test_the_child_sees_only_its_entry_environment_plus_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-for-children")
    monkeypatch.setenv("PLANNER_MCP_BEARER_TOKEN", "secret")
    file = servers_file(tmp_path, {"fixture": fixture_entry(env={"FIXTURE_MODE": "test"})})
    catalog = build_catalog(Settings(home=tmp_path, servers=file))
    try:
        names = await catalog.agent("fixture").tool("env_names").call({})
    finally:
        catalog.close()

    assert isinstance(names, dict) and isinstance(names["result"], list)
    assert {"FIXTURE_MODE", "PATH"} <= set(names["result"])
    # The login basics the MCP SDK always passes, and the locale Python itself may set; nothing else.
    assert set(names["result"]) <= {"FIXTURE_MODE", "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LC_CTYPE"}


async def test_env_values_come_from_our_environment_and_a_missing_variable_fails_only_its_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIXTURE_TEST_TOKEN", "tok-8f2c41")
    monkeypatch.delenv("FIXTURE_NOT_SET", raising=False)
    monkeypatch.delenv("FIXTURE_MODE", raising=False)
    servers = {
        "fixture": fixture_entry(env={"TOKEN": "Bearer ${FIXTURE_TEST_TOKEN}", "MODE": "${FIXTURE_MODE:-test}"}),
        "needs": fixture_entry(env={"TOKEN": "${FIXTURE_NOT_SET}"}),
    }
    catalog = build_catalog(Settings(home=tmp_path, servers=servers_file(tmp_path, servers)))
    try:
        fixture = catalog.agent("fixture")
        token = await fixture.tool("env_value").call({"name": "TOKEN"})
        mode = await fixture.tool("env_value").call({"name": "MODE"})
        with pytest.raises(ToolError) as failed:  # the server repeats the secret: we do not
            await fixture.tool("fail").call({"message": "it was tok-8f2c41"})
        needs = next(agent for agent in catalog.describe() if agent["name"] == "needs")
    finally:
        catalog.close()

    assert (token, mode) == ({"result": "Bearer tok-8f2c41"}, {"result": "test"})
    assert "it was ${FIXTURE_TEST_TOKEN}" in str(failed.value) and "tok-8f2c41" not in str(failed.value)
    assert needs["tools"] == []
    assert needs["unavailable"].startswith(
        "MCP server 'needs' could not start: the entry 'needs' uses ${FIXTURE_NOT_SET} in env['TOKEN'], and "
        "FIXTURE_NOT_SET is not set in planner-mcp's environment; set it where planner-mcp starts"
    )


async def test_command_args_and_cwd_variables_start_the_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIXTURE_PYTHON", sys.executable)
    monkeypatch.setenv("FIXTURE_DIR", str(FIXTURE.parent))
    monkeypatch.delenv("FIXTURE_SCRIPT", raising=False)
    # The script's path is relative: the server starts only if cwd was read too.
    entry = {
        "command": "${FIXTURE_PYTHON}",
        "args": ["${FIXTURE_SCRIPT:-" + FIXTURE.name + "}"],
        "cwd": "${FIXTURE_DIR}",
    }
    missing = {"command": "${FIXTURE_PYTHON}", "args": ["${FIXTURE_NO_SUCH_ARG}"]}
    servers = {"fixture": entry, "missing": missing}
    catalog = build_catalog(Settings(home=tmp_path, servers=servers_file(tmp_path, servers)))
    try:
        echoed = await catalog.agent("fixture").tool("echo").call({"text": "hi"})
        unavailable = next(agent for agent in catalog.describe() if agent["name"] == "missing")["unavailable"]
    finally:
        catalog.close()

    assert echoed == {"result": "hi"}
    assert "uses ${FIXTURE_NO_SUCH_ARG} in args[0], and FIXTURE_NO_SUCH_ARG is not set" in unavailable


def test_url_and_header_variables_reach_the_server_and_never_our_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    seen: list[tuple[str, str | None]] = []

    class Refusing(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append((self.path, self.headers["Authorization"]))
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    monkeypatch.setenv("FIXTURE_KEY", "k3y-5ecret")
    monkeypatch.setenv("FIXTURE_TOKEN", "t0ken-5ecret")
    url = f"http://127.0.0.1:{http.server_address[1]}/mcp?key=${{FIXTURE_KEY}}"
    servers = {"remote": {"url": url, "headers": {"Authorization": "Bearer ${FIXTURE_TOKEN}"}}}
    try:
        catalog = build_catalog(Settings(home=tmp_path, servers=servers_file(tmp_path, servers)))
        remote = next(agent for agent in catalog.describe() if agent["name"] == "remote")
        catalog.close()
    finally:
        http.shutdown()

    assert seen[0] == ("/mcp?key=k3y-5ecret", "Bearer t0ken-5ecret")
    assert "/mcp?key=${FIXTURE_KEY}" in caplog.text  # the HTTP client's request line, written back
    assert "5ecret" not in caplog.text and "5ecret" not in remote["unavailable"]


def test_the_servers_stderr_goes_to_our_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="agents.mcp_servers")

    catalog = build_catalog(Settings(home=tmp_path, servers=servers_file(tmp_path, {"fixture": fixture_entry()})))
    try:
        # The line arrives from the reader thread.
        assert _wait_until(lambda: "[fixture] fixture server ready" in caplog.text, 20)
    finally:
        catalog.close()


async def test_a_call_that_outlasts_its_timeout_fails_and_the_session_stays_usable(tmp_path: Path) -> None:
    file = servers_file(tmp_path, {"fixture": fixture_entry(timeout_s=0.5)})
    catalog = build_catalog(Settings(home=tmp_path, servers=file))
    try:
        with pytest.raises(ToolError, match=r"fixture.hang did not answer within 0.5 s"):
            await catalog.agent("fixture").tool("hang").call({})
        assert await catalog.agent("fixture").tool("echo").call({"text": "still here"}) == {"result": "still here"}
    finally:
        catalog.close()


async def test_a_crashed_server_fails_the_call_and_restarts_for_the_next(catalog: Catalog) -> None:
    fixture = catalog.agent("fixture")
    before = await fixture.tool("pid").call({})

    with pytest.raises(ToolError, match="exited during the call to 'crash'; whether the call took effect is unknown"):
        await fixture.tool("crash").call({})
    after = await fixture.tool("pid").call({})

    assert isinstance(before, dict) and isinstance(after, dict) and before != after


async def test_a_server_killed_from_outside_fails_the_call_in_flight_and_serves_the_next(catalog: Catalog) -> None:
    fixture = catalog.agent("fixture")
    pid = await fixture.tool("pid").call({})
    assert isinstance(pid, dict)
    child = pid["result"]
    assert isinstance(child, int)

    threading.Timer(0.3, os.kill, (child, signal.SIGKILL)).start()  # while `hang` waits
    with pytest.raises(TransientToolError, match="exited during the call to 'hang'"):  # read-only: step retries
        await fixture.tool("hang").call({})

    assert await fixture.tool("echo").call({"text": "back"}) == {"result": "back"}


async def test_a_server_killed_while_idle_is_restarted_before_the_next_call_reaches_it(catalog: Catalog) -> None:
    fixture = catalog.agent("fixture")
    pid = await fixture.tool("pid").call({})
    assert isinstance(pid, dict)
    child = pid["result"]
    assert isinstance(child, int)
    os.kill(child, signal.SIGKILL)
    assert _wait_until(lambda: not _alive(child), 10)

    # Even a tool that must not run twice: the call goes only to a live server.
    assert await fixture.tool("delete_everything").call({}) == {"result": "deleted"}
    after = await fixture.tool("pid").call({})
    assert isinstance(after, dict) and after["result"] != child


async def test_closing_the_catalog_stops_the_server_processes(tmp_path: Path) -> None:
    catalog = build_catalog(Settings(home=tmp_path, servers=servers_file(tmp_path, {"fixture": fixture_entry()})))
    pid = await catalog.agent("fixture").tool("pid").call({})
    assert isinstance(pid, dict) and isinstance(pid["result"], int)
    child = pid["result"]

    catalog.close()

    with pytest.raises(ToolUnavailableError, match="closed"):
        await catalog.agent("fixture").tool("pid").call({})
    assert _wait_until(lambda: not _alive(child), 10)


def _wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    """Whether `condition` came true within `timeout_s` (a bounded wait for another process or thread)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    state = Path(f"/proc/{pid}/stat")
    return not (state.exists() and state.read_text().split(") ")[-1].startswith("Z"))


async def test_a_lazy_server_lists_its_tools_at_start_and_runs_from_the_first_call(tmp_path: Path) -> None:
    catalog = build_catalog(
        Settings(home=tmp_path, servers=servers_file(tmp_path, {"fixture": fixture_entry(start="lazy")}))
    )
    try:
        assert "echo" in catalog.agent("fixture").tool_by_name
        assert await catalog.agent("fixture").tool("echo").call({"text": "up"}) == {"result": "up"}
    finally:
        catalog.close()


async def test_a_server_that_cannot_start_is_reported_and_fails_only_its_steps(tmp_path: Path) -> None:
    servers = {"broken": {"command": str(tmp_path / "no-such-server")}, "fixture": fixture_entry()}
    llm = ScriptedLLM([])
    app = App.open(Settings(home=tmp_path, servers=servers_file(tmp_path, servers), synthesize=False), llm=llm)
    try:
        broken = next(a for a in app.catalog.describe() if a["name"] == "broken")
        assert broken["tools"] == []
        assert broken["unavailable"].startswith("MCP server 'broken' could not start: the command was not found")
        with pytest.raises(PlanValidationError, match="MCP server 'broken' could not start"):
            app.parse({"steps": [{"id": 1, "agent": "broken", "tool": "anything", "args": {}}]})
        plan = app.parse(
            {
                "steps": [
                    {"id": 1, "agent": "broken", "task": "do something"},
                    {"id": 2, "agent": "fixture", "tool": "echo", "args": {"text": "fine"}},
                ]
            }
        )
        record = await app.execute(app.submit(plan).id, synthesize=False)
    finally:
        app.close()

    failed, echoed = record.steps
    assert failed.status is StepStatus.FAILED and failed.error is not None
    assert "MCP server 'broken' could not start" in failed.error.message
    assert (echoed.status, echoed.result) == (StepStatus.SUCCEEDED, {"result": "fine"})
    assert llm.calls == []  # the planner's LLM is never asked about an agent that cannot run


def _flaky_server(tmp_path: Path) -> Path:
    """A server command that counts its starts in `starts` and fails until the file `fixed` exists."""
    script = tmp_path / "flaky-server"
    script.write_text(
        f'#!/bin/sh\necho start >> "{tmp_path}/starts"\n'
        f'[ -e "{tmp_path}/fixed" ] && exec "{sys.executable}" "{FIXTURE}"\nexit 1\n'
    )
    script.chmod(0o755)
    return script


def _starts(tmp_path: Path) -> int:
    return len((tmp_path / "starts").read_text().splitlines())


async def test_a_server_that_failed_to_start_is_started_again_by_the_next_step_that_needs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mcp_servers, "_BACKOFF_START_S", 0.0)  # no back-off: the next step may try at once
    file = servers_file(tmp_path, {"flaky": {"command": str(_flaky_server(tmp_path))}})
    catalog = build_catalog(Settings(home=tmp_path, servers=file))
    try:
        assert (catalog.agent("flaky").tool_by_name, _starts(tmp_path)) == ({}, 1)
        (tmp_path / "fixed").touch()  # the operator fixes it
        outcome = await StepRunner(catalog)(Step(id=1, agent="flaky", tool="echo", args={"text": "back"}), {})
        flaky = catalog.agent("flaky")
    finally:
        catalog.close()

    assert (outcome.status, outcome.result) == (StepStatus.SUCCEEDED, {"result": "back"})
    # The catalog keeps the server's tools: plans validate against them and the planner sees them.
    assert flaky.unavailable is None and {"echo", "pid"} <= set(flaky.tool_by_name)


async def test_a_broken_server_is_tried_again_only_after_its_back_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mcp_servers, "_BACKOFF_START_S", 0.0)
    file = servers_file(tmp_path, {"flaky": {"command": str(_flaky_server(tmp_path))}})
    catalog = build_catalog(Settings(home=tmp_path, servers=file))
    monkeypatch.setattr(mcp_servers, "_BACKOFF_START_S", 3600.0)  # from the next failure on
    steps = StepRunner(catalog)
    try:
        first = await steps(Step(id=1, agent="flaky", task="echo something"), {})  # tries: fails again
        second = await steps(Step(id=2, agent="flaky", task="echo something"), {})  # within the back-off
    finally:
        catalog.close()

    assert _starts(tmp_path) == 2  # at start, then for the first step only
    for outcome in (first, second):
        assert outcome.status is StepStatus.FAILED and outcome.error is not None
        assert outcome.error.message.startswith("MCP server 'flaky' could not start")


def _echo_plan(messages: Any, output: type[BaseModel], role: str) -> dict[str, Any]:
    assert role == "planner" and "flaky" in json.dumps(output.model_json_schema()), "flaky not offered"
    return {"steps": [{"id": 1, "tool": "echo", "agent": "flaky", "args": {"text": "back"}}]}


async def test_a_server_back_after_a_failed_start_is_offered_to_the_planner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mcp_servers, "_BACKOFF_START_S", 0.0)
    file = servers_file(tmp_path, {"flaky": {"command": str(_flaky_server(tmp_path))}})
    llm = ScriptedLLM(_echo_plan)
    app = App.open(Settings(home=tmp_path, servers=file, synthesize=False), llm=llm)
    try:
        assert app.planner is not None and "flaky" not in app.planner.prompt  # built while it was down
        (tmp_path / "fixed").touch()
        planned = await app.plan("Echo 'back' with the flaky server")
        prompt = app.planner.prompt
    finally:
        app.close()

    assert [(s.agent, s.tool, s.args) for s in planned.plan.steps] == [("flaky", "echo", {"text": "back"})]
    assert "echo" in prompt and len(llm.calls) == 1


async def test_a_hand_written_plan_for_a_server_that_failed_to_start_validates_once_it_is_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mcp_servers, "_BACKOFF_START_S", 0.0)
    file = servers_file(tmp_path, {"flaky": {"command": str(_flaky_server(tmp_path))}})
    app = App.open(Settings(home=tmp_path, servers=file, synthesize=False), llm=None)
    document = {"steps": [{"id": 1, "agent": "flaky", "tool": "echo", "args": {"text": "back"}}]}
    try:
        with pytest.raises(PlanValidationError, match="MCP server 'flaky' could not start"):
            await app.parse_reviving(document)  # tried again: still down
        (tmp_path / "fixed").touch()
        plan = await app.parse_reviving(document)
        record = await app.execute(app.submit(plan).id, synthesize=False)
    finally:
        app.close()

    assert _starts(tmp_path) == 3  # at start, for the refused plan, for the accepted one
    assert (record.status, record.steps[0].result) == (RunStatus.SUCCEEDED, {"result": "back"})


def _time_agent_reply(messages: Any, output: type[BaseModel], role: str) -> dict[str, Any]:
    assert role == "time", role
    return {
        "calls": [
            {
                "tool": "convert_time",
                "args": {"source_timezone": "Europe/Paris", "time": "14:00", "target_timezone": "Asia/Tokyo"},
            }
        ]
    }


async def test_a_plan_mixes_server_tools_an_agent_step_and_built_in_agents_in_parallel(
    tmp_path: Path, repo: Path
) -> None:
    servers = {
        "time": {"command": str(BIN / "mcp-server-time")},
        "git": {"command": str(BIN / "mcp-server-git"), "allowed_tools": GIT_READ_ONLY},
        "fixture": fixture_entry(),
    }
    settings = Settings(home=tmp_path, servers=servers_file(tmp_path, servers), synthesize=False)
    llm = ScriptedLLM(_time_agent_reply)
    app = App.open(settings, llm=llm)
    steps = [
        {"id": 1, "agent": "time", "tool": "get_current_time", "args": {"timezone": "Europe/Paris"}},
        {"id": 2, "agent": "fixture", "tool": "meet", "args": {"party": "left", "other": "right"}},
        {"id": 3, "agent": "fixture", "tool": "meet", "args": {"party": "right", "other": "left"}},
        {"id": 4, "agent": "math", "tool": "add", "args": {"a": 40, "b": 2}},
        {"id": 5, "agent": "time", "task": "What time is 14:00 in Paris in Tokyo?"},
        {"id": 6, "agent": "git", "tool": "git_log", "args": {"repo_path": str(repo), "max_count": 1}},
        {"id": 7, "agent": "string", "tool": "upper", "args": {"text": "$1.day_of_week"}},
    ]
    try:
        record = await app.execute(app.submit(app.parse({"steps": steps})).id, synthesize=False)
    finally:
        app.close()

    results = {step.id: step.result for step in record.steps}
    assert [step.status for step in record.steps] == [StepStatus.SUCCEEDED] * 7, _errors(record)
    assert results[2] == {"result": "left met right"} and results[3] == {"result": "right met left"}
    assert results[4] == 42
    converted = results[5]
    assert isinstance(converted, dict)
    target = converted["target"]
    assert isinstance(target, dict)
    assert target["timezone"] == "Asia/Tokyo"
    assert "Add the notes" in str(results[6])
    assert results[7] == str(results[1]["day_of_week"]).upper()  # type: ignore[index]
    assert [call.role for call in llm.calls] == ["time"]
    # The agent's prompt named the server's tools with their parameters.
    system = llm.calls[0].messages[0]
    assert (
        isinstance(system, Message)
        and "convert_time(source_timezone: str, time: str, target_timezone: str)" in system.content
    )


def _errors(record: RunRecord) -> list[str]:
    return [f"{step.id}: {step.error.message}" for step in record.steps if step.error]


async def test_a_server_crashing_mid_run_fails_only_its_steps(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path, servers=servers_file(tmp_path, {"fixture": fixture_entry()}), synthesize=False, retry_base_s=0.01
    )
    app = App.open(settings, llm=None)
    steps = [
        {"id": 1, "agent": "fixture", "tool": "crash", "args": {}},
        {"id": 2, "agent": "fixture", "tool": "echo", "args": {"text": "$1"}},
        {"id": 3, "agent": "math", "tool": "multiply", "args": {"a": 6, "b": 7}},
        {"id": 4, "agent": "fixture", "tool": "echo", "args": {"text": "after the crash"}, "depends_on": [3]},
    ]
    try:
        record = await app.execute(app.submit(app.parse({"steps": steps})).id, synthesize=False)
    finally:
        app.close()

    by_id = {step.id: step for step in record.steps}
    assert by_id[1].status is StepStatus.FAILED and by_id[1].error is not None
    assert "MCP server 'fixture' exited during the call to 'crash'" in by_id[1].error.message
    assert by_id[2].status is StepStatus.SKIPPED
    assert (by_id[3].status, by_id[3].result) == (StepStatus.SUCCEEDED, 42)
    # Read-only calls that met the crash are retried on the restarted server.
    assert (by_id[4].status, by_id[4].result) == (StepStatus.SUCCEEDED, {"result": "after the crash"})


async def test_plans_for_a_cluster_refuse_stdio_servers_with_the_fix(tmp_path: Path) -> None:
    app = App.open(Settings(home=tmp_path, servers=servers_file(tmp_path, {"fixture": fixture_entry()})), llm=None)
    try:
        plan = app.parse({"steps": [{"id": 1, "agent": "fixture", "tool": "echo", "args": {"text": "x"}}]})
        with pytest.raises(RemoteError, match=r"runs as a local process \(stdio\); a Flyte cluster's task pods cannot"):
            app.submit(plan, engine="remote")
    finally:
        app.close()


async def test_a_request_planned_for_a_cluster_with_a_stdio_server_fails_with_why(tmp_path: Path) -> None:
    plan = {"steps": [{"id": 1, "agent": "fixture", "tool": "echo", "args": {"text": "x"}}]}
    settings = Settings(home=tmp_path, servers=servers_file(tmp_path, {"fixture": fixture_entry()}), synthesize=False)
    app = App.open(settings, llm=ScriptedLLM([plan]))

    class Cluster:  # configured, and never reached
        name = "remote"

        def target(self) -> None:
            pass

        async def run(self, run_id: str, on_event: object) -> RunRecord:
            raise AssertionError("submitted")

    app.__dict__["remote"] = Cluster()
    try:
        record = await app.execute(app.submit_request("echo x", engine="remote").id)
    finally:
        app.close()

    assert record.status is RunStatus.FAILED and record.error is not None
    assert record.error.startswith("cannot run on the Flyte cluster: fixture: the MCP server 'fixture' runs as a local")


def test_cluster_pods_start_only_http_servers_and_stdio_ones_marked_on_cluster(tmp_path: Path) -> None:
    servers = {"here": fixture_entry(), "image": fixture_entry(on_cluster=True)}
    catalog = build_catalog(Settings(home=tmp_path, servers=servers_file(tmp_path, servers), cluster_pod=True))
    try:
        names = list(catalog.agents)
        image = catalog.agent("image")
    finally:
        catalog.close()

    assert "here" not in names and "image" in names
    assert image.local_only is None and "echo" in image.tool_by_name


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{", "is not a usable servers file"),
        ('{"mcpServers": {"x": {"args": []}}}', 'give either "command"'),
        ('{"mcpServers": {"x": {"command": "a", "url": "http://b"}}}', 'give either "command"'),
        ('{"mcpServers": {"my server": {"command": "a"}}}', "server name 'my server' cannot name an agent"),
    ],
)
def test_a_servers_file_that_cannot_be_used_is_refused_with_the_fix(
    tmp_path: Path, document: str, message: str
) -> None:
    path = tmp_path / "servers.json"
    path.write_text(document)

    with pytest.raises(ServersConfigError, match=message):
        read_servers(path)


def test_a_server_named_like_a_built_in_agent_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ServersConfigError, match=r"server name\(s\) \['math'\] are taken by built-in agents"):
        build_catalog(Settings(home=tmp_path, servers=servers_file(tmp_path, {"math": fixture_entry()})))


def test_the_readme_shows_the_example_servers_file_and_it_is_usable() -> None:
    example = ROOT / "examples" / "servers.json"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Specialists from your MCP servers") :]
    shown = section[section.index("```json") + len("```json") : section.index("```", section.index("```json") + 7)]

    assert json.loads(shown) == json.loads(example.read_text(encoding="utf-8"))
    assert list(read_servers(example)) == ["time", "git", "files"]


def test_disabled_entries_are_left_out(tmp_path: Path) -> None:
    path = servers_file(tmp_path, {"off": fixture_entry(disabled=True), "on": fixture_entry()})

    assert list(read_servers(path)) == ["on"]


# -- planner-mcp itself as the external server of a second instance ---------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def first_instance(tmp_path: Path) -> Iterator[str]:
    """planner-mcp serving a catalog of dotted JSON-Schema tools over streamable HTTP; yields its URL."""
    port = _free_port()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "PLANNER_MCP_HOME": str(tmp_path / "first"),
        "PLANNER_MCP_CATALOG": "tests.agents.dotted_catalog:build_catalog",
        "PLANNER_MCP_LLM": "none",
    }
    command = [sys.executable, "-m", "server.cli", "serve", "--transport", "http", "--port", str(port)]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"the first instance did not start: {process.stderr.read()!r}") from None  # type: ignore[union-attr]
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=30)


async def test_planner_mcp_serves_as_an_mcp_server_of_another_instance(tmp_path: Path, first_instance: str) -> None:
    servers = {"first": {"url": first_instance, "headers": {"X-Caller": "second"}, "timeout_s": 60}}
    app = App.open(Settings(home=tmp_path / "second", servers=servers_file(tmp_path, servers), synthesize=False))
    steps = [
        {
            "id": 1,
            "agent": "first",
            "tool": "math_toolkit_agent",
            "args": {"tool": SUM_OF_MULTIPLES, "args": {"limit": 10, "multiples": [3, 5]}},
        },
        {
            "id": 2,
            "agent": "first",
            "tool": "execute_plan",
            "args": {"plan": {"steps": [{"id": 1, "agent": "math_toolkit", "tool": GCD, "args": {"a": 84, "b": 36}}]}},
        },
        {"id": 3, "agent": "first", "tool": "list_agents", "args": {}},
    ]
    try:
        tools = sorted(app.catalog.agent("first").tool_by_name)
        record = await app.execute(app.submit(app.parse({"steps": steps})).id, synthesize=False)
    finally:
        app.close()

    assert "math_toolkit_agent" in tools and "execute_plan" in tools
    assert "cancel_run" in tools and not app.catalog.agent("first").tool("cancel_run").planner_may_call
    assert [step.status for step in record.steps] == [StepStatus.SUCCEEDED] * 3, _errors(record)
    summed, gcd, agents = (step.result for step in record.steps)
    assert isinstance(summed, dict) and summed["steps"][0]["result"] == 23  # type: ignore[index]
    assert isinstance(gcd, dict) and gcd["steps"][0]["result"] == 12  # type: ignore[index]
    assert isinstance(agents, dict)
    assert [t["name"] for t in agents["agents"][0]["tools"]] == [SUM_OF_MULTIPLES, GCD]  # type: ignore[index]


# -- the surfaces: MCP tools, list_agents, the planner prompt, the CLI ------------------------------


async def test_each_server_agent_gets_its_mcp_tool_and_is_listed_with_its_state(tmp_path: Path) -> None:
    servers = {"fixture": fixture_entry(description="Test fixture."), "broken": {"command": str(tmp_path / "nope")}}
    settings = Settings(home=tmp_path, servers=servers_file(tmp_path, servers), synthesize=False)
    catalog = build_catalog(settings)
    server = build_server(settings, catalog=catalog, app_factory=lambda s: App.open(s, llm=None, catalog=catalog))

    try:
        async with Client(server) as client:
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
            listed = (await client.call_tool("list_agents", {})).structured_content
            called = await client.call_tool("fixture_agent", {"tool": "echo", "args": {"text": "via MCP"}})
    finally:
        catalog.close()

    assert {"fixture_agent", "broken_agent", "math_agent"} <= set(tools)
    fixture_tool = tools["fixture_agent"]
    assert "Test fixture." in (fixture_tool.description or "")
    # It can call tools only a person's plan may (crash, delete_everything): hosts should ask first.
    assert fixture_tool.annotations is not None and fixture_tool.annotations.destructive_hint is True
    # So can a plan written by hand: hosts should ask before execute_plan too, and before the tools
    # that run such a plan again (resume_run) or as a person approved or edited it (approve_run).
    runners = {name: tools[name].annotations for name in ("execute_plan", "resume_run", "approve_run")}
    assert {name: hints and hints.destructive_hint for name, hints in runners.items()} == dict.fromkeys(runners, True)
    assert "could not start" in (tools["broken_agent"].description or "")
    assert listed is not None
    agents = {agent["name"]: agent for agent in listed["agents"]}
    assert agents["broken"]["unavailable"].startswith("MCP server 'broken' could not start")
    assert "echo" in [tool["name"] for tool in agents["fixture"]["tools"]]
    assert called.structured_content is not None
    assert called.structured_content["steps"][0]["result"] == {"result": "via MCP"}


def test_the_planner_prompt_offers_server_agents_with_the_tools_it_may_call(catalog: Catalog) -> None:
    prompt = system_prompt(catalog)

    assert "- time: Clock and time zones." in prompt
    assert "get_current_time(timezone: str)" in prompt
    assert "echo(text: str)" in prompt and "crash(" not in prompt and "delete_everything(" not in prompt


def test_the_cli_schema_lists_server_agents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PLANNER_MCP_HOME", str(tmp_path))
    monkeypatch.setenv("PLANNER_MCP_SERVERS", str(servers_file(tmp_path, {"fixture": fixture_entry()})))
    monkeypatch.setenv("PLANNER_MCP_LLM", "none")

    assert cli.main(["schema", "--agents"]) == 0

    agents = {agent["name"]: agent for agent in json.loads(capsys.readouterr().out)}
    assert "echo" in [tool["name"] for tool in agents["fixture"]["tools"]]


def test_the_cli_names_an_unusable_servers_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PLANNER_MCP_HOME", str(tmp_path))
    monkeypatch.setenv("PLANNER_MCP_SERVERS", str(tmp_path / "missing.json"))
    monkeypatch.setenv("PLANNER_MCP_LLM", "none")

    assert cli.main(["schema", "--agents"]) == 1

    assert "PLANNER_MCP_SERVERS=" in capsys.readouterr().err
