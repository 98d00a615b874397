"""Property-based fuzzing of the MCP server through the in-memory client: plan documents and tool
arguments drawn by hypothesis (wrong types, missing and unknown fields, cycles, odd unicode, huge
and deep values, real and unknown run ids). Every call must end, within a bound, in a result or a
readable tool error (`isError` with text that says what is wrong), never in a crash (the SDK's bare
"Error executing tool X"), a protocol error or a hang; and the server keeps serving.

One server serves every example (its lifespan and Flyte start once): the client lives in a
blocking portal so hypothesis can drive it from plain test functions.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.types import CallToolResult, TextContent

from agents.catalog import build_catalog
from planning.catalog import Catalog
from planning.records import RunStatus
from planning.settings import Settings
from server.app import App
from server.mcp_server import build_server
from tools.code import Sandbox, SandboxLimits
from tools.weather import WeatherTools
from tools.web_search import WebSearchConfig, WebSearchTools

OPEN_METEO = Path(__file__).resolve().parents[1] / "tools" / "fixtures" / "open_meteo"
CALL_BOUND_S = 60  # a call that takes longer has hung
EXAMPLES = 100
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# -- the server, with every network boundary replaced --------------------------------------------


def open_meteo(request: httpx.Request) -> httpx.Response:
    if request.url.host.startswith("geocoding"):
        name = "geocoding_paris.json"
    else:
        name = "forecast_daily.json" if "daily" in request.url.params else "forecast_current.json"
    return httpx.Response(200, json=json.loads((OPEN_METEO / name).read_text(encoding="utf-8")))


def web_page(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, html="<html><body><p>A page about nothing.</p></body></html>")


async def public_address(host: str, port: int) -> list[str]:
    return ["93.184.216.34"]


class FakeSearch:
    def text(self, query: str, max_results: int = 5, **_: Any) -> list[dict[str, Any]]:
        return [{"title": "A result", "href": "https://example.org/", "body": "A snippet."}][:max_results]


def fuzz_catalog(settings: Settings) -> Catalog:
    web = WebSearchTools(
        WebSearchConfig(provider="ddgs"),
        transport=httpx.MockTransport(web_page),
        resolver=public_address,
        ddgs_factory=FakeSearch,
    )
    weather = WeatherTools(transport=httpx.MockTransport(open_meteo))
    return build_catalog(settings, weather=weather, web=web, sandbox=Sandbox(settings.sandbox))


class Mcp:
    """The client of the one server all examples use, and the run ids it has handed out."""

    def __init__(self, portal: BlockingPortal, client: Client, catalog: Catalog) -> None:
        self.portal = portal
        self.client = client
        self.catalog = catalog
        self.run_ids: list[str] = []

    def call(self, name: str, arguments: dict[str, Any]) -> CallToolResult:
        return self.portal.call(self._bounded, name, arguments)

    async def _bounded(self, name: str, arguments: dict[str, Any]) -> CallToolResult:
        with anyio.fail_after(CALL_BOUND_S):
            return await self.client.call_tool(name, arguments)


@pytest.fixture(scope="module")
def mcp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mcp]:
    # Short sandbox runs: fuzzed programs are no test of the sandbox, only of the server around it.
    config = Settings(
        home=tmp_path_factory.mktemp("fuzz") / "home",
        step_retries=0,
        sandbox=SandboxLimits(wall_time_s=2, cpu_time_s=2),
    )
    catalog = fuzz_catalog(config)
    server = build_server(config, catalog=catalog, app_factory=lambda s: App.open(s, llm=None, catalog=catalog))
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(Client(server)) as client:
        yield Mcp(portal, client, catalog)


def check(mcp: Mcp, name: str, arguments: dict[str, Any]) -> CallToolResult:
    """The property: a result, or an error that says what is wrong."""
    result = mcp.call(name, arguments)
    if result.is_error:
        assert len(result.content) == 1 and isinstance(result.content[0], TextContent), result.content
        text = result.content[0].text
        prefix = f"Error executing tool {name}: "
        assert text.startswith(prefix) and len(text) > len(prefix) + 10, f"a crash, not a readable error: {text!r}"
    else:
        assert result.structured_content is not None, result.content
        run_id = result.structured_content.get("run_id")
        if isinstance(run_id, str) and run_id not in mcp.run_ids:
            mcp.run_ids.append(run_id)
    return result


# -- strategies -----------------------------------------------------------------------------------

ODD_TEXT = st.sampled_from(
    [
        "",
        " ",
        "\u0000",
        "\ud800",
        "a\udfffb",
        "\u202eevil\u202c",
        "\u200f\u200b\ufeff",
        "[/]",
        "[bold]x[/bold]",
        ":smile:",
        "$1",
        "$$",
        "$0",
        "$99999999999999999999",
        "\U0001f600" * 3,
        "x" * 200_000,
        "Paris, France",
        "print(1)",
        "result = 6 * 7",
        "10 * 5",
    ]
)
TEXT = st.one_of(st.text(max_size=30), ODD_TEXT)
# The in-memory client itself cannot send a lone surrogate in an object key (values are fine).
KEYS = st.one_of(st.text(max_size=30), ODD_TEXT.filter(lambda text: not any("\ud800" <= c <= "\udfff" for c in text)))
NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -1, 1e308, 10**30]),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=12,
)


def deep(depth: int) -> Any:
    """`depth` nested lists (240: about the deepest the in-memory client itself can serialize)."""
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


HOSTILE = st.one_of(JSON, st.sampled_from([deep(30), deep(240), [0] * 5_000, {str(i): i for i in range(2_000)}]))


PLAUSIBLE_TEXT = st.sampled_from(
    ["Hello World", "a", "Paris, France", "2 + 3 * 4", "print(6 * 7)", "result = 6 * 7", "https://example.org/"]
)


def values_of(annotation: Any) -> st.SearchStrategy[Any]:
    """Mostly values of the parameter's own type (so tools really run), sometimes anything at all."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return values_of(args[0])
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(values_of(arg) for arg in args))
    if origin is list:
        return st.lists(values_of(args[0]), max_size=4)
    if annotation is str:
        return st.one_of(PLAUSIBLE_TEXT, TEXT)
    if annotation in (int, float):
        return st.one_of(st.integers(-20, 20), st.floats(-1e6, 1e6), NUMBERS)
    if annotation is type(None):
        return st.none()
    return SCALARS


@st.composite
def tool_args(draw: st.DrawFn, catalog: Catalog, agent: str, tool: str, sound: bool = False) -> dict[str, Any]:
    """Arguments for a tool, values mostly of the right type. Sound: every required parameter and
    no stranger; otherwise parameters go missing, take anything, or come with an unknown one."""
    fields = catalog.agent(agent).tool_by_name[tool].args_model.model_fields
    args = {}
    for name, field in fields.items():
        if draw(st.integers(0, 9)) < (10 if sound and field.is_required() else 9 if field.is_required() else 5):
            args[name] = draw(values_of(field.annotation) if sound or draw(st.integers(0, 4)) else HOSTILE)
    if not sound and draw(st.integers(0, 4)) == 0:
        args[draw(KEYS)] = draw(SCALARS)
    return args


@st.composite
def sound_plans(draw: st.DrawFn, catalog: Catalog) -> dict[str, Any]:
    """Plans of tool steps with ids 1..n, dependencies and $N references on earlier steps: most run."""
    plan = []
    for step_id in range(1, draw(st.integers(1, 5)) + 1):
        agent = draw(st.sampled_from(sorted(catalog.agents)))
        tool = draw(st.sampled_from(sorted(catalog.agent(agent).tool_by_name)))
        args = draw(tool_args(catalog, agent, tool, sound=True))
        earlier = list(range(1, step_id))
        if earlier and args and draw(st.booleans()):
            args[draw(st.sampled_from(sorted(args)))] = f"${draw(st.sampled_from(earlier))}"
        step = {"id": step_id, "agent": agent, "tool": tool, "args": args}
        if earlier and draw(st.booleans()):
            step["depends_on"] = draw(st.lists(st.sampled_from(earlier), max_size=2, unique=True))
        if draw(st.integers(0, 5)) == 0:
            step["timeout_s"] = draw(st.floats(0.001, 3))
        plan.append(step)
    return {"steps": plan}


@st.composite
def steps(draw: st.DrawFn, catalog: Catalog) -> dict[str, Any]:
    agent = draw(st.one_of(st.sampled_from(sorted(catalog.agents)), TEXT))
    known = catalog.agents.get(agent)
    step: dict[str, Any] = {"id": draw(st.one_of(st.integers(-1, 6), SCALARS))}
    if draw(st.integers(0, 9)):
        step["agent"] = agent
    if known is not None and draw(st.integers(0, 3)):
        tool = draw(st.sampled_from(sorted(known.tool_by_name)))
        step["tool"] = tool
        step["args"] = draw(tool_args(catalog, agent, tool))
    else:
        step.update(draw(st.fixed_dictionaries({}, optional={"tool": TEXT, "args": HOSTILE, "task": TEXT})))
    step.update(
        draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "depends_on": st.one_of(st.lists(st.integers(-1, 6), max_size=3), HOSTILE),
                    "timeout_s": st.one_of(st.floats(0.001, 5), SCALARS),
                    "dependencies": st.lists(st.integers(-1, 5), max_size=3),
                    draw(KEYS): SCALARS,
                },
            )
        )
    )
    return step


@st.composite
def plan_documents(draw: st.DrawFn, catalog: Catalog) -> Any:
    shaped = draw(
        st.sampled_from(["sound", "sound", "sound", "object", "json text", "seed list", "anything", "anything as text"])
    )
    if shaped == "sound":
        return draw(sound_plans(catalog))
    plan = {"steps": draw(st.lists(steps(catalog), max_size=6))}
    if shaped == "json text":
        return json.dumps(plan)
    if shaped == "seed list":
        return plan["steps"]
    if shaped == "anything":
        return draw(HOSTILE)
    if shaped == "anything as text":
        return draw(st.one_of(TEXT, HOSTILE.map(json.dumps)))
    return plan


def optional(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


@dataclass(frozen=True)
class KnownRun:
    """Stands for one of the run ids handed out so far, picked when the call is made (a strategy
    must not depend on state that changes between examples)."""

    index: int


RUN_IDS = st.one_of(st.builds(KnownRun, st.integers(0, 10_000)), TEXT, SCALARS, st.just("r0000000000000000000000"))


@st.composite
def tool_calls(draw: st.DrawFn, catalog: Catalog) -> tuple[str, dict[str, Any]]:
    agent = draw(st.sampled_from(sorted(catalog.agents)))
    name = draw(
        st.sampled_from(
            ["execute_plan", "get_run", "list_runs", "resume_run", "cancel_run", "list_agents", f"{agent}_agent"]
        )
    )
    if name == "execute_plan":
        args = draw(
            optional(
                plan=plan_documents(catalog),
                request=TEXT,
                wait=st.one_of(st.booleans(), SCALARS),
                synthesize=st.one_of(st.booleans(), SCALARS),
                idempotency_key=st.one_of(st.sampled_from(["key-1", "key-2"]), TEXT, SCALARS),
            )
        )
    elif name in ("get_run", "cancel_run"):
        args = draw(optional(run_id=RUN_IDS))
    elif name == "resume_run":
        args = draw(optional(run_id=RUN_IDS, wait=st.one_of(st.booleans(), SCALARS)))
    elif name == "list_runs":
        statuses = st.sampled_from([s.value for s in RunStatus])
        args = draw(
            optional(limit=st.one_of(st.integers(-5, 200), SCALARS), status=st.one_of(statuses, TEXT), cursor=TEXT)
        )
    elif name == "list_agents":
        args = {}
    else:
        tool = draw(st.sampled_from(sorted(catalog.agent(agent).tool_by_name)))
        arguments = st.one_of(tool_args(catalog, agent, tool, sound=True), tool_args(catalog, agent, tool))
        args = draw(optional(task=TEXT, tool=st.one_of(st.just(tool), TEXT), args=arguments))
    if draw(st.integers(0, 9)) == 0:
        args[draw(KEYS)] = draw(SCALARS)  # an argument no tool has
    return name, args


# -- properties -----------------------------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_any_plan_document_gets_a_run_or_a_readable_error(mcp: Mcp, data: st.DataObject) -> None:
    plan = data.draw(plan_documents(mcp.catalog), label="plan")
    wait = data.draw(st.booleans(), label="wait")

    check(mcp, "execute_plan", {"plan": plan, "wait": wait})


@FUZZ
@given(data=st.data())
def test_any_arguments_to_any_tool_get_a_result_or_a_readable_error(mcp: Mcp, data: st.DataObject) -> None:
    name, arguments = data.draw(tool_calls(mcp.catalog), label="call")
    if isinstance(known := arguments.get("run_id"), KnownRun):
        arguments["run_id"] = mcp.run_ids[known.index % len(mcp.run_ids)] if mcp.run_ids else "r-none-yet"

    check(mcp, name, arguments)


def test_after_the_fuzzing_the_server_still_runs_plans_and_reports_every_run(mcp: Mcp) -> None:
    plan = {"steps": [{"id": 1, "agent": "math", "tool": "multiply", "args": {"a": 6, "b": 7}}]}

    run = check(mcp, "execute_plan", {"plan": plan}).structured_content
    assert run is not None
    assert (run["status"], run["answer"]) == ("succeeded", "42")
    for run_id in list(mcp.run_ids):
        got = check(mcp, "get_run", {"run_id": run_id}).structured_content
        assert got is not None and got["run_id"] == run_id
