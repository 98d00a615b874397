"""OpenAICompatLLM against a real chat-completions HTTP server on 127.0.0.1, through the real SDK."""

import asyncio
import json
import socket
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from pydantic import BaseModel, SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agents.llm import LLMError, LLMOutputError, LLMTransientError, Message, Usage
from agents.llm.openai_compat import OpenAICompatLLM, OpenAIConfig

API_KEY = "sk-test-do-not-leak-1234567890"
ASK = [Message(role="user", content="What is 2+3?")]
# Tells the SDK to wait 1 ms before its retry instead of its 0.5 s backoff.
FAST_RETRY = {"retry-after-ms": "1"}


class Answer(BaseModel):
    answer: int


@dataclass
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def chat(content: str, prompt_tokens: int = 12, completion_tokens: int = 3) -> Reply:
    return Reply(
        200,
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "served-model",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": content},
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        },
    )


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, {"error": {"message": message, "type": "test", "code": None}}, headers or {})


@dataclass
class ChatServer:
    """Answers POST /v1/chat/completions from a script; records every request body and headers."""

    url: str
    script: deque[Reply] = field(default_factory=deque)
    forever: Reply | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)

    def reply(self, *replies: Reply) -> None:
        self.script.extend(replies)

    async def handle(self, request: Request) -> JSONResponse:
        self.requests.append(json.loads(await request.body()))
        self.headers.append(dict(request.headers))
        if self.script:
            reply = self.script.popleft()
        elif self.forever is not None:
            reply = self.forever
        else:
            reply = error(418, "the test script has no reply left")
        return JSONResponse(reply.body, status_code=reply.status, headers=reply.headers)


@pytest.fixture
def server() -> Iterator[ChatServer]:
    # Binding before serving: connections wait in the backlog, so no readiness polling is needed.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    chat_server = ChatServer(url=f"http://127.0.0.1:{sock.getsockname()[1]}/v1")
    app = Starlette(routes=[Route("/v1/chat/completions", chat_server.handle, methods=["POST"])])
    uvicorn_server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=uvicorn_server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    yield chat_server
    uvicorn_server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def make_llm(server: ChatServer, **config: Any) -> OpenAICompatLLM:
    settings: dict[str, Any] = {"api_key": SecretStr(API_KEY), "base_url": server.url, "max_retries": 2}
    return OpenAICompatLLM(OpenAIConfig(**(settings | config)))


@pytest.mark.anyio
async def test_a_valid_reply_becomes_the_output_object_with_usage(server):
    server.reply(chat('{"answer": 5}', prompt_tokens=12, completion_tokens=3))
    llm = make_llm(server)

    completion = await llm.complete(ASK, Answer)
    await llm.aclose()

    assert completion.value == Answer(answer=5)
    assert completion.usage.latency_s > 0
    assert completion.usage.model_copy(update={"latency_s": 0.0}) == Usage(
        calls=1, prompt_tokens=12, completion_tokens=3
    )
    assert server.requests == [
        {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "What is 2+3?"}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "Answer", "schema": Answer.model_json_schema(), "strict": False},
            },
        }
    ]
    assert server.headers[0]["authorization"] == f"Bearer {API_KEY}"


@pytest.mark.anyio
async def test_a_rate_limited_call_is_retried_by_the_sdk(server):
    server.reply(error(429, "slow down", FAST_RETRY), chat('{"answer": 5}'))
    llm = make_llm(server)

    completion = await llm.complete(ASK, Answer)
    await llm.aclose()

    assert completion.value == Answer(answer=5)
    assert len(server.requests) == 2


@pytest.mark.anyio
async def test_a_malformed_reply_is_sent_back_with_its_errors_and_the_repair_is_used(server):
    server.reply(chat('{"answer": "five"', completion_tokens=4), chat('{"answer": 5}', completion_tokens=3))
    llm = make_llm(server)

    completion = await llm.complete(ASK, Answer)
    await llm.aclose()

    assert completion.value == Answer(answer=5)
    assert completion.usage.model_copy(update={"latency_s": 0.0}) == Usage(
        calls=2, prompt_tokens=24, completion_tokens=7
    )
    repair = server.requests[1]["messages"]
    assert repair[:2] == [
        {"role": "user", "content": "What is 2+3?"},
        {"role": "assistant", "content": '{"answer": "five"'},
    ]
    assert repair[2]["role"] == "user"
    assert "Invalid JSON" in repair[2]["content"]


@pytest.mark.anyio
async def test_a_reply_that_stays_malformed_raises_output_error(server):
    server.reply(chat("I think it is 5."), chat("The answer is five."))
    llm = make_llm(server)

    with pytest.raises(LLMOutputError) as caught:
        await llm.complete(ASK, Answer)
    await llm.aclose()

    assert caught.value.raw == "The answer is five."
    assert caught.value.errors[0].startswith("reply: Invalid JSON")
    assert caught.value.usage is not None and caught.value.usage.calls == 2
    assert len(server.requests) == 2


@pytest.mark.anyio
async def test_a_server_without_json_schema_gets_json_object_and_the_schema_in_the_prompt(server):
    server.reply(
        error(400, "response_format type 'json_schema' is not supported by this server"),
        chat('{"answer": 5}'),
        chat('{"answer": 6}'),
    )
    llm = make_llm(server)

    first = await llm.complete(ASK, Answer)
    second = await llm.complete(ASK, Answer)
    await llm.aclose()

    assert (first.value, second.value) == (Answer(answer=5), Answer(answer=6))
    assert [r["response_format"]["type"] for r in server.requests] == ["json_schema", "json_object", "json_object"]
    assert server.requests[1]["response_format"] == {"type": "json_object"}
    system, user = server.requests[1]["messages"]
    assert system["role"] == "system"
    assert json.dumps(Answer.model_json_schema(), separators=(",", ":")) in system["content"]
    assert user == {"role": "user", "content": "What is 2+3?"}


@pytest.mark.anyio
async def test_a_server_that_keeps_failing_raises_a_transient_error_after_the_retries(server):
    server.forever = error(500, "boom", FAST_RETRY)
    llm = make_llm(server, max_retries=2)

    with pytest.raises(LLMTransientError) as caught:
        await llm.complete(ASK, Answer)
    await llm.aclose()

    assert len(server.requests) == 3
    assert server.url in str(caught.value)
    assert "gave up after 3 attempt(s)" in str(caught.value)
    assert caught.value.usage is not None and caught.value.usage.calls == 3


@pytest.mark.anyio
async def test_an_unreachable_server_raises_a_transient_error():
    with socket.socket() as sock:  # a port that was free a moment ago and now refuses connections
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    llm = OpenAICompatLLM(OpenAIConfig(base_url=f"http://127.0.0.1:{port}/v1", max_retries=0))

    with pytest.raises(LLMTransientError, match="could not be reached"):
        await llm.complete(ASK, Answer)
    await llm.aclose()


@pytest.mark.anyio
async def test_each_role_reaches_the_server_with_its_own_model(server):
    server.reply(chat('{"answer": 1}'), chat('{"answer": 2}'), chat('{"answer": 3}'))
    llm = make_llm(server, model="small", role_models={"planner": "big", "web_search": "fast"})

    for role in ("planner", "web_search", "math"):
        await llm.complete(ASK, Answer, role=role)
    await llm.aclose()

    assert [r["model"] for r in server.requests] == ["big", "fast", "small"]
    assert llm.name == "openai:small"


@pytest.mark.anyio
async def test_a_rejected_key_is_never_repeated_in_the_error(server):
    server.reply(error(401, f"Incorrect API key provided: {API_KEY}"))
    llm = make_llm(server)

    with pytest.raises(LLMError) as caught:
        await llm.complete(ASK, Answer)
    await llm.aclose()

    assert API_KEY not in str(caught.value)
    assert "rejected the API key (HTTP 401)" in str(caught.value)
    assert "OPENAI_API_KEY" in str(caught.value)


@pytest.mark.anyio
async def test_a_server_echoing_the_key_in_an_error_has_it_masked(server):
    server.forever = error(503, f"upstream refused key {API_KEY}", FAST_RETRY)
    llm = make_llm(server, max_retries=0)

    with pytest.raises(LLMTransientError) as caught:
        await llm.complete(ASK, Answer)
    await llm.aclose()

    assert API_KEY not in str(caught.value)
    assert "upstream refused key ***" in str(caught.value)
    assert API_KEY not in repr(llm.config)


@pytest.mark.anyio
async def test_an_unknown_model_names_the_model_and_the_setting_to_change(server):
    server.reply(error(404, "model 'gpt-nope' not found"))
    llm = make_llm(server, model="gpt-nope")

    with pytest.raises(LLMError) as caught:
        await llm.complete(ASK, Answer)
    await llm.aclose()

    assert not isinstance(caught.value, LLMTransientError)
    assert "'gpt-nope'" in str(caught.value)
    assert "PLANNER_MCP_MODEL" in str(caught.value)


def test_one_instance_works_from_two_event_loops(server):
    # Flyte runs task bodies on its own loop thread: a client bound to the first loop would break.
    server.reply(chat('{"answer": 1}'), chat('{"answer": 2}'))
    llm = make_llm(server)

    async def ask() -> int:
        return (await llm.complete(ASK, Answer)).value.answer

    answers = [asyncio.run(ask())]
    in_thread: list[int] = []
    thread = threading.Thread(target=lambda: in_thread.append(asyncio.run(ask())))
    thread.start()
    thread.join(timeout=30)

    assert answers + in_thread == [1, 2]


def test_config_from_env_reads_the_server_models_and_limits():
    config = OpenAIConfig.from_env(
        {
            "OPENAI_API_KEY": API_KEY,
            "OPENAI_BASE_URL": "http://localhost:11434/v1",
            "PLANNER_MCP_MODEL": "qwen2.5:7b",
            "PLANNER_MCP_MODEL_PLANNER": "qwen2.5:32b",
            "PLANNER_MCP_MODEL_WEB_SEARCH": "llama3.2",
            "PLANNER_MCP_MODEL_PATH": "/models/own.gguf",
            "PLANNER_MCP_LLM_TIMEOUT_S": "30",
            "PLANNER_MCP_LLM_MAX_RETRIES": "5",
            "UNRELATED": "x",
        }
    )

    assert config == OpenAIConfig(
        api_key=SecretStr(API_KEY),
        base_url="http://localhost:11434/v1",
        model="qwen2.5:7b",
        role_models={"planner": "qwen2.5:32b", "web_search": "llama3.2"},
        timeout_s=30,
        max_retries=5,
    )
    assert config.model_for("planner") == "qwen2.5:32b"
    assert config.model_for("math") == "qwen2.5:7b"


def test_config_from_an_empty_env_uses_the_defaults():
    assert OpenAIConfig.from_env({}) == OpenAIConfig(
        api_key=None, base_url=None, model="gpt-4o-mini", role_models={}, timeout_s=60, max_retries=2
    )


def test_an_invalid_limit_in_the_env_names_the_variable():
    with pytest.raises(LLMError, match="PLANNER_MCP_LLM_TIMEOUT_S"):
        OpenAIConfig.from_env({"PLANNER_MCP_LLM_TIMEOUT_S": "soon"})
