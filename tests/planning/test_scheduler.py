"""The eager scheduler (`execute`, `run_status`) and the StepRunner that runs one step.

Steps wait on events the test sets (tests.planning.conftest.Gates), so eagerness and caps are
proved by what has started when, never by sleeping.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from pydantic import JsonValue

from agents.llm.errors import HOW_TO_CONFIGURE
from agents.llm.protocol import Usage
from planning.catalog import AgentSpec, Catalog, ToolSpec
from planning.plan import Step
from planning.records import RunStatus, StepError, StepErrorKind, StepOutcome, StepStatus
from planning.scheduler import execute, run_status
from planning.steps import AgentResult, StepRunner
from tests.planning.conftest import WAIT_S, ConcurrencyProbe, Flaky, Kit, make_plan
from tools.errors import ToolError


def ok(result: JsonValue, attempts: int = 1) -> StepOutcome:
    return StepOutcome(status=StepStatus.SUCCEEDED, result=result, attempts=attempts)


def failed(kind: StepErrorKind, message: str, attempts: int = 1) -> StepOutcome:
    return StepOutcome(status=StepStatus.FAILED, error=StepError(kind=kind, message=message), attempts=attempts)


def skipped(reason: str) -> StepOutcome:
    return StepOutcome(status=StepStatus.SKIPPED, attempts=0, error=StepError(kind="dependency", message=reason))


def hold(step_id: int, name: str, agent: str = "ctl", **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "agent": agent, "tool": "hold", "args": {"name": name}, **fields}


class Recorder:
    """Sleeps nowhere: records the retry delays StepRunner asks for."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


# -- the scheduler --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_step_starts_as_soon_as_its_own_dependencies_are_done_not_when_its_wave_is(kit: Kit) -> None:
    # 1 -> 3, and 2 is slow with no dependencies: 3 must run while 2 is still running.
    plan = make_plan(hold(1, "1"), hold(2, "2"), hold(3, "3", depends_on=[1]))
    kit.gates.open("1", "3")
    outcomes: dict[int, StepOutcome] = {}

    async def run() -> None:
        outcomes.update(await execute(plan, StepRunner(kit.catalog())))

    async with anyio.create_task_group() as group:
        group.start_soon(run)
        with anyio.fail_after(WAIT_S):
            await kit.gates.finished("3").wait()
        assert "finish 2" not in kit.gates.log
        kit.gates.open("2")

    log = kit.gates.log
    assert log.index("start 2") < log.index("start 3") < log.index("finish 3") < log.index("finish 2")
    assert outcomes == {1: ok("1"), 2: ok("2"), 3: ok("3")}


@pytest.mark.anyio
async def test_a_reference_makes_a_step_wait_for_the_referenced_step(kit: Kit) -> None:
    plan = make_plan(hold(1, "one"), {"id": 2, "agent": "string", "tool": "concat", "args": {"a": "$1", "b": "!"}})
    outcomes: dict[int, StepOutcome] = {}

    async def run() -> None:
        outcomes.update(await execute(plan, StepRunner(kit.catalog())))

    async with anyio.create_task_group() as group:
        group.start_soon(run)
        with anyio.fail_after(WAIT_S):
            await kit.gates.started("one").wait()
        await anyio.wait_all_tasks_blocked()
        assert outcomes == {}
        kit.gates.open("one")

    assert outcomes == {1: ok("one"), 2: ok("one!")}


@pytest.mark.anyio
async def test_each_step_receives_exactly_the_results_of_the_steps_it_needs(catalog: Catalog) -> None:
    plan = make_plan(
        {"id": 1, "agent": "math", "tool": "add", "args": {"a": 1, "b": 2}},
        {"id": 2, "agent": "string", "tool": "concat", "args": {"a": "a", "b": "b"}},
        {"id": 3, "agent": "math", "tool": "add", "args": {"a": "$1", "b": 10}},
        {"id": 4, "agent": "string", "tool": "concat", "args": {"a": "$2", "b": "!"}, "depends_on": [3]},
        {"id": 5, "agent": "math", "tool": "multiply", "args": {"a": 2, "b": 4}, "depends_on": [1, 2, 3]},
    )
    probe = ConcurrencyProbe(StepRunner(catalog))

    outcomes = await execute(plan, probe)

    assert probe.inputs == {1: {}, 2: {}, 3: {1: 3}, 4: {2: "ab", 3: 13}, 5: {1: 3, 2: "ab", 3: 13}}
    assert outcomes == {1: ok(3), 2: ok("ab"), 3: ok(13), 4: ok("ab!"), 5: ok(8.0)}


@pytest.mark.anyio
async def test_a_failed_step_skips_its_dependents_transitively_while_independent_branches_finish(
    catalog: Catalog,
) -> None:
    plan = make_plan(
        {"id": 1, "agent": "math", "tool": "fail", "args": {"message": "boom"}},
        {"id": 2, "agent": "math", "tool": "add", "args": {"a": "$1", "b": 1}},
        {"id": 3, "agent": "math", "tool": "add", "args": {"a": 1, "b": 1}, "depends_on": [2]},
        {"id": 4, "agent": "math", "tool": "add", "args": {"a": 2, "b": 2}},
        {"id": 5, "agent": "math", "tool": "add", "args": {"a": "$4", "b": 1}},
    )
    finished: list[tuple[int, StepStatus]] = []

    async def on_finished(step: Step, outcome: StepOutcome) -> None:
        finished.append((step.id, outcome.status))

    outcomes = await execute(plan, StepRunner(catalog), on_finished=on_finished)

    assert outcomes == {
        1: failed("tool_error", "boom"),
        2: skipped("step 1 failed: boom"),
        3: skipped("step 1 did not succeed, so its dependent step 2 was skipped"),
        4: ok(4),
        5: ok(5),
    }
    assert sorted(finished) == [
        (1, StepStatus.FAILED),
        (2, StepStatus.SKIPPED),
        (3, StepStatus.SKIPPED),
        (4, StepStatus.SUCCEEDED),
        (5, StepStatus.SUCCEEDED),
    ]
    assert run_status(outcomes, len(plan.steps)) is RunStatus.PARTIAL


@pytest.mark.anyio
async def test_a_run_in_which_no_step_succeeds_has_failed(catalog: Catalog) -> None:
    plan = make_plan(
        {"id": 1, "agent": "math", "tool": "fail", "args": {"message": "boom"}},
        {"id": 2, "agent": "math", "task": "use ${1}"},
    )

    outcomes = await execute(plan, StepRunner(catalog))

    assert outcomes == {1: failed("tool_error", "boom"), 2: skipped("step 1 failed: boom")}
    assert run_status(outcomes, len(plan.steps)) is RunStatus.FAILED


@pytest.mark.anyio
async def test_a_crashing_step_runner_becomes_an_internal_failure_of_that_step_only(catalog: Catalog) -> None:
    plan = make_plan(
        {"id": 1, "agent": "math", "task": "crash"},
        {"id": 2, "agent": "math", "task": "after ${1}"},
        {"id": 3, "agent": "math", "task": "fine"},
    )

    async def run_step(step: Step, inputs: dict[int, JsonValue]) -> StepOutcome:
        if step.id == 1:
            raise RuntimeError("bug in a runner")
        return ok(step.id)

    outcomes = await execute(plan, run_step)

    assert outcomes == {
        1: failed("internal", "RuntimeError: bug in a runner"),
        2: skipped("step 1 failed: RuntimeError: bug in a runner"),
        3: ok(3),
    }


@pytest.mark.anyio
async def test_started_and_finished_callbacks_are_awaited_for_every_step_in_order(catalog: Catalog) -> None:
    plan = make_plan(
        {"id": 1, "agent": "math", "tool": "add", "args": {"a": 1, "b": 2}},
        {"id": 2, "agent": "math", "tool": "add", "args": {"a": "$1", "b": 2}},
        {"id": 3, "agent": "math", "tool": "fail", "args": {"message": "no"}, "depends_on": [2]},
        {"id": 4, "agent": "math", "tool": "add", "args": {"a": "$3", "b": 2}},
    )
    events: list[tuple[str, int]] = []

    async def on_started(step: Step) -> None:
        events.append(("started", step.id))

    async def on_finished(step: Step, outcome: StepOutcome) -> None:
        events.append((outcome.status.value, step.id))

    await execute(plan, StepRunner(catalog), on_started=on_started, on_finished=on_finished)

    assert events == [
        ("started", 1),
        ("succeeded", 1),
        ("started", 2),
        ("succeeded", 2),
        ("started", 3),
        ("failed", 3),
        ("skipped", 4),
    ]


@pytest.mark.anyio
async def test_global_concurrency_cap_is_respected(kit: Kit) -> None:
    plan = make_plan(*(hold(i, "go", agent="ctl" if i % 2 else "other") for i in range(1, 7)))
    probe = ConcurrencyProbe(StepRunner(kit.catalog()))
    outcomes: dict[int, StepOutcome] = {}

    async def run() -> None:
        outcomes.update(await execute(plan, probe, max_concurrency=2))

    async with anyio.create_task_group() as group:
        group.start_soon(run)
        with anyio.fail_after(WAIT_S):
            await kit.gates.started("go").wait()
        await anyio.wait_all_tasks_blocked()
        assert probe.running["all"] == 2
        kit.gates.open("go")

    assert probe.peak["all"] == 2
    assert outcomes == {i: ok("go") for i in range(1, 7)}


@pytest.mark.anyio
async def test_per_agent_cap_is_respected_while_other_agents_keep_running(kit: Kit) -> None:
    plan = make_plan(*(hold(i, "go") for i in range(1, 5)), hold(5, "go", agent="other"), hold(6, "go", agent="other"))
    probe = ConcurrencyProbe(StepRunner(kit.catalog()))
    outcomes: dict[int, StepOutcome] = {}

    async def run() -> None:
        outcomes.update(await execute(plan, probe, max_concurrency=8, agent_caps={"ctl": 2}))

    async with anyio.create_task_group() as group:
        group.start_soon(run)
        with anyio.fail_after(WAIT_S):
            await kit.gates.started("go").wait()
        await anyio.wait_all_tasks_blocked()
        assert dict(probe.running) == {"ctl": 2, "other": 2, "all": 4}
        kit.gates.open("go")

    assert dict(probe.peak) == {"ctl": 2, "other": 2, "all": 4}
    assert outcomes == {i: ok("go") for i in range(1, 7)}


@pytest.mark.anyio
async def test_resume_does_not_run_succeeded_steps_again_and_feeds_their_results(kit: Kit) -> None:
    plan = make_plan(
        {"id": 1, "agent": "ctl", "tool": "count", "args": {"value": 5}},
        {"id": 2, "agent": "math", "tool": "add", "args": {"a": "$1", "b": 1}},
    )
    earlier = StepOutcome(status=StepStatus.SUCCEEDED, result=40, summary="from the first run", attempts=2)

    outcomes = await execute(plan, StepRunner(kit.catalog()), succeeded={1: earlier})

    assert kit.tally.calls == 0
    assert outcomes == {1: earlier, 2: ok(41)}


@pytest.mark.anyio
async def test_resume_runs_again_steps_whose_earlier_outcome_was_not_a_success(kit: Kit) -> None:
    plan = make_plan({"id": 1, "agent": "ctl", "tool": "count", "args": {"value": 5}})

    outcomes = await execute(plan, StepRunner(kit.catalog()), succeeded={1: failed("tool_error", "earlier")})

    assert kit.tally.calls == 1
    assert outcomes == {1: ok(5)}


@pytest.mark.anyio
async def test_cancelling_the_run_reports_in_flight_steps_cancelled_and_starts_nothing_more(kit: Kit) -> None:
    plan = make_plan(hold(1, "never"), hold(2, "after", depends_on=[1]))
    finished: dict[int, StepOutcome] = {}

    async def on_finished(step: Step, outcome: StepOutcome) -> None:
        finished[step.id] = outcome

    async def run() -> None:
        await execute(plan, StepRunner(kit.catalog()), on_finished=on_finished)

    async with anyio.create_task_group() as group:
        group.start_soon(run)
        with anyio.fail_after(WAIT_S):
            await kit.gates.started("never").wait()
        group.cancel_scope.cancel()

    assert finished == {
        1: StepOutcome(status=StepStatus.CANCELLED, error=StepError(kind="cancelled", message="the run was cancelled"))
    }
    assert kit.gates.log == ["start never"]


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([StepStatus.SUCCEEDED, StepStatus.SUCCEEDED], RunStatus.SUCCEEDED),
        ([StepStatus.SUCCEEDED, StepStatus.FAILED], RunStatus.PARTIAL),
        ([StepStatus.SUCCEEDED, StepStatus.SKIPPED], RunStatus.PARTIAL),
        ([StepStatus.FAILED, StepStatus.SKIPPED], RunStatus.FAILED),
        ([StepStatus.SUCCEEDED, StepStatus.CANCELLED], RunStatus.CANCELLED),
        ([StepStatus.SUCCEEDED], RunStatus.PARTIAL),  # a step without an outcome did not succeed
    ],
)
def test_run_status_summarises_step_outcomes(statuses: list[StepStatus], expected: RunStatus) -> None:
    outcomes = {i: StepOutcome(status=s) for i, s in enumerate(statuses, start=1)}

    assert run_status(outcomes, step_count=2) is expected


# -- StepRunner -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_step_over_its_time_limit_fails_with_kind_timeout(catalog: Catalog) -> None:
    step = Step(id=1, agent="ctl", tool="hold", args={"name": "never"}, timeout_s=0.01)

    outcome = await StepRunner(catalog)(step, {})

    assert outcome == failed("timeout", "the step took longer than its limit of 0.01 s")


@pytest.mark.anyio
async def test_the_agents_time_limit_applies_when_the_step_sets_none(kit: Kit) -> None:
    agent = AgentSpec(name="slow", description="s", tools=(ToolSpec.from_function(kit.gates.hold),), timeout_s=0.02)

    outcome = await StepRunner(Catalog([agent]))(Step(id=1, agent="slow", tool="hold", args={"name": "never"}), {})

    assert outcome == failed("timeout", "the step took longer than its limit of 0.02 s")


@pytest.mark.anyio
async def test_a_transient_failure_is_retried_with_growing_backoff_until_it_succeeds(kit: Kit) -> None:
    kit.flaky.failures = 2
    sleep = Recorder()
    runner = StepRunner(kit.catalog(), retries=2, retry_base_s=0.5, sleep=sleep)

    outcome = await runner(Step(id=1, agent="ctl", tool="flaky", args={"value": 7}), {})

    assert outcome == ok(7, attempts=3)
    assert kit.flaky.calls == 3
    first, second = sleep.delays
    assert 0.25 <= first <= 0.75  # 0.5 s with jitter
    assert 0.5 <= second <= 1.5  # doubled


@pytest.mark.anyio
async def test_a_transient_failure_beyond_the_retries_fails_the_step(kit: Kit) -> None:
    kit.flaky.failures = 5
    sleep = Recorder()

    outcome = await StepRunner(kit.catalog(), retries=2, sleep=sleep)(
        Step(id=1, agent="ctl", tool="flaky", args={"value": 7}), {}
    )

    assert outcome == failed("transient", "flaky: failure 3 (gave up after 3 attempts; try again later)", attempts=3)
    assert (kit.flaky.calls, len(sleep.delays)) == (3, 2)


@pytest.mark.anyio
async def test_a_tool_error_fails_the_step_without_retrying(kit: Kit) -> None:
    kit.flaky = Flaky(failures=5, error=ToolError)
    sleep = Recorder()

    outcome = await StepRunner(kit.catalog(), retries=2, sleep=sleep)(
        Step(id=1, agent="ctl", tool="flaky", args={"value": 7}), {}
    )

    assert outcome == failed("tool_error", "flaky: failure 1")
    assert (kit.flaky.calls, sleep.delays) == (1, [])


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("result", "kind"), [(3, "int"), (2.5, "float"), ([1, 2], "list"), ({"k": 1}, "dict"), ("3", "str")]
)
async def test_a_whole_value_reference_reaches_the_tool_with_its_type(
    catalog: Catalog, result: JsonValue, kind: str
) -> None:
    step = Step(id=2, agent="math", tool="kind_of", args={"value": "$1"})

    assert await StepRunner(catalog)(step, {1: result}) == ok(kind)


@pytest.mark.anyio
async def test_a_reference_inside_a_string_reaches_the_tool_as_text(catalog: Catalog) -> None:
    step = Step(id=3, agent="string", tool="concat", args={"a": "got ${1} and ${2}", "b": " for $1"})

    assert await StepRunner(catalog)(step, {1: [1, 2], 2: "x"}) == ok("got [1, 2] and x for $1")


@pytest.mark.anyio
async def test_a_whole_value_reference_of_the_wrong_type_fails_the_step_with_invalid_args(catalog: Catalog) -> None:
    plan = make_plan(
        {"id": 1, "agent": "string", "tool": "concat", "args": {"a": "x", "b": "y"}},
        {"id": 2, "agent": "math", "tool": "add", "args": {"a": "$1", "b": 1}},
    )

    outcomes = await execute(plan, StepRunner(catalog))

    assert outcomes[2] == failed(
        "invalid_args", "add: args.a: Input should be a valid integer, unable to parse string as an integer (got 'xy')"
    )


@pytest.mark.anyio
async def test_a_field_reference_the_result_lacks_fails_the_step_with_invalid_args(catalog: Catalog) -> None:
    step = Step(id=2, agent="math", tool="add", args={"a": "$1.total", "b": 1})

    assert await StepRunner(catalog)(step, {1: {"sum": 3}}) == failed(
        "invalid_args", "$1.total: step 1's result has no field 'total'; its fields are: sum"
    )
    assert await StepRunner(catalog)(step, {1: {"total": 3}}) == ok(4)


@pytest.mark.anyio
async def test_an_agent_step_without_an_llm_fails_saying_how_to_configure_one(catalog: Catalog) -> None:
    outcome = await StepRunner(catalog)(Step(id=1, agent="math", task="add 1 and 2"), {})

    assert outcome == failed(
        "llm_error", f"The 'math' agent step needs an LLM and none is configured. {HOW_TO_CONFIGURE}"
    )


@pytest.mark.anyio
async def test_an_agent_step_gets_its_task_with_results_substituted_and_its_inputs(catalog: Catalog) -> None:
    calls: list[tuple[str, str, dict[int, JsonValue]]] = []
    usage = Usage(calls=1, prompt_tokens=10, completion_tokens=5, latency_s=0.25)

    async def run_agent(agent: AgentSpec, task: str, inputs: dict[int, JsonValue]) -> AgentResult:
        calls.append((agent.name, task, inputs))
        return AgentResult(value=42, summary="doubled 21", usage=usage)

    outcome = await StepRunner(catalog, run_agent=run_agent)(Step(id=2, agent="math", task="Double ${1}"), {1: 21})

    assert calls == [("math", "Double 21", {1: 21})]
    assert outcome == StepOutcome(status=StepStatus.SUCCEEDED, result=42, summary="doubled 21", usage=usage)
