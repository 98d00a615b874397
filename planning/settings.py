"""Settings, read from `PLANNER_MCP_*` environment variables (or passed explicitly)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from platformdirs import user_data_dir
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from planning.validate import PlanLimits
from tools.code import SandboxLimits

EngineName = Literal["local", "remote"]


class Settings(BaseSettings):
    """Everything that can be configured; each field is also the env var `PLANNER_MCP_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="PLANNER_MCP_", env_nested_delimiter="__", extra="ignore")

    home: Path = Field(
        default_factory=lambda: Path(user_data_dir("planner-mcp")),
        description="Data directory: the run store, the assembled embedded model, Flyte's local data.",
    )
    engine: EngineName = Field(
        default="local",
        description="Where runs execute: `local` (this process, Flyte local mode) or `remote` (a Flyte cluster). "
        "Only this setting picks remote: a Flyte config or endpoint alone never does.",
    )
    flyte_endpoint: str | None = Field(
        default=None,
        description="Flyte control plane, e.g. `dns:///flyte.example.com` or `localhost:8090`; "
        "default: the Flyte config (`admin.endpoint`, FLYTE_ADMIN_ENDPOINT).",
    )
    flyte_project: str | None = Field(default=None, description="Flyte project; default: the Flyte config's.")
    flyte_domain: str | None = Field(default=None, description="Flyte domain; default: the Flyte config's.")
    flyte_insecure: bool | None = Field(
        default=None, description="Plain HTTP without TLS or auth (local sandboxes only); default: the config's."
    )
    flyte_config: Path | None = Field(
        default=None,
        description="Flyte config file; default: Flyte's search (./config.yaml, ./.flyte/config.yaml, "
        "~/.flyte/config.yaml, FLYTECTL_CONFIG).",
    )
    flyte_timeout_s: float = Field(
        default=30.0, gt=0, description="Longest wait for a Flyte status, listing or abort call, in seconds."
    )
    flyte_submit_timeout_s: float = Field(
        default=900.0, gt=0, description="Longest wait for a submission (it may build the image first), in seconds."
    )
    max_concurrency: int = Field(default=8, ge=1, description="Steps running at once in one run.")
    max_steps: int = Field(default=100, ge=1, description="Most steps a plan may have.")
    max_string_chars: int = Field(default=100_000, ge=1, description="Longest text a plan may carry.")
    step_retries: int = Field(default=2, ge=0, description="Retries of a step after a transient failure.")
    retry_base_s: float = Field(default=0.5, ge=0, description="First retry delay; doubles, with jitter.")
    call_deadline_s: float = Field(
        default=45.0,
        gt=0,
        description="Longest an MCP tool call waits for a run (many hosts time calls out at 60 s); past it the "
        "call returns the run still going, to follow with get_run.",
    )
    progress_interval_s: float = Field(
        default=5.0, gt=0, description="How often a waiting MCP call gets a progress notification in a quiet phase."
    )
    max_replans: int = Field(
        default=1,
        ge=0,
        description="Revisions the planner may write for a planned request whose steps failed (0: none); "
        "succeeded steps are kept. A hand-written plan never replans unless its run asks to.",
    )
    synthesize: bool = Field(default=True, description="Write the final answer with the LLM when there is one.")
    catalog: str = Field(
        default="agents.catalog:build_catalog",
        description="`module:function` that builds the catalog from these settings (custom agents and tools).",
    )
    runtime: str = Field(
        default="agents.runtime:cluster_parts",
        description="`module:function` that builds what a run needs (steps, answer, concurrency) from these "
        "settings in a Flyte cluster's task pods: the composition root App.open also uses.",
    )
    flyte_local_persistence: bool = Field(
        default=True,
        description="Record local runs in Flyte's own local run store too (~/.flyte/local-cache), so "
        "`flyte start tui` and list_runs(source='flyte') show them without a cluster.",
    )
    servers: Path | None = Field(
        default=None,
        description='A servers.json in the MCP hosts\' shape ({"mcpServers": {...}}): each server becomes a '
        "specialist agent whose tools are the server's tools.",
    )
    cluster_pod: bool = Field(
        default=False,
        description="Set by planner-mcp in a Flyte cluster's task pods: stdio MCP servers are left out there "
        'unless their entry says "on_cluster": true.',
    )
    sandbox: SandboxLimits = Field(
        default_factory=SandboxLimits, description="Code sandbox limits, e.g. PLANNER_MCP_SANDBOX__WALL_TIME_S=20."
    )

    @property
    def db_path(self) -> Path:
        return self.home / "runs.sqlite3"

    @property
    def plan_limits(self) -> PlanLimits:
        return PlanLimits(max_steps=self.max_steps, max_string_chars=self.max_string_chars)
