from pathlib import Path

import pytest

from agents.llm import ScriptedLLM
from planning.catalog import AgentSpec, Catalog, ToolSpec
from planning.records import RunStatus
from planning.settings import Settings
from server.app import App, RunBusyError
from tools import math

pytestmark = pytest.mark.anyio

PLAN = {"steps": [{"id": 1, "agent": "math", "tool": "multiply", "args": {"a": 6, "b": 7}}]}


@pytest.fixture
def app(tmp_path: Path):
    catalog = Catalog(
        [AgentSpec(name="math", description="Arithmetic", tools=(ToolSpec.from_function(math.multiply),))]
    )
    app = App.open(Settings(home=tmp_path), llm=ScriptedLLM([{"answer": "6 times 7 is 42."}]), catalog=catalog)
    yield app
    app.close()


async def test_an_engine_that_breaks_leaves_the_run_failed_not_running(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(app.engine, "run", broken)
    record = app.submit(app.parse(PLAN))

    with pytest.raises(RuntimeError):
        await app.execute(record.id)

    stored = app.store.get_run(record.id)
    assert stored.status is RunStatus.FAILED
    assert stored.error == "internal error (RuntimeError: disk on fire); resume it"


async def test_a_run_of_tool_steps_is_answered_from_its_results_with_no_llm_call(app: App) -> None:
    record = app.submit(app.parse(PLAN), request="What is 6 times 7?")

    done = await app.execute(record.id)

    assert (done.status, done.answer, done.answer_source, done.usage.calls) == (
        RunStatus.SUCCEEDED,
        "multiply(a=6, b=7) = 42",
        "results",
        0,
    )


async def test_a_request_for_prose_gets_the_written_answer_and_its_usage_unless_synthesis_is_off(app: App) -> None:
    written = app.submit(app.parse(PLAN), request="Explain what 6 times 7 is")
    stated = app.submit(app.parse(PLAN), request="Explain what 6 times 7 is")

    done = await app.execute(written.id)
    plain = await app.execute(stated.id, synthesize=False)

    assert (done.answer, done.answer_source, done.usage.calls) == ("6 times 7 is 42.", "llm", 1)
    assert (plain.answer, plain.answer_source, plain.usage.calls) == ("multiply(a=6, b=7) = 42", "results", 0)


async def test_cancelling_a_run_another_live_process_executes_is_refused(app: App) -> None:
    record = app.submit(app.parse(PLAN))
    other = "this-host-is-elsewhere.example:1:1"  # owners on other hosts count as alive
    assert app.store.claim_run(record.id, other, lambda owner: False)

    with pytest.raises(RunBusyError, match="executing in another live process"):
        await app.cancel(record.id)
    assert app.store.get_run(record.id).status is RunStatus.RUNNING
