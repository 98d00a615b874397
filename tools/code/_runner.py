"""Runs one untrusted program; executed by the sandboxed interpreter (`python -I -S`), never imported.

Usage: python -I -S -u _runner.py PROGRAM REPORT_FD LIMITS_JSON

The runner applies the resource limits to itself (they are inherited by everything the program
starts and cannot be raised again without privileges), runs PROGRAM as `__main__` with runpy, and
reports to the host on REPORT_FD, a pipe that is not stdout, so nothing the program prints can be
taken for the runner's report. REPORT_FD carries JSON lines:

    {"event": "started", "unapplied_limits": [...]}           before the program runs
    {"event": "finished", "exit_code": 0, "result_json": ..., "result_error": ..., "limit_hit": ...}

No "started" line means the sandbox itself failed to start; no "finished" line means the program
was killed (by a limit, the host, or itself with os._exit).
"""

import contextlib
import errno
import json
import os
import resource
import runpy
import signal
import sys
import traceback

_started_pid = os.getpid()


def _send(report_fd: int, message: dict) -> None:
    data = (json.dumps(message, ensure_ascii=False) + "\n").encode("utf-8")
    while data:
        data = data[os.write(report_fd, data) :]


def _apply_limits(limits: dict) -> list:
    """Set soft and hard limits alike, so the program cannot raise them; return what failed."""
    wanted = [
        ("RLIMIT_CORE", 0, 0),
        ("RLIMIT_CPU", limits["cpu_s"], limits["cpu_s"] + 1),  # SIGXCPU first, SIGKILL a second later
        ("RLIMIT_AS", limits["as_bytes"], limits["as_bytes"]),
        ("RLIMIT_NPROC", limits["nproc"], limits["nproc"]),
        ("RLIMIT_FSIZE", limits["fsize_bytes"], limits["fsize_bytes"]),
        ("RLIMIT_NOFILE", limits["nofile"], limits["nofile"]),
    ]
    failed = []
    for name, soft, hard in wanted:
        try:
            resource.setrlimit(getattr(resource, name), (soft, hard))
        except (AttributeError, ValueError, OSError) as exc:
            failed.append(f"{name}: {exc}")
    return failed


def _limit_hit(exc: BaseException):
    """Name the limit an uncaught exception comes from, when it clearly comes from one."""
    if isinstance(exc, MemoryError):
        return "memory"
    if isinstance(exc, RuntimeError) and "can't start new thread" in str(exc):
        return "processes"  # RLIMIT_NPROC counts threads too
    if isinstance(exc, OSError) and exc.errno is not None:
        return {errno.EAGAIN: "processes", errno.EFBIG: "file_size", errno.ENOSPC: "disk"}.get(exc.errno)
    return None


def _print_traceback(exc: BaseException, program: str) -> None:
    """Print the traceback as plain `python program.py` would, without the runner's own frames."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != program:
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb)


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    sys.stderr.write(f"{code}\n")  # sys.exit("message") prints the message, like python does
    return 1


def _result(namespace: dict, max_bytes: int):
    """The program's `result` as JSON text, or why it cannot be returned."""
    if "result" not in namespace:
        return None, None
    value = namespace["result"]
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        return None, (
            f"`result` holds a {type(value).__name__}, which is not JSON ({exc}); set `result` to a "
            "dict, list, str, int, float, bool or None (convert sets to lists, objects to dicts)"
        )
    size = len(text.encode("utf-8"))
    if size > max_bytes:
        return None, (
            f"`result` is {size} bytes as JSON, over the {max_bytes} byte limit; return a summary "
            "(counts, the first items) instead of everything"
        )
    return text, None


def main() -> None:
    program, report_fd, limits = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
    os.set_inheritable(report_fd, False)  # programs the code starts get no report channel
    # Past RLIMIT_FSIZE a write fails with EFBIG instead of killing the process without a word.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    # Past RLIMIT_CPU, SIGXCPU ends the process even inside a long C call (a Python handler would
    # wait for the call to return); the host reads the signal from the exit status.
    signal.signal(signal.SIGXCPU, signal.SIG_DFL)
    unapplied = _apply_limits(limits)
    if unapplied and sys.platform.startswith("linux"):
        # Fail closed: on Linux every limit must hold before untrusted code runs.
        _send(report_fd, {"event": "refused", "unapplied_limits": unapplied})
        os._exit(125)
    if os.name == "posix":
        os.umask(0o077)
    _send(report_fd, {"event": "started", "unapplied_limits": unapplied})

    sys.argv = [program]
    namespace = None
    exit_code, limit_hit = 0, None
    try:
        # The untrusted program runs here, and only ever inside the sandbox.
        namespace = runpy.run_path(program, run_name="__main__")
    except SystemExit as exc:
        exit_code = _exit_code(exc.code)
    except BaseException as exc:  # noqa: BLE001 - the program's own failure, reported like python does
        exit_code, limit_hit = 1, _limit_hit(exc)
        with contextlib.suppress(OSError, ValueError):  # stderr closed: the exit code still tells
            _print_traceback(exc, program)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # the program closed its own output
            stream.flush()
    if os.getpid() != _started_pid:
        # A process the program forked got here: it ends like the program would, without reporting.
        os._exit(exit_code)

    result_json, result_error = (None, None) if namespace is None else _result(namespace, limits["result_bytes"])
    report = {
        "event": "finished",
        "exit_code": exit_code,
        "result_json": result_json,
        "result_error": result_error,
        "limit_hit": limit_hit,
    }
    with contextlib.suppress(OSError):  # the program closed the pipe: the exit status still tells
        _send(report_fd, report)
    # Leave at once: the report is sent, and atexit hooks or lingering threads of the program must
    # not run on after it.
    os._exit(exit_code)


if __name__ == "__main__":
    main()
