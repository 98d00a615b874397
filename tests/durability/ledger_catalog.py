"""A catalog for planner-mcp subprocesses under test: `PLANNER_MCP_CATALOG=tests.durability.ledger_catalog:build`.

Its one agent, `ledger`, has one tool, `work`, that writes `start <tag> <step> <pid>` and
`end <tag> <step> <pid>` lines to the ledger file named by PLANNER_LEDGER (appended and fsynced, so
the lines survive a SIGKILL of the process a moment later). The ledger is the oracle outside the
run store: it says which steps really ran, in which process, even when the store is what is tested.

The environment also controls timing: PLANNER_LEDGER_DELAY_SCALE multiplies every step's `delay_s`
(0 makes a run instant), and while PLANNER_LEDGER_GATE names a file that does not exist yet, a step
waits after its start line until the test creates it (only the steps listed in
PLANNER_LEDGER_GATED_STEPS, e.g. "4,5", when that is set).
"""

from __future__ import annotations

import os
from pathlib import Path

import anyio
from pydantic import NonNegativeFloat

from planning.catalog import AgentSpec, Catalog, ToolSpec
from planning.settings import Settings
from tools.errors import ToolError

LEDGER_ENV = "PLANNER_LEDGER"
SCALE_ENV = "PLANNER_LEDGER_DELAY_SCALE"
GATE_ENV = "PLANNER_LEDGER_GATE"
GATED_STEPS_ENV = "PLANNER_LEDGER_GATED_STEPS"
# A gate nobody opens fails the step instead of hanging the run.
GATE_WAIT_S = 60.0
_GATE_POLL_S = 0.01


def _ledger() -> Path:
    path = os.environ.get(LEDGER_ENV)
    if not path:
        raise ToolError(f"set {LEDGER_ENV} to the ledger file the `work` tool appends to")
    return Path(path)


def record(event: str, tag: str, step: int) -> None:
    """Append one ledger line and force it to disk before the step goes on."""
    line = f"{event} {tag} {step} {os.getpid()}\n".encode()
    fd = os.open(_ledger(), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)  # one small O_APPEND write: lines of concurrent processes never interleave
        os.fsync(fd)
    finally:
        os.close(fd)


async def _wait_for_gate(step: int) -> None:
    gate = os.environ.get(GATE_ENV)
    gated = os.environ.get(GATED_STEPS_ENV)
    if not gate or (gated and str(step) not in gated.split(",")):
        return
    with anyio.move_on_after(GATE_WAIT_S):
        # Another process (the test) creates the file: there is no event to wait on, so poll.
        while not await anyio.Path(gate).exists():  # noqa: ASYNC110
            await anyio.sleep(_GATE_POLL_S)
        return
    raise ToolError(f"the gate file {gate!r} was never created")


async def work(tag: str, step: int, inputs: list[str] | None = None, delay_s: NonNegativeFloat = 0.0) -> str:
    """Record the step's start in the ledger, wait `delay_s` seconds, record its end, and return
    `"<step>(<inputs joined by commas>)"`, so a result shows every result it was built from."""
    record("start", tag, step)
    await _wait_for_gate(step)
    await anyio.sleep(delay_s * float(os.environ.get(SCALE_ENV) or 1))
    record("end", tag, step)
    return f"{step}({','.join(inputs or [])})"


def build(settings: Settings) -> Catalog:
    """The ledger catalog (the settings are not needed: everything is controlled by the environment)."""
    return Catalog(
        [
            AgentSpec(
                name="ledger",
                description="Test steps that record themselves in a ledger file.",
                tools=(ToolSpec.from_function(work),),
                max_concurrency=8,
                timeout_s=120,
            )
        ]
    )
