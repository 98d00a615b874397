"""Retries with backoff, end to end: runs executed by the application (Flyte local, the real run
store) whose agent steps talk to a scripted flaky LLM and whose weather steps talk to a flaky
Open-Meteo (httpx.MockTransport). Transient failures are retried and every attempt is recorded on
its step; validation and tool-argument errors fail at once, never retried.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from agents.catalog import build_catalog
from agents.llm import LLM, Message, ScriptedLLM, Usage
from agents.llm.errors import LLMTransientError
from planning.catalog import AgentSpec, Catalog, ToolSpec
from planning.plan import Step
from planning.records import RunRecord, RunStatus, StepError, StepStatus
from planning.settings import Settings
from planning.steps import StepRunner
from server.app import App
from tools.code import Sandbox
from tools.errors import TransientToolError
from tools.weather import WeatherTools

pytestmark = pytest.mark.anyio

OPEN_METEO = Path(__file__).resolve().parents[1] / "tools" / "fixtures" / "open_meteo"
RETRIES = 2
BOUND_S = 60


def fixture(name: str) -> Any:
    return json.loads((OPEN_METEO / name).read_text(encoding="utf-8"))


class FlakyOpenMeteo:
    """Open-Meteo that answers the first `failures` geocoding requests with `status`, then works."""

    def __init__(self, failures: int, status: int = 503) -> None:
        self.failures = failures
        self.status = status
        self.requests: list[str] = []
        self._lock = threading.Lock()  # called from Flyte's loop thread

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.requests.append(request.url.host)
            failing = (
                request.url.host.startswith("geocoding") and self.requests.count(request.url.host) <= self.failures
            )
        if failing:
            body = fixture("error_invalid_parameter.json") if self.status == 400 else {"reason": "overloaded"}
            return httpx.Response(self.status, json=body)
        if request.url.host.startswith("geocoding"):
            return httpx.Response(200, json=fixture("geocoding_paris.json"))
        return httpx.Response(200, json=fixture("forecast_current.json"))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # Real backoff, kept tiny: these tests prove what is retried, not how long it waits.
    return Settings(home=tmp_path / "home", step_retries=RETRIES, retry_base_s=0.001)


OpenApp = Callable[..., App]


@pytest.fixture
def open_app(settings: Settings) -> Iterator[OpenApp]:
    """`open_app(llm=None, weather=None)`: the application over the product catalog."""
    apps: list[App] = []

    def open_(llm: LLM | None = None, weather: FlakyOpenMeteo | None = None) -> App:
        tools = WeatherTools(transport=httpx.MockTransport(weather or FlakyOpenMeteo(0)))
        catalog = build_catalog(settings, weather=tools, sandbox=Sandbox(settings.sandbox))
        apps.append(App.open(settings, llm=llm, catalog=catalog))
        return apps[-1]

    yield open_
    for app in apps:
        app.close()


async def run(app: App, *steps: dict[str, Any]) -> RunRecord:
    record = app.submit(app.parse({"steps": list(steps)}))
    with anyio.fail_after(BOUND_S):
        return await app.execute(record.id)


def multiply_call(a: object, b: object) -> dict[str, Any]:
    return {"calls": [{"tool": "multiply", "args": {"a": a, "b": b}}]}


MATH_TASK = {"id": 1, "agent": "math", "task": "What is 6 times 7?"}
PARIS = {"id": 1, "agent": "weather", "tool": "current_weather", "args": {"location": "Paris, France"}}


async def paris_weather() -> Any:
    """What current_weather answers for Paris when Open-Meteo is healthy."""
    healthy = WeatherTools(transport=httpx.MockTransport(FlakyOpenMeteo(0)))
    return to_jsonable_python(await healthy.current_weather("Paris, France"))


async def test_an_llm_transient_failure_is_not_retried_again_by_the_step(open_app: OpenApp) -> None:
    # The LLM layer retries within its own budget (agents.llm.openai_compat); a step retrying it again
    # would multiply the calls and the waiting.
    failed_calls = Usage(calls=3, latency_s=1.5)
    llm = ScriptedLLM([LLMTransientError("HTTP 503: overloaded; gave up after 3 attempt(s)", usage=failed_calls)])

    record = await run(open_app(llm=llm), MATH_TASK)

    step = record.steps[0]
    assert (record.status, step.status, step.attempts) == (RunStatus.FAILED, StepStatus.FAILED, 1)
    assert step.error == StepError(kind="transient", message="HTTP 503: overloaded; gave up after 3 attempt(s)")
    assert step.usage == failed_calls  # failed calls are counted
    assert llm.remaining == 0


async def test_a_weather_step_behind_a_503_is_retried_until_open_meteo_answers(open_app: OpenApp) -> None:
    open_meteo = FlakyOpenMeteo(failures=1)

    record = await run(open_app(weather=open_meteo), PARIS)

    step = record.steps[0]
    assert (record.status, step.status, step.attempts) == (RunStatus.SUCCEEDED, StepStatus.SUCCEEDED, 2)
    assert step.result == await paris_weather()
    assert open_meteo.requests == ["geocoding-api.open-meteo.com", "geocoding-api.open-meteo.com", "api.open-meteo.com"]


async def test_a_weather_step_that_keeps_getting_503_fails_as_transient_after_its_retries(open_app: OpenApp) -> None:
    open_meteo = FlakyOpenMeteo(failures=10)

    record = await run(open_app(weather=open_meteo), PARIS)

    step = record.steps[0]
    assert (step.status, step.attempts, step.error and step.error.kind) == (StepStatus.FAILED, RETRIES + 1, "transient")
    assert len(open_meteo.requests) == RETRIES + 1


async def test_a_refused_request_is_a_tool_error_and_is_not_retried(open_app: OpenApp) -> None:
    open_meteo = FlakyOpenMeteo(failures=10, status=400)

    record = await run(open_app(weather=open_meteo), PARIS)

    step = record.steps[0]
    assert (step.status, step.attempts) == (StepStatus.FAILED, 1)
    assert step.error == StepError(
        kind="tool_error",
        message="Open-Meteo refused the request (HTTP 400): Cannot initialize WeatherVariable from invalid String "
        "value temperature_3m for key current",
    )
    assert len(open_meteo.requests) == 1


async def test_an_argument_of_the_wrong_type_at_run_time_is_not_retried_and_calls_nothing(open_app: OpenApp) -> None:
    open_meteo = FlakyOpenMeteo(failures=0)

    # $1 is a number, and the location must be text: found only when step 2 runs.
    record = await run(
        open_app(weather=open_meteo),
        {"id": 1, "agent": "math", "tool": "add", "args": {"a": 1, "b": 2}},
        {"id": 2, "agent": "weather", "tool": "current_weather", "args": {"location": "$1"}},
    )

    step = record.steps[1]
    assert (record.status, step.status, step.attempts) == (RunStatus.PARTIAL, StepStatus.FAILED, 1)
    assert step.error is not None and step.error.kind == "invalid_args"
    assert "location" in step.error.message
    assert open_meteo.requests == []


async def test_a_reply_that_does_not_match_the_tools_schema_goes_back_to_the_model_but_is_not_retried(
    open_app: OpenApp,
) -> None:
    llm = ScriptedLLM(lambda messages, output, role: {"calls": [{"tool": "no_such_tool", "args": {}}]})
    app = open_app(llm=llm)

    record = await run(app, MATH_TASK)

    step = record.steps[0]
    assert (step.status, step.attempts, step.error and step.error.kind) == (StepStatus.FAILED, 1, "tool_error")
    assert len(llm.calls) == app.catalog.agent("math").max_iterations  # repair rounds, within one attempt
    assert "does not match the tools' parameters" in llm.calls[1].messages[-1].content
    assert step.usage.calls == len(llm.calls)  # what a failed step cost is recorded too


async def test_bad_tool_arguments_from_the_model_go_back_to_it_but_never_retry_the_step(open_app: OpenApp) -> None:
    def always_wrong(messages: Sequence[Message], output: type[BaseModel], role: str) -> dict[str, Any]:
        return multiply_call("six", 7)

    llm = ScriptedLLM(always_wrong)
    app = open_app(llm=llm)

    record = await run(app, MATH_TASK)

    step = record.steps[0]
    rounds = app.catalog.agent("math").max_iterations
    assert (step.status, step.attempts, step.error and step.error.kind) == (StepStatus.FAILED, 1, "tool_error")
    assert len(llm.calls) == rounds  # the agent's repair rounds, within one attempt


async def test_the_backoff_grows_with_each_retry_within_its_jitter(settings: Settings) -> None:
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    calls = 0

    async def flaky(a: int, b: int) -> int:
        """Multiply, failing transiently three times first."""
        nonlocal calls
        calls += 1
        if calls <= 3:
            raise TransientToolError("overloaded")
        return a * b

    catalog = Catalog([AgentSpec(name="flaky", description="f", tools=(ToolSpec.from_function(flaky),))])
    runner = StepRunner(catalog, retries=3, retry_base_s=1.0, sleep=sleep)

    outcome = await runner(Step(id=1, agent="flaky", tool="flaky", args={"a": 6, "b": 7}), {})

    assert (outcome.status, outcome.result, outcome.attempts) == (StepStatus.SUCCEEDED, 42, 4)
    assert len(delays) == 3
    for retry, delay in enumerate(delays):
        assert 0.5 * 2**retry <= delay <= 1.5 * 2**retry
