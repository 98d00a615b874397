"""The MCP server through the in-memory `mcp.Client`, in both protocol eras (the `mode` fixture):
every tool, resource and prompt, progress, background runs, concurrency and cancellation."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.session import ClientRequestContext, SamplingFnT
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp.types import (
    CallToolResult,
    CreateMessageRequestParams,
    CreateMessageResult,
    ErrorData,
    TextContent,
    TextResourceContents,
)

from agents.llm import ScriptedLLM
from agents.llm.errors import HOW_TO_CONFIGURE
from planning.catalog import Catalog
from planning.records import RunStatus, StepStatus
from planning.settings import Settings
from planning.store import RunStore
from planning.validate import PlanValidationError, parse_plan
from server.mcp_server import ServerState
from server.views import agents_view, plan_view
from tests.server.fakes import BOUND_S, SEED_PLAN, Gate

MakeServer = Callable[..., MCPServer[ServerState]]
pytestmark = pytest.mark.anyio

GATE_PLAN = {"steps": [{"id": 1, "agent": "gate", "tool": "block", "args": {"label": "opened"}}]}


def structured(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


def error_text(result: CallToolResult) -> str:
    assert result.is_error
    assert isinstance(result.content[0], TextContent)
    return result.content[0].text


async def call(client: Client, tool: str, /, **arguments: Any) -> dict[str, Any]:
    return structured(await client.call_tool(tool, arguments))


async def poll_run(client: Client, run_id: str, until: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """get_run until `until(run)` holds (bounded; tiny poll interval)."""
    with anyio.fail_after(BOUND_S):
        while True:
            run = await call(client, "get_run", run_id=run_id)
            if until(run):
                return run
            await anyio.sleep(0.02)


def step_results(run: dict[str, Any]) -> dict[int, tuple[str, Any]]:
    return {step["id"]: (step["status"], step["result"]) for step in run["steps"]}


# -- listing --------------------------------------------------------------------------------------


async def test_every_tool_is_listed_with_its_hints_and_an_output_schema(make_server: MakeServer, mode: str) -> None:
    async with Client(make_server(), mode=mode) as client:
        tools = (await client.list_tools()).tools

    hints = {
        tool.name: (
            tool.annotations.read_only_hint,
            tool.annotations.destructive_hint,
            tool.annotations.idempotent_hint,
            tool.annotations.open_world_hint,
        )
        for tool in tools
        if tool.annotations is not None
    }
    assert hints == {
        "plan": (True, None, None, False),
        "execute_plan": (False, False, False, True),
        "list_agents": (True, None, True, False),
        "math_agent": (False, False, False, False),
        "string_agent": (False, False, False, False),
        "web_search_agent": (False, False, False, True),
        "code_agent": (False, False, False, False),
        "weather_agent": (False, False, False, True),
        "gate_agent": (False, False, False, False),  # the test catalog's extra agent gets its tool too
        "list_runs": (True, None, True, False),
        "get_run": (True, None, True, False),
        "resume_run": (False, False, True, True),
        "cancel_run": (False, True, True, False),
        "approve_run": (False, False, False, True),
    }
    assert all(tool.description for tool in tools)
    published = {tool.name: (tool.output_schema or {}).get("description") for tool in tools if tool.output_schema}
    assert published == {
        "plan": "A validated plan, ready for execute_plan, with its DAG drawn in Mermaid.",
        "execute_plan": "A run's id, status and answer; the run carries every step too, as get_run describes.",
        "list_agents": "The specialist agents a plan may use, with their tools' argument schemas.",
        "list_runs": "A page of runs, newest first.",
        "get_run": "A run: status, answer, every step, timings, total LLM usage; in detail, Mermaid charts.",
    }
    execute = next(tool for tool in tools if tool.name == "execute_plan")
    assert "60 seconds" in (execute.description or "")
    assert "wait=false" in (execute.description or "")
    assert list(execute.input_schema["properties"]) == [
        "plan",
        "request",
        "wait",
        "synthesize",
        "idempotency_key",
        "engine",
        "approval",
        "max_replans",
    ]


# -- execute_plan ---------------------------------------------------------------------------------


async def test_execute_plan_runs_the_seed_plan_and_reports_each_step_start_and_finish(
    make_server: MakeServer, mode: str
) -> None:
    reports: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        reports.append((progress, total, message))

    async with Client(make_server(), mode=mode) as client:
        run = structured(await client.call_tool("execute_plan", {"plan": SEED_PLAN}, progress_callback=on_progress))

    assert (run["status"], run["finished"], run["answer"], run["error"]) == ("succeeded", True, "100", None)
    assert step_results(run) == {1: ("succeeded", 50), 2: ("succeeded", 2), 3: ("succeeded", 100)}
    assert [step["wave"] for step in run["steps"]] == [1, 1, 2]
    assert (run["gantt"], run["flowchart"]) == (None, None)  # charts: get_run(detail=true)
    values = [value for value, _, _ in reports]
    assert values == sorted(set(values)), "progress must strictly increase"
    assert len(reports) == 8 and reports[-3:] == [
        (3, 4, "3 done of 3: step 3 (math) succeeded"),
        (3.5, 4, "writing the answer"),
        (4, 4, "run succeeded"),
    ]
    assert {message for _, _, message in reports} >= {
        "0 done of 3: step 1 (math) running",
        "2 done of 3: step 3 (math) running",
    }


async def test_execute_plan_accepts_the_plan_as_a_json_string(make_server: MakeServer, mode: str) -> None:
    async with Client(make_server(), mode=mode) as client:
        run = await call(client, "execute_plan", plan=json.dumps(SEED_PLAN))

    assert (run["status"], run["answer"]) == ("succeeded", "100")


async def test_an_invalid_plan_lists_every_problem_and_records_no_run(
    make_server: MakeServer, catalog: Catalog, settings: Settings, mode: str
) -> None:
    bad_plan = {
        "steps": [
            {"id": 1, "agent": "maths", "tool": "multiply", "args": {"a": 10, "b": 5}},
            {"id": 2, "agent": "string", "tool": "word_count", "args": {"txt": "Hello World"}, "depends_on": [3]},
            {"id": 3, "agent": "math", "tool": "multiply", "args": {"a": "$2", "b": "$9"}, "depends_on": [2]},
        ]
    }
    with pytest.raises(PlanValidationError) as expected:
        parse_plan(bad_plan, catalog, settings.plan_limits)

    async with Client(make_server(), mode=mode) as client:
        text = error_text(await client.call_tool("execute_plan", {"plan": bad_plan}))
        runs = await call(client, "list_runs")

    assert text == f"Error executing tool execute_plan: {expected.value}"
    assert "unknown agent 'maths'" in text and "txt" in text and "$9" in text and "cycle" in text
    assert runs == {"runs": [], "next_cursor": None}


async def test_a_plan_that_is_not_json_says_so(make_server: MakeServer, mode: str) -> None:
    async with Client(make_server(), mode=mode) as client:
        text = error_text(await client.call_tool("execute_plan", {"plan": "{steps: oops"}))

    assert "the plan is not valid JSON" in text


async def test_a_plan_in_the_seed_tutorials_shape_is_converted_and_runs(make_server: MakeServer, mode: str) -> None:
    seed_shape = [
        {"agent": "math", "tool": "power", "args": {"base": 2, "exponent": 10}, "dependencies": []},
        {"agent": "math", "tool": "sqrt", "args": {"x": "$1"}, "dependencies": [0]},
    ]
    async with Client(make_server(), mode=mode) as client:
        run = await call(client, "execute_plan", plan=seed_shape)

    assert step_results(run) == {1: ("succeeded", 1024), 2: ("succeeded", 32)}
    assert run["steps"][1]["depends_on"] == [1]


@pytest.mark.parametrize(
    ("plan", "expected"),
    [
        ({"steps": []}, "plan: the plan has no steps. Fix: add at least one step"),
        ({"steps": "all of them"}, "steps: Input should be a valid list"),
        ({"stepz": []}, "stepz: Extra inputs are not permitted"),
        ("[", "the plan is not valid JSON"),
        (
            {"steps": [{"id": 1, "agent": "math", "tool": "add", "args": {"a": 1, "b": 2}, "depends_on": [1]}]},
            "step 1: the step depends on itself",
        ),
        (
            {"steps": [{"id": 1, "agent": "math", "task": "x", "tool": "add", "args": {"a": 1, "b": 2}}]},
            "a step needs exactly one of `task` (agent step) or `tool` + `args` (tool step)",
        ),
        (
            {"steps": [{"id": 1, "agent": "string", "tool": "upper", "args": {"text": "x" * 100_001}}]},
            "exceeds the limit",
        ),
        (
            {"steps": [{"id": n, "agent": "math", "tool": "add", "args": {"a": 1, "b": 1}} for n in range(1, 102)]},
            "the plan has 101 steps, more than the limit of 100",
        ),
    ],
)
async def test_held_out_bad_plans_get_readable_errors_and_the_server_keeps_serving(
    make_server: MakeServer, mode: str, plan: Any, expected: str
) -> None:
    async with Client(make_server(), mode=mode) as client:
        text = error_text(await client.call_tool("execute_plan", {"plan": plan}))
        agents = await call(client, "list_agents")

    assert text.startswith("Error executing tool execute_plan: the plan is invalid")
    assert expected in text
    assert agents["agents"]


@pytest.mark.parametrize(
    ("arguments", "word"),
    [({}, "neither"), ({"plan": SEED_PLAN, "request": "multiply"}, "both")],
)
async def test_execute_plan_needs_exactly_one_of_plan_or_request(
    make_server: MakeServer, mode: str, arguments: dict[str, Any], word: str
) -> None:
    async with Client(make_server(), mode=mode) as client:
        text = error_text(await client.call_tool("execute_plan", arguments))

    assert text == (
        "Error executing tool execute_plan: give exactly one of `plan` (a plan object) or `request` "
        f"(natural language), not {word}"
    )


async def test_execute_plan_plans_a_request_with_the_llm_and_writes_the_answer(
    make_server: MakeServer, scripted_llm: ScriptedLLM, mode: str
) -> None:
    async with Client(make_server(scripted_llm), mode=mode) as client:
        run = await call(client, "execute_plan", request="Multiply 10 by 5 and by the words in 'Hello World'")

    assert (run["status"], run["answer"]) == ("succeeded", "multiply(a=2, b=50) = 100")
    assert run["request"] == "Multiply 10 by 5 and by the words in 'Hello World'"
    assert step_results(run)[3] == ("succeeded", 100)
    assert [call.role for call in scripted_llm.calls] == ["planner"]  # tool results need no written answer


async def test_a_request_without_an_llm_says_how_to_configure_one(make_server: MakeServer, mode: str) -> None:
    async with Client(make_server(), mode=mode) as client:
        text = error_text(await client.call_tool("execute_plan", {"request": "What is 6 times 7?"}))

    assert HOW_TO_CONFIGURE in text


async def test_agent_steps_without_an_llm_are_refused_before_any_run_is_recorded(
    make_server: MakeServer, mode: str
) -> None:
    plan = {"steps": [{"id": 1, "agent": "math", "task": "six times seven"}]}
    async with Client(make_server(), mode=mode) as client:
        text = error_text(await client.call_tool("execute_plan", {"plan": plan}))
        runs = await call(client, "list_runs")

    assert text.startswith("Error executing tool execute_plan: step(s) 1 are agent steps (`task`), which need an LLM")
    assert HOW_TO_CONFIGURE in text
    assert runs["runs"] == []


async def test_without_waiting_the_run_id_comes_back_at_once_and_get_run_follows_the_run(
    make_server: MakeServer, gate: Gate, mode: str
) -> None:
    async with Client(make_server(), mode=mode) as client:
        started = await call(client, "execute_plan", plan=GATE_PLAN, wait=False)
        # The gate is still closed: the run cannot have finished.
        still_running = await call(client, "get_run", run_id=started["run_id"])
        gate.opened.set()
        run = await poll_run(client, started["run_id"], lambda run: run["finished"])

    assert (started["status"], started["finished"]) in {("pending", False), ("running", False)}
    assert started["next"] == (
        f"The run continues in the server: call get_run(run_id={started['run_id']!r}) every few seconds "
        "until `finished` is true."
    )
    assert still_running["finished"] is False and still_running["next"] == started["next"]
    assert (run["status"], run["answer"], run["next"]) == ("succeeded", "opened", None)


async def test_the_same_idempotency_key_returns_the_same_run(make_server: MakeServer, mode: str) -> None:
    async with Client(make_server(), mode=mode) as client:
        first = await call(client, "execute_plan", plan=SEED_PLAN, idempotency_key="seed-1")
        again = await call(client, "execute_plan", plan=SEED_PLAN, idempotency_key="seed-1")
        runs = await call(client, "list_runs")

    assert again["run_id"] == first["run_id"] and again["status"] == "succeeded"
    assert [run["run_id"] for run in runs["runs"]] == [first["run_id"]]


async def test_concurrent_execute_plan_calls_on_one_connection_run_at_the_same_time(
    make_server: MakeServer, mode: str
) -> None:
    # Each run's only step waits at a two-party barrier: both succeed only if the runs overlap.
    runs: dict[str, dict[str, Any]] = {}

    async def execute(label: str) -> None:
        plan = {"steps": [{"id": 1, "agent": "gate", "tool": "meet", "args": {"label": label}}]}
        runs[label] = await call(client, "execute_plan", plan=plan)

    async with Client(make_server(), mode=mode) as client:
        with anyio.fail_after(BOUND_S):
            async with anyio.create_task_group() as group:
                group.start_soon(execute, "left")
                group.start_soon(execute, "right")

    assert {label: (run["status"], run["answer"]) for label, run in runs.items()} == {
        "left": ("succeeded", "left"),
        "right": ("succeeded", "right"),
    }
    assert runs["left"]["run_id"] != runs["right"]["run_id"]


async def test_a_client_cancelling_execute_plan_leaves_the_run_cancelled(make_server: MakeServer, mode: str) -> None:
    step_running = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        if message and "running" in message:
            step_running.set()

    async with Client(make_server(), mode=mode) as client:
        with anyio.fail_after(BOUND_S):
            async with anyio.create_task_group() as group:
                group.start_soon(lambda: client.call_tool("execute_plan", {"plan": GATE_PLAN}, None, on_progress))
                await step_running.wait()
                group.cancel_scope.cancel()
        (summary,) = (await call(client, "list_runs"))["runs"]
        run = await poll_run(client, summary["run_id"], lambda run: run["finished"])

    assert (run["status"], run["error"]) == ("cancelled", "the run was cancelled; resume it to finish")
    assert step_results(run) == {1: ("cancelled", None)}


# -- plan and list_agents -------------------------------------------------------------------------


async def test_plan_returns_the_validated_plan_and_its_flowchart(
    make_server: MakeServer, scripted_llm: ScriptedLLM, catalog: Catalog, settings: Settings, mode: str
) -> None:
    async with Client(make_server(scripted_llm), mode=mode) as client:
        planned = await call(client, "plan", request="Multiply 10 by 5 and by the words in 'Hello World'")
        runs = await call(client, "list_runs")

    expected = plan_view(parse_plan(SEED_PLAN, catalog, settings.plan_limits))
    assert planned == expected.model_dump(mode="json")
    assert planned["flowchart"].splitlines()[-2:] == ["    s1 --> s3", "    s2 --> s3"]
    assert runs["runs"] == []


async def test_plan_without_an_llm_says_how_to_configure_one(make_server: MakeServer, mode: str) -> None:
    async with Client(make_server(), mode=mode) as client:
        text = error_text(await client.call_tool("plan", {"request": "What is 6 times 7?"}))

    assert text.startswith("Error executing tool plan: Planning a request needs an LLM and none is configured.")
    assert HOW_TO_CONFIGURE in text


async def test_plan_reports_a_planner_that_cannot_make_a_valid_plan(make_server: MakeServer, mode: str) -> None:
    hopeless = {"steps": [{"id": 1, "agent": "math", "tool": "multiply", "args": {"a": "ten", "b": 5}}]}
    llm = ScriptedLLM(lambda messages, output, role: hopeless)
    async with Client(make_server(llm), mode=mode) as client:
        text = error_text(await client.call_tool("plan", {"request": "ten times five"}))

    assert "the planner could not make a valid plan" in text
    assert "write the plan yourself" in text


def sampling_client(replies: list[str | ErrorData], asked: list[CreateMessageRequestParams]) -> SamplingFnT:
    """A client model for MCP sampling that answers with `replies` in order."""

    async def sample(
        context: ClientRequestContext, params: CreateMessageRequestParams
    ) -> CreateMessageResult | ErrorData:
        asked.append(params)
        reply = replies.pop(0)
        if isinstance(reply, ErrorData):
            return reply
        return CreateMessageResult(role="assistant", content=TextContent(type="text", text=reply), model="client-model")

    return sample


async def test_plan_without_a_server_llm_asks_the_clients_model_through_sampling(
    make_server: MakeServer, catalog: Catalog, settings: Settings
) -> None:
    asked: list[CreateMessageRequestParams] = []
    sample = sampling_client(["Here is the plan!", json.dumps(SEED_PLAN)], asked)
    async with Client(make_server(), mode="legacy", sampling_callback=sample) as client:
        planned = await call(client, "plan", request="Multiply 10 by 5 and by the words in 'Hello World'")

    assert planned == plan_view(parse_plan(SEED_PLAN, catalog, settings.plan_limits)).model_dump(mode="json")
    first, repair = asked  # the prose reply was sent back once with what was wrong with it
    assert first.system_prompt is not None and "JSON Schema" in first.system_prompt
    assert [m.role for m in repair.messages] == ["user", "assistant", "user"]


async def test_a_client_that_declines_sampling_gets_a_readable_error(make_server: MakeServer) -> None:
    declined = ErrorData(code=-1, message="User rejected sampling request")
    sample = sampling_client([declined], [])
    async with Client(make_server(), mode="legacy", sampling_callback=sample) as client:
        text = error_text(await client.call_tool("plan", {"request": "ten times five"}))

    assert text == (
        "Error executing tool plan: the client's model did not answer the sampling request (User rejected "
        "sampling request); allow sampling for this server in the client, or configure an LLM for the server"
    )


async def test_sampling_is_not_asked_for_in_the_current_protocol_era(make_server: MakeServer) -> None:
    asked: list[CreateMessageRequestParams] = []
    async with Client(make_server(), mode="auto", sampling_callback=sampling_client([], asked)) as client:
        text = error_text(await client.call_tool("plan", {"request": "ten times five"}))

    assert HOW_TO_CONFIGURE in text and asked == []


async def test_list_agents_gives_every_agent_and_its_tools_schemas(
    make_server: MakeServer, catalog: Catalog, mode: str
) -> None:
    async with Client(make_server(), mode=mode) as client:
        agents = await call(client, "list_agents")

    assert agents == agents_view(catalog).model_dump(mode="json")
    multiply = next(t for a in agents["agents"] if a["name"] == "math" for t in a["tools"] if t["name"] == "multiply")
    assert set(multiply["parameters"]["properties"]) == {"a", "b"}


# -- the per-agent tools --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "arguments", "check"),
    [
        ("math_agent", {"tool": "multiply", "args": {"a": 6, "b": 7}}, lambda result: result == 42),
        ("string_agent", {"tool": "word_count", "args": {"text": "Hello World"}}, lambda result: result == 2),
        (
            "weather_agent",
            {"tool": "current_weather", "args": {"location": "Paris, France"}},
            lambda result: (result["location"], result["temperature_c"]) == ("Paris, Île-de-France, France", 3.4),
        ),
        (
            "web_search_agent",
            {"tool": "search", "args": {"query": "planner mcp", "max_results": 1}},
            lambda result: result["results"][0]["title"] == "Result about planner mcp",
        ),
        (
            "code_agent",
            {"tool": "run_python", "args": {"code": "result = 6 * 7\nprint('done')"}},
            lambda result: result == 42,  # the program's `result`; its whole run is the step's details
        ),
    ],
)
async def test_each_agent_tool_calls_one_tool_directly_and_records_a_one_step_run(
    make_server: MakeServer, mode: str, tool: str, arguments: dict[str, Any], check: Callable[[Any], bool]
) -> None:
    async with Client(make_server(), mode=mode) as client:
        run = await call(client, tool, **arguments)
        (summary,) = (await call(client, "list_runs"))["runs"]

    (step,) = run["steps"]
    assert (run["status"], step["status"], step["agent"], step["tool"]) == (
        "succeeded",
        "succeeded",
        tool.removesuffix("_agent"),
        arguments["tool"],
    )
    assert check(step["result"]), step["result"]
    assert (summary["run_id"], summary["step_count"]) == (run["run_id"], 1)


async def test_an_agent_tool_given_a_task_lets_the_agents_llm_choose_the_tool(
    make_server: MakeServer, scripted_llm: ScriptedLLM, mode: str
) -> None:
    async with Client(make_server(scripted_llm), mode=mode) as client:
        run = await call(client, "math_agent", task="What is six times seven?")

    (step,) = run["steps"]
    assert (run["status"], run["request"], step["task"], step["result"]) == (
        "succeeded",
        "What is six times seven?",
        "What is six times seven?",
        42,
    )
    assert step["summary"] == "multiply(a=6, b=7) = 42"
    assert step["usage"]["calls"] == 1


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({}, "give either `task` (natural language) or `tool` + `args` (a direct call), not neither"),
        (
            {"task": "add", "tool": "add"},
            "give either `task` (natural language) or `tool` + `args` (a direct call), not both",
        ),
        ({"task": "add 1 and 2", "args": {"a": 1}}, "`args` go with `tool`; with `task`, describe everything"),
        ({"tool": "shout", "args": {}}, "agent 'math' has no tool 'shout'"),
        ({"tool": "divide", "args": {"a": 1}}, "arguments do not match divide"),
    ],
)
async def test_an_agent_tool_called_wrongly_says_how_to_call_it(
    make_server: MakeServer, mode: str, arguments: dict[str, Any], expected: str
) -> None:
    async with Client(make_server(), mode=mode) as client:
        text = error_text(await client.call_tool("math_agent", arguments))

    assert expected in text


async def test_a_failing_tool_step_is_a_recorded_failed_run_with_the_tools_message(
    make_server: MakeServer, mode: str
) -> None:
    async with Client(make_server(), mode=mode) as client:
        run = await call(client, "math_agent", tool="divide", args={"a": 1, "b": 0})

    (step,) = run["steps"]
    assert (run["status"], step["status"], step["error"]["kind"]) == ("failed", "failed", "tool_error")
    assert run["error"] == f"step 1: {step['error']['message']}"


# -- runs -----------------------------------------------------------------------------------------


async def test_list_runs_pages_newest_first_and_filters_by_status(make_server: MakeServer, mode: str) -> None:
    async with Client(make_server(), mode=mode) as client:
        ids = [(await call(client, "execute_plan", plan=SEED_PLAN))["run_id"] for _ in range(3)]
        failed = await call(client, "math_agent", tool="divide", args={"a": 1, "b": 0})
        first = await call(client, "list_runs", limit=2)
        second = await call(client, "list_runs", limit=2, cursor=first["next_cursor"])
        only_failed = await call(client, "list_runs", status="failed")

    assert [run["run_id"] for run in first["runs"]] == [failed["run_id"], ids[2]]
    assert [run["run_id"] for run in second["runs"]] == [ids[1], ids[0]]
    assert second["next_cursor"] is None
    assert [(run["run_id"], run["status"]) for run in only_failed["runs"]] == [(failed["run_id"], "failed")]


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"cursor": "not-a-cursor"}, "Error executing tool list_runs: cursor 'not-a-cursor' is not one this store"),
        ({"limit": 0}, "Error executing tool list_runs:"),
        ({"status": "sleeping"}, "Error executing tool list_runs:"),
    ],
)
async def test_list_runs_rejects_bad_arguments_readably(
    make_server: MakeServer, mode: str, arguments: dict[str, Any], expected: str
) -> None:
    async with Client(make_server(), mode=mode) as client:
        text = error_text(await client.call_tool("list_runs", arguments))

    assert text.startswith(expected)


@pytest.mark.parametrize("tool", ["get_run", "resume_run", "cancel_run"])
async def test_an_unknown_run_id_says_so(make_server: MakeServer, mode: str, tool: str) -> None:
    async with Client(make_server(), mode=mode) as client:
        text = error_text(await client.call_tool(tool, {"run_id": "r-missing"}))

    assert text == (
        f"Error executing tool {tool}: no run with id 'r-missing'; call list_runs (or `planner-mcp runs`) for the ids"
    )


async def test_tools_list_stays_under_25000_characters_with_every_tool(make_server: MakeServer, mode: str) -> None:
    async with Client(make_server(), mode=mode) as client:
        listed = await client.list_tools()

    # The product's tools: the test catalog's extra `gate` agent is not counted.
    product = listed.model_copy(update={"tools": [t for t in listed.tools if t.name != "gate_agent"]})
    size = len(json.dumps(product.model_dump(mode="json", by_alias=True, exclude_none=True)))
    assert size <= 25_000, f"tools/list is {size:,} characters"
    assert len(listed.tools) == 14  # 8 planning and run tools + one per agent of the test catalog (6)
    assert not any('"title": "' in json.dumps(tool.input_schema) for tool in listed.tools)


async def test_each_agent_tool_names_every_tool_of_its_agent(make_server: MakeServer, catalog: Catalog) -> None:
    async with Client(make_server()) as client:
        descriptions = {tool.name: tool.description or "" for tool in (await client.list_tools()).tools}

    for agent in catalog.agents.values():
        names = ", ".join(tool.name for tool in agent.tools)
        assert f"Tools: {names}." in descriptions[f"{agent.name}_agent"]
    assert "Tools: evaluate, add, subtract, multiply" in descriptions["math_agent"]


async def test_a_run_comes_back_as_a_few_lines_of_text_beside_its_structured_content(
    make_server: MakeServer, mode: str
) -> None:
    async with Client(make_server(), mode=mode) as client:
        result = await client.call_tool("execute_plan", {"plan": SEED_PLAN})

    run = structured(result)
    assert len(result.content) == 1 and isinstance(result.content[0], TextContent)
    assert result.content[0].text == (
        f"run {run['run_id']}: succeeded (3/3 steps done)\n"
        "answer: 100\n"
        "step 1 math.multiply: succeeded -> 50\n"
        "step 2 string.word_count: succeeded -> 2\n"
        "step 3 math.multiply: succeeded -> 100"
    )


async def test_get_run_is_compact_unless_asked_for_detail(make_server: MakeServer, mode: str) -> None:
    long_text = "ab " * 2_000
    plan = {"steps": [{"id": 1, "agent": "string", "tool": "upper", "args": {"text": long_text}}]}
    async with Client(make_server(), mode=mode) as client:
        run_id = (await call(client, "execute_plan", plan=plan))["run_id"]
        compact = await client.call_tool("get_run", {"run_id": run_id})
        detailed = await client.call_tool("get_run", {"run_id": run_id, "detail": True})

    step = structured(compact)["steps"][0]
    assert step["result"] is None and step["result_preview"] == long_text.upper()[:500] + "…"
    # The answer (the whole result here) once, in the structured content; everything else is short.
    assert json.dumps(compact.model_dump(mode="json", by_alias=True)).count(long_text.upper()) == 1
    assert isinstance(compact.content[0], TextContent) and len(compact.content[0].text) < 3_000
    full = structured(detailed)
    assert full["steps"][0]["result"] == long_text.upper() and full["steps"][0]["result_preview"] is None
    assert full["flowchart"].startswith("flowchart TD") and full["gantt"].startswith("gantt")
    assert "section step 1" in full["gantt"]


async def test_get_run_shows_each_steps_call_result_timing_and_usage(make_server: MakeServer, mode: str) -> None:
    async with Client(make_server(), mode=mode) as client:
        executed = await call(client, "execute_plan", plan=SEED_PLAN)
        run = await call(client, "get_run", run_id=executed["run_id"])

    assert run == executed
    step = run["steps"][2]
    assert {
        key: step[key] for key in ("id", "agent", "tool", "args", "depends_on", "status", "result", "attempts")
    } == {
        "id": 3,
        "agent": "math",
        "tool": "multiply",
        "args": {"a": "$2", "b": "$1"},
        "depends_on": [1, 2],
        "status": "succeeded",
        "result": 100,
        "attempts": 1,
    }
    assert step["duration_s"] is not None and step["started_at"] <= step["finished_at"]
    assert step["usage"] == {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "latency_s": 0.0}


async def test_resume_run_reruns_only_the_steps_that_did_not_succeed(
    make_server: MakeServer, gate: Gate, mode: str
) -> None:
    plan = {
        "steps": [
            {"id": 1, "agent": "math", "tool": "multiply", "args": {"a": 6, "b": 7}},
            {"id": 2, "agent": "gate", "tool": "flaky", "args": {"label": "after ${1}"}},
        ]
    }
    async with Client(make_server(), mode=mode) as client:
        first = await call(client, "execute_plan", plan=plan)
        gate.healed.set()
        resumed = await call(client, "resume_run", run_id=first["run_id"])
        again = await call(client, "resume_run", run_id=first["run_id"])

    assert (first["status"], step_results(first)[2][0]) == ("partial", "failed")
    assert (resumed["run_id"], resumed["status"]) == (first["run_id"], "succeeded")
    assert step_results(resumed) == {1: ("succeeded", 42), 2: ("succeeded", "after 42")}
    assert [step["attempts"] for step in resumed["steps"]] == [1, 2]
    assert again == resumed  # a succeeded run is returned unchanged


async def test_resume_run_without_waiting_continues_in_the_server(
    make_server: MakeServer, gate: Gate, mode: str
) -> None:
    plan = {"steps": [{"id": 1, "agent": "gate", "tool": "flaky", "args": {"label": "fixed"}}]}
    async with Client(make_server(), mode=mode) as client:
        first = await call(client, "execute_plan", plan=plan)
        gate.healed.set()
        started = await call(client, "resume_run", run_id=first["run_id"], wait=False)
        run = await poll_run(client, first["run_id"], lambda run: run["finished"])

    assert first["status"] == "failed"
    assert started["finished"] is False and started["next"] is not None
    assert (run["status"], run["answer"]) == ("succeeded", "fixed")


async def test_cancel_run_stops_a_background_run(make_server: MakeServer, mode: str) -> None:
    async with Client(make_server(), mode=mode) as client:
        started = await call(client, "execute_plan", plan=GATE_PLAN, wait=False)
        await poll_run(client, started["run_id"], lambda run: run["steps"][0]["status"] == "running")
        cancelled = await call(client, "cancel_run", run_id=started["run_id"])
        again = await call(client, "cancel_run", run_id=started["run_id"])

    assert (cancelled["status"], cancelled["finished"]) == ("cancelled", True)
    assert step_results(cancelled) == {1: ("cancelled", None)}
    assert again == cancelled


async def test_a_background_run_is_cancelled_and_recorded_when_the_server_shuts_down(
    make_server: MakeServer, settings: Settings, mode: str
) -> None:
    async with Client(make_server(), mode=mode) as client:
        started = await call(client, "execute_plan", plan=GATE_PLAN, wait=False)
        await poll_run(client, started["run_id"], lambda run: run["steps"][0]["status"] == "running")

    store = RunStore(settings.db_path)
    try:
        record = store.get_run(started["run_id"])
    finally:
        store.close()
    assert (record.status, [step.status for step in record.steps]) == (RunStatus.CANCELLED, [StepStatus.CANCELLED])


# -- resources and prompts ------------------------------------------------------------------------


async def test_resources_list_the_catalog_recent_runs_and_the_run_template(make_server: MakeServer, mode: str) -> None:
    async with Client(make_server(), mode=mode) as client:
        resources = (await client.list_resources()).resources
        templates = (await client.list_resource_templates()).resource_templates

    assert sorted((str(r.uri), r.mime_type) for r in resources) == [
        ("agents://catalog", "application/json"),
        ("runs://recent", "application/json"),
    ]
    assert [(t.uri_template, t.mime_type) for t in templates] == [("runs://{run_id}", "application/json")]


async def read_json(client: Client, uri: str) -> Any:
    (content,) = (await client.read_resource(uri)).contents
    assert isinstance(content, TextResourceContents) and content.mime_type == "application/json"
    return json.loads(content.text)


async def test_reading_the_resources_gives_runs_and_the_catalog_as_json(
    make_server: MakeServer, catalog: Catalog, mode: str
) -> None:
    async with Client(make_server(), mode=mode) as client:
        run = await call(client, "execute_plan", plan=SEED_PLAN)
        as_resource = await read_json(client, f"runs://{run['run_id']}")
        detailed = await call(client, "get_run", run_id=run["run_id"], detail=True)
        recent = await read_json(client, "runs://recent")
        listed = await call(client, "list_runs")
        agents = await read_json(client, "agents://catalog")

    assert as_resource == detailed and {**as_resource, "flowchart": None, "gantt": None} == run
    assert recent == listed
    assert agents == agents_view(catalog).model_dump(mode="json")


async def test_reading_an_unknown_run_is_a_not_found_error(make_server: MakeServer, mode: str) -> None:
    async with Client(make_server(), mode=mode) as client:
        with pytest.raises(MCPError) as error:
            await client.read_resource("runs://r-missing")

    assert "no run with id 'r-missing'" in error.value.error.message


async def test_the_plan_and_execute_prompt_walks_through_planning_and_polling(
    make_server: MakeServer, mode: str
) -> None:
    async with Client(make_server(), mode=mode) as client:
        (prompt,) = (await client.list_prompts()).prompts
        rendered = await client.get_prompt("plan_and_execute", {"request": "What is 6 times 7?"})

    assert prompt.name == "plan_and_execute"
    assert [(a.name, a.required) for a in prompt.arguments or []] == [("request", True)]
    (message,) = rendered.messages
    assert message.role == "user" and isinstance(message.content, TextContent)
    text = message.content.text
    assert "Request: What is 6 times 7?" in text
    assert all(tool in text for tool in ("list_agents", "execute_plan", "wait=false", "get_run"))
