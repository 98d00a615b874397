"""RemoteEngine against a fake Flyte control plane (tests.planning.fake_control_plane): the real
Flyte client code submits, lists and reads runs over HTTP, and the tests assert on the RPCs the
plane received and on what lands in the run store. Also: the task specs a dry run produces, the
cluster context of the task bodies, and that a configured endpoint never moves a local run.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from flyteidl2.common import identifier_pb2, list_pb2, phase_pb2
from flyteidl2.core import security_pb2, tasks_pb2
from flyteidl2.task import task_definition_pb2
from flyteidl2.workflow import run_definition_pb2
from google.protobuf.duration_pb2 import Duration

from agents.llm.protocol import Usage
from planning import engine, flyte_env
from planning.answer import RunAnswer
from planning.engine import PlanRequest, RunResult, StepRequest, run_code_step, run_plan, run_step
from planning.errors import RunBusyError
from planning.flyte_env import PROJECT_ROOT
from planning.local import LocalEngine
from planning.records import RunRecord, RunStatus, StepError, StepOutcome, StepRecord, StepStatus
from planning.remote import (
    PLAN_TASK,
    RUN_LABEL,
    FlyteAuthError,
    FlyteNotConfiguredError,
    FlyteRunNotFoundError,
    FlyteRunSummary,
    FlyteUnreachableError,
    NotOnFlyteError,
    RemoteEngine,
)
from planning.remote import config as remote_config
from planning.settings import Settings
from planning.steps import StepRunner
from planning.store import FlyteRunRef, RunStore
from tests.planning import dry_run
from tests.planning.conftest import Kit, make_plan
from tests.planning.fake_control_plane import (
    INPUTS_URI,
    FakeControlPlane,
    action_pb,
    decode,
    details_pb,
    outputs_pb,
    run_pb,
    serve,
)

flyte = engine.flyte

PROJECT, DOMAIN = "proj", "dev"
SECRET_VALUES = ("sk-secret-openai", "tvly-secret-tavily")
ENVIRON = {
    "OPENAI_API_KEY": SECRET_VALUES[0],
    "TAVILY_API_KEY": SECRET_VALUES[1],
    "WEB_SEARCH_PROVIDER": "tavily",
    "PLANNER_MCP_MODEL": "gpt-test",
    "PLANNER_MCP_MODEL_WEB_SEARCH": "gpt-test-mini",
    "PLANNER_MCP_SANDBOX__WALL_TIME_S": "20",
    "PLANNER_MCP_HOME": "/home/someone/planner",
    "PLANNER_MCP_MODEL_PATH": "/models/local.gguf",
    "PLANNER_MCP_ENGINE": "remote",
    "PLANNER_MCP_LLM": "local",
    "PLANNER_MCP_STEP_RETRIES": "",
}
T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)

PLAN = make_plan(
    {"id": 1, "agent": "math", "tool": "add", "args": {"a": 2, "b": 3}},
    {"id": 2, "agent": "string", "tool": "concat", "args": {"a": "x", "b": "y"}},
    {"id": 3, "agent": "math", "tool": "multiply", "args": {"a": "$1", "b": 2}, "depends_on": [1]},
    {"id": 4, "agent": "math", "tool": "add", "args": {"a": 1, "b": 1}},
)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No Flyte configuration of this machine leaks in, and Flyte's process-wide client is put
    back as it was after each test."""
    from flyte import _initialize

    for name in list(os.environ):
        if name.startswith(("FLYTE_", "FLYTECTL_", "UCTL_", "PLANNER_MCP_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))  # Flyte's caches live under ~/.flyte
    monkeypatch.chdir(tmp_path)
    saved = _initialize._init_config
    yield tmp_path
    _initialize._init_config = saved
    remote_config._active_target = None


@pytest.fixture
def plane() -> Iterator[FakeControlPlane]:
    with serve(FakeControlPlane()) as fake:
        yield fake


@pytest.fixture
def flyte_config(tmp_path: Path) -> Path:
    """The remote image builder: its existence check is an RPC the fake answers (no docker here)."""
    path = tmp_path / "flyte-config.yaml"
    path.write_text("image:\n  builder: remote\n")
    return path


def settings_for(home: Path, endpoint: str, config: Path | None = None, **overrides: Any) -> Settings:
    fields: dict[str, Any] = {
        "home": home,
        "flyte_endpoint": endpoint,
        "flyte_insecure": True,
        "flyte_project": PROJECT,
        "flyte_domain": DOMAIN,
        "flyte_config": config,
        "flyte_timeout_s": 20,
        "flyte_submit_timeout_s": 120,
    }
    return Settings(**(fields | overrides))


@pytest.fixture
def remote_engine(store: RunStore, plane: FakeControlPlane, flyte_config: Path, tmp_path: Path) -> RemoteEngine:
    return RemoteEngine(store, settings_for(tmp_path, plane.endpoint, flyte_config), environ=ENVIRON)


def run_id_pb(name: str = "rfake0001") -> identifier_pb2.RunIdentifier:
    return identifier_pb2.RunIdentifier(org="", project=PROJECT, domain=DOMAIN, name=name)


def console_url(plane: FakeControlPlane, name: str = "rfake0001") -> str:
    return f"http://{plane.endpoint}/v2/domain/{DOMAIN}/project/{PROJECT}/runs/{name}"


def set_run_phase(plane: FakeControlPlane, phase: int, name: str = "rfake0001", error: str | None = None) -> None:
    root = action_pb(run_id_pb(name), "a0", phase, task=PLAN_TASK)
    plane.run_details[name] = run_definition_pb2.RunDetails(action=details_pb(root, error=error))
    plane.action_details[(name, "a0")] = details_pb(root, error=error)


def step_action(step_id: int, phase: int, attempts: int = 1) -> Any:
    return action_pb(
        run_id_pb(),
        f"a0-{step_id}",
        phase,
        short_name=f"step-{step_id}",
        parent="a0",
        group="wave-1",
        attempts=attempts,
    )


def without_times(record: RunRecord) -> RunRecord:
    steps = [s.model_copy(update={"started_at": None, "finished_at": None}) for s in record.steps]
    return record.model_copy(update={"created_at": T0, "started_at": None, "finished_at": None, "steps": steps})


# -- submission -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_submitted_plan_becomes_one_create_run_of_the_orchestrator_with_the_plan_as_input(
    remote_engine: RemoteEngine, store: RunStore, plane: FakeControlPlane, capfd: pytest.CaptureFixture[str]
) -> None:
    run = store.create_run(PLAN, request="add, join, double", engine="remote")

    record = await remote_engine.submit(run.id)

    # The code bundle goes up, then the inputs, then the run is created: nothing after it.
    methods = plane.methods()
    assert methods[-1] == "CreateRun" and methods.count("CreateRun") == 1
    assert methods.index("CreateUploadLocation") < methods.index("UploadInputs") < methods.index("CreateRun")
    (create,) = plane.requests("CreateRun")
    template = create.task_spec.task_template
    assert (template.id.name, template.id.project, template.id.domain) == (PLAN_TASK, PROJECT, DOMAIN)
    assert template.container.image.startswith("registry.example/planner-mcp:")  # the built image
    assert create.project_id == identifier_pb2.ProjectIdentifier(name=PROJECT, domain=DOMAIN, organization="")
    assert create.offloaded_input_data.uri == INPUTS_URI
    assert dict(create.run_spec.labels.values) == {RUN_LABEL: run.id}
    envs = {kv.key: kv.value for kv in create.run_spec.envs.values}
    assert {k: v for k, v in envs.items() if not k.startswith(("LOG_", "USER_LOG", "_F_"))} == {
        "WEB_SEARCH_PROVIDER": "tavily",
        "PLANNER_MCP_MODEL": "gpt-test",
        "PLANNER_MCP_MODEL_WEB_SEARCH": "gpt-test-mini",
        "PLANNER_MCP_SANDBOX__WALL_TIME_S": "20",
    }

    # The inputs are the stored plan, its request and no earlier results.
    (upload,) = plane.requests("UploadInputs")
    assert [literal.name for literal in upload.inputs.literals] == ["request"]
    sent = PlanRequest.model_validate_json(await decode(upload.inputs.literals[0].value, str))
    assert sent == PlanRequest(run_id=run.id, plan=PLAN, succeeded={}, request="add, join, double")

    # No key travels: not in the request, not in the inputs, not in the code bundle.
    for message in (create, upload):
        for value in SECRET_VALUES:
            assert value.encode() not in message.SerializeToString()
    (bundle_name,) = [name for name in plane.uploads if name.endswith(".tar.gz")]
    with tarfile.open(fileobj=io.BytesIO(plane.uploads[bundle_name])) as bundle:
        names = set(bundle.getnames())
    assert {"planning/engine.py", "planning/flyte_env.py", "pyproject.toml", "uv.lock"} <= names

    flyte_ref = FlyteRunRef(name="rfake0001", url=console_url(plane))
    assert store.flyte_run(run.id) == flyte_ref
    assert record == store.get_run(run.id)
    assert record.status is RunStatus.RUNNING
    assert store.running_owners() == {}  # Flyte owns it: a restart here must not mark it interrupted
    assert capfd.readouterr().out == ""  # stdout is the MCP wire in stdio mode: Flyte's chatter goes to stderr


@pytest.mark.anyio
async def test_resubmitting_waits_for_the_flyte_run_to_end_then_sends_only_what_succeeded(
    remote_engine: RemoteEngine, store: RunStore, plane: FakeControlPlane
) -> None:
    run = store.create_run(PLAN, request="again", engine="remote")
    await remote_engine.submit(run.id)
    set_run_phase(plane, phase_pb2.ACTION_PHASE_RUNNING)

    with pytest.raises(RunBusyError) as busy:
        await remote_engine.submit(run.id)
    assert str(busy.value) == (
        f"run {run.id!r} is still running on Flyte as 'rfake0001' ({console_url(plane)}); "
        "wait for it to finish or cancel it first"
    )

    set_run_phase(plane, phase_pb2.ACTION_PHASE_FAILED, error="node lost")
    done = StepOutcome(status=StepStatus.SUCCEEDED, result=5, summary="2+3", attempts=1)
    store.step_finished(run.id, 1, done)
    plane.created_run_name = "rfake0002"
    record = await remote_engine.submit(run.id)

    sent = PlanRequest.model_validate_json(
        await decode(plane.requests("UploadInputs")[-1].inputs.literals[0].value, str)
    )
    assert sent == PlanRequest(run_id=run.id, plan=PLAN, succeeded={1: done}, request="again")
    assert store.flyte_run(run.id) == FlyteRunRef(name="rfake0002", url=console_url(plane, "rfake0002"))
    assert record.status is RunStatus.RUNNING


def test_only_non_secret_settings_the_cluster_uses_are_forwarded(remote_engine: RemoteEngine) -> None:
    assert remote_engine.forwarded_env() == {
        "WEB_SEARCH_PROVIDER": "tavily",
        "PLANNER_MCP_MODEL": "gpt-test",
        "PLANNER_MCP_MODEL_WEB_SEARCH": "gpt-test-mini",
        "PLANNER_MCP_SANDBOX__WALL_TIME_S": "20",
    }


def test_a_servers_file_in_the_project_travels_to_the_pods_by_its_path_there(
    store: RunStore, plane: FakeControlPlane, flyte_config: Path, tmp_path: Path
) -> None:
    inside = settings_for(tmp_path, plane.endpoint, flyte_config).model_copy(
        update={"servers": PROJECT_ROOT / "examples" / "servers.json"}
    )
    outside = inside.model_copy(update={"servers": tmp_path / "servers.json"})

    assert RemoteEngine(store, inside, environ={}).forwarded_env() == {
        "PLANNER_MCP_SERVERS": "examples/servers.json",
        "PLANNER_MCP_CLUSTER_POD": "1",
    }
    assert RemoteEngine(store, outside, environ={}).forwarded_env() == {}


# -- listing --------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_listing_calls_list_runs_with_the_filters_newest_first_and_maps_the_reply(
    remote_engine: RemoteEngine, store: RunStore, plane: FakeControlPlane
) -> None:
    ours = store.create_run(PLAN, request="ours", engine="remote")
    store.finish_run(ours.id, RunStatus.PARTIAL, answer="some")
    plane.runs = [
        run_pb(
            run_id_pb("rnewer"),
            phase_pb2.ACTION_PHASE_SUCCEEDED,
            labels={RUN_LABEL: ours.id},
            start=T0 + timedelta(minutes=5),
            end=T0 + timedelta(minutes=7),
        ),
        run_pb(run_id_pb("rolder"), phase_pb2.ACTION_PHASE_FAILED, start=T0, task="other_env.train"),
    ]
    after, before = T0 - timedelta(days=1), T0 + timedelta(days=1)

    runs = await remote_engine.list_runs(
        phase=("succeeded", "failed"), created_after=after, created_before=before, limit=5
    )

    (request,) = plane.requests("ListRuns")
    assert request.project_id == identifier_pb2.ProjectIdentifier(name=PROJECT, domain=DOMAIN, organization="")
    assert request.request == list_pb2.ListRequest(
        limit=5,
        sort_by=list_pb2.Sort(key="created_at", direction=list_pb2.Sort.DESCENDING),
        filters=[
            list_pb2.Filter(
                function=list_pb2.Filter.VALUE_IN,
                field="phase",
                values=[str(phase_pb2.ACTION_PHASE_SUCCEEDED), str(phase_pb2.ACTION_PHASE_FAILED)],
            ),
            list_pb2.Filter(function=list_pb2.Filter.EQUAL, field="task_name", values=[PLAN_TASK]),
            list_pb2.Filter(
                function=list_pb2.Filter.GREATER_THAN_OR_EQUAL, field="created_at", values=[after.isoformat()]
            ),
            list_pb2.Filter(function=list_pb2.Filter.LESS_THAN, field="created_at", values=[before.isoformat()]),
        ],
    )
    assert runs == [
        FlyteRunSummary(
            id=ours.id,
            status=RunStatus.PARTIAL,  # the store knows better than "succeeded"
            request="ours",
            engine="remote",
            created_at=T0 + timedelta(minutes=5),
            finished_at=T0 + timedelta(minutes=7),
            step_count=4,
            flyte_run_name="rnewer",
            phase="succeeded",
            task_name=PLAN_TASK,
            url=console_url(plane, "rnewer"),
            planner_run_id=ours.id,
        ),
        FlyteRunSummary(
            id="rolder",
            status=RunStatus.FAILED,
            request=None,
            engine="remote",
            created_at=T0,
            finished_at=None,
            step_count=0,
            flyte_run_name="rolder",
            phase="failed",
            task_name="other_env.train",
            url=console_url(plane, "rolder"),
            planner_run_id=None,
        ),
    ]


@pytest.mark.anyio
async def test_one_phase_and_any_task_list_with_a_single_phase_filter(
    remote_engine: RemoteEngine, plane: FakeControlPlane
) -> None:
    assert await remote_engine.list_runs(phase="running", task_name=None, limit=1) == []

    (request,) = plane.requests("ListRuns")
    assert list(request.request.filters) == [
        list_pb2.Filter(function=list_pb2.Filter.EQUAL, field="phase", values=[str(phase_pb2.ACTION_PHASE_RUNNING)])
    ]
    assert request.request.limit == 1


@pytest.mark.anyio
async def test_an_unknown_phase_is_refused_before_anything_is_sent(
    remote_engine: RemoteEngine, plane: FakeControlPlane
) -> None:
    with pytest.raises(ValueError, match=r"unknown Flyte phase\(s\) \['done'\]; use queued, "):
        await remote_engine.list_runs(phase=("done",))  # type: ignore[arg-type]
    assert plane.methods() == []


# -- reading a run back ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_refresh_maps_each_step_action_phase_and_then_the_finished_runs_result(
    remote_engine: RemoteEngine, store: RunStore, plane: FakeControlPlane
) -> None:
    run = store.create_run(PLAN, request="four steps", engine="remote")
    await remote_engine.submit(run.id)
    url = console_url(plane)
    step1 = StepOutcome(status=StepStatus.SUCCEEDED, result=5, attempts=1)
    set_run_phase(plane, phase_pb2.ACTION_PHASE_RUNNING)
    plane.actions["rfake0001"] = [
        action_pb(run_id_pb(), "a0", phase_pb2.ACTION_PHASE_RUNNING, task=PLAN_TASK),
        step_action(1, phase_pb2.ACTION_PHASE_SUCCEEDED),
        step_action(2, phase_pb2.ACTION_PHASE_QUEUED),
        step_action(4, phase_pb2.ACTION_PHASE_TIMED_OUT, attempts=3),
    ]
    plane.outputs[("rfake0001", "a0-1")] = await outputs_pb(step1.model_dump_json(), str)
    plane.action_details[("rfake0001", "a0-4")] = details_pb(plane.actions["rfake0001"][3], error="max runtime")

    running = await remote_engine.refresh(run.id)

    timed_out_message = f"step 4 (math) ran past its Flyte timeout: max runtime; see {url}"
    timed_out = StepError(kind="timeout", message=timed_out_message)
    assert [(s.id, s.status, s.attempts, s.result, s.error) for s in running.steps] == [
        (1, StepStatus.SUCCEEDED, 1, 5, None),
        (2, StepStatus.RUNNING, 1, None, None),
        (3, StepStatus.PENDING, 0, None, None),
        (4, StepStatus.FAILED, 3, None, timed_out),
    ]
    assert (running.status, running.answer) == (RunStatus.RUNNING, None)

    # The orchestrator finished: its output is the whole result, written as it is.
    outcomes = {
        1: step1,
        2: StepOutcome(status=StepStatus.SUCCEEDED, result="xy", attempts=1),
        3: StepOutcome(status=StepStatus.SUCCEEDED, result=10, attempts=2, usage=Usage(calls=1, prompt_tokens=3)),
        4: StepOutcome(status=StepStatus.FAILED, error=StepError(kind="internal", message="lost"), attempts=3),
    }
    answer_usage = Usage(calls=1, prompt_tokens=40, completion_tokens=8, latency_s=0.25)
    result = RunResult(status=RunStatus.PARTIAL, answer="10 and xy", outcomes=outcomes, usage=answer_usage)
    set_run_phase(plane, phase_pb2.ACTION_PHASE_SUCCEEDED)
    plane.outputs[("rfake0001", "a0")] = await outputs_pb(result.model_dump_json(), str)

    finished = await remote_engine.refresh(run.id)

    assert without_times(finished) == RunRecord(
        id=run.id,
        status=RunStatus.PARTIAL,
        request="four steps",
        engine="remote",
        created_at=T0,
        step_count=4,
        plan=PLAN,
        answer="10 and xy",
        error=f"step 4: {timed_out_message}",
        usage=answer_usage,
        steps=[
            StepRecord(id=1, agent="math", status=StepStatus.SUCCEEDED, attempts=1, result=5),
            StepRecord(id=2, agent="string", status=StepStatus.SUCCEEDED, attempts=1, result="xy"),
            StepRecord(
                id=3,
                agent="math",
                status=StepStatus.SUCCEEDED,
                attempts=2,
                result=10,
                usage=Usage(calls=1, prompt_tokens=3),
            ),
            StepRecord(id=4, agent="math", status=StepStatus.FAILED, attempts=3, error=timed_out),
        ],
    )
    calls = len(plane.received)
    assert await remote_engine.refresh(run.id) == finished  # finished: read from the store only
    assert len(plane.received) == calls


@pytest.mark.parametrize(
    ("phase", "status", "error"),
    [
        (
            phase_pb2.ACTION_PHASE_FAILED,
            RunStatus.FAILED,
            "the Flyte run rfake0001 failed: OOMKilled; see {url}, then resume the run",
        ),
        (
            phase_pb2.ACTION_PHASE_TIMED_OUT,
            RunStatus.FAILED,
            "the Flyte run rfake0001 ran past its Flyte timeout: OOMKilled; see {url}, then resume the run",
        ),
        (
            phase_pb2.ACTION_PHASE_ABORTED,
            RunStatus.CANCELLED,
            "the Flyte run rfake0001 was aborted; resume the run to finish it",
        ),
    ],
)
@pytest.mark.anyio
async def test_a_flyte_run_that_ends_without_a_result_ends_the_stored_run_and_its_unfinished_steps(
    remote_engine: RemoteEngine, store: RunStore, plane: FakeControlPlane, phase: int, status: RunStatus, error: str
) -> None:
    run = store.create_run(PLAN, request="doomed", engine="remote")
    await remote_engine.submit(run.id)
    set_run_phase(plane, phase, error="OOMKilled")
    plane.actions["rfake0001"] = [step_action(1, phase_pb2.ACTION_PHASE_RUNNING)]
    message = error.format(url=console_url(plane))

    record = await remote_engine.refresh(run.id)

    assert (record.status, record.error) == (status, message)
    assert [(s.status, s.attempts, s.error) for s in record.steps] == [
        (StepStatus.CANCELLED, 1, StepError(kind="cancelled", message=message)),
        *[(StepStatus.CANCELLED, 0, StepError(kind="cancelled", message=message))] * 3,
    ]


@pytest.mark.anyio
async def test_a_cancelled_orchestrator_cancels_the_steps_it_never_finished(
    remote_engine: RemoteEngine, store: RunStore, plane: FakeControlPlane
) -> None:
    run = store.create_run(PLAN, engine="remote")
    await remote_engine.submit(run.id)
    set_run_phase(plane, phase_pb2.ACTION_PHASE_SUCCEEDED)
    step1 = StepOutcome(status=StepStatus.SUCCEEDED, result=5, attempts=1)
    result = RunResult(status=RunStatus.CANCELLED, outcomes={1: step1})
    plane.outputs[("rfake0001", "a0")] = await outputs_pb(result.model_dump_json(), str)

    record = await remote_engine.refresh(run.id)

    left = StepError(kind="cancelled", message="the run ended cancelled before this step finished")
    assert (record.status, record.error) == (
        RunStatus.CANCELLED,
        "the Flyte run rfake0001 was cancelled; resume the run to finish it",
    )
    assert [(s.status, s.result, s.error) for s in record.steps] == [
        (StepStatus.SUCCEEDED, 5, None),
        *[(StepStatus.CANCELLED, None, left)] * 3,
    ]


@pytest.mark.anyio
async def test_cancel_aborts_the_flyte_run_and_records_it(
    remote_engine: RemoteEngine, store: RunStore, plane: FakeControlPlane
) -> None:
    run = store.create_run(PLAN, engine="remote")
    await remote_engine.submit(run.id)
    set_run_phase(plane, phase_pb2.ACTION_PHASE_ABORTED)

    record = await remote_engine.cancel(run.id)

    (abort,) = plane.requests("AbortRun")
    assert (abort.run_id.name, abort.run_id.project, abort.run_id.domain) == ("rfake0001", PROJECT, DOMAIN)
    assert record.status is RunStatus.CANCELLED


@pytest.mark.anyio
async def test_a_flyte_run_is_read_by_name(remote_engine: RemoteEngine, plane: FakeControlPlane) -> None:
    set_run_phase(plane, phase_pb2.ACTION_PHASE_RUNNING, name="rsomeone")

    summary = await remote_engine.get_flyte_run("rsomeone")

    assert (summary.id, summary.status, summary.phase, summary.url) == (
        "rsomeone",
        RunStatus.RUNNING,
        "running",
        console_url(plane, "rsomeone"),
    )


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_an_unknown_flyte_run_name_is_named_in_the_error(remote_engine: RemoteEngine) -> None:
    with pytest.raises(FlyteRunNotFoundError) as missing:
        await remote_engine.get_flyte_run("rnothere")
    assert str(missing.value).startswith(f"no Flyte run named 'rnothere' in project {PROJECT!r}, domain {DOMAIN!r}")
    assert isinstance(missing.value, LookupError)


@pytest.mark.anyio
async def test_refreshing_a_run_that_never_went_to_flyte_says_so(remote_engine: RemoteEngine, store: RunStore) -> None:
    run = store.create_run(PLAN)
    with pytest.raises(NotOnFlyteError, match=f"run {run.id!r} was never submitted to Flyte"):
        await remote_engine.refresh(run.id)


@pytest.mark.anyio
async def test_without_any_flyte_configuration_the_error_names_every_way_to_configure_it(
    store: RunStore, tmp_path: Path
) -> None:
    engine_without_config = RemoteEngine(store, Settings(home=tmp_path), environ={})

    with pytest.raises(FlyteNotConfiguredError) as missing:
        await engine_without_config.list_runs()

    assert str(missing.value) == (
        "no Flyte endpoint is configured (found no Flyte config file); set PLANNER_MCP_FLYTE_ENDPOINT "
        "(e.g. dns:///flyte.example.com), or FLYTE_ADMIN_ENDPOINT, or `admin.endpoint` in .flyte/config.yaml "
        "(`flyte create config --endpoint ...`), or FLYTE_API_KEY"
    )


@pytest.mark.anyio
async def test_a_missing_project_is_named_with_its_settings(store: RunStore, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, flyte_endpoint="localhost:1", flyte_domain=DOMAIN)
    with pytest.raises(FlyteNotConfiguredError, match=r"no Flyte project is configured .*PLANNER_MCP_FLYTE_PROJECT"):
        await RemoteEngine(store, settings, environ={}).list_runs()


@pytest.mark.anyio
async def test_a_flyte_config_file_in_the_working_directory_supplies_endpoint_project_and_domain(
    store: RunStore, plane: FakeControlPlane, tmp_path: Path
) -> None:
    (tmp_path / ".flyte").mkdir()
    (tmp_path / ".flyte" / "config.yaml").write_text(
        f"admin:\n  endpoint: dns:///{plane.endpoint}\n  insecure: true\ntask:\n  project: cfgproj\n  domain: cfgdom\n"
    )

    await RemoteEngine(store, Settings(home=tmp_path), environ={}).list_runs()

    (request,) = plane.requests("ListRuns")
    assert request.project_id == identifier_pb2.ProjectIdentifier(name="cfgproj", domain="cfgdom", organization="")


@pytest.mark.anyio
async def test_an_unreachable_endpoint_is_reported_with_the_fix(store: RunStore, tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    engine_unreachable = RemoteEngine(store, settings_for(tmp_path, f"localhost:{port}"), environ={})

    with pytest.raises(FlyteUnreachableError, match=f"at localhost:{port} .*PLANNER_MCP_FLYTE_"):
        await engine_unreachable.list_runs()


@pytest.mark.anyio
async def test_an_endpoint_that_never_answers_is_given_up_on_in_bounded_time(store: RunStore, tmp_path: Path) -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        endpoint = f"localhost:{silent.getsockname()[1]}"
        engine_silent = RemoteEngine(store, settings_for(tmp_path, endpoint, flyte_timeout_s=0.5), environ={})

        with pytest.raises(FlyteUnreachableError) as silence:
            await engine_silent.list_runs()

    assert str(silence.value) == (
        f"could not list runs: project {PROJECT!r}, domain {DOMAIN!r} at {endpoint} did not answer within 0.5 s; "
        "check that the endpoint is right and reachable (VPN, firewall), or allow more time with "
        "PLANNER_MCP_FLYTE_TIMEOUT_S"
    )


@pytest.mark.anyio
async def test_refused_credentials_are_an_auth_error_that_says_how_to_log_in(
    remote_engine: RemoteEngine, plane: FakeControlPlane
) -> None:
    plane.failures["ListRuns"] = ConnectError(Code.UNAUTHENTICATED, "token expired")

    with pytest.raises(FlyteAuthError) as refused:
        await remote_engine.list_runs()

    assert "refused the credentials (token expired)" in str(refused.value)
    assert "FLYTE_API_KEY" in str(refused.value)


# -- local stays local ----------------------------------------------------------------------------


async def fake_synthesis(record: RunRecord) -> RunAnswer:
    return RunAnswer(text=f"{len(record.steps)} steps", source="llm")


@pytest.mark.anyio
async def test_a_configured_flyte_endpoint_never_moves_a_local_run_to_the_cluster(
    store: RunStore, plane: FakeControlPlane, kit: Kit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every way Flyte could pick the cluster up: a config file (asking for tracked local runs too),
    # the environment, and a client already initialized by the remote engine in this process.
    (tmp_path / ".flyte").mkdir()
    (tmp_path / ".flyte" / "config.yaml").write_text(
        f"admin:\n  endpoint: dns:///{plane.endpoint}\n  insecure: true\n"
        f"task:\n  project: {PROJECT}\n  domain: {DOMAIN}\nlocal:\n  tracked: true\n"
    )
    monkeypatch.setenv("FLYTE_ADMIN_ENDPOINT", f"dns:///{plane.endpoint}")
    await RemoteEngine(store, Settings(home=tmp_path), environ={}).list_runs()
    plane.received.clear()

    local = LocalEngine(store, StepRunner(kit.catalog()), fake_synthesis, home=tmp_path)
    run = store.create_run(make_plan({"id": 1, "agent": "math", "tool": "add", "args": {"a": 2, "b": 3}}))
    record = await local.run(run.id)

    assert (record.status, record.steps[0].result, record.answer) == (RunStatus.SUCCEEDED, 5, "1 steps")
    assert plane.methods() == []
    assert store.flyte_run(run.id) is None


# -- the task bodies on a cluster -----------------------------------------------------------------


@pytest.mark.anyio
async def test_run_plan_without_a_local_context_runs_as_on_a_cluster_and_returns_the_whole_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLANNER_MCP_LLM", "none")  # as a cluster with no LLM secret
    monkeypatch.setenv("PLANNER_MCP_HOME", str(tmp_path))
    engine._cluster_parts.cache_clear()
    plan = make_plan(
        {"id": 1, "agent": "math", "tool": "add", "args": {"a": 2, "b": 3}},
        {"id": 2, "agent": "math", "tool": "multiply", "args": {"a": "$1", "b": 4}, "depends_on": [1]},
    )
    request = PlanRequest(run_id="rcluster", plan=plan, request="(2+3)*4")
    try:
        runner = flyte.with_runcontext(mode="local", raw_data_path=str(tmp_path / "flyte-data"))
        run = await runner.run.aio(run_plan, request.model_dump_json())
        (output,) = await run.outputs.aio()
    finally:
        engine._cluster_parts.cache_clear()

    assert RunResult.model_validate_json(output) == RunResult(
        status=RunStatus.SUCCEEDED,
        answer="multiply(a=5, b=4) = 20",  # no LLM: the final step's call and result
        answer_source="results",
        outcomes={
            1: StepOutcome(status=StepStatus.SUCCEEDED, result=5, attempts=1),
            2: StepOutcome(status=StepStatus.SUCCEEDED, result=20, attempts=1),
        },
        usage=Usage(),
    )


# -- what a dry run sends -------------------------------------------------------------------------


def secret(key: str, env_var: str) -> security_pb2.Secret:
    return security_pb2.Secret(key=key, mount_requirement=security_pb2.Secret.ENV_VAR, env_var=env_var)


def resources(cpu: str, memory: str) -> tasks_pb2.Resources:
    return tasks_pb2.Resources(
        requests=[
            tasks_pb2.Resources.ResourceEntry(name=tasks_pb2.Resources.CPU, value=cpu),
            tasks_pb2.Resources.ResourceEntry(name=tasks_pb2.Resources.MEMORY, value=memory),
        ]
    )


OPENAI, TAVILY, BRAVE = (
    secret("openai_api_key", "OPENAI_API_KEY"),
    secret("tavily_api_key", "TAVILY_API_KEY"),
    secret("brave_api_key", "BRAVE_API_KEY"),
)
STEP_REQUEST = StepRequest(run_id="rdry", step=PLAN.steps[0], inputs={}).model_dump_json()


def dry_run_spec(task: Any, request: str, tmp_path: Path) -> task_definition_pb2.TaskSpec:
    """The spec a dry run of `task` builds, from a process of its own (see tests.planning.dry_run)."""
    child = subprocess.run(
        [sys.executable, "-m", "tests.planning.dry_run", task.func.__name__, request, str(tmp_path)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert child.returncode == 0, child.stderr[-4000:]
    return task_definition_pb2.TaskSpec.FromString((tmp_path / dry_run.SPEC_FILE).read_bytes())


@pytest.mark.parametrize(
    ("task", "request_", "name", "image", "secrets", "cpu", "memory", "retries", "runtime_s", "reused"),
    [
        (
            run_plan,
            PlanRequest(run_id="rdry", plan=PLAN).model_dump_json(),
            PLAN_TASK,
            flyte_env.base_image,
            [OPENAI],
            "1",
            "1Gi",
            1,
            4 * 3600,
            False,
        ),
        (
            run_step,
            STEP_REQUEST,
            "planner_mcp_agents.run_step",
            flyte_env.agents_image,
            [OPENAI, TAVILY, BRAVE],
            "1",
            "1Gi",
            2,
            900,
            True,
        ),
        (
            run_code_step,
            STEP_REQUEST,
            "planner_mcp_code.run_code_step",
            flyte_env.code_image,
            [OPENAI],
            "2",
            "2Gi",
            2,
            900,
            False,
        ),
    ],
)
def test_a_dry_run_task_spec_carries_image_secrets_resources_retries_and_timeouts(
    tmp_path: Path,
    task: Any,
    request_: Any,
    name: str,
    image: Any,
    secrets: list[security_pb2.Secret],
    cpu: str,
    memory: str,
    retries: int,
    runtime_s: int,
    reused: bool,
) -> None:
    spec = dry_run_spec(task, request_, tmp_path)

    template = spec.task_template
    assert template.id.name == name
    assert template.container.image == image.uri
    assert list(template.container.env) == []  # nothing baked in: keys arrive only as secrets
    assert list(template.security_context.secrets) == secrets
    assert template.container.resources == resources(cpu, memory)
    assert template.metadata.retries.retries == retries
    assert template.metadata.timeout == Duration(seconds=runtime_s)
    assert template.metadata.timeouts.queued_timeout == Duration(seconds=1800)
    assert (template.custom.fields["type"].string_value == "actor") is reused


def test_the_image_is_built_from_the_locked_requirements_and_the_code_image_adds_the_sandbox() -> None:
    root = flyte_env.PROJECT_ROOT
    uv_layers = [layer for layer in flyte_env.base_image._layers if type(layer).__name__ == "UVProject"]
    assert [(layer.pyproject, layer.uvlock) for layer in uv_layers] == [(root / "pyproject.toml", root / "uv.lock")]  # type: ignore[attr-defined]
    apt = [layer for layer in flyte_env.code_image._layers if type(layer).__name__ == "AptPackages"]
    assert ("bubblewrap",) in [layer.packages for layer in apt]  # type: ignore[attr-defined]
    assert flyte_env.base_image.python_version == (3, 11)
