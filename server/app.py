"""The application: the run store, the catalog, the LLM and the engine, wired from settings.

The CLI and the MCP server are two faces of this one object; neither knows Flyte. Opening it opens
only the store: the catalog, the engines (and so Flyte) are built on first use, so that listing or
showing runs, and a server's `initialize`, cost no more than that.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

import anyio

from agents.llm import LLM, LLMError, LLMNotConfiguredError, Usage
from agents.planner import Planner, PlanningError, PlanResult
from planning.approval import approval_reason
from planning.catalog import Catalog, load_catalog
from planning.cluster import PLAN_TASK, FlytePhase, FlyteRunSummary, RemoteError
from planning.errors import RunBusyError, UserFixableError
from planning.events import OnEvent, PhaseEvent
from planning.ownership import is_alive, this_process
from planning.plan import Plan, Step
from planning.records import Approval, RunRecord, RunStatus
from planning.settings import EngineName, Settings
from planning.store import RunStore
from planning.validate import PlanValidationError, parse_plan

if TYPE_CHECKING:
    from planning.engines import Engine
    from planning.local import LocalEngine
    from planning.remote import RemoteEngine

REMOTE: EngineName = "remote"

logger = logging.getLogger(__name__)


class ApprovalError(UserFixableError):
    """The run is not awaiting approval (never asked, or already decided)."""


class App:
    def __init__(self, settings: Settings, store: RunStore, *, llm: LLM | None, catalog: Catalog | None) -> None:
        self.settings = settings
        self.store = store
        self.llm = llm
        self._catalog = catalog

    @classmethod
    def open(cls, settings: Settings, *, llm: LLM | None = None, catalog: Catalog | None = None) -> App:
        """Open the store, recovering runs left by dead processes; `catalog` default: the settings'."""
        app = cls(settings, RunStore(settings.db_path), llm=llm, catalog=catalog)
        interrupted = app.recover()
        if interrupted:
            logger.warning("marked %d run(s) of ended processes as interrupted: %s", len(interrupted), interrupted)
        return app

    def close(self) -> None:
        self.store.close()
        if self._catalog is None and "catalog" in self.__dict__:  # one it built: stop the MCP servers it started
            self.catalog.close()

    @cached_property
    def catalog(self) -> Catalog:
        return self._catalog or load_catalog(self.settings)

    @cached_property
    def engine(self) -> LocalEngine:
        """Flyte local mode in this process (Flyte is imported here, when a run first executes)."""
        from agents.runtime import build_parts
        from planning.local import LocalEngine

        return LocalEngine.from_parts(
            self.store,
            # The composition root (agents.runtime); the planner, built once, also revises failed runs.
            build_parts(self.settings, self.llm, self.catalog, planner=self.planner),
            home=self.settings.home,
            flyte_persistence=self.settings.flyte_local_persistence,
        )

    def engine_for(self, engine: str) -> Engine:
        """The engine a run executes on, by the name its record carries (chosen here, once)."""
        return self.remote if engine == REMOTE else self.engine

    async def list_flyte_runs(
        self,
        *,
        phase: FlytePhase | Sequence[FlytePhase] | None = None,
        task_name: str | None = PLAN_TASK,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int = 20,
    ) -> list[FlyteRunSummary]:
        """The runs Flyte recorded: on the cluster when one is configured (or the engine is remote),
        else in Flyte's local run store, where the local engine records its runs."""
        from planning.remote.errors import FlyteNotConfiguredError  # Flyte is imported on first use

        engine: Engine = self.remote
        if self.settings.engine != REMOTE:
            try:
                self.remote.target()
            except FlyteNotConfiguredError:
                engine = self.engine
        return await engine.list_runs(
            phase=phase,
            task_name=task_name,
            created_after=created_after,
            created_before=created_before,
            limit=limit,
        )

    def recover(self) -> list[str]:
        """Runs marked running by processes that no longer exist become `interrupted`."""
        interrupted = []
        for owner, runs in self.store.running_owners().items():
            if not is_alive(owner):
                # Only while that owner still has them: a live process may claim one meanwhile.
                interrupted += self.store.mark_interrupted(runs, owner=owner)
        return interrupted

    def parse(self, document: str | bytes | Mapping[str, Any] | list[Any]) -> Plan:
        return parse_plan(document, self.catalog, self.settings.plan_limits)

    async def parse_reviving(self, document: str | bytes | Mapping[str, Any] | list[Any]) -> Plan:
        """`parse`; a plan refused while agents are unavailable is read again after trying them (a
        server that failed to start may be back, and its tools then validate)."""
        try:
            return self.parse(document)
        except PlanValidationError:
            if not await self.catalog.revive_unavailable():
                raise
        return self.parse(document)

    async def plan(self, request: str, llm: LLM | None = None) -> PlanResult:
        """Ask the planner LLM (or `llm`) for a validated plan, with what planning cost.

        Raises LLMNotConfiguredError without an LLM.
        """
        await self.catalog.revive_unavailable()  # a server back since it failed to start: its tools are offered
        if llm is not None:
            return await Planner(llm, self.catalog, self.settings.plan_limits).plan(request)
        if self.planner is None:
            raise LLMNotConfiguredError("Planning a request needs an LLM and none is configured.")
        return await self.planner.plan(request)

    @cached_property
    def planner(self) -> Planner | None:
        """The planner on the app's own LLM, built once (its reply schema covers the whole catalog)."""
        return Planner(self.llm, self.catalog, self.settings.plan_limits) if self.llm is not None else None

    @cached_property
    def remote(self) -> RemoteEngine:
        """The Flyte cluster engine; touches nothing until used (no config needed to start)."""
        from planning.remote import RemoteEngine

        return RemoteEngine(self.store, self.settings)

    def submit(
        self,
        plan: Plan,
        *,
        request: str | None = None,
        idempotency_key: str | None = None,
        engine: EngineName | None = None,
        usage: Usage | None = None,
        max_replans: int | None = None,
        approval: Approval | None = None,
    ) -> RunRecord:
        """Record a run; `engine` (default PLANNER_MCP_ENGINE, itself default local) is where it executes.

        `max_replans` (None: the server's setting for a request's run, none for a hand-written plan's)
        bounds its revisions; `approval="required"`: each version of its plan waits for approval."""
        engine = engine or self.settings.engine
        if engine == REMOTE:
            refused = self._local_only(plan)
            if refused:
                raise RemoteError(refused)
            self.remote.target()  # no run is recorded for a cluster that is not configured
        return self.store.create_run(
            plan,
            request=request,
            engine=engine,
            idempotency_key=idempotency_key,
            usage=usage,
            max_replans=max_replans,
            approval=approval,
        )

    def _local_only(self, plan: Plan) -> str | None:
        """Why `plan` cannot run on a Flyte cluster (agents only this machine can run, e.g. stdio MCP servers)."""
        reasons = {
            step.agent: reason
            for step in plan.steps
            if (reason := self.catalog.agent(step.agent).local_only) is not None
        }
        return "; ".join(f"{agent}: {reason}" for agent, reason in sorted(reasons.items())) or None

    def submit_request(
        self,
        request: str,
        *,
        idempotency_key: str | None = None,
        engine: EngineName | None = None,
        max_replans: int | None = None,
        approval: Approval | None = None,
    ) -> RunRecord:
        """Record a request at once (status `planning`); `execute` plans it, then runs its plan.

        Every planning is a run: a request that fails to plan stays listed as a failed run."""
        engine = engine or self.settings.engine
        if engine == REMOTE:
            self.remote.target()
        return self.store.create_run(
            None,
            request=request,
            engine=engine,
            owner=this_process(),
            idempotency_key=idempotency_key,
            max_replans=max_replans,
            approval=approval,
        )

    def submit_step(self, step: Step, request: str | None = None) -> RunRecord:
        """A one-step run, as made by the per-agent MCP tools."""
        plan = self.parse({"steps": [step.model_dump(exclude_none=True)]})
        return self.submit(plan, request=request)

    async def execute(self, run_id: str, on_event: OnEvent | None = None, *, synthesize: bool = True) -> RunRecord:
        """Execute a stored run now (or resume it: only steps that did not succeed run again).

        A plan that needs a person's approval (planning.approval) is not run: the run is returned
        `awaiting_approval` (`approve` decides). `synthesize=False` skips the LLM-written answer for
        this run (a deterministic one is kept).
        """
        record = self.store.get_run(run_id)
        if record.status is RunStatus.SUCCEEDED:
            return record
        if record.request is not None and not record.plan.steps:
            record = await self._plan_run(record, on_event)
            if record.status.finished:
                return record
        why = approval_reason(record, self.catalog)
        if why is not None:
            return self.store.await_approval(run_id, why)
        engine = self.engine_for(record.engine)
        if engine.name == REMOTE:  # the cluster executes it: submitted, not claimed here
            refused = self._local_only(record.plan)
            if refused:  # planned from a request: the plan names an agent that cannot run on a cluster
                self.store.finish_run(run_id, RunStatus.FAILED, error=f"cannot run on the Flyte cluster: {refused}")
                return self.store.get_run(run_id)
            return await engine.run(run_id, on_event, synthesize=synthesize)
        try:
            return await engine.run(run_id, on_event, synthesize=synthesize)  # claims the run, or RunBusyError
        except RunBusyError:
            raise
        except Exception as exc:
            # The engine broke before recording an end: never leave the run `running` behind.
            if not self.store.get_run(run_id).status.finished:
                self.store.finish_run(
                    run_id, RunStatus.FAILED, error=f"internal error ({type(exc).__name__}: {exc}); resume it"
                )
            raise

    resume = execute

    def approve(self, run_id: str, plan: Plan | None = None) -> RunRecord:
        """A person approves the plan a run awaits approval for, as it is or edited (`plan`, already
        validated; it must keep the steps that succeeded). The run is then pending: `execute` runs it.

        Raises ApprovalError when the run is not awaiting approval (or another caller decided first)."""
        record = self._awaiting(run_id)
        if plan is not None and plan != record.plan:
            record = self.store.revise_plan(run_id, plan, kind="edited", reason="edited by a person at approval")
        if not self.store.approve(run_id, record.version):
            raise ApprovalError(f"run {run_id!r} was decided meanwhile; get it to see its status")
        return self.store.get_run(run_id)

    def reject(self, run_id: str) -> RunRecord:
        """A person rejects the plan a run awaits approval for: the run ends `cancelled`."""
        self._awaiting(run_id)
        if not self.store.reject(run_id):
            raise ApprovalError(f"run {run_id!r} was decided meanwhile; get it to see its status")
        return self.store.get_run(run_id)

    def _awaiting(self, run_id: str) -> RunRecord:
        record = self.store.get_run(run_id)
        if record.status is not RunStatus.AWAITING_APPROVAL:
            raise ApprovalError(
                f"run {run_id!r} is {record.status.value}, not awaiting approval: only a run whose plan waits for "
                "approval can be approved or rejected"
            )
        return record

    async def _plan_run(self, record: RunRecord, on_event: OnEvent | None) -> RunRecord:
        """Plan a recorded request; a planning that fails (or is cancelled) ends the run with why."""
        run_id, request = record.id, record.request or ""
        if not self.store.claim_run(run_id, this_process(), is_alive, status=RunStatus.PLANNING):
            raise RunBusyError(f"run {run_id!r} is being planned in another live process; wait for it or cancel it")
        if on_event is not None:
            on_event(PhaseEvent(run_id=run_id, phase="planning"))
        try:
            planned = await self.plan(request)
        except (PlanningError, LLMError) as exc:
            if isinstance(exc, PlanningError):
                self.store.add_run_usage(run_id, exc.usage)
            self.store.finish_run(run_id, RunStatus.FAILED, error=f"planning failed: {exc}")
            return self.store.get_run(run_id)
        except BaseException as exc:
            # Synchronous store writes: a cancellation cannot cut them short.
            cancelled = isinstance(exc, anyio.get_cancelled_exc_class() | KeyboardInterrupt)
            status = RunStatus.CANCELLED if cancelled else RunStatus.FAILED
            why = "cancelled while planning" if cancelled else f"internal error while planning ({exc!r})"
            self.store.finish_run(run_id, status, error=f"{why}; resume it to plan again")
            raise
        if on_event is not None:
            on_event(PhaseEvent(run_id=run_id, phase="steps", total=len(planned.plan.steps)))
        return self.store.set_plan(run_id, planned.plan, planned.usage)

    async def get_run(self, run_id: str) -> RunRecord:
        """A run as stored; a cluster run still going is refreshed from Flyte first."""
        record = self.store.get_run(run_id)
        if record.status.finished or record.engine != REMOTE:
            # A local run's record is always current (its refresh is the stored record): showing it
            # must not build the local engine (Flyte, the catalog).
            return record
        return await self.remote.refresh(run_id)

    async def cancel(self, run_id: str) -> RunRecord:
        """Cancel a run: in-flight steps stop, no new ones start."""
        record = self.store.get_run(run_id)
        if record.status.finished:
            return record
        return await self.engine_for(record.engine).cancel(run_id)
