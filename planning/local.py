"""The local engine: stored runs executed by Flyte in local mode, in this process.

`LocalEngine.run` starts `run_plan` (planning.engine) as a local Flyte run and hands its task bodies
the run's objects through planning.engine.CURRENT_RUN; every change lands in the run store as it
happens. With `flyte_persistence`, Flyte also records each run in its own local run store (SQLite
under ~/.flyte/local-cache, or beside the Flyte config file): `flyte start tui` browses them and
`list_runs` reads them.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from planning.answer import plain_answer
from planning.cluster import PLAN_TASK, FlytePhase, FlyteRunSummary, phases_filter
from planning.engine import (
    CURRENT_RUN,
    LocalRun,
    PlanRequest,
    RunParts,
    RunResult,
    Synthesize,
    flyte,
    record_cancelled,
    run_plan,
)
from planning.errors import RunBusyError
from planning.events import OnEvent
from planning.ownership import is_alive, this_process
from planning.records import RunRecord, RunStatus
from planning.replanning import Replanner
from planning.settings import EngineName
from planning.steps import StepRunner
from planning.store import RunNotFoundError, RunStore, StoreUnavailableError

logger = logging.getLogger(__name__)

# Flyte's local metadata and raw data of a run, under the data dir; removed when the run ends.
SCRATCH_DIR = "flyte-scratch"


def _local_runner(run_id: str, scratch: Path) -> Any:
    """A local Flyte runner whose metadata and raw data stay in `scratch` (by default Flyte keeps
    metadata in /tmp/flyte/metadata/<run>, outside the data dir, and never removes it)."""
    shutil.rmtree(scratch, ignore_errors=True)  # left by a process that died mid-run
    runner = flyte.with_runcontext(mode="local", raw_data_path=str(scratch / "raw"), name=run_id)
    # with_runcontext takes no metadata path, but its runner keeps one (flyte 2.12; a test checks
    # that no run writes under /tmp/flyte).
    if hasattr(runner, "_metadata_path"):
        runner._metadata_path = str(scratch / "metadata")
    else:
        logger.warning("this Flyte keeps local run metadata outside %s", scratch)
    return runner


class LocalEngine:
    """Executes stored runs with Flyte in local mode, in this process (the `Engine` protocol).

    The runs executing now are this engine's own (`_runs`, for `cancel`); their task bodies find
    theirs through the context variable set around each Flyte run, never through a module global.
    """

    name: EngineName = "local"
    runs_to_completion = True

    def __init__(
        self,
        store: RunStore,
        steps: StepRunner,
        synthesize: Synthesize,
        *,
        home: Path,
        max_concurrency: int = 8,
        flyte_persistence: bool = False,
        replan: Replanner | None = None,
        max_replans: int = 1,
    ):
        """`replan` (None: never) revises plans whose steps failed; `max_replans` is the bound for a
        run of a request that sets none itself (a hand-written plan's run replans only when it does)."""
        self.store = store
        self.steps = steps
        self.synthesize = synthesize
        self.home = home
        self.max_concurrency = max_concurrency
        self.flyte_persistence = flyte_persistence
        self.replan = replan
        self.max_replans = max_replans
        self._runs: dict[str, LocalRun] = {}

    @classmethod
    def from_parts(
        cls,
        store: RunStore,
        parts: RunParts,
        *,
        home: Path,
        flyte_persistence: bool = False,
    ) -> LocalEngine:
        return cls(
            store,
            parts.steps,
            parts.synthesize,
            home=home,
            max_concurrency=parts.max_concurrency,
            flyte_persistence=flyte_persistence,
            replan=parts.replan,
            max_replans=parts.max_replans,
        )

    async def run(self, run_id: str, on_event: OnEvent | None = None, *, synthesize: bool = True) -> RunRecord:
        """Execute (or resume) a stored run to its end; cancelling the caller cancels the run.

        `synthesize=False` gives the run the deterministic answer instead of an LLM-written one.
        """
        if run_id in self._runs:
            raise RunBusyError(f"run {run_id!r} is already executing in this process; wait for it or cancel it")
        # The one claim: running, owned by this process (atomic: a live process holding it wins).
        if not self.store.claim_run(run_id, this_process(), is_alive):
            raise RunBusyError(f"run {run_id!r} is executing in another live process; wait for it or cancel it there")
        try:
            return await self._run_claimed(run_id, on_event, synthesize)
        except (asyncio.CancelledError, KeyboardInterrupt):
            # Cancelled where run_plan does not record it (starting Flyte, writing the answer) or
            # past the wait for it: the run is this process's, never left `running` behind.
            if self.store.get_run(run_id).status is RunStatus.RUNNING:
                record_cancelled(self.store, run_id)
            raise

    async def _run_claimed(self, run_id: str, on_event: OnEvent | None, synthesize: bool) -> RunRecord:
        self.store.reset_unfinished_steps(run_id)  # a resume runs again every step that did not succeed
        local = LocalRun(
            run_id=run_id,
            store=self.store,
            steps=self.steps,
            synthesize=self.synthesize if synthesize else plain_answer,
            max_concurrency=self.max_concurrency,
            on_event=on_event or (lambda event: None),
            replan=self.replan,
            max_replans=self.max_replans,
        )
        await self._init_flyte()
        self._runs[run_id] = local
        token = CURRENT_RUN.set(local)  # the Flyte run's task bodies inherit this context
        scratch = self.home / SCRATCH_DIR / run_id
        try:
            runner = _local_runner(run_id, scratch)
            record = self.store.get_run(run_id)  # after the claim: what succeeded before is kept
            request = PlanRequest(run_id=run_id, plan=record.plan, succeeded=record.succeeded(), request=record.request)
            pending = asyncio.ensure_future(runner.run.aio(run_plan, request.model_dump_json()))
            try:
                run = await asyncio.shield(pending)
            except asyncio.CancelledError:
                # Shielded so an anyio cancel scope cannot cut the wait short: the run must be
                # recorded `cancelled` before the caller hears it ended.
                self._request_cancel(local)
                with anyio.CancelScope(shield=True), anyio.move_on_after(30):
                    await pending
                raise
        finally:
            CURRENT_RUN.reset(token)
            self._runs.pop(run_id, None)
            shutil.rmtree(scratch, ignore_errors=True)
        result = RunResult.model_validate_json((await run.outputs.aio())[0])
        record = self.store.get_run(run_id)
        if result.unrecorded and not record.status.finished:
            raise StoreUnavailableError(result.unrecorded, disk_full=True)
        return record

    async def refresh(self, run_id: str) -> RunRecord:
        """A local run's record is always current: every change is written as it happens."""
        return self.store.get_run(run_id)

    async def cancel(self, run_id: str) -> RunRecord:
        """Cancel a run: one executing here stops (what finished is kept); one that is not executing
        anywhere is recorded cancelled; one executing in another live process raises RunBusyError."""
        record = self.store.get_run(run_id)
        if record.status.finished:
            return record
        local = self._runs.get(run_id)
        if local is not None:
            self._request_cancel(local)
            return self.store.get_run(run_id)
        owner = self.store.owner(run_id)
        executing = record.status in (RunStatus.RUNNING, RunStatus.PLANNING)
        if executing and owner and owner != this_process() and is_alive(owner):
            raise RunBusyError(f"run {run_id!r} is executing in another live process ({owner}); cancel it there")
        # Not executing anywhere: a pending run, or one whose process died.
        self.store.finish_run(run_id, RunStatus.CANCELLED, error="cancelled before it ran")
        return self.store.get_run(run_id)

    def executing(self, run_id: str) -> bool:
        """Whether the run is executing in this engine now."""
        return run_id in self._runs

    async def list_runs(
        self,
        *,
        phase: FlytePhase | Sequence[FlytePhase] | None = None,
        task_name: str | None = PLAN_TASK,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int = 20,
    ) -> list[FlyteRunSummary]:
        """The runs in Flyte's local run store (recorded with `flyte_persistence`), newest first."""
        phases = phases_filter(phase, limit)
        from flyte._persistence._run_store import RunStore as FlyteLocalRuns  # private, as of flyte 2.12

        rows = await anyio.to_thread.run_sync(FlyteLocalRuns.list_runs_sync)
        runs: list[FlyteRunSummary] = []
        for row in rows:
            created = datetime.fromtimestamp(row.start_time or 0, UTC)
            row_phase: FlytePhase = _LOCAL_PHASES.get(row.status, "running")
            if (
                (phases and row_phase not in phases)
                or (task_name and row.task_name != task_name)
                or (created_after and created < created_after)
                or (created_before and created >= created_before)
            ):
                continue
            runs.append(self._summary(row.run_name, row_phase, row.task_name, created, row.end_time))
            if len(runs) == limit:
                break
        return runs

    def _summary(
        self, name: str, phase: FlytePhase, task_name: str | None, created: datetime, end_time: float | None
    ) -> FlyteRunSummary:
        try:
            known: RunRecord | None = self.store.get_run(name)  # a local run's Flyte name is its id
        except RunNotFoundError:
            known = None
        status = known.status if known is not None else _PHASE_STATUS[phase]
        return FlyteRunSummary(
            id=name,
            status=status,
            request=known.request if known else None,
            engine=self.name,
            created_at=created,
            finished_at=datetime.fromtimestamp(end_time, UTC) if end_time else None,
            step_count=known.step_count if known else 0,
            flyte_run_name=name,
            phase=phase,
            task_name=task_name,
            url="",  # a local run has no console page; `flyte start tui` shows it
            planner_run_id=name if known else None,
        )

    async def _init_flyte(self) -> None:
        """Turn on Flyte's local run store, unless Flyte was set up already (then the remote engine
        did it, with the same persistence setting). A store that cannot be opened (a read-only
        home) costs only the listing: runs go on, unrecorded there, with a warning."""
        from flyte._initialize import is_initialized
        from flyte._persistence._db import LocalDB

        if not self.flyte_persistence or is_initialized():
            return
        try:
            await anyio.to_thread.run_sync(LocalDB.initialize_sync)
        except (OSError, sqlite3.Error) as exc:
            logger.warning("Flyte's local run store cannot be opened (%s); local runs are not recorded there", exc)
            self.flyte_persistence = False
            return
        await flyte.init.aio(local_persistence=True, local_tracked=False)

    @staticmethod
    def _request_cancel(local: LocalRun) -> None:
        local.cancel_requested.set()
        if local.cancel is not None:
            local.cancel()


# Flyte's local run store statuses as Flyte phases, and as run statuses for runs our store lacks.
_LOCAL_PHASES: dict[str, FlytePhase] = {"running": "running", "succeeded": "succeeded", "failed": "failed"}
_PHASE_STATUS: dict[str, RunStatus] = {
    "running": RunStatus.RUNNING,
    "succeeded": RunStatus.SUCCEEDED,
    "failed": RunStatus.FAILED,
}
