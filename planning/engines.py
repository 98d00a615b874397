"""The one protocol both engines speak, and the choice between them.

An engine executes stored runs and reports on them. Two implement `Engine`:

  local   planning.local.LocalEngine: Flyte local mode in this process; every change is written to
          the run store as it happens, and Flyte records the run in its own local run store too
          (`flyte start tui` browses it; `list_runs` reads it).
  remote  planning.remote.RemoteEngine: one Flyte run on a cluster per run; `run` submits and
          returns, `refresh` reads the state back into the run store.

A run's engine is written in its record when it is created (`RunRecord.engine`); everything after
that (`run`, `refresh`, `cancel`) goes to the engine the record names, chosen once by the App.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from planning.cluster import PLAN_TASK, FlytePhase, FlyteRunSummary
from planning.events import OnEvent
from planning.records import RunRecord
from planning.settings import EngineName


class Engine(Protocol):
    """Executes stored runs; every method returns the run as the store holds it afterwards."""

    @property
    def name(self) -> EngineName: ...

    @property
    def runs_to_completion(self) -> bool:
        """True: `run` returns when the run has ended, reporting progress on the way (local);
        False: it returns once the run is accepted, to be followed with `refresh` (remote)."""
        ...

    async def run(self, run_id: str, on_event: OnEvent | None = None, *, synthesize: bool = True) -> RunRecord:
        """Execute (or resume: only steps that did not succeed run again) a stored run. The local
        engine returns when the run ends; the remote one once the cluster has accepted it.
        `synthesize=False` gives the run the answer stated from the results instead of an LLM's."""
        ...

    async def refresh(self, run_id: str) -> RunRecord:
        """The run brought up to date with where it executes."""
        ...

    async def cancel(self, run_id: str) -> RunRecord:
        """Stop the run: steps in flight are cancelled, none starts; finished steps keep their results.
        Raises RunBusyError when another live process executes it."""
        ...

    async def list_runs(
        self,
        *,
        phase: FlytePhase | Sequence[FlytePhase] | None = None,
        task_name: str | None = PLAN_TASK,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int = 20,
    ) -> list[FlyteRunSummary]:
        """The runs Flyte itself has recorded (its local run store, or the cluster), newest first.

        `phase`: one Flyte phase or several; `task_name`: the Flyte task that ran (default
        planner-mcp's orchestrator; None for runs of any task); `created_after` (inclusive) and
        `created_before` (exclusive) bound the creation time; `limit` caps the count.
        """
        ...
