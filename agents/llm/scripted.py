"""ScriptedLLM: a stand-in model for tests and demos, answering from a function or a list of replies."""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import pydantic_core
from pydantic import BaseModel

from agents.llm.protocol import Completion, Generation, Message, T, Usage
from agents.llm.structured import parse_reply

# What a script may answer: an object, a dict or JSON text; all are validated against `output`.
ScriptedReply: TypeAlias = BaseModel | Mapping[str, Any] | str
ReplyFunction: TypeAlias = Callable[[Sequence[Message], type[BaseModel], str], ScriptedReply | Awaitable[ScriptedReply]]


@dataclass(frozen=True)
class ScriptedCall:
    """One recorded call: what was asked, for which output model (by name) and role."""

    messages: tuple[Message, ...]
    output: str
    role: str
    generation: Generation | None = None


class ScriptExhaustedError(AssertionError):
    """The code under test asked the ScriptedLLM more often than the script allows."""


class ScriptedLLM:
    """An LLM whose answers are written by the test.

    Give it a function `(messages, output, role) -> reply` (sync or async), or a sequence of replies
    used in order, where an Exception instance is raised instead of answered. Replies are validated
    against `output` like a real model's, so a bad one raises LLMOutputError (there is no repair
    round: one scripted reply is one call). Every call is recorded in `calls`; usage counts one call
    and len(text) // 4 tokens each way. A `generation.stop` sees the reply up to each `}` and `,`,
    as a streaming model's would, and cuts it where it says so.
    """

    def __init__(
        self, replies: ReplyFunction | Iterable[ScriptedReply | BaseException], *, name: str = "scripted"
    ) -> None:
        self.name = name
        self.calls: list[ScriptedCall] = []
        self._function: ReplyFunction | None = None
        self._queue: deque[ScriptedReply | BaseException] = deque()
        self._scripted = 0
        if callable(replies):
            self._function = replies
        else:
            self._queue.extend(replies)
            self._scripted = len(self._queue)

    @property
    def remaining(self) -> int:
        """How many queued replies are left (0 in function mode)."""
        return len(self._queue)

    async def complete(
        self,
        messages: Sequence[Message],
        output: type[T],
        *,
        role: str = "default",
        generation: Generation | None = None,
    ) -> Completion[T]:
        self.calls.append(
            ScriptedCall(messages=tuple(messages), output=output.__name__, role=role, generation=generation)
        )
        reply = await self._next_reply(messages, output, role)
        raw = _to_json(reply)
        if generation is not None and generation.stop is not None:
            raw = _cut(raw, generation.stop)
        prompt_chars = sum(len(message.content) for message in messages)
        usage = Usage(calls=1, prompt_tokens=prompt_chars // 4, completion_tokens=len(raw) // 4)
        return Completion(value=parse_reply(raw, output, usage), usage=usage)

    async def _next_reply(self, messages: Sequence[Message], output: type[BaseModel], role: str) -> ScriptedReply:
        if self._function is not None:
            result = self._function(messages, output, role)
            return await result if inspect.isawaitable(result) else result
        if not self._queue:
            raise ScriptExhaustedError(
                f"ScriptedLLM {self.name!r} ran out of replies: all {self._scripted} scripted replies "
                f"were used, and call {len(self.calls)} (role {role!r}, output {output.__name__!r}) "
                "asked for one more. Script more replies or check why the code calls the model again."
            )
        reply = self._queue.popleft()
        if isinstance(reply, BaseException):
            raise reply
        return reply


def _to_json(reply: ScriptedReply) -> str:
    if isinstance(reply, str):
        return reply
    if isinstance(reply, BaseModel):
        return reply.model_dump_json()
    return pydantic_core.to_json(reply).decode()


def _cut(raw: str, stop: Callable[[str], bool]) -> str:
    for end, char in enumerate(raw, start=1):
        if char in "},]" and stop(raw[:end]):
            return raw[:end]
    return raw
