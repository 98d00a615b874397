"""The one protocol every LLM implementation speaks: messages in, a validated pydantic object out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

from planning.usage import Usage

__all__ = ["LLM", "Completion", "Message", "T", "Usage"]

T = TypeVar("T", bound=BaseModel)


class Message(BaseModel):
    """One chat message sent to a model."""

    model_config = ConfigDict(frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str


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
