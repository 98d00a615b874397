"""list_runs(source="flyte") and `planner-mcp runs --flyte` against the fake Flyte control plane."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from flyteidl2.common import phase_pb2
from mcp import Client

from planning.remote import PLAN_TASK
from planning.settings import Settings
from server.app import App
from server.mcp_server import build_server
from tests.planning.fake_control_plane import FakeControlPlane, run_pb
from tests.planning.test_engine import flyte_local_run_store  # noqa: F401 - fixture: Flyte's local run store
from tests.planning.test_remote import (  # noqa: F401 - fixtures: isolated Flyte state, the fake plane, its config
    DOMAIN,
    PROJECT,
    T0,
    console_url,
    flyte_config,
    isolated,
    plane,
    run_id_pb,
    settings_for,
)
from tests.server.test_mcp_tools import call

pytestmark = pytest.mark.anyio
REPO_ROOT = Path(__file__).resolve().parents[2]


async def test_list_runs_from_flyte_sends_the_filters_and_shows_each_runs_phase_and_console(
    plane: FakeControlPlane,  # noqa: F811 - the imported fixture
    flyte_config: Path,  # noqa: F811
    tmp_path: Path,
    mode: str,
) -> None:
    plane.runs = [run_pb(run_id_pb("rabc"), phase_pb2.ACTION_PHASE_RUNNING, start=T0)]
    settings = settings_for(tmp_path, plane.endpoint, flyte_config)
    server = build_server(settings, app_factory=lambda s: App.open(s, llm=None))

    async with Client(server, mode=mode) as client:
        page = await call(client, "list_runs", source="flyte", flyte_phase=["running"], limit=3)

    assert page == {
        "runs": [
            {
                "run_id": "rabc",
                "status": "running",
                "request": None,
                "created_at": "2026-01-05T09:30:00Z",
                "finished_at": None,
                "step_count": 0,
                "flyte_run": "rabc",
                "flyte_phase": "running",
                "url": console_url(plane, "rabc"),
            }
        ],
        "next_cursor": None,
    }
    (request,) = plane.requests("ListRuns")
    assert request.request.limit == 3
    assert [(f.field, list(f.values)) for f in request.request.filters] == [
        ("phase", [str(phase_pb2.ACTION_PHASE_RUNNING)]),
        ("task_name", [PLAN_TASK]),
    ]


async def test_list_runs_from_flyte_without_a_cluster_lists_the_local_runs_flyte_recorded(
    flyte_local_run_store: Path,  # noqa: F811 - the imported fixture
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PLANNER_MCP_FLYTE_LOCAL_PERSISTENCE", "true")
    settings = Settings(home=tmp_path / "data")
    server = build_server(settings, app_factory=lambda s: App.open(s, llm=None))
    plan = {"steps": [{"id": 1, "agent": "math", "tool": "add", "args": {"a": 2, "b": 3}}]}

    async with Client(server) as client:
        run = await call(client, "execute_plan", plan=plan)
        page = await call(client, "list_runs", source="flyte")

    assert page == {
        "runs": [
            {
                "run_id": run["run_id"],
                "status": "succeeded",
                "request": None,
                "created_at": page["runs"][0]["created_at"],
                "finished_at": page["runs"][0]["finished_at"],
                "step_count": 1,
                "flyte_run": run["run_id"],
                "flyte_phase": "succeeded",
                "url": "",
            }
        ],
        "next_cursor": None,
    }


def test_the_cli_lists_flyte_runs_from_the_configured_cluster(
    plane: FakeControlPlane,  # noqa: F811 - the imported fixture
    tmp_path: Path,
) -> None:
    plane.runs = [run_pb(run_id_pb("rcli"), phase_pb2.ACTION_PHASE_SUCCEEDED, start=T0)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLYTE_", "PLANNER_MCP_"))}
    env |= {
        "HOME": str(tmp_path),
        "PLANNER_MCP_HOME": str(tmp_path / "home"),
        "PLANNER_MCP_LLM": "none",
        "PLANNER_MCP_FLYTE_ENDPOINT": plane.endpoint,
        "PLANNER_MCP_FLYTE_INSECURE": "true",
        "PLANNER_MCP_FLYTE_PROJECT": PROJECT,
        "PLANNER_MCP_FLYTE_DOMAIN": DOMAIN,
    }

    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "runs", "--flyte", "--phase", "succeeded", "--limit", "5"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert "rcli" in done.stdout and "succeeded" in done.stdout
    (request,) = plane.requests("ListRuns")
    assert request.request.limit == 5
