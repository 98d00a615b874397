"""The application: the run store, the catalog, the LLM and the engine, wired from settings.

The CLI and the MCP server are two faces of this one object; neither knows Flyte.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from agents.llm import LLM, LLMNotConfiguredError, Usage
from agents.planner import Planner, PlanResult
from agents.specialist import SpecialistRunner
from agents.synthesis import Synthesizer
from planning.catalog import Catalog, load_catalog
from planning.engine import LocalEngine, OnEvent
from planning.ownership import is_alive, this_process
from planning.plan import Plan, Step
from planning.records import RunRecord, RunStatus
from planning.remote import RemoteEngine
from planning.settings import EngineName, Settings
from planning.steps import StepRunner
from planning.store import RunStore
from planning.validate import parse_plan

logger = logging.getLogger(__name__)


class RunBusyError(RuntimeError):
    """The run is executing in a live process right now."""


@dataclass
class App:
    settings: Settings
    store: RunStore
    catalog: Catalog
    llm: LLM | None
    engine: LocalEngine

    @classmethod
    def open(cls, settings: Settings, *, llm: LLM | None = None, catalog: Catalog | None = None) -> App:
        """Open the store (recovering runs left by dead processes) and wire the engine."""
        catalog = catalog or load_catalog(settings)
        store = RunStore(settings.db_path)
        steps = StepRunner(
            catalog,
            run_agent=SpecialistRunner(llm) if llm is not None else None,
            retries=settings.step_retries,
            retry_base_s=settings.retry_base_s,
        )
        synthesize = Synthesizer(llm if settings.synthesize else None)
        engine = LocalEngine(store, steps, synthesize, home=settings.home, max_concurrency=settings.max_concurrency)
        app = cls(settings=settings, store=store, catalog=catalog, llm=llm, engine=engine)
        interrupted = app.recover()
        if interrupted:
            logger.warning("marked %d run(s) of ended processes as interrupted: %s", len(interrupted), interrupted)
        return app

    def close(self) -> None:
        self.store.close()

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

    async def plan(self, request: str, llm: LLM | None = None) -> PlanResult:
        """Ask the planner LLM (or `llm`) for a validated plan, with what planning cost.

        Raises LLMNotConfiguredError without an LLM.
        """
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
        return RemoteEngine(self.store, self.settings)

    def submit(
        self,
        plan: Plan,
        *,
        request: str | None = None,
        idempotency_key: str | None = None,
        engine: EngineName | None = None,
        usage: Usage | None = None,
    ) -> RunRecord:
        """Record a run; `engine` (default PLANNER_MCP_ENGINE, itself default local) is where it executes."""
        engine = engine or self.settings.engine
        if engine == RemoteEngine.name:
            self.remote.target()  # no run is recorded for a cluster that is not configured
        return self.store.create_run(plan, request=request, engine=engine, idempotency_key=idempotency_key, usage=usage)

    def submit_step(self, step: Step, request: str | None = None) -> RunRecord:
        """A one-step run, as made by the per-agent MCP tools."""
        plan = self.parse({"steps": [step.model_dump(exclude_none=True)]})
        return self.submit(plan, request=request)

    async def execute(self, run_id: str, on_event: OnEvent | None = None, *, synthesize: bool = True) -> RunRecord:
        """Execute a stored run now (or resume it: only steps that did not succeed run again).

        `synthesize=False` skips the LLM-written answer for this run (a deterministic one is kept).
        """
        record = self.store.get_run(run_id)
        if record.status is RunStatus.SUCCEEDED:
            return record
        if record.engine == RemoteEngine.name:
            return await self.remote.run(run_id, on_event)
        if not self.store.claim_run(run_id, this_process(), is_alive):
            raise RunBusyError(f"run {run_id!r} is executing in another live process; wait for it or cancel it there")
        self.store.reset_unfinished_steps(run_id)
        try:
            return await self.engine.run(run_id, on_event, synthesize=synthesize)
        except Exception as exc:
            # The engine broke before recording an end: never leave the run `running` behind.
            if not self.store.get_run(run_id).status.finished:
                self.store.finish_run(
                    run_id, RunStatus.FAILED, error=f"internal error ({type(exc).__name__}: {exc}); resume it"
                )
            raise

    resume = execute

    async def get_run(self, run_id: str) -> RunRecord:
        """A run as stored; a cluster run still going is refreshed from Flyte first."""
        record = self.store.get_run(run_id)
        if record.engine == RemoteEngine.name and not record.status.finished and self.store.flyte_run(run_id):
            return await self.remote.refresh(run_id)
        return record

    async def cancel(self, run_id: str) -> RunRecord:
        """Cancel a run: in-flight steps stop, no new ones start."""
        record = self.store.get_run(run_id)
        if record.status.finished:
            return record
        if record.engine == RemoteEngine.name and self.store.flyte_run(run_id):
            return await self.remote.cancel(run_id)
        if not self.engine.cancel(run_id):
            owner = self.store.owner(run_id)
            if record.status is RunStatus.RUNNING and owner and owner != this_process() and is_alive(owner):
                raise RunBusyError(f"run {run_id!r} is executing in another live process ({owner}); cancel it there")
            # Not executing anywhere: a pending run, or one whose process died.
            self.store.finish_run(run_id, RunStatus.CANCELLED, error="cancelled before it ran")
        return self.store.get_run(run_id)
