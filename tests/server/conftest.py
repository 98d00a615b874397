"""Fixtures for the MCP server tests: a tmp home, the product catalog with its network boundaries
replaced plus a `gate` agent whose steps wait for the test, servers with or without a scripted LLM."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from mcp.server.mcpserver import MCPServer

from agents.catalog import build_catalog
from agents.llm import LLM, ScriptedLLM
from planning.catalog import AgentSpec, Catalog, ToolSpec
from planning.settings import Settings
from server.app import App
from server.mcp_server import ServerState, build_server
from tests.server.fakes import BOUND_S, FakeDdgs, Gate, open_meteo, scripted_replies
from tools.code import Sandbox
from tools.weather import WeatherTools
from tools.web_search import WebSearchConfig, WebSearchTools


@pytest.fixture
def gate() -> Iterator[Gate]:
    gate = Gate()
    yield gate
    gate.release()  # unblock the worker threads of abandoned steps


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", step_retries=0)


@pytest.fixture
def catalog(settings: Settings, gate: Gate) -> Catalog:
    product = build_catalog(
        settings,
        weather=WeatherTools(transport=httpx.MockTransport(open_meteo)),
        web=WebSearchTools(WebSearchConfig(provider="ddgs"), ddgs_factory=FakeDdgs),
        sandbox=Sandbox(settings.sandbox),
    )
    gate_agent = AgentSpec(
        name="gate",
        description="Test-only steps that wait for the test.",
        tools=tuple(ToolSpec.from_function(f) for f in (gate.block, gate.meet, gate.flaky)),
        timeout_s=BOUND_S,
    )
    return Catalog([*product.agents.values(), gate_agent])


@pytest.fixture
def scripted_llm() -> ScriptedLLM:
    return ScriptedLLM(scripted_replies)


@pytest.fixture
def make_server(settings: Settings, catalog: Catalog) -> Callable[..., MCPServer[ServerState]]:
    """`make_server(llm=None)`: the server over the test catalog, with that LLM (none by default)."""

    def make(llm: LLM | None = None) -> MCPServer[ServerState]:
        return build_server(settings, catalog=catalog, app_factory=lambda s: App.open(s, llm=llm, catalog=catalog))

    return make


@pytest.fixture(params=["auto", "legacy"])
def mode(request: pytest.FixtureRequest) -> str:
    """Both protocol eras: 'auto' negotiates the newest, 'legacy' the initialize handshake (2025-11-25)."""
    return request.param
