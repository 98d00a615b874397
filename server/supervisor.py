"""The runs this server is executing, whether a tool call waits for them or not.

Every run executes as a task of the server's lifespan task group, so a run started with
`wait=False` outlives the tool call that started it. A waiting caller only watches: when the
client cancels the call, the run is cancelled cooperatively (the engine records it `cancelled`)
and the caller waits, shielded and bounded, until that is written. On shutdown every run still
executing is cancelled the same way before the store closes.

A waiting caller gets progress notifications for every phase (planning, each step, the answer),
with a heartbeat while a phase is quiet, so hosts that reset their timeout on progress keep
waiting; and it stops waiting at its deadline, leaving the run to go on (`run` returns None).
Events arrive on Flyte's loop thread; they are handed back to the server loop with
`call_soon_threadsafe` before anything touches the MCP session.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectSendStream

from planning.errors import RunAbortedError, RunBusyError
from planning.events import OnEvent, PhaseEvent, RunEvent
from planning.records import RunRecord, RunStatus, StepStatus
from planning.store import StoreError
from server.app import App

logger = logging.getLogger(__name__)

# Receives (progress, total, message); progress strictly increases, as MCP requires.
ReportProgress = Callable[[float, float | None, str], Awaitable[None]]


# How long a cancelled run may take to stop and be recorded before its caller gives up waiting.
CANCEL_GRACE_S = 30.0


@dataclass
class _Active:
    on_event: OnEvent | None = None
    synthesize: bool = True
    done: anyio.Event = field(default_factory=anyio.Event)
    cancel_requested: bool = False
    record: RunRecord | None = None
    error: Exception | None = None
    scope: anyio.CancelScope | None = None  # set once the run's task runs


class RunSupervisor:
    """Starts, tracks and cancels the runs executing in this server process."""

    def __init__(self, app: App, task_group: TaskGroup) -> None:
        self.app = app
        self._heartbeat_s = app.settings.progress_interval_s
        self._task_group = task_group
        self._active: dict[str, _Active] = {}

    def is_active(self, run_id: str) -> bool:
        return run_id in self._active

    def start(self, run_id: str, *, synthesize: bool = True) -> None:
        """Execute (or plan, or resume) a run in the background; returns at once."""
        self._spawn(run_id, None, synthesize)

    async def run(
        self,
        run_id: str,
        report: ReportProgress | None = None,
        *,
        synthesize: bool = True,
        deadline_s: float = math.inf,
    ) -> RunRecord | None:
        """Execute (or plan, or resume) a run and wait for its end, at most `deadline_s`: then None
        is returned and the run goes on. Cancelling the caller cancels the run."""
        relay = _ProgressRelay(asyncio.get_running_loop(), self._heartbeat_s) if report is not None else None
        active = self._spawn(run_id, relay, synthesize)
        try:
            async with anyio.create_task_group() as forwarding:
                if relay is not None and report is not None:
                    forwarding.start_soon(relay.forward, report)
                try:
                    with anyio.move_on_after(deadline_s):
                        await active.done.wait()
                    if relay is not None and active.record is not None:
                        relay.end(active.record.status)
                finally:
                    if relay is not None:
                        relay.close()
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self.cancel(run_id)
                with anyio.move_on_after(CANCEL_GRACE_S):
                    await active.done.wait()
            raise
        if not active.done.is_set():
            return None
        if active.error is not None:
            raise active.error
        if active.record is None:
            raise RunAbortedError(f"run {run_id!r} stopped because the server is shutting down; resume it later")
        return active.record

    async def wait(self, run_id: str, timeout_s: float) -> bool:
        """Wait (at most `timeout_s`) for a run executing here to end; True if it is not executing."""
        active = self._active.get(run_id)
        if active is None:
            return True
        with anyio.move_on_after(timeout_s):
            await active.done.wait()
        return active.done.is_set()

    async def cancel(self, run_id: str) -> RunRecord:
        """Cancel a run, whether it executes or is being planned here, has not started yet, or its
        process died."""
        active = self._active.get(run_id)
        if active is not None:
            # A run whose task has not started yet must not start at all.
            active.cancel_requested = True
            if active.scope is not None and self.app.store.get_run(run_id).status is RunStatus.PLANNING:
                # The planner's call is only awaited: cancelling it records the run `cancelled`.
                active.scope.cancel()
                with anyio.move_on_after(CANCEL_GRACE_S):
                    await active.done.wait()
                return self.app.store.get_run(run_id)
        return await self.app.cancel(run_id)

    async def shutdown(self, grace_s: float = CANCEL_GRACE_S) -> None:
        """Cancel every run executing here and wait (bounded) until each is recorded."""
        for run_id in list(self._active):
            with suppress(StoreError):
                await self.cancel(run_id)
        with anyio.move_on_after(grace_s):
            for active in list(self._active.values()):
                await active.done.wait()
        if self._active:
            logger.warning("runs still executing at shutdown: %s", ", ".join(self._active))

    def _spawn(self, run_id: str, on_event: OnEvent | None, synthesize: bool) -> _Active:
        if run_id in self._active:
            raise RunBusyError(
                f"run {run_id!r} is already executing in this server; call get_run({run_id!r}) to follow it, "
                f"or cancel_run({run_id!r}) to stop it"
            )
        active = self._active[run_id] = _Active(on_event=on_event, synthesize=synthesize)
        self._task_group.start_soon(self._execute, run_id, active, name=f"run {run_id}")
        return active

    async def _execute(self, run_id: str, active: _Active) -> None:
        try:
            with anyio.CancelScope() as active.scope:
                # No await between this check and the engine taking the run: a cancel either
                # lands before (and the run never starts) or reaches the engine.
                if not active.cancel_requested:
                    record = await self.app.execute(run_id, active.on_event, synthesize=active.synthesize)
                    logger.info("run %s ended %s", run_id, record.status.value)
                    active.record = record
            if active.scope.cancelled_caught:
                active.record = self.app.store.get_run(run_id)
        except Exception as exc:  # boundary: handed to the waiting caller; must not stop the task group
            logger.warning("run %s could not execute: %s", run_id, exc, exc_info=not isinstance(exc, StoreError))
            active.error = exc
        finally:
            if self._active.get(run_id) is active:
                del self._active[run_id]
            active.done.set()


@dataclass
class RunEnded:
    """The last progress notification: the run is recorded with this status."""

    status: RunStatus


class _ProgressRelay:
    """Run events from Flyte's thread -> progress reports on the server loop, in order.

    The run counts as steps + 1 units (the last one is the answer): progress = steps done + half
    the steps running, the answer phase half a unit, the run's end the total; a heartbeat in a quiet phase adds a thousandth, so progress always rises,
    as MCP requires, and stays below the next real step. Before the plan is known there is no total.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, heartbeat_s: float) -> None:
        self._loop = loop
        self._heartbeat_s = heartbeat_s
        send, self._receive = anyio.create_memory_object_stream[RunEvent | RunEnded](max_buffer_size=math.inf)
        self._send: MemoryObjectSendStream[RunEvent | RunEnded] = send
        self._running: set[int] = set()
        self._total: int | None = None
        self._progress = 0.0
        self._reported = False
        self._message = "starting"
        self._phase_started = loop.time()

    def __call__(self, event: RunEvent) -> None:
        """Called on Flyte's loop thread (or on the server loop, for planning events)."""
        with suppress(RuntimeError):  # the server loop has closed: nobody is watching any more
            self._loop.call_soon_threadsafe(self._put, event)

    def _put(self, event: RunEvent | RunEnded) -> None:
        # Events that arrive after the caller stopped watching are dropped.
        with suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._send.send_nowait(event)

    def end(self, status: RunStatus) -> None:
        """Called on the server loop once the run is recorded: the last report, then no more."""
        self._put(RunEnded(status=status))
        self.close()

    def close(self) -> None:
        self._send.close()

    def _apply(self, event: RunEvent | RunEnded) -> float:
        """Take in an event; returns the progress it stands for."""
        self._phase_started = self._loop.time()
        if isinstance(event, RunEnded):
            self._total = self._total or 1
            self._message = f"run {event.status.value}"
            return self._total
        if isinstance(event, PhaseEvent):
            if event.phase == "planning":
                self._message = "planning the request"
            elif event.phase == "steps":
                self._total = event.total + 1
                self._message = f"planned {event.total} step(s)"
            else:
                self._message = "writing the answer"
                return (self._total or 1) - 0.5
            return self._progress
        if event.status is StepStatus.RUNNING:
            self._running.add(event.step_id)
        else:
            self._running.discard(event.step_id)
        self._total = event.total + 1
        self._message = f"{event.done} done of {event.total}: step {event.step_id} ({event.agent}) {event.status.value}"
        return event.done + len(self._running) / 2

    def _rise(self, value: float) -> None:
        self._progress = max(value, self._progress + 0.001) if self._reported else value
        self._reported = True

    async def forward(self, report: ReportProgress) -> None:
        async with self._receive:
            while True:
                event: RunEvent | RunEnded | None = None
                with anyio.move_on_after(self._heartbeat_s):
                    try:
                        event = await self._receive.receive()
                    except anyio.EndOfStream:
                        return
                if event is not None:
                    self._rise(self._apply(event))
                    message = self._message
                else:
                    self._rise(self._progress)
                    message = f"{self._message} ({self._loop.time() - self._phase_started:.0f} s)"
                try:
                    await report(self._progress, self._total, message)
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    return  # the client went away; the run goes on (or is cancelled with the call)
