"""Listing runs on the cluster: Flyte's runs as `FlyteRunSummary`, with what the run store knows
of the ones planner-mcp submitted (their request, step count and final status)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flyteidl2.common import phase_pb2
from flyteidl2.workflow import run_definition_pb2

from planning import flyte_setup
from planning.cluster import FlytePhase, FlyteRunSummary
from planning.records import RunRecord, RunStatus
from planning.remote.snapshot import FAILED
from planning.store import RunNotFoundError, RunStore

flyte = flyte_setup.import_flyte()

# After flyte_setup has tamed Flyte's stdout habits (the MCP wire in stdio mode).
from flyte.models import ActionPhase  # noqa: E402
from flyte.remote import Run as FlyteRun  # noqa: E402
from flyte.remote import RunDetails, TimeFilter  # noqa: E402

RUN_LABEL = "planner-mcp-run"  # Flyte run label holding our run id
ENGINE = "remote"


async def get_run(store: RunStore, name: str) -> FlyteRunSummary:
    """One Flyte run by name."""
    details = await RunDetails.get.aio(name=name)
    run = FlyteRun(
        pb2=run_definition_pb2.Run(
            action=run_definition_pb2.Action(
                id=details.action_id, metadata=details.action_details.pb2.metadata, status=details.pb2.action.status
            ),
            labels=dict(details.pb2.run_spec.labels.values),
        )
    )
    return summary(store, run)


async def list_runs(
    store: RunStore,
    *,
    phases: tuple[FlytePhase, ...],
    task_name: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
    limit: int,
) -> list[FlyteRunSummary]:
    """Runs on the cluster, newest first (filters as RemoteEngine.list_runs)."""
    created = None
    if created_after or created_before:
        created = TimeFilter(after=created_after, before=created_before)
    runs = FlyteRun.listall.aio(
        in_phase=phases or None,
        task_name=task_name,
        created_at=created,
        sort_by=("created_at", "desc"),
        limit=limit,
    )
    return [summary(store, run) async for run in runs]


def summary(store: RunStore, run: FlyteRun) -> FlyteRunSummary:
    status_pb = run.pb2.action.status
    planner_id = run.pb2.labels.get(RUN_LABEL) or None
    known: RunRecord | None = None
    if planner_id is not None:
        try:
            known = store.get_run(planner_id)
        except RunNotFoundError:
            known = None
    status = _run_status(run.raw_phase)
    if known is not None and known.status.finished and status.finished:
        status = known.status  # e.g. partial: Flyte only knows the orchestrator succeeded
    return FlyteRunSummary(
        id=planner_id or run.name,
        status=status,
        request=known.request if known else None,
        engine=ENGINE,
        created_at=_time(status_pb.start_time) or datetime.fromtimestamp(0, UTC),
        finished_at=_time(status_pb.end_time),
        step_count=known.step_count if known else 0,
        flyte_run_name=run.name,
        phase=ActionPhase.from_protobuf(run.raw_phase).value,
        task_name=run.action.task_name,
        url=run.url,
        planner_run_id=planner_id,
    )


def _run_status(phase: int) -> RunStatus:
    if phase == phase_pb2.ACTION_PHASE_SUCCEEDED:
        return RunStatus.SUCCEEDED
    if phase in FAILED:
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
