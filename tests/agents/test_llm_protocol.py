import pytest
from pydantic import BaseModel, ValidationError

from agents.llm import LLM, Completion, EmbeddedLLM, LLMOutputError, Message, ScriptedLLM, Usage
from agents.llm.errors import RAW_REPLY_LIMIT, LLMNotConfiguredError
from agents.llm.openai_compat import OpenAICompatLLM, OpenAIConfig
from agents.llm.structured import complete_with_repair, with_schema_instructions


class Answer(BaseModel):
    answer: int


def test_usages_add_up_field_by_field():
    first = Usage(calls=1, prompt_tokens=10, completion_tokens=2, latency_s=0.5)
    second = Usage(calls=2, prompt_tokens=5, completion_tokens=7, latency_s=1.25)

    assert first + second == Usage(calls=3, prompt_tokens=15, completion_tokens=9, latency_s=1.75)


def test_summing_usages_starts_from_an_empty_usage():
    usages = [Usage(calls=1, prompt_tokens=3), Usage(calls=1, completion_tokens=4)]

    assert sum(usages, Usage()) == Usage(calls=2, prompt_tokens=3, completion_tokens=4)


def test_a_message_role_outside_the_three_chat_roles_is_refused():
    with pytest.raises(ValidationError):
        Message(role="tool", content="hi")  # type: ignore[arg-type]


def test_a_completion_keeps_the_typed_value():
    completion = Completion[Answer](value=Answer(answer=5), usage=Usage(calls=1))

    assert completion.value == Answer(answer=5)
    assert completion.model_dump() == {
        "value": {"answer": 5},
        "usage": {"calls": 1, "prompt_tokens": 0, "completion_tokens": 0, "latency_s": 0.0},
    }


def test_not_configured_error_says_every_way_to_configure_an_llm():
    message = str(LLMNotConfiguredError())

    for needed in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "uv sync --extra local", "PLANNER_MCP_LLM=local"):
        assert needed in message
    assert "tool steps run without any LLM" in message


def test_output_error_truncates_a_huge_raw_reply():
    error = LLMOutputError("Answer", "x" * (RAW_REPLY_LIMIT + 500), ["answer: Field required"])

    assert error.raw == "x" * RAW_REPLY_LIMIT + "… [500 more characters]"
    assert error.errors == ("answer: Field required",)
    assert "'Answer'" in str(error)


def test_schema_instructions_join_an_existing_system_message():
    messages = [Message(role="system", content="Be brief."), Message(role="user", content="2+3?")]

    result = with_schema_instructions(messages, Answer)

    assert [m.role for m in result] == ["system", "user"]
    assert result[0].content.startswith("Be brief.\n\nReply with exactly one JSON object")
    assert '"answer"' in result[0].content
    assert result[1] == messages[1]


def test_schema_instructions_become_the_first_message_when_there_is_no_system_message():
    result = with_schema_instructions([Message(role="user", content="2+3?")], Answer)

    assert [m.role for m in result] == ["system", "user"]


@pytest.mark.anyio
async def test_a_reply_that_fails_validation_is_repaired_once_with_the_errors():
    seen: list[list[Message]] = []
    replies = iter(['{"answer": "five"}', '{"answer": 5}'])

    async def call(messages):
        seen.append(list(messages))
        return next(replies), Usage(calls=1, prompt_tokens=10, completion_tokens=3)

    completion = await complete_with_repair(call, [Message(role="user", content="2+3?")], Answer)

    assert completion == Completion(value=Answer(answer=5), usage=Usage(calls=2, prompt_tokens=20, completion_tokens=6))
    repair = seen[1]
    assert repair[:2] == [
        Message(role="user", content="2+3?"),
        Message(role="assistant", content='{"answer": "five"}'),
    ]
    assert repair[2].role == "user"
    assert "answer: Input should be a valid integer" in repair[2].content


@pytest.mark.anyio
async def test_a_second_bad_reply_raises_output_error_with_both_calls_counted():
    async def call(messages):
        return "not json", Usage(calls=1, completion_tokens=2)

    with pytest.raises(LLMOutputError) as caught:
        await complete_with_repair(call, [Message(role="user", content="2+3?")], Answer)

    assert caught.value.raw == "not json"
    assert caught.value.usage == Usage(calls=2, completion_tokens=4)
    assert caught.value.errors[0].startswith("reply: Invalid JSON")


def test_every_implementation_satisfies_the_protocol(tmp_path):
    # The annotation is the real check: pyright verifies each one against the LLM protocol.
    implementations: list[LLM] = [
        ScriptedLLM([]),
        OpenAICompatLLM(OpenAIConfig()),
        EmbeddedLLM(tmp_path / "own-model.gguf"),
    ]

    assert [llm.name for llm in implementations] == ["scripted", "openai:gpt-4o-mini", "local:own-model"]
