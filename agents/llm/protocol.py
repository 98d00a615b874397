"""The one protocol every LLM implementation speaks: messages in, a validated pydantic object out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

from planning.usage import Usage

__all__ = ["LLM", "Completion", "Generation", "Message", "T", "Usage"]

T = TypeVar("T", bound=BaseModel)


class Message(BaseModel):
    """One chat message sent to a model."""

    model_config = ConfigDict(frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class Generation:
    """How to generate one reply. Each implementation applies what it can and says so; None keeps
    the implementation's default.

    `stop` sees the reply text so far (the embedded model calls it as tokens arrive) and ends the
    generation when it returns True: the cut reply then fails validation like any truncated one.
    `repair_rounds` bounds the schema-repair rounds inside the call (callers that repair
    themselves pass 0).
    """

    temperature: float | None = None
    max_tokens: int | None = None
    stop: Callable[[str], bool] | None = None
    repair_rounds: int | None = None


class Completion(BaseModel, Generic[T]):
    """A validated reply (`value`, an instance of the requested output model) and what it cost."""

    value: T
    usage: Usage


class LLM(Protocol):
    """A chat model that answers with an instance of a pydantic model.

    `role` is "planner", "synthesis", a specialist agent name ("math", "string", "web_search",
    "code", "weather") or "default"; implementations use it to pick the model for that role.
    Failures raise `agents.llm.errors.LLMError` subclasses, never return error text.
    """

    name: str

    async def complete(
        self,
        messages: Sequence[Message],
        output: type[T],
        *,
        role: str = "default",
        generation: Generation | None = None,
    ) -> Completion[T]: ...
