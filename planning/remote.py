"""Runs on a Flyte cluster: submit a stored run as one Flyte run, read its state back, list past runs.

A remote run is one Flyte run of `planning.engine.run_plan` (the orchestrator runs as a Flyte task
on the cluster, with the same eager scheduling), whose child actions are the plan's steps, each
named `step-<id>` and grouped by wave. The run store keeps the Flyte run's name and console URL;
`refresh` reads the run's phase, each step's phase and, once they finish, the outcomes back from
Flyte (`run_plan`'s output is the whole result: statuses, values, the answer).

Choosing remote is explicit (`RemoteEngine`, `PLANNER_MCP_ENGINE=remote`). Flyte itself sends every
`flyte.run` to the cluster once a client is configured; the local engine always asks for local mode
and nothing here runs when it is chosen. Where this module configures Flyte it also turns off
Flyte's "tracked" local runs, so a local run never reports to the cluster either.

Where the cluster is: `Settings.flyte_*` fields first, then Flyte's own configuration
(`FLYTE_*` environment variables, then the config file: `PLANNER_MCP_FLYTE_CONFIG` or Flyte's
search path, e.g. `.flyte/config.yaml`), and `FLYTE_API_KEY`.

Errors (every call is bounded in time; nothing here waits forever):

    RemoteError
    ├── FlyteNotConfiguredError  no endpoint, project or domain anywhere
    ├── FlyteUnreachableError    the endpoint does not answer, or not in time
    ├── FlyteAuthError           the control plane refused the credentials
    ├── FlyteRunNotFoundError    no Flyte run by that name (also a LookupError)
    ├── NotOnFlyteError          the stored run was never submitted to a cluster (also a ValueError)
    ├── FlyteRunBusyError        the run is still running on the cluster
    └── FlyteRequestError        any other refusal (bad request, image build, upload)
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast, get_args

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from flyteidl2.common import phase_pb2
from flyteidl2.workflow import run_definition_pb2

from planning import flyte_setup
from planning.cluster import PLAN_TASK, FlytePhase, FlyteRunSummary, RemoteError
from planning.engine import PlanRequest, RunResult, run_plan
from planning.events import OnEvent
from planning.flyte_env import PROJECT_ROOT
from planning.ownership import this_process
from planning.records import RunRecord, RunStatus, StepError, StepOutcome, StepStatus
from planning.settings import Settings
from planning.store import FlyteRunRef, RunNotFoundError, RunStore

flyte = flyte_setup.import_flyte()

# After flyte_setup has tamed Flyte's stdout habits (the MCP wire in stdio mode).
from flyte.config._config import ImageConfig, PlatformConfig, TaskConfig  # noqa: E402
from flyte.config._reader import ConfigFile, resolve_config_path  # noqa: E402
from flyte.errors import BaseRuntimeError  # noqa: E402
from flyte.models import ActionPhase  # noqa: E402
from flyte.remote import Action, ActionDetails, RunDetails, TimeFilter  # noqa: E402
from flyte.remote import Run as FlyteRun  # noqa: E402

logger = logging.getLogger(__name__)

T = TypeVar("T")

RUN_LABEL = "planner-mcp-run"  # Flyte run label holding our run id

# Settings the cluster's task bodies read from their environment, forwarded with each run. Paths,
# engine choice and anything secret stay here (keys reach the cluster only as Flyte secrets).
_FORWARDED = frozenset(
    {
        "PLANNER_MCP_MAX_CONCURRENCY",
        "PLANNER_MCP_STEP_RETRIES",
        "PLANNER_MCP_RETRY_BASE_S",
        "PLANNER_MCP_SYNTHESIZE",
        "PLANNER_MCP_MODEL",
        "PLANNER_MCP_LLM_TIMEOUT_S",
        "PLANNER_MCP_LLM_MAX_RETRIES",
        "PLANNER_MCP_SANDBOX_TIER",
        "OPENAI_BASE_URL",
        "WEB_SEARCH_PROVIDER",
    }
)
_FORWARDED_PREFIXES = ("PLANNER_MCP_MODEL_", "PLANNER_MCP_SANDBOX__")
_NEVER_FORWARDED = ("KEY", "SECRET", "TOKEN", "PASSWORD", "PATH")

_STEP_NAME = re.compile(r"^step-(\d+)$")
_ACTIVE = frozenset(
    {
        phase_pb2.ACTION_PHASE_QUEUED,
        phase_pb2.ACTION_PHASE_WAITING_FOR_RESOURCES,
        phase_pb2.ACTION_PHASE_INITIALIZING,
        phase_pb2.ACTION_PHASE_RUNNING,
        phase_pb2.ACTION_PHASE_PAUSED,
    }
)
_FAILED = frozenset({phase_pb2.ACTION_PHASE_FAILED, phase_pb2.ACTION_PHASE_TIMED_OUT})


# -- errors ---------------------------------------------------------------------------------------


class FlyteNotConfiguredError(RemoteError):
    """No endpoint, project or domain is configured anywhere."""


class FlyteUnreachableError(RemoteError):
    """The Flyte endpoint did not answer, or not within the time allowed."""


class FlyteAuthError(RemoteError):
    """The Flyte control plane refused the credentials."""


class FlyteRunNotFoundError(RemoteError, LookupError):
    def __init__(self, name: str, where: str) -> None:
        super().__init__(
            f"no Flyte run named {name!r} in {where}; list them with list_runs(source='flyte') "
            "(or `planner-mcp runs --flyte`), and check the project and domain"
        )


class NotOnFlyteError(RemoteError, ValueError):
    def __init__(self, run_id: str) -> None:
        super().__init__(
            f"run {run_id!r} was never submitted to Flyte (it runs locally); read it from the run store, "
            "or submit it with the remote engine (PLANNER_MCP_ENGINE=remote)"
        )


class FlyteRunBusyError(RemoteError):
    """The run is still executing on the cluster."""


class FlyteRequestError(RemoteError):
    """The control plane refused a request for another reason (its message is included)."""


# -- where the cluster is -------------------------------------------------------------------------


@dataclass(frozen=True)
class FlyteTarget:
    """A resolved Flyte configuration: where to connect, as whom, and into which project/domain."""

    endpoint: str | None
    project: str
    domain: str
    org: str | None = None
    insecure: bool = False
    api_key: str | None = field(default=None, repr=False)
    platform: PlatformConfig = field(default_factory=PlatformConfig, repr=False)  # may hold a client secret
    image: ImageConfig = field(default_factory=ImageConfig)
    source: Path | None = None  # the config file read, if any

    @property
    def where(self) -> str:
        return f"project {self.project!r}, domain {self.domain!r} at {self.endpoint or 'the API key endpoint'}"


def resolve_target(settings: Settings, environ: Mapping[str, str] | None = None) -> FlyteTarget:
    """The Flyte configuration from settings, Flyte's environment variables and its config file.

    Raises FlyteNotConfiguredError naming every way to provide what is missing.
    """
    environ = os.environ if environ is None else environ
    if settings.flyte_config is not None and not settings.flyte_config.is_file():
        raise FlyteNotConfiguredError(
            f"PLANNER_MCP_FLYTE_CONFIG={str(settings.flyte_config)!r} is not a file; point it at a Flyte "
            "config.yaml (`flyte create config --endpoint ...` writes one), or unset it"
        )
    # Read afresh each time (flyte.config.get_config_file caches its first answer for the process).
    path = settings.flyte_config or resolve_config_path()
    config_file = ConfigFile(str(path)) if path else None
    # Each *.auto reads FLYTE_* variables first, then the file (none found: variables only).
    platform = PlatformConfig.auto(config_file)
    task = TaskConfig.auto(config_file)
    source = config_file.path if config_file else None
    endpoint = settings.flyte_endpoint or platform.endpoint
    api_key = environ.get("FLYTE_API_KEY", "").strip() or None
    read = f"read {source}" if source else "found no Flyte config file"
    if not endpoint and not api_key:
        raise FlyteNotConfiguredError(
            "no Flyte endpoint is configured (" + read + "); set PLANNER_MCP_FLYTE_ENDPOINT "
            "(e.g. dns:///flyte.example.com), or FLYTE_ADMIN_ENDPOINT, or `admin.endpoint` in "
            ".flyte/config.yaml (`flyte create config --endpoint ...`), or FLYTE_API_KEY"
        )
    project = settings.flyte_project or task.project
    domain = settings.flyte_domain or task.domain
    for value, name, key in ((project, "project", "task.project"), (domain, "domain", "task.domain")):
        if not value:
            raise FlyteNotConfiguredError(
                f"no Flyte {name} is configured ({read}); set PLANNER_MCP_FLYTE_{name.upper()}, "
                f"or FLYTE_{key.replace('.', '_').upper()}, or `{key}` in .flyte/config.yaml"
            )
    assert project and domain
    insecure = platform.insecure if settings.flyte_insecure is None else settings.flyte_insecure
    return FlyteTarget(
        endpoint=endpoint,
        project=project,
        domain=domain,
        org=task.org,
        insecure=insecure,
        api_key=api_key,
        platform=platform,
        image=ImageConfig.auto(config_file),
        source=source,
    )


# The target the process-wide Flyte client was last initialized for (Flyte keeps one client).
_active_target: FlyteTarget | None = None


async def _init_flyte(target: FlyteTarget) -> None:
    global _active_target
    if _active_target == target:
        return
    platform = target.platform
    auth: dict[str, Any] = {"auth_type": platform.auth_mode, "rpc_retries": platform.rpc_retries}
    optional = {
        "ca_cert_file_path": platform.ca_cert_file_path,
        "client_id": platform.client_id,
        "client_credentials_secret": platform.client_credentials_secret,
        "scopes": platform.scopes,
        "command": platform.command,
        "proxy_command": platform.proxy_command,
        "http_proxy_url": platform.http_proxy_url,
    }
    auth.update({name: value for name, value in optional.items() if value})
    await flyte.init.aio(
        endpoint=target.endpoint,
        api_key=target.api_key,
        insecure=target.insecure,
        insecure_skip_verify=platform.insecure_skip_verify,
        disable_keyring=platform.disable_keyring,
        org=target.org,
        project=target.project,
        domain=target.domain,
        root_dir=PROJECT_ROOT,
        image_builder=target.image.builder or "local",  # type: ignore[arg-type]  # validated by Flyte
        images=target.image.image_refs,
        image_registry=target.image.registry,
        # Never mirror local runs onto the cluster, whatever the config file says (`local.tracked`).
        local_tracked=False,
        local_persistence=False,
        **auth,
    )
    _active_target = target


# -- what is read back ----------------------------------------------------------------------------


@dataclass
class _StepView:
    phase: int
    attempts: int
    outcome: StepOutcome | None = None
    error: str | None = None


@dataclass
class _Snapshot:
    phase: int
    error: str | None = None
    result: RunResult | None = None
    steps: dict[int, _StepView] = field(default_factory=dict)


# -- the engine -----------------------------------------------------------------------------------


class RemoteEngine:
    """Executes stored runs on a Flyte cluster and reads their state back into the run store.

    Nothing touches the network until a method is called; each call resolves the configuration,
    (re)initializes Flyte's client when it changed, and is bounded by `settings.flyte_timeout_s`
    (submission: `settings.flyte_submit_timeout_s`, as it may build the image first).
    """

    name = "remote"

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

    async def run(self, run_id: str, on_event: OnEvent | None = None) -> RunRecord:
        """LocalEngine's entry point: submits the run and returns at once (poll with `refresh`)."""
        return await self.submit(run_id)

    async def submit(self, run_id: str) -> RunRecord:
        """Start (or resume: only steps that did not succeed run again) a stored run on the cluster
        as one Flyte run; record its name and console URL. Returns without waiting for it."""
        record = self.store.get_run(run_id)
        previous = self.store.flyte_run(run_id)
        if previous is not None:
            phase = await self._call("check the previous Flyte run", self._phase_of(previous.name), previous.name)
            if phase in _ACTIVE:
                raise FlyteRunBusyError(
                    f"run {run_id!r} is still running on Flyte as {previous.name!r} ({previous.url}); "
                    "wait for it to finish or cancel it first"
                )
        succeeded = {
            s.id: StepOutcome(status=s.status, result=s.result, summary=s.summary, usage=s.usage, attempts=s.attempts)
            for s in record.steps
            if s.status is StepStatus.SUCCEEDED
        }
        request = PlanRequest(run_id=run_id, plan=record.plan, succeeded=succeeded, request=record.request)
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
        forwarded = {
            name: value
            for name, value in self.environ.items()
            if (name in _FORWARDED or name.startswith(_FORWARDED_PREFIXES))
            and not any(word in name for word in _NEVER_FORWARDED)
            and value.strip()
        }
        servers = self.settings.servers
        if servers is not None:
            # The code bundle carries the project: a servers file inside it reaches the pods too.
            try:
                forwarded["PLANNER_MCP_SERVERS"] = str(servers.resolve().relative_to(PROJECT_ROOT))
                forwarded["PLANNER_MCP_CLUSTER_POD"] = "1"  # stdio servers stay on this machine
            except ValueError:
                logger.warning(
                    "PLANNER_MCP_SERVERS=%s is outside the project, so cluster runs cannot use its HTTP servers; "
                    "put the file in the project directory",
                    servers,
                )
        return forwarded

    # -- reading back -----------------------------------------------------------------------------

    async def refresh(self, run_id: str) -> RunRecord:
        """Bring a submitted run up to date from Flyte: its status, each step's phase, and once
        they finish their outcomes and the answer. A finished run is returned as stored."""
        record = self.store.get_run(run_id)
        ref = self.store.flyte_run(run_id)
        if ref is None:
            raise NotOnFlyteError(run_id)
        if record.status.finished:
            return record
        finished = {s.id for s in record.steps if s.status not in (StepStatus.PENDING, StepStatus.RUNNING)}
        snapshot = await self._call("read the run's state", self._snapshot(ref.name, finished), ref.name)
        self._apply(run_id, ref, snapshot)
        return self.store.get_run(run_id)

    async def cancel(self, run_id: str) -> RunRecord:
        """Abort the run's Flyte run and record what became of it."""
        ref = self.store.flyte_run(run_id)
        if ref is None:
            raise NotOnFlyteError(run_id)
        await self._call("abort the run", self._abort(ref.name), ref.name)
        return await self.refresh(run_id)

    async def get_flyte_run(self, name: str) -> FlyteRunSummary:
        """One Flyte run by name."""
        details = await self._call("read the run", RunDetails.get.aio(name=name), name)
        run = FlyteRun(
            pb2=run_definition_pb2.Run(
                action=run_definition_pb2.Action(
                    id=details.action_id, metadata=details.action_details.pb2.metadata, status=details.pb2.action.status
                ),
                labels=dict(details.pb2.run_spec.labels.values),
            )
        )
        return self._summary(run)

    async def list_flyte_runs(
        self,
        *,
        phase: FlytePhase | Sequence[FlytePhase] | None = None,
        task_name: str | None = PLAN_TASK,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int = 20,
    ) -> list[FlyteRunSummary]:
        """Past and current runs on the cluster, newest first.

        `phase`: one Flyte phase or several; `task_name`: the Flyte task that ran (default
        planner-mcp's orchestrator; None for runs of any task); `created_after` (inclusive) and
        `created_before` (exclusive) bound the creation time; `limit` caps the count.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit!r}")
        phases = (phase,) if isinstance(phase, str) else tuple(phase or ())
        unknown = [p for p in phases if p not in get_args(FlytePhase)]
        if unknown:
            raise ValueError(f"unknown Flyte phase(s) {unknown!r}; use {', '.join(get_args(FlytePhase))}")
        created = None
        if created_after or created_before:
            created = TimeFilter(after=created_after, before=created_before)

        async def listing() -> list[FlyteRun]:
            runs = FlyteRun.listall.aio(
                in_phase=phases or None,
                task_name=task_name,
                created_at=created,
                sort_by=("created_at", "desc"),
                limit=limit,
            )
            return [run async for run in runs]

        return [self._summary(run) for run in await self._call("list runs", listing())]

    # -- Flyte calls (run on Flyte's own loop, under _call's deadline) ----------------------------

    async def _phase_of(self, name: str) -> int:
        details = await RunDetails.get.aio(name=name)
        return details.action_details.raw_phase

    async def _abort(self, name: str) -> None:
        run = await FlyteRun.get.aio(name)
        await run.abort.aio("cancelled from planner-mcp")

    async def _snapshot(self, name: str, finished: set[int]) -> _Snapshot:
        details = await RunDetails.get.aio(name=name)
        snapshot = _Snapshot(phase=details.action_details.raw_phase)
        if snapshot.phase == phase_pb2.ACTION_PHASE_SUCCEEDED:
            outputs = await details.typed_outputs({"o0": str})  # task I/O is JSON text (planning.engine)
            snapshot.result = RunResult.model_validate_json(outputs["o0"])
        elif snapshot.phase in _FAILED:
            root = await ActionDetails.get_details.aio(details.action_id)
            snapshot.error = root.error_message or None
        async for action in cast(AsyncIterator[Action], Action.listall.aio(for_run_name=name)):
            step_id = _step_id(action.pb2)
            if step_id is None:
                continue
            view = _StepView(phase=action.raw_phase, attempts=action.pb2.status.attempts)
            snapshot.steps[step_id] = view  # actions come oldest first: a later attempt wins
            if step_id in finished or snapshot.result is not None:
                continue  # nothing more to learn: stored already, or in the run's result
            if view.phase == phase_pb2.ACTION_PHASE_SUCCEEDED:
                action_details = ActionDetails(run_definition_pb2.ActionDetails(id=action.action_id))
                outputs = await action_details.typed_outputs({"o0": str})
                view.outcome = StepOutcome.model_validate_json(outputs["o0"])
            elif view.phase in _FAILED:
                view.error = (await action.details()).error_message or None
        return snapshot

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
                await _init_flyte(target)
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
            raise _translate(exc, what, target, run_name) from exc
        finally:
            _close(work)

    # -- mapping ----------------------------------------------------------------------------------

    def _apply(self, run_id: str, ref: FlyteRunRef, snapshot: _Snapshot) -> None:
        """Write what Flyte reported: the steps' phases first, then how the run ended (if it did)."""
        self._apply_steps(run_id, ref, snapshot.steps)
        result = snapshot.result
        if result is not None:
            unfinished = {s.id for s in self.store.get_run(run_id).steps if not _done(s.status)}
            for step_id, outcome in sorted(result.outcomes.items()):
                if step_id in unfinished:
                    self.store.step_finished(run_id, step_id, outcome)
            # A cancelled orchestrator returns no outcomes for the steps it never finished.
            self._cancel_unfinished(run_id, f"the run ended {result.status.value} before this step finished")
            steps = self.store.get_run(run_id).steps
            problems = [f"step {s.id}: {s.error.message}" for s in steps if s.error and s.error.kind != "cancelled"]
            if result.status is RunStatus.CANCELLED:
                problems.append(f"the Flyte run {ref.name} was cancelled; resume the run to finish it")
            self.store.add_run_usage(run_id, result.usage)
            self.store.finish_run(
                run_id,
                result.status,
                answer=result.answer,
                answer_source=result.answer_source,
                error="; ".join(problems) or None,
            )
        elif snapshot.phase in _FAILED:
            how = "ran past its Flyte timeout" if snapshot.phase == phase_pb2.ACTION_PHASE_TIMED_OUT else "failed"
            detail = f": {snapshot.error}" if snapshot.error else ""
            reason = f"the Flyte run {ref.name} {how}{detail}; see {ref.url}, then resume the run"
            self._cancel_unfinished(run_id, reason)
            self.store.finish_run(run_id, RunStatus.FAILED, error=reason)
        elif snapshot.phase == phase_pb2.ACTION_PHASE_ABORTED:
            reason = f"the Flyte run {ref.name} was aborted; resume the run to finish it"
            self._cancel_unfinished(run_id, reason)
            self.store.finish_run(run_id, RunStatus.CANCELLED, error=reason)
        # Still queued or running: the run stays `running` in the store.

    def _apply_steps(self, run_id: str, ref: FlyteRunRef, views: dict[int, _StepView]) -> None:
        steps = {s.id: s for s in self.store.get_run(run_id).steps}
        for step_id, view in sorted(views.items()):
            step = steps.get(step_id)
            if step is None or _done(step.status):
                continue
            if view.outcome is not None:
                self.store.step_finished(run_id, step_id, view.outcome)
            elif view.phase in _ACTIVE:
                if step.status is StepStatus.PENDING:
                    self.store.step_started(run_id, step_id)
            elif view.phase in _FAILED:
                timed_out = view.phase == phase_pb2.ACTION_PHASE_TIMED_OUT
                what = "ran past its Flyte timeout" if timed_out else "failed on Flyte"
                detail = f": {view.error}" if view.error else ""
                error = StepError(
                    kind="timeout" if timed_out else "internal",
                    message=f"step {step_id} ({step.agent}) {what}{detail}; see {ref.url}",
                )
                outcome = StepOutcome(status=StepStatus.FAILED, error=error, attempts=max(view.attempts, 1))
                self.store.step_finished(run_id, step_id, outcome)
            elif view.phase == phase_pb2.ACTION_PHASE_ABORTED:
                self.store.step_finished(run_id, step_id, _cancelled("the Flyte action was aborted", view.attempts))

    def _cancel_unfinished(self, run_id: str, reason: str) -> None:
        for step in self.store.get_run(run_id).steps:
            if not _done(step.status):
                self.store.step_finished(run_id, step.id, _cancelled(reason, step.attempts))

    def _summary(self, run: FlyteRun) -> FlyteRunSummary:
        status_pb = run.pb2.action.status
        planner_id = run.pb2.labels.get(RUN_LABEL) or None
        known: RunRecord | None = None
        if planner_id is not None:
            try:
                known = self.store.get_run(planner_id)
            except RunNotFoundError:
                known = None
        status = _run_status(run.raw_phase)
        if known is not None and known.status.finished and status.finished:
            status = known.status  # e.g. partial: Flyte only knows the orchestrator succeeded
        return FlyteRunSummary(
            id=planner_id or run.name,
            status=status,
            request=known.request if known else None,
            engine=self.name,
            created_at=_time(status_pb.start_time) or datetime.fromtimestamp(0, UTC),
            finished_at=_time(status_pb.end_time),
            step_count=known.step_count if known else 0,
            flyte_run_name=run.name,
            phase=ActionPhase.from_protobuf(run.raw_phase).value,
            task_name=run.action.task_name,
            url=run.url,
            planner_run_id=planner_id,
        )


def _done(status: StepStatus) -> bool:
    return status not in (StepStatus.PENDING, StepStatus.RUNNING)


def _cancelled(reason: str, attempts: int) -> StepOutcome:
    return StepOutcome(
        status=StepStatus.CANCELLED, error=StepError(kind="cancelled", message=reason), attempts=attempts
    )


def _step_id(action: run_definition_pb2.Action) -> int | None:
    """The plan step an action ran (its short name is `step-<id>`); None for the orchestrator."""
    if not action.metadata.parent:
        return None
    match = _STEP_NAME.match(action.metadata.task.short_name)
    return int(match.group(1)) if match else None


def _run_status(phase: int) -> RunStatus:
    if phase == phase_pb2.ACTION_PHASE_SUCCEEDED:
        return RunStatus.SUCCEEDED
    if phase in _FAILED:
        return RunStatus.FAILED
    if phase == phase_pb2.ACTION_PHASE_ABORTED:
        return RunStatus.CANCELLED
    if phase == phase_pb2.ACTION_PHASE_QUEUED:
        return RunStatus.PENDING
    return RunStatus.RUNNING


def _time(stamp: Any) -> datetime | None:
    if not stamp.seconds and not stamp.nanos:
        return None
    return stamp.ToDatetime().replace(tzinfo=UTC)


def _close(work: Awaitable[Any]) -> None:
    """Close a coroutine that was never awaited (a configuration error came first)."""
    close: Callable[[], None] | None = getattr(work, "close", None)
    if close is not None and asyncio.iscoroutine(work):
        close()


def _connect_error(exc: BaseException) -> ConnectError | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ConnectError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _translate(exc: Exception, what: str, target: FlyteTarget, run_name: str | None) -> RemoteError:
    connect = _connect_error(exc)
    code = connect.code if connect is not None else None
    detail = connect.message if connect is not None else str(exc)
    if code in (Code.UNAUTHENTICATED, Code.PERMISSION_DENIED) or _is_auth_error(exc):
        return FlyteAuthError(
            f"could not {what}: {target.where} refused the credentials ({detail}); log in again "
            "(`flyte get project` starts the login), or set FLYTE_API_KEY or the client credentials in "
            "the Flyte config, and check access to the project"
        )
    if code in (Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED) or _is_unavailable(exc):
        return FlyteUnreachableError(
            f"could not {what}: {target.where} is unreachable ({detail}); check PLANNER_MCP_FLYTE_ENDPOINT "
            "(or the Flyte config's admin.endpoint), that the cluster is up, and `admin.insecure` for a "
            "plain-HTTP sandbox"
        )
    if code == Code.NOT_FOUND and run_name is not None:
        return FlyteRunNotFoundError(run_name, f"{target.where}")
    return FlyteRequestError(f"could not {what}: {target.where} answered: {detail}")


def _is_auth_error(exc: BaseException) -> bool:
    from flyte.remote._client.auth.errors import AccessTokenNotFoundError, AuthenticationError

    return isinstance(exc, AuthenticationError | AccessTokenNotFoundError)


_UNAVAILABLE_CODES = frozenset({"EndpointUnavailable", "EndpointUnreachable", "SystemUnavailableError"})


def _is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, BaseRuntimeError):
        return exc.code in _UNAVAILABLE_CODES
    return isinstance(exc, OSError)
