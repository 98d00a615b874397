"""Runs on a Flyte cluster: submit a stored run as one Flyte run, read its state back, list past runs.

A remote run is one Flyte run of `planning.engine.run_plan` (the orchestrator runs as a Flyte task
on the cluster, with the same eager scheduling), whose child actions are the plan's steps, each
named `step-<id>` and grouped by wave. The run store keeps the Flyte run's name and console URL;
`refresh` reads the run's phase, each step's phase and, once they finish, the outcomes back from
Flyte (`run_plan`'s output is the whole result: statuses, values, the answer).

Choosing remote is explicit (`RemoteEngine`, `PLANNER_MCP_ENGINE=remote`). Flyte itself sends every
`flyte.run` to the cluster once a client is configured; the local engine always asks for local mode
and nothing here runs when it is chosen. Where this package configures Flyte it also turns off
Flyte's "tracked" local runs, so a local run never reports to the cluster either.

The modules, one concern each (every call is bounded in time; nothing here waits forever):
  config    where the cluster is (`FlyteTarget`, `resolve_target`), Flyte's client, forwarded settings
  engine    `RemoteEngine`: submission, refresh, cancel, and the deadline around every Flyte call
  snapshot  one read of a run's state on Flyte, and writing it into the run store
  listing   Flyte's runs as `FlyteRunSummary`
  errors    the `RemoteError` tree and how Flyte client failures map onto it
"""

from planning.cluster import PLAN_TASK, FlyteRunSummary, RemoteError
from planning.remote.config import FlyteTarget, resolve_target
from planning.remote.engine import RemoteEngine
from planning.remote.errors import (
    FlyteAuthError,
    FlyteNotConfiguredError,
    FlyteRequestError,
    FlyteRunNotFoundError,
    FlyteUnreachableError,
    NotOnFlyteError,
)
from planning.remote.listing import RUN_LABEL

__all__ = [
    "PLAN_TASK",
    "RUN_LABEL",
    "FlyteAuthError",
    "FlyteNotConfiguredError",
    "FlyteRequestError",
    "FlyteRunNotFoundError",
    "FlyteRunSummary",
    "FlyteTarget",
    "FlyteUnreachableError",
    "NotOnFlyteError",
    "RemoteEngine",
    "RemoteError",
    "resolve_target",
]
