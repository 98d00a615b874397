"""Where the cluster is, and Flyte's process-wide client pointed at it.

Where the cluster is: `Settings.flyte_*` fields first, then Flyte's own configuration
(`FLYTE_*` environment variables, then the config file: `PLANNER_MCP_FLYTE_CONFIG` or Flyte's
search path, e.g. `.flyte/config.yaml`), and `FLYTE_API_KEY`. Also which settings travel with a run
to the cluster's task bodies (never a secret).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planning import flyte_setup
from planning.flyte_env import PROJECT_ROOT
from planning.remote.errors import FlyteNotConfiguredError
from planning.settings import Settings

flyte = flyte_setup.import_flyte()

# After flyte_setup has tamed Flyte's stdout habits (the MCP wire in stdio mode).
from flyte.config._config import ImageConfig, PlatformConfig, TaskConfig  # noqa: E402
from flyte.config._reader import ConfigFile, resolve_config_path  # noqa: E402

logger = logging.getLogger(__name__)

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
    local_persistence: bool = False  # Flyte's local run store for local runs (Settings.flyte_local_persistence)

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
        local_persistence=settings.flyte_local_persistence,
    )


# The target the process-wide Flyte client was last initialized for (Flyte keeps one client).
_active_target: FlyteTarget | None = None


async def init_flyte(target: FlyteTarget) -> None:
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
        # Never mirror local runs onto the cluster, whatever the config file says (`local.tracked`);
        # recording them in Flyte's local run store is the local engine's setting, kept here since
        # Flyte has one configuration per process.
        local_tracked=False,
        local_persistence=target.local_persistence,
        **auth,
    )
    _active_target = target


def forwarded_env(settings: Settings, environ: Mapping[str, str]) -> dict[str, str]:
    """The non-secret settings the cluster's task bodies should see (set in `environ`, not empty)."""
    forwarded = {
        name: value
        for name, value in environ.items()
        if (name in _FORWARDED or name.startswith(_FORWARDED_PREFIXES))
        and not any(word in name for word in _NEVER_FORWARDED)
        and value.strip()
    }
    servers = settings.servers
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
