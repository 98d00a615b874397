"""The one protocol every LLM implementation speaks: messages in, a validated pydantic object out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T", bound=BaseModel)


class Message(BaseModel):
    """One chat message sent to a model."""

    model_config = ConfigDict(frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str


class Usage(BaseModel):
    """What one or more model calls cost; add two with `+` to get the total."""

    model_config = ConfigDict(frozen=True)

    calls: int = Field(default=0, ge=0)
    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    latency_s: float = Field(default=0.0, ge=0.0)

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(
            calls=self.calls + other.calls,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            latency_s=self.latency_s + other.latency_s,
        )


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
        self, messages: Sequence[Message], output: type[T], *, role: str = "default"
    ) -> Completion[T]: ...
