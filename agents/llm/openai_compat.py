"""Chat models behind an OpenAI-compatible API: OpenAI itself, Ollama, vLLM, LM Studio, llama.cpp server."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import openai
from openai.types.chat import ChatCompletionMessageParam
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from agents.llm.errors import LLMError, LLMTransientError
from agents.llm.protocol import Completion, Message, T, Usage
from agents.llm.structured import complete_with_repair, with_schema_instructions

log = logging.getLogger(__name__)

DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
# Servers such as Ollama ignore the key but the SDK insists on one.
PLACEHOLDER_API_KEY = "not-needed"

_ROLE_PREFIX = "PLANNER_MCP_MODEL_"
# PLANNER_MCP_MODEL_PATH is the embedded model's file, not a role.
_NOT_ROLES = frozenset({"PATH"})
# Words in a 400 reply that mean "this server does not do json_schema response formats".
_FORMAT_REJECTION_HINTS = (
    "response_format",
    "response format",
    "json_schema",
    "json schema",
    "not supported",
    "unsupported",
)
_TRANSIENT_ERRORS = (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError)


class OpenAIConfig(BaseModel):
    """Where and how to reach an OpenAI-compatible server, and which model serves each role."""

    model_config = ConfigDict(frozen=True)

    api_key: SecretStr | None = None
    base_url: str | None = None
    model: str = Field(default=DEFAULT_MODEL, min_length=1)
    role_models: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=3, ge=0)

    def model_for(self, role: str) -> str:
        """The model for `role`: its override if one is set, else the default model."""
        return self.role_models.get(role, self.model)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> OpenAIConfig:
        """Read OPENAI_API_KEY, OPENAI_BASE_URL, PLANNER_MCP_MODEL, PLANNER_MCP_MODEL_<ROLE>
        (e.g. PLANNER_MCP_MODEL_PLANNER, PLANNER_MCP_MODEL_WEB_SEARCH), PLANNER_MCP_LLM_TIMEOUT_S and
        PLANNER_MCP_LLM_MAX_RETRIES. Empty values count as unset."""
        env = {key: value.strip() for key, value in environ.items() if value.strip()}
        role_models = {
            key.removeprefix(_ROLE_PREFIX).lower(): value
            for key, value in env.items()
            if key.startswith(_ROLE_PREFIX) and key.removeprefix(_ROLE_PREFIX) not in _NOT_ROLES
        }
        fields: dict[str, Any] = {
            "api_key": env.get("OPENAI_API_KEY"),
            "base_url": env.get("OPENAI_BASE_URL"),
            "model": env.get("PLANNER_MCP_MODEL", DEFAULT_MODEL),
            "role_models": role_models,
        }
        numeric = {"timeout_s": "PLANNER_MCP_LLM_TIMEOUT_S", "max_retries": "PLANNER_MCP_LLM_MAX_RETRIES"}
        for field, variable in numeric.items():
            if variable in env:
                fields[field] = env[variable]
        try:
            return cls.model_validate(fields)
        except ValidationError as exc:
            problems = "; ".join(
                f"{numeric.get(str(e['loc'][0]), e['loc'][0])}: {e['msg']}" for e in exc.errors(include_url=False)
            )
            raise LLMError(
                f"Invalid LLM settings in the environment ({problems}); "
                "fix or unset those variables (timeout in seconds > 0, retries >= 0)."
            ) from None


class OpenAICompatLLM:
    """An LLM served over the OpenAI chat-completions API, with schema-constrained JSON replies.

    Uses `response_format` json_schema; a server that rejects it gets json_object plus the schema
    in the system message from then on. The SDK client is made for each call and closed after it:
    Flyte runs task bodies on its own loop thread, and a client kept across loops breaks (or is
    closed later, by the garbage collector, on a loop that does not own its sockets).
    """

    def __init__(self, config: OpenAIConfig) -> None:
        self.config = config
        self.name = f"openai:{config.model}"
        self._json_schema_supported = True

    @property
    def base_url(self) -> str:
        return self.config.base_url or DEFAULT_BASE_URL

    async def complete(self, messages: Sequence[Message], output: type[T], *, role: str = "default") -> Completion[T]:
        model = self.config.model_for(role)

        async def call(current: Sequence[Message]) -> tuple[str, Usage]:
            return await self._call(current, output, model)

        return await complete_with_repair(call, messages, output)

    async def aclose(self) -> None:
        """Nothing stays open between calls; kept so callers may close any LLM alike."""

    def _client(self) -> openai.AsyncOpenAI:
        api_key = self.config.api_key.get_secret_value() if self.config.api_key else None
        return openai.AsyncOpenAI(
            api_key=api_key or PLACEHOLDER_API_KEY,
            base_url=self.base_url,
            timeout=self.config.timeout_s,
            max_retries=self.config.max_retries,
        )

    async def _call(self, messages: Sequence[Message], output: type[BaseModel], model: str) -> tuple[str, Usage]:
        structured = self._json_schema_supported
        if structured:
            response_format: Any = {
                "type": "json_schema",
                "json_schema": {
                    "name": _schema_name(output),
                    "schema": output.model_json_schema(),
                    "strict": False,
                },
            }
            wire = messages
        else:
            response_format = {"type": "json_object"}
            wire = with_schema_instructions(messages, output)
        started = time.perf_counter()
        try:
            async with self._client() as client:
                response = await client.chat.completions.create(
                    model=model,
                    messages=[_wire_message(m) for m in wire],
                    response_format=response_format,
                )
        except openai.BadRequestError as exc:
            if structured and _rejects_json_schema(exc):
                log.info("%s rejected json_schema output; using json_object from now on", self.base_url)
                self._json_schema_supported = False
                return await self._call(messages, output, model)
            raise self._error(exc, model) from exc
        except openai.APIError as exc:
            raise self._error(exc, model) from exc
        latency = time.perf_counter() - started
        raw = (response.choices[0].message.content or "") if response.choices else ""
        usage = Usage(
            calls=1,
            prompt_tokens=response.usage.prompt_tokens if response.usage else 0,
            completion_tokens=response.usage.completion_tokens if response.usage else 0,
            latency_s=latency,
        )
        log.debug("%s answered in %.2fs (%d+%d tokens)", model, latency, usage.prompt_tokens, usage.completion_tokens)
        return raw, usage

    def _error(self, exc: openai.APIError, model: str) -> LLMError:
        """Map an SDK error to ours; messages name the server and model, never the API key."""
        where = f"the LLM server {self.base_url!r} (model {model!r})"
        if isinstance(exc, _TRANSIENT_ERRORS) or (
            isinstance(exc, openai.APIStatusError) and exc.status_code in (408, 409)
        ):
            return LLMTransientError(
                f"{where} still failed after {self.config.max_retries} retries: {type(exc).__name__}: "
                f"{self._scrub(exc.message)}. It may be overloaded, rate-limiting or unreachable; "
                "retry later or raise PLANNER_MCP_LLM_TIMEOUT_S / PLANNER_MCP_LLM_MAX_RETRIES."
            )
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            # The server's own message may quote (part of) the key: leave it out entirely.
            return LLMError(
                f"{where} rejected the API key (HTTP {exc.status_code}). Check `OPENAI_API_KEY` "
                "(and `OPENAI_BASE_URL` if the key belongs to another server)."
            )
        if isinstance(exc, openai.NotFoundError):
            return LLMError(
                f"{where} answered 404: {self._scrub(exc.message)}. Set `PLANNER_MCP_MODEL` (or "
                "`PLANNER_MCP_MODEL_<ROLE>`) to a model the server has, and check that `OPENAI_BASE_URL` "
                "ends with the API prefix (often `/v1`)."
            )
        status = f"HTTP {exc.status_code}" if isinstance(exc, openai.APIStatusError) else type(exc).__name__
        return LLMError(f"{where} refused the request ({status}): {self._scrub(exc.message)}")

    def _scrub(self, text: str) -> str:
        key = self.config.api_key.get_secret_value() if self.config.api_key else ""
        return text.replace(key, "***") if key else text


def _wire_message(message: Message) -> ChatCompletionMessageParam:
    if message.role == "system":
        return {"role": "system", "content": message.content}
    if message.role == "user":
        return {"role": "user", "content": message.content}
    return {"role": "assistant", "content": message.content}


def _schema_name(output: type[BaseModel]) -> str:
    # The API allows [a-zA-Z0-9_-]{1,64}; generic models are named like "Page[Item]".
    return re.sub(r"[^a-zA-Z0-9_-]", "_", output.__name__)[:64] or "output"


def _rejects_json_schema(exc: openai.BadRequestError) -> bool:
    text = f"{exc.message} {exc.body}".lower()
    return any(hint in text for hint in _FORMAT_REJECTION_HINTS)
