from datetime import UTC, datetime

import pytest

from agents.llm import LLMTransientError, ScriptedLLM
from agents.synthesis import Synthesizer
from planning.plan import Plan
from planning.records import RunRecord, RunStatus, StepRecord, StepStatus

pytestmark = pytest.mark.anyio

REQUEST = (
    "Calculate 10 times 5 and count words in 'Hello World', then multiply the word count by the calculation result"
)


def seed_run(request: str | None = REQUEST) -> RunRecord:
    plan = Plan.model_validate(
        {
            "steps": [
                {"id": 1, "agent": "math", "tool": "multiply", "args": {"a": 10, "b": 5}},
                {"id": 2, "agent": "string", "tool": "word_count", "args": {"text": "Hello World"}},
                {"id": 3, "agent": "math", "tool": "multiply", "args": {"a": "$1", "b": "$2"}},
            ]
        }
    )
    steps = [
        StepRecord(id=1, agent="math", status=StepStatus.SUCCEEDED, result=50),
        StepRecord(id=2, agent="string", status=StepStatus.SUCCEEDED, result=2),
        StepRecord(id=3, agent="math", status=StepStatus.SUCCEEDED, result=100),
    ]
    return RunRecord(
        id="r1",
        status=RunStatus.SUCCEEDED,
        request=request,
        engine="local",
        created_at=datetime.now(UTC),
        step_count=3,
        plan=plan,
        steps=steps,
    )


async def test_the_written_answer_is_used_when_it_states_the_final_result() -> None:
    llm = ScriptedLLM([{"answer": "10 times 5 is 50, 'Hello World' has 2 words, and 50 times 2 is 100."}])

    answer, usage = await Synthesizer(llm)(seed_run())

    assert answer == "10 times 5 is 50, 'Hello World' has 2 words, and 50 times 2 is 100."
    assert usage.calls == 1
    prompt = llm.calls[0].messages[-1].content
    assert '<data step="3">\n100\n</data>' in prompt
    assert REQUEST in prompt


async def test_a_garbled_answer_is_replaced_by_the_deterministic_result() -> None:
    llm = ScriptedLLM([{"answer": "The word count is 11, so the result is 550."}])

    answer, usage = await Synthesizer(llm)(seed_run())

    assert answer == "100"
    assert usage.calls == 1


async def test_without_a_request_or_an_llm_no_model_is_asked() -> None:
    llm = ScriptedLLM([])

    assert (await Synthesizer(llm)(seed_run(request=None)))[0] == "100"
    assert (await Synthesizer(None)(seed_run()))[0] == "100"
    assert llm.calls == []


async def test_a_failing_model_falls_back_to_the_deterministic_answer() -> None:
    llm = ScriptedLLM([LLMTransientError("server overloaded")])

    answer, usage = await Synthesizer(llm)(seed_run())

    assert answer == "100"
    assert usage.calls == 0
