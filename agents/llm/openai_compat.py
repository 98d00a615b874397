"""Chat models behind an OpenAI-compatible API: OpenAI itself, Ollama, vLLM, LM Studio, llama.cpp server.

The retry budget of one model answer (documented in the README's "Limits" table):
- each HTTP attempt waits at most PLANNER_MCP_LLM_TIMEOUT_S (default 60 s), cut to what the
  caller's deadline leaves (an agent step's limit), so the LLM gives up first and says why;
- transient failures (timeout, connection, 408/409/429, 5xx, a body cut off) are retried up to
  PLANNER_MCP_LLM_MAX_RETRIES times (default 2), after PLANNER_MCP_LLM_RETRY_BASE_S (default 1 s)
  doubling, or the server's Retry-After (at most 30 s), never past the caller's deadline;
- anything else (rejected key, unknown model, a 200 whose body is not a chat completion) fails at once.
Every attempt counts as one call in usage, failed ones too. Errors are the LLMError tree.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import openai
from openai.types.chat import ChatCompletionMessageParam
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from agents.llm.errors import LLMError, LLMTransientError
from agents.llm.protocol import Completion, Generation, Message, T, Usage
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
_TRANSIENT_STATUSES = frozenset({408, 409, 425, 429})
# The longest Retry-After we honour; a server asking for more is treated as failing now.
_MAX_RETRY_AFTER_S = 30.0
# An attempt needs at least this long to be worth making; the deadline margin lets the LLM's own
# timeout fire (and name the server) before the caller's cancel scope does.
_MIN_ATTEMPT_S = 1.0
_DEADLINE_MARGIN_S = 0.5
_BODY_EXCERPT = 120


class OpenAIConfig(BaseModel):
    """Where and how to reach an OpenAI-compatible server, and which model serves each role."""

    model_config = ConfigDict(frozen=True)

    api_key: SecretStr | None = None
    base_url: str | None = None
    model: str = Field(default=DEFAULT_MODEL, min_length=1)
    role_models: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=2, ge=0)
    retry_base_s: float = Field(default=1.0, ge=0)

    def model_for(self, role: str) -> str:
        """The model for `role`: its override if one is set, else the default model."""
        return self.role_models.get(role, self.model)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> OpenAIConfig:
        """Read OPENAI_API_KEY, OPENAI_BASE_URL, PLANNER_MCP_MODEL, PLANNER_MCP_MODEL_<ROLE>
        (e.g. PLANNER_MCP_MODEL_PLANNER, PLANNER_MCP_MODEL_WEB_SEARCH), PLANNER_MCP_LLM_TIMEOUT_S and
        PLANNER_MCP_LLM_MAX_RETRIES and PLANNER_MCP_LLM_RETRY_BASE_S. Empty values count as unset."""
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
        numeric = {
            "timeout_s": "PLANNER_MCP_LLM_TIMEOUT_S",
            "max_retries": "PLANNER_MCP_LLM_MAX_RETRIES",
            "retry_base_s": "PLANNER_MCP_LLM_RETRY_BASE_S",
        }
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
                "fix or unset those variables (timeout in seconds > 0, retries >= 0, retry base in seconds >= 0)."
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

    async def complete(
        self,
        messages: Sequence[Message],
        output: type[T],
        *,
        role: str = "default",
        generation: Generation | None = None,
    ) -> Completion[T]:
        """`generation`: temperature, max_tokens and repair rounds apply; `stop` does not (the server
        generates the whole reply)."""
        model = self.config.model_for(role)
        generation = generation or Generation()

        async def call(current: Sequence[Message]) -> tuple[str, Usage]:
            return await self._call(current, output, model, generation)

        return await complete_with_repair(call, messages, output, repair_rounds=generation.repair_rounds)

    async def aclose(self) -> None:
        """Nothing stays open between calls; kept so callers may close any LLM alike."""

    def _client(self, timeout: float) -> openai.AsyncOpenAI:
        api_key = self.config.api_key.get_secret_value() if self.config.api_key else None
        return openai.AsyncOpenAI(
            api_key=api_key or PLACEHOLDER_API_KEY,
            base_url=self.base_url,
            timeout=timeout,
            max_retries=0,  # retries are ours: each attempt is counted and the step's deadline kept
        )

    async def _call(
        self, messages: Sequence[Message], output: type[BaseModel], model: str, generation: Generation
    ) -> tuple[str, Usage]:
        """One model answer within the retry budget: every HTTP attempt counts as a call in usage,
        failed ones too; transient failures are retried while attempts and time are left."""
        usage = Usage()
        attempts = self.config.max_retries + 1
        for attempt in range(1, attempts + 1):
            timeout = self._attempt_timeout(model, usage)
            started = time.perf_counter()
            try:
                raw, tokens = await self._attempt(messages, output, model, timeout, generation)
            except _Failure as failure:
                usage = usage + Usage(calls=1, latency_s=time.perf_counter() - started)
                if not failure.transient:
                    raise LLMError(f"{self._where(model)} {failure.problem}", usage=usage) from failure.__cause__
                delay = failure.retry_after_s or self.config.retry_base_s * 2 ** (attempt - 1)
                if attempt == attempts or not self._time_left_for(delay + _MIN_ATTEMPT_S):
                    raise LLMTransientError(
                        f"{self._where(model)} {failure.problem}; gave up after {attempt} attempt(s) "
                        f"({usage.latency_s:.1f} s). It may be overloaded, rate-limiting, unreachable or slow: "
                        "retry later, or raise PLANNER_MCP_LLM_TIMEOUT_S / PLANNER_MCP_LLM_MAX_RETRIES "
                        "(or the step's `timeout_s`).",
                        usage=usage,
                    ) from failure.__cause__
                log.warning(
                    "%s %s; retry %d of %d in %.1f s",
                    *(self._where(model), failure.problem, attempt, attempts - 1, delay),
                    extra={"llm_retry": attempt},  # the CLI's display counts it as an attempt
                )
                await anyio.sleep(delay)
                continue
            usage = usage + tokens.model_copy(update={"latency_s": time.perf_counter() - started})
            log.debug("%s answered (%d+%d tokens)", model, tokens.prompt_tokens, tokens.completion_tokens)
            return raw, usage
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _attempt_timeout(self, model: str, usage: Usage) -> float:
        """This attempt's timeout: the configured one, cut to the time the caller's deadline (an
        agent step's limit) leaves, so the LLM gives up in time to say so itself."""
        remaining = anyio.current_effective_deadline() - anyio.current_time()
        if remaining == math.inf:
            return self.config.timeout_s
        remaining -= _DEADLINE_MARGIN_S
        if remaining < _MIN_ATTEMPT_S:
            raise LLMTransientError(
                f"{self._where(model)} had no time left within the step's limit; raise the step's `timeout_s` "
                "(or the agent's) or use a faster model.",
                usage=usage,
            )
        return min(self.config.timeout_s, remaining)

    def _time_left_for(self, seconds: float) -> bool:
        return anyio.current_effective_deadline() - anyio.current_time() - _DEADLINE_MARGIN_S >= seconds

    async def _attempt(
        self, messages: Sequence[Message], output: type[BaseModel], model: str, limit_s: float, generation: Generation
    ) -> tuple[str, Usage]:
        """One HTTP request; every way it can fail becomes a _Failure."""
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
        try:
            async with self._client(limit_s) as client:
                response = await client.chat.completions.with_raw_response.create(
                    model=model,
                    messages=[_wire_message(m) for m in wire],
                    response_format=response_format,
                    **_sampling(generation),
                )
                body = response.http_response.content
                content_type = response.headers.get("content-type", "")
        except openai.BadRequestError as exc:
            if structured and _rejects_json_schema(exc):
                log.info("%s rejected json_schema output; using json_object from now on", self.base_url)
                self._json_schema_supported = False
                return await self._attempt(messages, output, model, limit_s, generation)
            raise self._failure(exc) from exc
        except openai.APIError as exc:
            raise self._failure(exc, limit_s) from exc
        return _read_reply(body, content_type)

    def _failure(self, exc: openai.APIError, timeout: float = 0.0) -> _Failure:
        """Map an SDK error to a _Failure whose text never holds the API key."""
        if isinstance(exc, openai.APITimeoutError):
            return _Failure(f"did not answer within {timeout:.3g} s (PLANNER_MCP_LLM_TIMEOUT_S)", transient=True)
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc
            detail = f"{type(cause).__name__}: {self._scrub(str(cause)) or 'no details'}"
            # By name: the SDK's HTTP client is its own fork of httpx, with its own classes.
            if type(cause).__name__ in ("ConnectError", "ConnectTimeout"):
                return _Failure(f"could not be reached ({detail})", transient=True)
            return _Failure(f"dropped the connection before a complete answer ({detail})", transient=True)
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            # The server's own message may quote (part of) the key: leave it out entirely.
            return _Failure(
                f"rejected the API key (HTTP {exc.status_code}). Check `OPENAI_API_KEY` "
                "(and `OPENAI_BASE_URL` if the key belongs to another server).",
                transient=False,
            )
        if isinstance(exc, openai.NotFoundError):
            return _Failure(
                f"answered 404: {self._scrub(exc.message)}. Set `PLANNER_MCP_MODEL` (or "
                "`PLANNER_MCP_MODEL_<ROLE>`) to a model the server has, and check that `OPENAI_BASE_URL` "
                "ends with the API prefix (often `/v1`).",
                transient=False,
            )
        if isinstance(exc, openai.APIStatusError):
            transient = exc.status_code in _TRANSIENT_STATUSES or exc.status_code >= 500
            return _Failure(
                f"answered HTTP {exc.status_code}: {self._scrub(exc.message)}",
                transient=transient,
                retry_after_s=_retry_after(exc.response.headers) if transient else None,
            )
        return _Failure(f"failed ({type(exc).__name__}: {self._scrub(exc.message)})", transient=False)

    def _where(self, model: str) -> str:
        return f"The LLM server {self.base_url!r} (model {model!r})"

    def _scrub(self, text: str) -> str:
        key = self.config.api_key.get_secret_value() if self.config.api_key else ""
        return text.replace(key, "***") if key else text


class _Failure(Exception):
    """One failed attempt: what went wrong (a phrase after the server's name), and whether to retry."""

    def __init__(self, problem: str, *, transient: bool, retry_after_s: float | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.transient = transient
        self.retry_after_s = retry_after_s


class _Message(BaseModel):
    content: str | None = None


class _Choice(BaseModel):
    message: _Message
    finish_reason: str | None = None


class _Tokens(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _ChatReply(BaseModel):
    """The part of a chat completion we read; anything else in the body is ignored."""

    choices: list[_Choice] = Field(min_length=1)
    usage: _Tokens | None = None


def _read_reply(body: bytes, content_type: str) -> tuple[str, Usage]:
    """The reply text and token counts of a 200 answer, or a _Failure saying what the body was."""
    try:
        document = json.loads(body)
    except ValueError as exc:
        excerpt = body[:_BODY_EXCERPT].decode("utf-8", "replace")
        if "json" in content_type.lower():  # JSON promised but cut short: the connection broke
            raise _Failure(
                f"sent a chat completion that breaks off after {len(body)} bytes ({excerpt!r}…)", transient=True
            ) from exc
        raise _Failure(
            f"answered HTTP 200 with a body that is not JSON ({content_type or 'no content type'}: {excerpt!r}). "
            "Check `OPENAI_BASE_URL`: it must be the API's address (often ending in `/v1`), not a web page or proxy.",
            transient=False,
        ) from exc
    try:
        reply = _ChatReply.model_validate(document)
    except ValidationError as exc:
        excerpt = json.dumps(document)[:_BODY_EXCERPT]
        raise _Failure(
            f"answered HTTP 200 with JSON that is not a chat completion ({excerpt!r}). Check `OPENAI_BASE_URL` "
            "and that the server speaks the OpenAI chat-completions API.",
            transient=False,
        ) from exc
    tokens = reply.usage or _Tokens()
    usage = Usage(
        calls=1, prompt_tokens=max(tokens.prompt_tokens, 0), completion_tokens=max(tokens.completion_tokens, 0)
    )
    return reply.choices[0].message.content or "", usage


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """The server's requested wait (Retry-After seconds or retry-after-ms), capped; None if absent."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            value = float(headers.get(name, "")) * scale
        except ValueError:
            continue
        if math.isfinite(value) and value >= 0:
            return min(value, _MAX_RETRY_AFTER_S)
    return None


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


def _sampling(generation: Generation) -> dict[str, Any]:
    """The request's sampling settings: only those the caller set (the server's defaults otherwise)."""
    settings: dict[str, Any] = {}
    if generation.temperature is not None:
        settings["temperature"] = generation.temperature
    if generation.max_tokens is not None:
        settings["max_tokens"] = generation.max_tokens
    return settings
