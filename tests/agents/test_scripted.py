import pytest
from pydantic import BaseModel

from agents.llm import (
    Completion,
    LLMOutputError,
    LLMTransientError,
    Message,
    ScriptedCall,
    ScriptedLLM,
    ScriptExhaustedError,
    Usage,
)


class Answer(BaseModel):
    answer: int


class Other(BaseModel):
    text: str


ASK = [Message(role="system", content="Answer."), Message(role="user", content="What is 2+3?")]


@pytest.mark.anyio
async def test_queued_replies_are_returned_in_order_whatever_their_form():
    llm = ScriptedLLM([Answer(answer=1), {"answer": 2}, '{"answer": 3}'])

    values = [(await llm.complete(ASK, Answer)).value for _ in range(3)]

    assert values == [Answer(answer=1), Answer(answer=2), Answer(answer=3)]
    assert llm.remaining == 0


@pytest.mark.anyio
async def test_every_call_is_recorded_with_messages_output_name_and_role():
    llm = ScriptedLLM([{"answer": 5}, {"text": "hi"}])

    await llm.complete(ASK, Answer, role="math")
    await llm.complete(ASK[1:], Other)

    assert llm.calls == [
        ScriptedCall(messages=tuple(ASK), output="Answer", role="math"),
        ScriptedCall(messages=(ASK[1],), output="Other", role="default"),
    ]


@pytest.mark.anyio
async def test_usage_counts_one_call_and_a_quarter_token_per_character():
    llm = ScriptedLLM(['{"answer": 5}'])  # 13 characters

    completion = await llm.complete(ASK, Answer)

    prompt_chars = len("Answer.") + len("What is 2+3?")  # 7 + 12
    assert completion == Completion(
        value=Answer(answer=5),
        usage=Usage(calls=1, prompt_tokens=prompt_chars // 4, completion_tokens=13 // 4),
    )


@pytest.mark.anyio
async def test_a_function_script_sees_messages_output_and_role():
    def reply(messages, output, role):
        assert output is Answer
        return {"answer": len(messages) * 10 if role == "math" else 0}

    llm = ScriptedLLM(reply)

    assert (await llm.complete(ASK, Answer, role="math")).value == Answer(answer=20)
    assert (await llm.complete(ASK, Answer)).value == Answer(answer=0)


@pytest.mark.anyio
async def test_an_async_function_script_is_awaited():
    async def reply(messages, output, role):
        return Answer(answer=7)

    llm = ScriptedLLM(reply)

    assert (await llm.complete(ASK, Answer)).value == Answer(answer=7)


@pytest.mark.anyio
async def test_a_reply_that_does_not_fit_the_output_raises_output_error():
    llm = ScriptedLLM([{"answer": "five"}])

    with pytest.raises(LLMOutputError) as caught:
        await llm.complete(ASK, Answer)

    assert caught.value.raw == '{"answer":"five"}'
    assert caught.value.errors == ("answer: Input should be a valid integer, unable to parse string as an integer",)
    assert caught.value.usage == Usage(calls=1, prompt_tokens=4, completion_tokens=4)


@pytest.mark.anyio
async def test_an_object_of_another_model_is_validated_not_trusted():
    llm = ScriptedLLM([Other(text="hi")])

    with pytest.raises(LLMOutputError):
        await llm.complete(ASK, Answer)


@pytest.mark.anyio
async def test_a_scripted_exception_is_raised_and_the_call_still_recorded():
    llm = ScriptedLLM([LLMTransientError("server overloaded"), {"answer": 1}])

    with pytest.raises(LLMTransientError, match="server overloaded"):
        await llm.complete(ASK, Answer, role="planner")

    assert (await llm.complete(ASK, Answer)).value == Answer(answer=1)
    assert [call.role for call in llm.calls] == ["planner", "default"]


@pytest.mark.anyio
async def test_running_out_of_replies_says_how_many_were_used():
    llm = ScriptedLLM([{"answer": 1}, {"answer": 2}])
    await llm.complete(ASK, Answer)
    await llm.complete(ASK, Answer)

    with pytest.raises(ScriptExhaustedError) as caught:
        await llm.complete(ASK, Answer, role="synthesis")

    assert isinstance(caught.value, AssertionError)
    assert str(caught.value).startswith(
        "ScriptedLLM 'scripted' ran out of replies: all 2 scripted replies were used, "
        "and call 3 (role 'synthesis', output 'Answer') asked for one more."
    )
