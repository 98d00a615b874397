"""Fakes and fixed data shared by the MCP server tests: the seed plan, a `gate` agent whose steps
wait for the test, stand-ins for the web search provider and Open-Meteo, and the scripted model."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import httpx
from pydantic import BaseModel

from agents.llm import Message
from tools.errors import ToolError

ROOT = Path(__file__).resolve().parents[2]
SEED_PLAN: dict[str, Any] = json.loads((ROOT / "examples" / "seed_example.json").read_text(encoding="utf-8"))
OPEN_METEO = ROOT / "tests" / "tools" / "fixtures" / "open_meteo"
BOUND_S = 60  # the most any test waits for a run to reach a state


class Gate:
    """Tools for the `gate` agent: steps that wait for the test (in worker threads, so Flyte's loop
    stays free and a cancelled step is abandoned at once)."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.healed = threading.Event()
        self.meeting = threading.Barrier(2, timeout=BOUND_S)

    async def block(self, label: str) -> str:
        """Wait until the test opens the gate, then return the label."""
        await anyio.to_thread.run_sync(self.opened.wait, BOUND_S, abandon_on_cancel=True)
        return label

    async def meet(self, label: str) -> str:
        """Return the label once a second step is waiting here too (proves two runs overlap)."""
        await anyio.to_thread.run_sync(self.meeting.wait, abandon_on_cancel=True)
        return label

    def flaky(self, label: str) -> str:
        """Fail until the test heals the gate."""
        if not self.healed.is_set():
            raise ToolError(f"the gate for {label!r} is broken; heal it and resume the run")
        return label

    def release(self) -> None:
        self.opened.set()
        self.healed.set()
        self.meeting.abort()


class FakeDdgs:
    """Stands in for ddgs.DDGS (the web search provider that needs no key)."""

    def text(self, query: str, max_results: int = 5, **_: Any) -> list[dict[str, Any]]:
        return [
            {"title": f"Result about {query}", "href": "https://example.org/page", "body": "A snippet."},
        ][:max_results]


def open_meteo(request: httpx.Request) -> httpx.Response:
    """Answers like Open-Meteo's geocoding and forecast hosts, from the recorded fixtures."""
    if request.url.host == "geocoding-api.open-meteo.com":
        return httpx.Response(200, json=json.loads((OPEN_METEO / "geocoding_paris.json").read_text(encoding="utf-8")))
    return httpx.Response(200, json=json.loads((OPEN_METEO / "forecast_current.json").read_text(encoding="utf-8")))


def scripted_replies(messages: Sequence[Message], output: type[BaseModel], role: str) -> dict[str, Any]:
    """The scripted model: plans the seed plan, answers math tasks with 6 * 7, writes short answers."""
    if role == "planner":
        return SEED_PLAN
    if role == "synthesis":
        return {"answer": "The answer is 100."}
    if role == "math":
        return {"calls": [{"tool": "multiply", "args": {"a": 6, "b": 7}}]}
    raise AssertionError(f"unexpected LLM call for role {role!r}")
