"""The remote engine: stored runs submitted to a Flyte cluster, read back and cancelled there.

Every call resolves the configuration (planning.remote.config), (re)initializes Flyte's client when
it changed, and runs under a deadline with Flyte's errors made ours (planning.remote.errors).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from planning import flyte_setup
from planning.cluster import PLAN_TASK, FlytePhase, FlyteRunSummary, RemoteError, phases_filter
from planning.engine import PlanRequest, run_plan
from planning.errors import RunBusyError
from planning.events import OnEvent
from planning.ownership import this_process
from planning.records import RunRecord, RunStatus
from planning.remote import listing
from planning.remote.config import FlyteTarget, forwarded_env, init_flyte, resolve_target
from planning.remote.errors import FlyteUnreachableError, NotOnFlyteError, translate
from planning.remote.listing import RUN_LABEL
from planning.remote.snapshot import ACTIVE, apply_snapshot, read_snapshot
from planning.settings import EngineName, Settings
from planning.store import FlyteRunRef, RunStore

flyte = flyte_setup.import_flyte()

# After flyte_setup has tamed Flyte's stdout habits (the MCP wire in stdio mode).
from flyte.remote import Run as FlyteRun  # noqa: E402
from flyte.remote import RunDetails  # noqa: E402

logger = logging.getLogger(__name__)

T = TypeVar("T")


class RemoteEngine:
    """Executes stored runs on a Flyte cluster and reads their state back into the run store.

    Nothing touches the network until a method is called; each call resolves the configuration,
    (re)initializes Flyte's client when it changed, and is bounded by `settings.flyte_timeout_s`
    (submission: `settings.flyte_submit_timeout_s`, as it may build the image first).
    """

    name: EngineName = "remote"
    runs_to_completion = False

    def __init__(self, store: RunStore, settings: Settings, *, environ: Mapping[str, str] | None = None) -> None:
        """`environ` (default: this process's) is where FLYTE_API_KEY and the settings forwarded to
        the cluster are read; Flyte reads its own FLYTE_* variables from the process environment."""
        self.store = store
        self.settings = settings
        self.environ = os.environ if environ is None else environ

    def target(self) -> FlyteTarget:
        """The resolved Flyte configuration (raises FlyteNotConfiguredError)."""
        return resolve_target(self.settings, self.environ)

    # -- submitting -------------------------------------------------------------------------------

    async def run(self, run_id: str, on_event: OnEvent | None = None, *, synthesize: bool = True) -> RunRecord:
        """Submit the run and return at once (follow it with `refresh`). The cluster reports no
        progress events while it runs: `on_event` is not called."""
        return await self.submit(run_id, synthesize=synthesize)

    async def submit(self, run_id: str, *, synthesize: bool = True) -> RunRecord:
        """Start (or resume: only steps that did not succeed run again) a stored run on the cluster
        as one Flyte run; record its name and console URL. Returns without waiting for it."""
        record = self.store.get_run(run_id)
        previous = self.store.flyte_run(run_id)
        if previous is not None:
            phase = await self._call("check the previous Flyte run", self._phase_of(previous.name), previous.name)
            if phase in ACTIVE:
                raise RunBusyError(
                    f"run {run_id!r} is still running on Flyte as {previous.name!r} ({previous.url}); "
                    "wait for it to finish or cancel it first"
                )
        request = PlanRequest(
            run_id=run_id, plan=record.plan, succeeded=record.succeeded(), request=record.request, synthesize=synthesize
        )
        ref = await self._call(
            "submit the run", self._create(request), limit_s=self.settings.flyte_submit_timeout_s, submitting=True
        )
        self.store.set_flyte_run(run_id, ref)
        self.store.start_run(run_id, this_process())
        logger.info("run %s submitted to Flyte as %s: %s", run_id, ref.name, ref.url)
        return self.store.get_run(run_id)

    async def _create(self, request: PlanRequest) -> FlyteRunRef:
        target = self.target()
        runner = flyte.with_runcontext(
            mode="remote",  # explicit: never left to whether a client happens to be configured
            project=target.project,
            domain=target.domain,
            copy_style="all",  # the whole project: the sandbox runner is a file, not an imported module
            labels={RUN_LABEL: request.run_id},
            env_vars=self.forwarded_env(),
        )
        run = await runner.run.aio(run_plan, request.model_dump_json())
        return FlyteRunRef(name=run.name, url=run.url)

    def forwarded_env(self) -> dict[str, str]:
        """The non-secret settings the cluster's task bodies should see (set here, not empty)."""
        return forwarded_env(self.settings, self.environ)

    # -- reading back -----------------------------------------------------------------------------

    async def refresh(self, run_id: str) -> RunRecord:
        """Bring a submitted run up to date from Flyte: its status, each step's phase, and once
        they finish their outcomes and the answer. A finished run is returned as stored."""
        record = self.store.get_run(run_id)
        ref = self.store.flyte_run(run_id)
        if ref is None:
            if record.engine != self.name:
                raise NotOnFlyteError(run_id)
            return record  # not submitted yet: nothing on the cluster to read
        if record.status.finished:
            return record
        finished = {s.id for s in record.steps if s.status.finished}
        snapshot = await self._call("read the run's state", read_snapshot(ref.name, finished), ref.name)
        apply_snapshot(self.store, run_id, ref, snapshot)
        return self.store.get_run(run_id)

    async def cancel(self, run_id: str) -> RunRecord:
        """Abort the run's Flyte run and record what became of it; a run never submitted is
        recorded cancelled."""
        ref = self.store.flyte_run(run_id)
        if ref is None:
            record = self.store.get_run(run_id)
            if record.engine != self.name:
                raise NotOnFlyteError(run_id)
            if not record.status.finished:
                self.store.finish_run(run_id, RunStatus.CANCELLED, error="cancelled before it ran")
            return self.store.get_run(run_id)
        await self._call("abort the run", self._abort(ref.name), ref.name)
        return await self.refresh(run_id)

    async def get_flyte_run(self, name: str) -> FlyteRunSummary:
        """One Flyte run by name."""
        return await self._call("read the run", listing.get_run(self.store, name), name)

    async def list_runs(
        self,
        *,
        phase: FlytePhase | Sequence[FlytePhase] | None = None,
        task_name: str | None = PLAN_TASK,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int = 20,
    ) -> list[FlyteRunSummary]:
        """The Engine protocol's listing: past and current runs on the cluster, newest first.

        `phase`: one Flyte phase or several; `task_name`: the Flyte task that ran (default
        planner-mcp's orchestrator; None for runs of any task); `created_after` (inclusive) and
        `created_before` (exclusive) bound the creation time; `limit` caps the count.
        """
        phases = phases_filter(phase, limit)
        return await self._call(
            "list runs",
            listing.list_runs(
                self.store,
                phases=phases,
                task_name=task_name,
                created_after=created_after,
                created_before=created_before,
                limit=limit,
            ),
        )

    # -- Flyte calls (run on Flyte's own loop, under _call's deadline) ----------------------------

    async def _phase_of(self, name: str) -> int:
        details = await RunDetails.get.aio(name=name)
        return details.action_details.raw_phase

    async def _abort(self, name: str) -> None:
        run = await FlyteRun.get.aio(name)
        await run.abort.aio("cancelled from planner-mcp")

    async def _call(
        self,
        what: str,
        work: Awaitable[T],
        run_name: str | None = None,
        *,
        limit_s: float | None = None,
        submitting: bool = False,
    ) -> T:
        """Run one piece of Flyte client work under a deadline, with Flyte's errors made ours."""
        limit = limit_s or self.settings.flyte_timeout_s
        try:
            target = self.target()
        except RemoteError:
            _close(work)
            raise
        try:
            async with asyncio.timeout(limit):
                await init_flyte(target)
                return await work
        except TimeoutError:
            raise FlyteUnreachableError(
                f"could not {what}: {target.where} did not answer within {limit:g} s; check that the endpoint "
                "is right and reachable (VPN, firewall), or allow more time with "
                + ("PLANNER_MCP_FLYTE_SUBMIT_TIMEOUT_S" if submitting else "PLANNER_MCP_FLYTE_TIMEOUT_S")
            ) from None
        except RemoteError:
            raise
        except Exception as exc:
            raise translate(exc, what, target.where, run_name) from exc
        finally:
            _close(work)


def _close(work: Awaitable[Any]) -> None:
    """Close a coroutine that was never awaited (a configuration error came first)."""
    close: Callable[[], None] | None = getattr(work, "close", None)
    if close is not None and asyncio.iscoroutine(work):
        close()
