from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import JsonValue

from agents.llm import LLMTransientError, ScriptedLLM
from agents.synthesis import Synthesizer
from planning.plan import Plan
from planning.records import RunRecord, RunStatus, StepRecord, StepStatus

pytestmark = pytest.mark.anyio

REQUEST = (
    "Calculate 10 times 5 and count words in 'Hello World', then multiply the word count by the calculation result"
)
SEED_STEPS = [
    {"id": 1, "agent": "math", "tool": "multiply", "args": {"a": 10, "b": 5}},
    {"id": 2, "agent": "string", "tool": "word_count", "args": {"text": "Hello World"}},
    {"id": 3, "agent": "math", "tool": "multiply", "args": {"a": "$1", "b": "$2"}},
]


def run_of(steps: list[dict[str, Any]], results: list[JsonValue], request: str | None = REQUEST) -> RunRecord:
    return RunRecord(
        id="r1",
        status=RunStatus.SUCCEEDED,
        request=request,
        engine="local",
        created_at=datetime.now(UTC),
        step_count=len(steps),
        plan=Plan.model_validate({"steps": steps}),
        steps=[
            StepRecord(id=s["id"], agent=s["agent"], status=StepStatus.SUCCEEDED, result=r)
            for s, r in zip(steps, results, strict=True)
        ],
    )


def seed_run(request: str | None = REQUEST) -> RunRecord:
    return run_of(SEED_STEPS, [50, 2, 100], request)


def agent_run(result: JsonValue) -> RunRecord:
    """One agent step (its LLM chose the tools): an answer written by the LLM adds something."""
    return run_of([{"id": 1, "agent": "string", "task": "count the words"}], [result], "How many words are in it?")


async def test_a_run_of_tool_steps_is_answered_from_its_results_without_an_llm_call() -> None:
    llm = ScriptedLLM([])

    answer = await Synthesizer(llm)(seed_run())

    assert (answer.text, answer.source, answer.usage.calls) == ("multiply(a=50, b=2) = 100", "results", 0)
    assert llm.calls == []


async def test_an_agent_steps_result_is_put_in_words_by_the_llm() -> None:
    llm = ScriptedLLM([{"answer": "The text has 9 words."}])

    answer = await Synthesizer(llm)(agent_run(9))

    assert (answer.text, answer.source, answer.usage.calls) == ("The text has 9 words.", "llm", 1)
    prompt = llm.calls[0].messages[-1].content
    assert '<data step="1">\n9\n</data>' in prompt
    assert "How many words are in it?" in prompt


@pytest.mark.parametrize("written", ["The text has 19 words.", "The text has 9.5 words.", "It has nine words."])
async def test_a_written_answer_that_does_not_state_the_result_as_a_whole_number_is_replaced(written: str) -> None:
    answer = await Synthesizer(ScriptedLLM([{"answer": written}]))(agent_run(9))

    assert (answer.text, answer.source, answer.usage.calls) == ("9", "results", 1)


async def test_a_written_answer_may_group_thousands() -> None:
    answer = await Synthesizer(ScriptedLLM([{"answer": "About 12,345 people."}]))(agent_run(12345))

    assert (answer.text, answer.source) == ("About 12,345 people.", "llm")


async def test_a_request_for_prose_is_answered_by_the_llm_even_from_tool_steps() -> None:
    run = run_of(SEED_STEPS, [50, 2, 100], "Explain how 10 times 5 times the words in 'Hello World' gives 100")
    answer = await Synthesizer(ScriptedLLM([{"answer": "10 x 5 is 50; two words make it 100."}]))(run)

    assert (answer.text, answer.source) == ("10 x 5 is 50; two words make it 100.", "llm")


async def test_without_a_request_or_an_llm_no_model_is_asked() -> None:
    llm = ScriptedLLM([])

    assert (await Synthesizer(llm)(agent_run(9).model_copy(update={"request": None}))).text == "9"
    assert (await Synthesizer(None)(agent_run(9))).source == "results"
    assert llm.calls == []


async def test_a_failing_model_falls_back_to_the_stated_results() -> None:
    answer = await Synthesizer(ScriptedLLM([LLMTransientError("server overloaded")]))(agent_run(9))

    assert (answer.text, answer.source, answer.usage.calls) == ("9", "results", 0)
