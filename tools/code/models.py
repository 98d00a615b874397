"""The sandbox's configuration and the result of one run (pydantic at the tool boundary)."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

# Strongest first. "bubblewrap": own filesystem view, no network, dedicated uid. "unshare": own
# network/pid/mount namespaces and a non-root uid, but the host filesystem stays visible.
# "rlimits": resource limits only (last resort, e.g. macOS).
Tier = Literal["bubblewrap", "unshare", "rlimits"]
TIERS: tuple[Tier, ...] = ("bubblewrap", "unshare", "rlimits")

LimitName = Literal["wall_time", "cpu_time", "memory", "processes", "file_size", "disk", "output"]

KiB = 1024
MiB = 1024 * KiB


class SandboxLimits(BaseModel):
    """What one run of untrusted code may use. Every limit is enforced by the kernel or the host."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    wall_time_s: float = Field(default=10.0, gt=0, le=600, description="Wall-clock limit; also the largest timeout_s.")
    cpu_time_s: int = Field(default=5, ge=1, le=600, description="CPU seconds (RLIMIT_CPU).")
    memory_bytes: int = Field(default=512 * MiB, ge=64 * MiB, description="Address space (RLIMIT_AS).")
    max_processes: int = Field(default=64, ge=1, le=4096, description="Processes and threads (RLIMIT_NPROC).")
    max_file_bytes: int = Field(default=16 * MiB, ge=0, description="Largest file the code may write (RLIMIT_FSIZE).")
    max_open_files: int = Field(default=256, ge=16, le=65536, description="Open file descriptors (RLIMIT_NOFILE).")
    max_output_bytes: int = Field(default=64 * KiB, ge=1 * KiB, description="Kept per output stream (stdout, stderr).")
    max_code_bytes: int = Field(default=100_000, ge=1, description="Largest program accepted, UTF-8 encoded.")
    max_result_bytes: int = Field(default=256 * KiB, ge=1 * KiB, description="Largest `result`, as JSON.")
    work_dir_bytes: int = Field(default=64 * MiB, ge=1 * MiB, description="Size of the private work dir (bubblewrap).")


class PythonRun(BaseModel):
    """What happened when the program ran. A failing program is a normal run with exit_code != 0."""

    stdout: str = Field(description="Standard output; head and tail kept when over the limit.")
    stderr: str = Field(description="Standard error, including the traceback of an uncaught exception.")
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    result: JsonValue = Field(default=None, description="The JSON value of the program's `result` variable, if set.")
    result_error: str | None = Field(default=None, description="Why `result` could not be returned, if it could not.")
    exit_code: int = Field(description="0 on success; negative: killed by that signal number.")
    timed_out: bool = False
    limit_hit: LimitName | None = Field(default=None, description="The limit that stopped the program, when known.")
    duration_s: float
    tier: Tier = Field(description="The isolation that ran the code; see detect_tier.")
    warning: str | None = Field(default=None, description="Set when the isolation was weaker than it should be.")
