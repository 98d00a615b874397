"""Driving real `planner-mcp` processes for the durability tests: a workspace (home, ledger, store),
the CLI as a subprocess with the ledger catalog, a read-only look into the store, bounded polling.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TypeVar

from tests.durability.ledger_catalog import LEDGER_ENV

REPO_ROOT = Path(__file__).resolve().parents[2]
# Python with SIGINT at its default action, then exec'ing itself with the arguments after it (same
# pid). A non-interactive shell starts its background jobs with SIGINT ignored (`.ci/run > log &`)
# and children inherit that across exec: a Python child would then never turn SIGINT into
# KeyboardInterrupt, and a test's Ctrl-C would go unheard. (Setting this process's own handler while
# spawning works only in its main thread; the kill tests spawn from several.)
SIGINT_AT_DEFAULT = (
    sys.executable,
    "-c",
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])",
)
# The most any test waits for a process or a state: a broken build fails instead of hanging.
BOUND_S = 90.0
_POLL_S = 0.002

T = TypeVar("T")


def wait_until(what: str, probe: Callable[[], T | None], timeout_s: float = BOUND_S) -> T:
    """Poll `probe` until it returns something truthy and return that; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout_s:g} s waiting for {what}")
        time.sleep(_POLL_S)


class LedgerLine(NamedTuple):
    event: str  # start | end
    tag: str
    step: int
    pid: int


class StoreView(NamedTuple):
    """The first run of a store as another process sees it (read-only)."""

    run_id: str
    status: str
    owner: str | None
    steps: dict[int, str]

    def with_status(self, status: str) -> set[int]:
        return {step for step, value in self.steps.items() if value == status}

    def owned_by(self, pid: int) -> bool:
        return self.owner is not None and f":{pid}:" in self.owner


def clean_environ() -> dict[str, str]:
    """This process's environment without planner-mcp or LLM settings that could leak into a child."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PLANNER_MCP_", "OPENAI_", "PLANNER_LEDGER"))}


@dataclass(frozen=True)
class Workspace:
    """One planner-mcp home with its ledger; the CLI runs against it with the ledger catalog."""

    root: Path

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def db(self) -> Path:
        return self.home / "runs.sqlite3"

    @property
    def ledger(self) -> Path:
        return self.root / "ledger.txt"

    def env(self, catalog: str = "tests.durability.ledger_catalog:build", **extra: str) -> dict[str, str]:
        return {
            **clean_environ(),
            "PLANNER_MCP_HOME": str(self.home),
            "PLANNER_MCP_LLM": "none",
            "PLANNER_MCP_CATALOG": catalog,
            LEDGER_ENV: str(self.ledger),
            "COLUMNS": "240",  # rich tables keep run ids on one line
            **extra,
        }

    def start(self, *args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
        """`planner-mcp ARGS` in the background (its own process group, so a kill takes all of it),
        taking Ctrl-C (SIGINT) as it does at a terminal, whatever this process does with it."""
        return subprocess.Popen(
            [*SIGINT_AT_DEFAULT, "-m", "server.cli", *args],
            cwd=REPO_ROOT,
            env=self.env(**(env or {})),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def cli(
        self, *args: str, env: Mapping[str, str] | None = None, timeout_s: float = BOUND_S
    ) -> subprocess.CompletedProcess[str]:
        """`planner-mcp ARGS` to the end."""
        return subprocess.run(
            [sys.executable, "-m", "server.cli", *args],
            cwd=REPO_ROOT,
            env=self.env(**(env or {})),
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )

    def ledger_lines(self) -> list[LedgerLine]:
        if not self.ledger.exists():
            return []
        lines = []
        for text in self.ledger.read_text(encoding="utf-8").splitlines():
            event, tag, step, pid = text.split(" ")
            lines.append(LedgerLine(event, tag, int(step), int(pid)))
        return lines

    def view(self) -> StoreView | None:
        """The store's first run, read-only; None while there is no store or no run yet."""
        if not self.db.exists():
            return None
        try:
            with closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=BOUND_S)) as db:
                run = db.execute("SELECT id, status, owner FROM runs ORDER BY created_at LIMIT 1").fetchone()
                if run is None:
                    return None
                steps = db.execute("SELECT step_id, status FROM steps WHERE run_id = ?", (run[0],)).fetchall()
        except sqlite3.OperationalError:
            return None  # the store is being created: no tables yet
        return StoreView(run_id=run[0], status=run[1], owner=run[2], steps=dict(steps))

    def integrity(self) -> str:
        with closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=BOUND_S)) as db:
            return db.execute("PRAGMA integrity_check").fetchone()[0]


def kill(process: subprocess.Popen[str]) -> int:
    """SIGKILL the process and everything it started; return its exit status once it is gone."""
    with contextlib.suppress(ProcessLookupError):  # it had ended on its own
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=BOUND_S)
    return process.returncode


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    """Wait (bounded) for a background process; its exit status, stdout and stderr."""
    try:
        stdout, stderr = process.communicate(timeout=BOUND_S)
    except subprocess.TimeoutExpired:
        kill(process)
        raise
    return process.returncode, stdout, stderr
