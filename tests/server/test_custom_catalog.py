"""The catalog drives every per-agent surface: a custom catalog (`PLANNER_MCP_CATALOG`) with a sixth
agent and without `weather` shows its own agents, and only those, through the in-memory and the
stdio MCP clients: the per-agent tools, their descriptions, the server's instructions, list_agents
and the plans it accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.types import TextContent

from planning.catalog import load_catalog
from planning.settings import Settings
from server.app import App
from server.mcp_server import build_server
from tests.server.fakes import ROOT
from tests.server.test_mcp_stdio import SERVE, STARTUP_S, server_env

pytestmark = pytest.mark.anyio
CUSTOM = "tests.server.custom_catalog:build"
CONVERT = {"tool": "celsius_to_fahrenheit", "args": {"celsius": 100}}


def _text(result: Any) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, TextContent))


async def test_a_custom_catalogs_agents_appear_everywhere_and_removed_ones_nowhere(tmp_path: Path, mode: str) -> None:
    settings = Settings(home=tmp_path / "home", catalog=CUSTOM)
    catalog = load_catalog(settings)
    server = build_server(settings, app_factory=lambda s: App.open(s, llm=None, catalog=catalog))

    async with Client(server, mode=mode) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        agents = await client.call_tool("list_agents", {})
        converted = await client.call_tool("units_agent", CONVERT)
        weather_plan = {"steps": [{"id": 1, "agent": "weather", "tool": "forecast", "args": {"location": "Paris"}}]}
        refused = await client.call_tool("execute_plan", {"plan": weather_plan})
        instructions = client.instructions or ""

    agent_tools = {name.removesuffix("_agent") for name in tools if name.endswith("_agent")}
    assert agent_tools == {"math", "string", "web_search", "code", "units"}
    assert "celsius_to_fahrenheit" in (tools["units_agent"].description or "")
    assert "units" in instructions and "weather" not in instructions
    assert agents.structured_content is not None
    assert [a["name"] for a in agents.structured_content["agents"]] == list(catalog.agents)
    assert converted.structured_content is not None
    assert (converted.structured_content["status"], converted.structured_content["answer"]) == ("succeeded", "212.0")
    assert refused.is_error and "unknown agent 'weather'" in _text(refused) and "units" in _text(refused)


async def test_the_stdio_server_takes_its_catalog_from_the_environment(tmp_path: Path) -> None:
    env = server_env(tmp_path / "home") | {"PLANNER_MCP_CATALOG": CUSTOM}
    parameters = StdioServerParameters(command=SERVE[0], args=SERVE[1:], cwd=str(ROOT), env=env)
    with anyio.fail_after(STARTUP_S):
        async with Client(parameters) as client:
            tools = {tool.name for tool in (await client.list_tools()).tools}
            converted = await client.call_tool("units_agent", CONVERT)

    assert "units_agent" in tools and "weather_agent" not in tools
    assert converted.structured_content is not None
    assert converted.structured_content["answer"] == "212.0"
