"""Bounded reading of a run's pipes, and killing everything the run started.

Never buffer what a program writes without a bound: a naive `capture_output=True` kept 1.7 GiB
of a flood in 7 s on our machines. Captures keep a head and a tail and count the rest.

Protocols are used rather than `Process.wait()`, which (3.11.7+) also waits for every pipe to
close: a process the program left behind could hold stdout open and make a finished run look hung.
"""

import asyncio
import contextlib
import logging
import os
import signal
import sys

import anyio

logger = logging.getLogger(__name__)

# Past its kept part, a stream is drained this much further before the run is stopped: a program
# that logs too much but then finishes still gets to return its result.
KILL_AFTER_EXCESS = 1024 * 1024
# Once the program is gone its pipes close at once in the namespace tiers; a process that escaped
# the rlimits tier may hold them, and is not waited for longer than this.
DRAIN_GRACE_S = 2.0
# SIGKILL is not refused; a process stuck in the kernel (a dead NFS mount) may still take long.
REAP_TIMEOUT_S = 30.0


class Capture:
    """The first three quarters and the last quarter of a stream, at most `limit` bytes in all."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.total = 0
        self._head_limit = limit - limit // 4
        self._head = bytearray()
        self._tail = bytearray()

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self._head_limit - len(self._head)
        if room > 0:
            self._head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self._tail += chunk
            excess = len(self._tail) - (self.limit - self._head_limit)
            if excess > 0:
                del self._tail[:excess]

    @property
    def truncated(self) -> bool:
        return self.total > len(self._head) + len(self._tail)

    @property
    def far_over(self) -> bool:
        return self.total > self.limit + KILL_AFTER_EXCESS

    def data(self) -> bytes:
        """The kept bytes; where `truncated`, head and tail are joined at the cut."""
        return bytes(self._head + self._tail)

    def text(self) -> str:
        if not self.truncated:
            return self.data().decode("utf-8", errors="replace")
        head = self._head.decode("utf-8", errors="replace")
        tail = self._tail.decode("utf-8", errors="replace")
        omitted = self.total - len(self._head) - len(self._tail)
        return f"{head}\n[... {omitted} bytes omitted ...]\n{tail}"


class RunProtocol(asyncio.SubprocessProtocol):
    """Feeds stdout and stderr into captures; `attention` is set on exit or on an output flood."""

    def __init__(self, stdout: Capture, stderr: Capture, attention: asyncio.Event) -> None:
        self.captures = {1: stdout, 2: stderr}
        self.attention = attention
        self.exited = asyncio.Event()
        self.pipes_closed = asyncio.Event()
        self._open = {1, 2}

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        capture = self.captures[fd]
        capture.feed(data)
        if capture.far_over:
            self.attention.set()

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._open.discard(fd)
        if not self._open:
            self.pipes_closed.set()

    def process_exited(self) -> None:
        self.exited.set()
        self.attention.set()


class PipeProtocol(asyncio.Protocol):
    """Feeds one read pipe into a capture."""

    def __init__(self, capture: Capture, attention: asyncio.Event) -> None:
        self.capture = capture
        self.attention = attention
        self.closed = asyncio.Event()

    def data_received(self, data: bytes) -> None:
        self.capture.feed(data)
        if self.capture.far_over:
            self.attention.set()

    def eof_received(self) -> bool:
        self.closed.set()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()


def child_pids(pid: int) -> list[int]:
    """Direct children of `pid` (the pid-namespace init of a run), found through /proc."""
    if not sys.platform.startswith("linux"):
        return []
    children = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process is gone already
        if len(fields) > 1 and int(fields[1]) == pid:
            children.append(int(entry.name))
    return children


def _kill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _kill_group(group: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGKILL)


def _pidfds(pids: list[int]) -> list[int]:
    fds = []
    for pid in pids:
        try:
            fds.append(os.pidfd_open(pid))
        except (AttributeError, OSError):
            continue  # gone already, or no pidfds here (not Linux 5.3+): nothing to wait for
    return fds


async def _until_exited(pidfds: list[int], timeout_s: float) -> None:
    """Wait until the processes behind `pidfds` have exited (a pidfd turns readable); close them."""
    loop = asyncio.get_running_loop()
    waiting = set(pidfds)
    all_exited = asyncio.Event()

    def exited(fd: int) -> None:
        loop.remove_reader(fd)
        waiting.discard(fd)
        if not waiting:
            all_exited.set()

    try:
        for fd in pidfds:
            loop.add_reader(fd, exited, fd)
        if waiting:
            with anyio.move_on_after(timeout_s):
                await all_exited.wait()
    finally:
        for fd in waiting:
            loop.remove_reader(fd)
        for fd in pidfds:
            os.close(fd)


async def stop(transport: asyncio.SubprocessTransport, run: RunProtocol, report: PipeProtocol) -> bool:
    """Kill the run's whole process tree, reap it and let its pipes drain; cannot be cancelled.

    Returns whether the run was still running, i.e. whether it was killed rather than finished.

    The run's direct children are killed first, by pid: in the namespace tiers the only one is the
    init of the run's pid namespace, and its death kills every process inside, even one that left
    the process group and cleared its parent-death signal. An init exits only after everything in
    its namespace is gone, so waiting for it means no process of the run survives this call. Then
    the process group goes, also after a normal exit: what the program left in it ends with the run.
    """
    pid = transport.get_pid()
    killed = not run.exited.is_set()
    with anyio.CancelScope(shield=True):
        if killed:
            pidfds: list[int] = []
            try:
                children = await anyio.to_thread.run_sync(child_pids, pid)
                pidfds = _pidfds(children)
                _kill(children)
            finally:
                # Killed first, the outer process could not reap the init: it would linger a zombie.
                await _until_exited(pidfds, REAP_TIMEOUT_S)
                _kill_group(pid)
        else:
            _kill_group(pid)
        with anyio.move_on_after(REAP_TIMEOUT_S):
            await run.exited.wait()
        if not run.exited.is_set():
            logger.error("sandbox process %s survived SIGKILL for %s s", pid, REAP_TIMEOUT_S)
        with anyio.move_on_after(DRAIN_GRACE_S):
            await run.pipes_closed.wait()
            await report.closed.wait()
        transport.close()
    return killed
