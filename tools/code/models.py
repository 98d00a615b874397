"""The sandbox's configuration, the result of one run (pydantic at the tool boundary), and what a
code step's value is.

A code step (a `run_python` tool step, or a code agent step) has one value shape: the program's
`result` when it set one, else its printed output (stripped). A program that exits non-zero,
raises, hits a limit or times out fails its step with ProgramFailedError (the end of its stderr, or
the limit hit). The whole PythonRun is kept beside the value as the step's `details`.
"""

import signal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from tools.errors import ToolError

# Strongest first. "bubblewrap": own filesystem view, no network, dedicated uid. "unshare": own
# network/pid/mount namespaces and a non-root uid, but the host filesystem stays visible.
# "rlimits": resource limits only (e.g. macOS). The weaker two run only when the operator opts in.
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
    bwrap: str | None = Field(
        default=None, description="The bubblewrap binary that ran the code (system or bundled), its version and path."
    )
    warning: str | None = Field(default=None, description="What a weaker tier exposes, and how to get bubblewrap.")

    @property
    def failed(self) -> bool:
        return self.exit_code != 0 or self.timed_out or self.limit_hit is not None or self.result_error is not None


# The end of stderr that a failed step's message keeps: the exception, and some lines above it.
_STDERR_LINES = 12
_STDERR_CHARS = 1500

_LIMIT_TEXT: dict[str, str] = {
    "wall_time": "was stopped at its wall-clock limit",
    "cpu_time": "was stopped at its CPU-time limit",
    "memory": "ran out of memory (its memory limit)",
    "processes": "hit its limit on processes and threads",
    "file_size": "hit its file-size limit",
    "disk": "filled its work dir (the work-dir size limit)",
    "output": "was stopped for printing far past its output limit",
}


class ProgramFailedError(ToolError):
    """The program exited non-zero, raised, hit a limit or timed out; `details` holds the whole run."""


def failure_message(run: PythonRun) -> str:
    """Why the program failed, for a person or a model: the limit hit and the end of its stderr."""
    if run.limit_hit is not None:
        what = f"the program {_LIMIT_TEXT[run.limit_hit]} after {run.duration_s:g} s"
    elif run.exit_code < 0:
        try:
            name = signal.Signals(-run.exit_code).name
        except ValueError:
            name = f"signal {-run.exit_code}"
        what = f"the program was killed by {name}"
    elif run.exit_code != 0:
        what = f"the program failed with exit code {run.exit_code}"
    else:
        return f"the program ran, but {run.result_error}"
    tail = "\n".join(run.stderr.rstrip().splitlines()[-_STDERR_LINES:])[-_STDERR_CHARS:]
    return f"{what}; its stderr ends:\n{tail}" if tail else f"{what} (nothing on stderr)"


def program_value(run: Any) -> JsonValue:
    """A code step's value: the program's `result`, else its output; ProgramFailedError when it failed.

    `run` is a PythonRun or its JSON form (what the tool call returns).
    """
    run = PythonRun.model_validate(run)
    if run.failed:
        raise ProgramFailedError(failure_message(run), run.model_dump(mode="json"))
    return run.result if run.result is not None else run.stdout.strip()
