"""The Flyte task environments: what a run asks of a cluster (image, secrets, resources, reuse).

Three environments, so each kind of work gets only what it needs:

- `env` (`planner_mcp`): the orchestrator `run_plan`. It schedules steps and writes the answer
  (the synthesis LLM: `OPENAI_API_KEY`). Not reusable: a run holds it for its whole length.
- `agents_env` (`planner_mcp_agents`): `run_step` for every agent the catalog does not mark
  `isolated` (math, string, web_search, weather by default). Warm containers (`ReusePolicy`) serve
  many short steps; the LLM and search keys are injected.
- `code_env` (`planner_mcp_code`): `run_code_step`, for `isolated` agents (the code agent), in their
  own pods (never reused, so one program's leftovers never meet the next), with bubblewrap for the
  sandbox, more CPU and memory, and only the LLM key: nothing else for untrusted code to find.

Secrets are Flyte secrets mounted as environment variables when a task starts; no key is ever
part of an image or of a task's inputs. Everything here is inert in local mode (Flyte ignores
images, secrets, resources, reuse and timeouts there); it matters on a cluster.

The image is built from the project's own `pyproject.toml` and `uv.lock`: the cluster runs exactly
the locked dependencies. The code itself travels with each run as Flyte's code bundle.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from planning import flyte_setup

flyte = flyte_setup.import_flyte()

# The repository root: where pyproject.toml and uv.lock live (the layout Flyte bundles code from).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
PYTHON_VERSION = (3, 11)

# Secret key in the Flyte secret store -> environment variable the task sees.
OPENAI_SECRET = flyte.Secret(key="openai_api_key", as_env_var="OPENAI_API_KEY")
TAVILY_SECRET = flyte.Secret(key="tavily_api_key", as_env_var="TAVILY_API_KEY")
BRAVE_SECRET = flyte.Secret(key="brave_api_key", as_env_var="BRAVE_API_KEY")

# Flyte-enforced bounds (remote only; locally StepRunner enforces each agent's own timeout).
# A step's worst case is its agent timeout (<= 60 s) times 3 attempts plus backoff, far below
# max_runtime; queueing allows for cold nodes and image pulls.
STEP_RETRIES = 2  # pod-level failures (eviction, OOM); tool failures come back as outcomes
STEP_TIMEOUT = flyte.Timeout(max_runtime=timedelta(minutes=15), max_queued_time=timedelta(minutes=30))
PLAN_RETRIES = 1  # one more attempt when the orchestrator's pod is lost (eviction, node failure)
PLAN_TIMEOUT = flyte.Timeout(max_runtime=timedelta(hours=4), max_queued_time=timedelta(minutes=30))

# The locked dependencies, without the project itself (its code comes in the code bundle).
base_image = flyte.Image.from_debian_base(
    python_version=PYTHON_VERSION, install_flyte=False, name="planner-mcp"
).with_uv_project(PROJECT_ROOT / "pyproject.toml", uvlock=PROJECT_ROOT / "uv.lock")

# Reusable containers run through Union's actor bridge, which must be in the task image.
agents_image = base_image.with_pip_packages("unionai-reuse>=0.1.9")
code_image = base_image.with_apt_packages("bubblewrap")

agents_env = flyte.TaskEnvironment(
    name="planner_mcp_agents",
    description="planner-mcp specialist steps: math, string, web_search, weather",
    image=agents_image,
    resources=flyte.Resources(cpu=1, memory="1Gi"),
    secrets=[OPENAI_SECRET, TAVILY_SECRET, BRAVE_SECRET],
    reusable=flyte.ReusePolicy(replicas=(1, 4), concurrency=8, idle_ttl=300, scaledown_ttl=120),
)

code_env = flyte.TaskEnvironment(
    name="planner_mcp_code",
    description="planner-mcp code agent steps: Python in a bubblewrap sandbox, isolated pods",
    image=code_image,
    resources=flyte.Resources(cpu=2, memory="2Gi"),
    secrets=[OPENAI_SECRET],
)

env = flyte.TaskEnvironment(
    name="planner_mcp",
    description="planner-mcp: plans of specialist agent steps",
    image=base_image,
    resources=flyte.Resources(cpu=1, memory="1Gi"),
    secrets=[OPENAI_SECRET],
    depends_on=[agents_env, code_env],
)
