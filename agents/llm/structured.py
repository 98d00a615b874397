"""Structured output shared by the implementations: schema prompt, validation, one repair round."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence

from pydantic import BaseModel, ValidationError

from agents.llm.errors import LLMError, LLMOutputError
from agents.llm.protocol import Completion, Message, T, Usage

# A model call: messages in, (raw reply text, usage of that call) out.
RawCall = Callable[[Sequence[Message]], Awaitable[tuple[str, Usage]]]

# One repair round: the second reply usually fixes what the first got wrong; more rounds rarely do.
REPAIR_ROUNDS = 1


def schema_instructions(output: type[BaseModel]) -> str:
    """A system-message paragraph telling the model to answer with JSON matching `output`'s schema."""
    schema = json.dumps(output.model_json_schema(), separators=(",", ":"))
    return (
        "Reply with exactly one JSON object and nothing else (no prose, no code fences). "
        f"It must validate against this JSON Schema:\n{schema}"
    )


def describe_errors(exc: ValidationError) -> list[str]:
    """One line per validation error, `location: message`, without echoing whole inputs."""
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        location = ".".join(str(part) for part in error["loc"]) or "reply"
        lines.append(f"{location}: {error['msg']}")
    return lines


def parse_reply(raw: str, output: type[T], usage: Usage | None = None) -> T:
    """Validate the reply text against `output`; raise LLMOutputError (with the errors) if it does not fit."""
    try:
        return output.model_validate_json(raw)
    except ValidationError as exc:
        raise LLMOutputError(output.__name__, raw, describe_errors(exc), usage=usage) from exc


def with_schema_instructions(messages: Sequence[Message], output: type[BaseModel]) -> list[Message]:
    """The messages with the schema paragraph added to the system message (or as a new first one)."""
    instructions = schema_instructions(output)
    result = list(messages)
    if result and result[0].role == "system":
        result[0] = Message(role="system", content=f"{result[0].content}\n\n{instructions}")
    else:
        result.insert(0, Message(role="system", content=instructions))
    return result


async def complete_with_repair(
    call: RawCall, messages: Sequence[Message], output: type[T], *, repair_rounds: int | None = None
) -> Completion[T]:
    """Call the model, validate the reply, and on a validation failure ask once more with the errors.

    The failed reply and its errors go back to the model as an assistant/user pair, the pattern that
    lets a model correct itself (pydantic-ai's ModelRetry). Usage adds up over both calls, and an
    LLMError raised by a call carries the usage of the calls before it too.
    `repair_rounds` (default REPAIR_ROUNDS) 0: one call, no repair (for callers that repair themselves).
    """
    rounds = REPAIR_ROUNDS if repair_rounds is None else repair_rounds
    current = list(messages)
    usage = Usage()
    for round_ in range(rounds + 1):
        try:
            raw, call_usage = await call(current)
        except LLMError as exc:
            exc.with_usage(usage)
            raise
        usage = usage + call_usage
        try:
            value = parse_reply(raw, output, usage)
        except LLMOutputError as exc:
            if round_ == rounds:
                raise
            current = [*current, Message(role="assistant", content=raw), repair_request(exc)]
            continue
        return Completion(value=value, usage=usage)
    raise AssertionError("unreachable: the last round returns or raises")


def repair_request(exc: LLMOutputError) -> Message:
    """The user message that tells the model what was wrong with its previous reply."""
    problems = "\n".join(f"- {line}" for line in exc.errors)
    return Message(
        role="user",
        content=(
            f"Your previous reply did not validate against the schema {exc.output_name!r}:\n{problems}\n"
            "Reply again with only the corrected JSON object."
        ),
    )
