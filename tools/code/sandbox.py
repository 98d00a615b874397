"""`Sandbox.run_python`: the code agent's tool. The code comes from a model that read web pages:
it is treated as hostile, and runs in bubblewrap, or in a weaker tier the operator named, or not at
all (see tiers.py).

One run: a fresh temp dir holds the runner and the program (read-only to the sandbox); the sandboxed
interpreter runs the runner, which applies the rlimits and runs the program; stdout and stderr are
read concurrently with a cap; the runner reports `result` on its own pipe; on the wall-clock limit,
an output flood or cancellation the whole process tree is killed and reaped; the temp dir is removed
(and, should the server die first, by the next process: see rundirs.py).
"""

import asyncio
import functools
import importlib.resources
import json
import logging
import os
import signal
import tempfile
from dataclasses import dataclass
from typing import Annotated

import anyio
from pydantic import Field

from tools.arguments import NOT_BOOL, checked
from tools.code import _process, _report, rundirs, tiers
from tools.code.models import TIERS, LimitName, PythonRun, SandboxLimits, Tier
from tools.code.tiers import ENV_TIER
from tools.errors import ToolError, TransientToolError

logger = logging.getLogger(__name__)

_RUNNER_NAME = "runner.py"
_PROGRAM_NAME = "main.py"
# The runner's report: two JSON lines around `result`, which JSON escaping may double in size.
_REPORT_OVERHEAD_BYTES = 64 * 1024
_REPORT_FD = "{report_fd}"


@functools.cache
def _runner_source() -> bytes:
    return importlib.resources.files("tools.code").joinpath("_runner.py").read_bytes()


@dataclass(frozen=True)
class _Prepared:
    run_dir: str
    owner: int  # the run dir's lock, held while the run lasts (see rundirs)
    argv: list[str]
    cwd: str


class Sandbox:
    """Runs untrusted Python programs in the bubblewrap sandbox (see tiers.py), or fails closed.

    A weaker tier runs only when the operator names it: `tier`, or the environment variable
    PLANNER_MCP_SANDBOX_TIER (the weaker of the two wins); every result of a weaker tier carries a
    warning saying what it exposes. Several runs may be in flight at once: each has its own temp
    dir, processes and namespaces.
    """

    def __init__(self, limits: SandboxLimits | None = None, tier: Tier | None = None) -> None:
        self.limits = limits or SandboxLimits()
        weakest = 0
        for source, value in (("tier", tier), (ENV_TIER, os.environ.get(ENV_TIER) or None)):
            if value is None:
                continue
            if value not in TIERS:
                raise ValueError(f"{source}={value!r} is not a sandbox tier; use one of {', '.join(TIERS)}")
            weakest = max(weakest, TIERS.index(value))
        self.tier: Tier = TIERS[weakest]
        self._setup: tiers.TierSetup | None = None
        rundirs.remove_leftovers_once(tempfile.gettempdir())

    @checked
    async def run_python(
        self,
        code: Annotated[str, Field(description="A complete Python 3 program (standard library only).")],
        timeout_s: Annotated[
            Annotated[float, Field(gt=0, allow_inf_nan=False), NOT_BOOL] | None,
            Field(description="Wall-clock seconds before the program is killed; leave out for the maximum."),
        ] = None,
    ) -> PythonRun:
        """Run a Python 3 program in an isolated sandbox; return what it printed and its `result`.

        Write a complete, self-contained program. Only the standard library is available (math,
        json, re, datetime, statistics, decimal, fractions, itertools, collections, ...): no
        third-party packages, no network, no environment variables, and no files except in the
        current directory, which starts empty and is thrown away after the run. Nothing persists
        between runs. Print what you want to see, and set a variable named `result` to the answer
        (a dict, list, str, int, float, bool or None) to get it back as data in `result`.

        An uncaught exception is reported, not raised: exit_code is then non-zero and stderr holds
        the traceback; fix the program and run it again. Default limits: 10 s wall clock
        (timeout_s may shorten it), 5 s CPU, 512 MiB memory, 64 processes, 16 MiB per file,
        64 KiB kept per output stream (the middle of longer output is cut). `limit_hit` names
        the limit that stopped the program.
        """
        wall_s = self._check(code, timeout_s)
        setup = await self._tier_setup()
        prepared = await anyio.to_thread.run_sync(self._prepare, setup, code)
        try:
            return await self._execute(setup, prepared, wall_s)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(rundirs.remove, prepared.run_dir, prepared.owner)

    def _check(self, code: str, timeout_s: float | None) -> float:
        """The wall-clock limit for this run; ToolError naming the fix for input over this sandbox's
        limits (the types and fixed bounds are checked by the signature)."""
        if not code.strip():
            raise ToolError(
                f"code={code[:20]!r} is empty: pass the Python program to run, for example "
                "'print(2 + 2)' or 'result = sum(range(10))'"
            )
        try:
            size = len(code.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise ToolError(f"code holds text that is not valid Unicode ({exc}); send plain UTF-8 text") from exc
        if size > self.limits.max_code_bytes:
            raise ToolError(
                f"code is {size} bytes, over the {self.limits.max_code_bytes} byte limit: send a shorter "
                "program (compute data instead of pasting it)"
            )
        most = self.limits.wall_time_s
        if timeout_s is None:
            return most
        if timeout_s > most:
            raise ToolError(
                f"timeout_s={timeout_s:g} is out of range: pass a number of seconds above 0 and at most "
                f"{most:g}, or leave it out to allow {most:g} s"
            )
        return float(timeout_s)

    async def _tier_setup(self) -> tiers.TierSetup:
        if self._setup is None:
            # Probing starts subprocesses: off the event loop. SandboxUnavailableError when the tier
            # does not work here: the step fails with the fix, and the next run probes again.
            setup = await anyio.to_thread.run_sync(tiers.resolve, self.tier)
            if setup.warning:
                logger.warning("code sandbox: %s", setup.warning)
            self._setup = setup
        return self._setup

    def _prepare(self, setup: tiers.TierSetup, code: str) -> _Prepared:
        """Create the run's temp dir with the runner and the program, and the command line (blocking)."""
        run_dir, owner = rundirs.create()
        try:
            runner = os.path.join(run_dir, _RUNNER_NAME)
            program = os.path.join(run_dir, _PROGRAM_NAME)
            with open(runner, "xb") as f:
                f.write(_runner_source())
            with open(program, "x", encoding="utf-8") as f:
                f.write(code)
            work = os.path.join(run_dir, "work")
            if setup.tier != "bubblewrap":  # bubblewrap gives the program a private tmpfs instead
                os.mkdir(work, 0o700)
            if setup.drop_to_uid is not None:
                # Readable, not writable, by the sandbox uid; the work dir is its own.
                for path, mode in ((run_dir, 0o750), (runner, 0o640), (program, 0o640)):
                    os.chown(path, 0, tiers.SANDBOX_GID)
                    os.chmod(path, mode)
                if os.path.isdir(work):
                    os.chown(work, setup.drop_to_uid, tiers.SANDBOX_GID)

            if setup.tier == "bubblewrap":
                box_runner = f"{tiers.BOX_DIR}/{_RUNNER_NAME}"
                box_program = f"{tiers.BOX_DIR}/{_PROGRAM_NAME}"
                binds = [(runner, box_runner), (program, box_program)]
                runner, program, cwd = box_runner, box_program, "/"
            else:
                binds, cwd = [], work
            limits = {
                "cpu_s": self.limits.cpu_time_s,
                "as_bytes": self.limits.memory_bytes,
                "nproc": self.limits.max_processes,
                "fsize_bytes": self.limits.max_file_bytes,
                "nofile": self.limits.max_open_files,
                "result_bytes": self.limits.max_result_bytes,
            }
            prefix = tiers.command_prefix(setup, self.limits.work_dir_bytes, binds)
            # The report pipe's fd is filled in at spawn time, once the pipe exists.
            argv = [*prefix, runner, program, _REPORT_FD, json.dumps(limits)]
            return _Prepared(run_dir, owner, argv, cwd)
        except BaseException:
            rundirs.remove(run_dir, owner)
            raise

    async def _execute(self, setup: tiers.TierSetup, prepared: _Prepared, wall_s: float) -> PythonRun:
        loop = asyncio.get_running_loop()
        attention = asyncio.Event()
        stdout = _process.Capture(self.limits.max_output_bytes)
        stderr = _process.Capture(self.limits.max_output_bytes)
        report = _process.Capture(2 * self.limits.max_result_bytes + _REPORT_OVERHEAD_BYTES)
        report_r, report_w = os.pipe()
        try:
            report_transport, report_protocol = await loop.connect_read_pipe(
                lambda: _process.PipeProtocol(report, attention), os.fdopen(report_r, "rb", buffering=0)
            )
        except BaseException:
            os.close(report_w)
            raise
        try:
            argv = [str(report_w) if arg == _REPORT_FD else arg for arg in prepared.argv]
            try:
                transport, run = await loop.subprocess_exec(
                    lambda: _process.RunProtocol(stdout, stderr, attention),
                    *argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    pass_fds=(report_w,),
                    env={},  # nothing of the server's environment (API keys) reaches the sandbox
                    cwd=prepared.cwd,
                    start_new_session=True,  # its own process group, killed as one
                )
            except OSError as exc:
                raise TransientToolError(
                    f"the {setup.tier} sandbox could not be started ({exc}); retry, and if it keeps "
                    "failing the server's sandbox setup needs fixing"
                ) from exc
            finally:
                os.close(report_w)  # the child holds the only write end now
            started_at = loop.time()
            try:
                # Wakes on exit or on an output flood; the wall-clock limit ends the wait otherwise.
                with anyio.move_on_after(wall_s):
                    await attention.wait()
                deadline_passed = not attention.is_set()
            finally:
                killed = await _process.stop(transport, run, report_protocol)
            duration_s = loop.time() - started_at
        finally:
            report_transport.close()
        timed_out = killed and deadline_passed
        flooded = killed and (stdout.far_over or stderr.far_over or report.far_over)
        returncode = transport.get_returncode()
        return self._result(
            setup, returncode, stdout, stderr, report, timed_out=timed_out, flooded=flooded, duration_s=duration_s
        )

    def _result(
        self,
        setup: tiers.TierSetup,
        returncode: int | None,
        stdout: _process.Capture,
        stderr: _process.Capture,
        report_capture: _process.Capture,
        *,
        timed_out: bool,
        flooded: bool,
        duration_s: float,
    ) -> PythonRun:
        report = _report.parse(report_capture)
        rc = returncode if returncode is not None else -signal.SIGKILL
        if not report.started:
            detail = stderr.text().strip()[-1000:]
            if report.refused is not None:
                detail = f"resource limits could not be set: {report.refused}"
            elif timed_out:
                detail = f"no start within {duration_s:.1f} s; {detail}"
            raise TransientToolError(
                f"the {setup.tier} sandbox failed to start (exit {rc}): {detail!r}; retry, and if it keeps "
                "failing the server's sandbox setup needs fixing"
            )
        killed = timed_out or flooded
        if killed:
            exit_code = -signal.SIGKILL
        elif report.exit_code is not None:
            exit_code = report.exit_code
        elif setup.tier == "bubblewrap" and rc > 128:
            exit_code = -(rc - 128)  # bwrap reports death by signal N as exit status 128 + N
        else:
            exit_code = rc

        limit_hit: LimitName | None = None
        if flooded:
            limit_hit = "output"
        elif timed_out:
            limit_hit = "wall_time"
        elif report.limit_hit is not None:
            limit_hit = report.limit_hit
        elif exit_code == -signal.SIGXCPU:
            limit_hit = "cpu_time"

        warnings = [w for w in (setup.warning,) if w]
        if report.unapplied_limits:
            warnings.append(f"limits not enforced on this system: {'; '.join(report.unapplied_limits)}")
        warning = "; ".join(warnings) or None
        if setup.tier == "rlimits":
            logger.warning("code ran WITHOUT isolation: %s", warning)

        return PythonRun(
            stdout=stdout.text(),
            stderr=stderr.text(),
            stdout_truncated=stdout.truncated,
            stderr_truncated=stderr.truncated,
            result=None if killed else report.result,
            result_error=None if killed else report.result_error,
            exit_code=exit_code,
            timed_out=timed_out,
            limit_hit=limit_hit,
            duration_s=round(duration_s, 3),
            tier=setup.tier,
            bwrap=setup.bwrap.describe() if setup.bwrap else None,
            warning=warning,
        )
