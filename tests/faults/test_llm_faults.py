"""LLM faults through the real CLI: a fake OpenAI-compatible server on 127.0.0.1 answers 429, 500, an
HTML page, a cut-off body, a reset, nothing at all, or JSON that is no plan. Each gives one clear
error (server, model, fix), a bounded number of calls (all of them counted), and never a traceback;
a succeeded step is never run again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.faults.fake_llm import HANG, HTML, RESET, TRUNCATED, Behaviour, chat, fake_llm, status
from tests.faults.harness import PLAN, REQUEST, cli, integrity, one_error_line, run_record

ATTEMPTS = 3  # one call and PLANNER_MCP_LLM_MAX_RETRIES (default 2) retries


@pytest.mark.parametrize(
    ("fault", "attempts", "says"),
    [
        (status(429), ATTEMPTS, "answered HTTP 429"),
        (status(500), ATTEMPTS, "answered HTTP 500"),
        (TRUNCATED, ATTEMPTS, "dropped the connection before a complete answer"),
        (RESET, ATTEMPTS, "dropped the connection before a complete answer"),
        (HTML, 1, "body that is not JSON"),
    ],
    ids=["429", "500", "truncated", "reset", "html-200"],
)
def test_a_failing_llm_server_gives_one_clear_line_after_a_bounded_number_of_calls(
    tmp_path: Path, fault: Behaviour, attempts: int, says: str
) -> None:
    with fake_llm([fault]) as server:
        planned = cli(tmp_path, "plan", REQUEST, llm_url=server.url)

    line = one_error_line(planned.stderr)
    assert planned.returncode == 1
    assert says in line
    assert server.url in line and "'gpt-4o-mini'" in line
    assert "OPENAI_BASE_URL" in line or "PLANNER_MCP_LLM_" in line  # the fix
    assert server.count == attempts


def test_a_hung_llm_server_is_given_up_on_within_the_timeout_budget(tmp_path: Path) -> None:
    with fake_llm([HANG]) as server:
        planned = cli(tmp_path, "plan", REQUEST, llm_url=server.url, extra={"PLANNER_MCP_LLM_TIMEOUT_S": "0.5"})

    line = one_error_line(planned.stderr)
    assert "did not answer within 0.5 s" in line
    assert "gave up after 3 attempt(s)" in line
    assert server.count == ATTEMPTS
    # Each retry is announced while the user waits.
    assert planned.stderr.count("retry") >= ATTEMPTS - 1


def test_replies_that_are_no_plan_end_in_a_planning_error_once_a_reply_repeats(tmp_path: Path) -> None:
    with fake_llm([chat({"steps": "none"})]) as server:
        planned = cli(tmp_path, "plan", REQUEST, llm_url=server.url)

    assert planned.returncode == 1
    assert "Traceback" not in planned.stderr
    assert "could not make a valid plan" in planned.stderr
    # The planner repairs (one call per round, no inner repair call); the second round answers the
    # same reply again, which ends the rounds.
    assert "answered the same plan again" in planned.stderr
    assert server.count == 2


def test_a_failed_synthesis_keeps_the_steps_and_never_runs_a_succeeded_step_again(tmp_path: Path) -> None:
    # A request that asks for prose: the answer is written by the LLM, not stated from the results.
    with fake_llm([chat(PLAN), HTML]) as server:
        ran = cli(tmp_path, "run", f"{REQUEST}, and explain the steps", llm_url=server.url)

    assert ran.returncode == 0, ran.stderr
    assert "Traceback" not in ran.stderr
    assert ran.stdout.strip().endswith("100")  # the deterministic answer
    record = run_record(tmp_path)
    assert record["status"] == "succeeded"
    assert [(s["status"], s["attempts"]) for s in record["steps"]] == [("succeeded", 1)] * 3
    assert record["usage"]["calls"] == 2  # the plan, and the failed synthesis call
    assert server.count == 2
    assert integrity(tmp_path / "runs.sqlite3") == "ok"


def test_an_agent_step_whose_llm_fails_names_the_server_and_counts_every_call(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"steps": [{"id": 1, "agent": "math", "task": "multiply 6 by 7"}]}))

    with fake_llm([status(503)]) as server:
        ran = cli(tmp_path, "run", "--plan", str(plan), llm_url=server.url)

    assert ran.returncode == 1
    assert "Traceback" not in ran.stderr
    step = run_record(tmp_path)["steps"][0]
    assert (step["status"], step["attempts"]) == ("failed", 1)
    assert step["error"]["kind"] == "transient"
    assert server.url in step["error"]["message"] and "HTTP 503" in step["error"]["message"]
    assert step["usage"]["calls"] == ATTEMPTS == server.count


def test_an_agent_steps_limit_cuts_a_hung_llm_short_and_the_error_names_the_llm(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"steps": [{"id": 1, "agent": "math", "task": "multiply 6 by 7", "timeout_s": 3}]}))

    with fake_llm([HANG]) as server:
        ran = cli(tmp_path, "run", "--plan", str(plan), llm_url=server.url)

    assert ran.returncode == 1
    step = run_record(tmp_path)["steps"][0]
    assert step["status"] == "failed"
    assert server.url in step["error"]["message"] and "did not answer within" in step["error"]["message"]
    assert step["usage"]["calls"] == server.count >= 1
