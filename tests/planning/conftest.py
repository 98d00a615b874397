"""A test-only catalog of plain typed tools, and controllable tools that let a test decide when a
step may finish (so eager scheduling and concurrency caps are proved with events, never sleeps).

Stateful tools (flaky, switch, tally, gates) live on objects created per test: their bound methods
are the tools.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic import JsonValue

from planning.catalog import AgentSpec, Catalog, ToolSpec
from planning.plan import Plan, Step
from planning.records import StepOutcome
from planning.scheduler import RunStep
from planning.store import RunStore
from planning.validate import PlanLimits
from tools.errors import ToolError, TransientToolError

# Upper bound on any wait in these tests: a broken scheduler fails the test instead of hanging it.
WAIT_S = 10.0


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def multiply(a: float, b: float) -> float:
    """Multiply two numbers."""
    return a * b


def total(values: list[int]) -> int:
    """The sum of a list of integers."""
    return sum(values)


def kind_of(value: JsonValue) -> str:
    """The JSON type of a value: int, float, str, list, dict, bool or NoneType."""
    return type(value).__name__


def fail(message: str) -> int:
    """Always fails with the given message."""
    raise ToolError(message)


def concat(a: str, b: str) -> str:
    """Join two texts."""
    return a + b


class Flaky:
    """Raises `error` the first `failures` calls, then returns its input."""

    def __init__(self, failures: int, error: type[ToolError] = TransientToolError) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def flaky(self, value: int) -> int:
        """Returns `value`, after failing a set number of times."""
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error(f"flaky: failure {self.calls}")
        return value


class Switch:
    """A tool whose behaviour a test flips: it fails while `broken`."""

    def __init__(self) -> None:
        self.broken = True

    def check(self, value: int) -> int:
        """Returns `value` unless the switch is broken."""
        if self.broken:
            raise ToolError("the switch is broken; repair it and resume the run")
        return value


class Tally:
    """Counts its calls (proves which steps ran again)."""

    def __init__(self) -> None:
        self.calls = 0

    def count(self, value: int) -> int:
        """Returns `value` and counts the call."""
        self.calls += 1
        return value


class Gates:
    """`hold(name)` records its start, waits until the test opens gate `name`, records its finish.

    anyio events: for tests that call the scheduler or StepRunner on the test's own loop.
    """

    def __init__(self) -> None:
        self.log: list[str] = []
        self._open: dict[str, anyio.Event] = {}
        self._started: dict[str, anyio.Event] = {}
        self._finished: dict[str, anyio.Event] = {}

    @staticmethod
    def _event(events: dict[str, anyio.Event], name: str) -> anyio.Event:
        return events.setdefault(name, anyio.Event())

    def open(self, *names: str) -> None:
        for name in names:
            self._event(self._open, name).set()

    def started(self, name: str) -> anyio.Event:
        return self._event(self._started, name)

    def finished(self, name: str) -> anyio.Event:
        return self._event(self._finished, name)

    async def hold(self, name: str) -> str:
        """Waits until the test lets this step finish; returns `name`."""
        self.log.append(f"start {name}")
        self.started(name).set()
        with anyio.fail_after(WAIT_S):
            await self._event(self._open, name).wait()
        self.log.append(f"finish {name}")
        self.finished(name).set()
        return name


class ThreadGates:
    """Like Gates with threading events: for tool bodies that run on Flyte's own loop thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, threading.Event] = {}
        self._started: dict[str, threading.Event] = {}

    def _event(self, events: dict[str, threading.Event], name: str) -> threading.Event:
        with self._lock:
            return events.setdefault(name, threading.Event())

    def open(self, *names: str) -> None:
        for name in names:
            self._event(self._open, name).set()

    def open_all(self) -> None:
        with self._lock:
            events = list(self._open.values())
        for event in events:
            event.set()

    async def wait_started(self, name: str) -> None:
        """Wait (bounded, off the loop) until step `name` has started."""
        started = await anyio.to_thread.run_sync(self._event(self._started, name).wait, WAIT_S)
        assert started, f"step {name!r} never started"

    async def hold_thread(self, name: str) -> str:
        """Waits until the test lets this step finish; returns `name`."""
        self._event(self._started, name).set()
        if not await asyncio.to_thread(self._event(self._open, name).wait, WAIT_S):
            raise ToolError(f"gate {name!r} was never opened")
        return name


@dataclass
class Kit:
    """Per-test tool state and the catalog built from it."""

    flaky: Flaky = field(default_factory=lambda: Flaky(failures=2))
    switch: Switch = field(default_factory=Switch)
    tally: Tally = field(default_factory=Tally)
    gates: Gates = field(default_factory=Gates)
    thread_gates: ThreadGates = field(default_factory=ThreadGates)

    def catalog(self, **caps: int) -> Catalog:
        """The test catalog; `caps` sets an agent's max_concurrency (math, string, ctl, other)."""
        fn = ToolSpec.from_function
        controllable = (
            fn(self.flaky.flaky),
            fn(self.switch.check),
            fn(self.tally.count),
            fn(self.gates.hold),
            fn(self.thread_gates.hold_thread),
        )
        return Catalog(
            [
                AgentSpec(
                    name="math",
                    description="Arithmetic.",
                    tools=(fn(add), fn(multiply), fn(total), fn(kind_of), fn(fail)),
                    max_concurrency=caps.get("math", 4),
                ),
                AgentSpec(
                    name="string", description="Text.", tools=(fn(concat),), max_concurrency=caps.get("string", 4)
                ),
                AgentSpec(
                    name="ctl", description="Controllable.", tools=controllable, max_concurrency=caps.get("ctl", 4)
                ),
                # Same controllable tools under a second agent, for per-agent caps.
                AgentSpec(
                    name="other", description="Controllable.", tools=controllable, max_concurrency=caps.get("other", 4)
                ),
            ]
        )


class ConcurrencyProbe:
    """Wraps a RunStep and records how many steps run at once, overall and per agent."""

    def __init__(self, inner: RunStep) -> None:
        self.inner = inner
        self.running: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.inputs: dict[int, dict[int, JsonValue]] = {}

    async def __call__(self, step: Step, inputs: dict[int, JsonValue]) -> StepOutcome:
        self.inputs[step.id] = inputs
        for key in (step.agent, "all"):
            self.running[key] += 1
            self.peak[key] = max(self.peak[key], self.running[key])
        try:
            return await self.inner(step, inputs)
        finally:
            for key in (step.agent, "all"):
                self.running[key] -= 1


def make_plan(*steps: dict[str, Any]) -> Plan:
    return Plan.model_validate({"steps": list(steps)})


@pytest.fixture
def kit() -> Kit:
    return Kit()


@pytest.fixture
def catalog(kit: Kit) -> Catalog:
    return kit.catalog()


@pytest.fixture
def limits() -> PlanLimits:
    return PlanLimits()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RunStore]:
    run_store = RunStore(tmp_path / "runs.sqlite3")
    yield run_store
    run_store.close()
