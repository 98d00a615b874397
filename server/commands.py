"""The CLI's commands: `server.cli` parses the arguments and dispatches here.

The CLI's own results go to stdout; progress, logs and errors go to stderr. No Flyte, OpenAI SDK
or llama.cpp is imported here: `runs`, `show` and `schema` start in a fraction of a second; what
runs plans imports the engine when it first does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from rich.console import Console
from rich.table import Table

from agents.llm import LLM, LLMNotConfiguredError
from agents.llm.select import select_llm
from planning.cluster import PLAN_TASK
from planning.errors import EXIT_FAILED, EXIT_USAGE
from planning.events import PhaseEvent, RunEvent
from planning.mermaid import flowchart, gantt, run_flowchart
from planning.plan import Plan, plan_json_schema
from planning.records import RunRecord, RunStatus, StepStatus
from planning.settings import Settings
from planning.validate import PlanValidationError
from server.app import App
from server.cli import DEFAULT_LIMIT
from server.terminal import (
    LiveRun,
    plan_summary,
    print_plain,
    run_report,
    runs_table,
    seconds,
    status_text,
)
from server.views import RunsPage, run_timings, summary_view

logger = logging.getLogger(__name__)

# Markup is only ever in our own literals; text from plans, results and errors is printed plain
# (`_plain`), so "[/]" or ":smile:" in it is shown as written, never parsed.
err = Console(stderr=True, soft_wrap=True, emoji=False)
out = Console(highlight=False, soft_wrap=True, emoji=False)


def _select_llm(args: argparse.Namespace, settings: Settings) -> LLM | None:
    """The LLM the environment selects; when it cannot be had, commands that need none still run
    (a plan of tool steps, listing, showing) and the reason is kept for the steps that do."""
    try:
        return select_llm(os.environ, settings.home)
    except LLMNotConfiguredError as exc:
        if args.command == "plan" or (args.command == "run" and args.request is not None):
            raise
        logger.info("%s Continuing without an LLM: tool steps need none.", exc)
        return None


async def dispatch(args: argparse.Namespace) -> int:
    settings = Settings()
    app = App.open(settings, llm=_select_llm(args, settings))
    try:
        if args.command == "run":
            return await _run(app, args)
        if args.command == "plan":
            plan = (await app.plan(args.request)).plan
            _plain(out, plan.model_dump_json(indent=2, exclude_defaults=True))
            if args.mermaid:
                _plain(out, "\n```mermaid\n" + flowchart(plan) + "\n```")
            elif not args.json:
                err.print(plan_summary(plan), end="", style="dim")
                err.print("run it: save this JSON (> plan.json), then planner-mcp run --plan plan.json", style="dim")
            return 0
        if args.command == "runs":
            return await _flyte_runs(app, args) if args.flyte else _runs(app, args)
        if args.command == "show":
            record = await app.get_run(args.run_id)
            if args.json:
                _plain(out, record.model_dump_json(indent=2))
            else:
                _show(record, mermaid=args.mermaid)
            return 0
        if args.command == "resume":
            record = await _settle(app, await _with_progress(app, args.run_id, resume=True))
            return _finish(record, args.json)
        if args.command == "approve":
            return await _approve(app, args)
        if args.command == "cancel":
            record = await app.cancel(args.run_id)
            if args.json:
                _plain(out, record.model_dump_json(indent=2))
            else:
                line = status_text(record.status)
                out.print(f"run {record.id}: ", end="")
                out.print(line)
            return 0
        if args.command == "schema":
            _plain(out, json.dumps(app.catalog.describe() if args.agents else plan_json_schema(), indent=2))
            return 0
        raise AssertionError(args.command)
    finally:
        app.close()


async def _run(app: App, args: argparse.Namespace) -> int:
    if (args.plan is None) == (args.request is None):
        err.print('give either a request ("...") or --plan FILE.json')
        return EXIT_USAGE
    if args.approve and not _at_terminal():
        err.print(
            "--approve asks on the terminal, and stdin is not one: run without it, or let the plan wait with "
            "the MCP server's execute_plan(approval='required') and decide with planner-mcp approve RUN_ID"
        )
        return EXIT_USAGE
    approval = "required" if args.approve else None
    if args.plan is not None:
        # The file's text, read in main().
        plan = await app.parse_reviving(args.plan)
        record = app.submit(plan, engine=args.engine, max_replans=args.max_replans, approval=approval)
    else:
        if app.llm is None:
            raise LLMNotConfiguredError("Planning a request needs an LLM and none is configured.")
        # Recorded before planning: a request that fails to plan is a failed run to inspect or resume.
        record = app.submit_request(args.request, engine=args.engine, max_replans=args.max_replans, approval=approval)
    if not app.engine_for(record.engine).runs_to_completion:  # a cluster run: submitted, then followed
        record = await app.execute(record.id)
        url = app.store.flyte_run(record.id)
        err.print(f"submitted run {record.id} to Flyte: {url.url if url else ''}")
        err.print(f"follow it: planner-mcp show {record.id}", style="dim")
        if args.json:
            _plain(out, record.model_dump_json(indent=2))
        return 0
    record = await _settle(app, await _with_progress(app, record.id))
    return _finish(record, args.json)


def _at_terminal() -> bool:
    return sys.stdin.isatty()


async def _approve(app: App, args: argparse.Namespace) -> int:
    """`approve RUN_ID [--plan FILE | --reject]`: decide on a plan awaiting approval, then run it."""
    if args.reject:
        record = app.reject(args.run_id)
    else:
        app.approve(args.run_id, await app.parse_reviving(args.plan) if args.plan is not None else None)
        record = await _settle(app, await _with_progress(app, args.run_id, resume=True))
    return _finish(record, args.json)


async def _settle(app: App, record: RunRecord) -> RunRecord:
    """While the run waits for approval and a person is at the terminal: ask, then run on (a revised
    plan may ask again). Without a terminal the run keeps waiting; `_finish` says how to decide."""
    while record.status is RunStatus.AWAITING_APPROVAL and _at_terminal():
        try:
            # Ctrl-C at the prompt interrupts at once: asyncio's handler only cancels the main task,
            # which waits in this blocking read until a second Ctrl-C.
            with _sigint(signal.default_int_handler):
                answer = _ask(app, record)
        except KeyboardInterrupt:
            err.print(f"\ninterrupted: run {record.id} still waits for approval; decide with:")
            _plain(err, f"  planner-mcp approve {record.id}   (or --plan EDITED.json, or --reject)")
            raise
        if answer is None:
            break
        if answer == "reject":
            return app.reject(record.id)
        app.approve(record.id, answer if isinstance(answer, Plan) else None)
        record = await _with_progress(app, record.id, resume=True)
    return record


def _ask(app: App, record: RunRecord) -> Plan | str | None:
    """Show the plan and ask: "run", "reject", an edited (validated) plan, or None (decide later)."""
    err.print(f"\nrun {record.id} waits for your approval: ", end="", style="yellow")
    _plain(err, record.awaiting or "its plan needs it")
    if record.versions and record.versions[-1].kind == "replanned":
        _plain(err, f"the planner revised the plan: {record.versions[-1].reason}")
    _plain(err, record.plan.model_dump_json(indent=2, exclude_defaults=True))
    err.print(plan_summary(record.plan), end="", style="dim")
    while True:
        try:
            reply = err.input("Run this plan? [y]es, [e]dit, [n]o (reject), [l]ater: ").strip().lower()
        except EOFError:
            return None
        if reply in ("y", "yes"):
            return "run"
        if reply in ("n", "no"):
            return "reject"
        if reply in ("l", "later", ""):
            err.print(f"it waits: planner-mcp approve {record.id} [--plan FILE | --reject]", style="dim")
            return None
        if reply in ("e", "edit"):
            edited = _edit(app, record)
            if edited is not None:
                return edited


def _edit(app: App, record: RunRecord) -> Plan | None:
    """The plan in a file for the person to edit ($VISUAL or $EDITOR, else any editor while we wait),
    read back and validated; None (and why, printed) when it is not a valid plan."""
    with tempfile.TemporaryDirectory(prefix="planner-mcp-") as folder:
        path = Path(folder) / f"{record.id}.json"
        path.write_text(record.plan.model_dump_json(indent=2, exclude_defaults=True) + "\n")
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
        if editor:
            with _sigint(signal.SIG_IGN):  # the editor's own (vim cancels with it), as git does
                subprocess.run([*shlex.split(editor), str(path)], check=False)
        else:
            err.input(f"edit {path}, save it, then press Enter: ")
        try:
            return app.parse(path.read_bytes())
        except PlanValidationError as exc:
            _plain(err, str(exc), style="red")
            return None


@contextmanager
def _sigint(handler: Callable[[int, FrameType | None], object] | int) -> Iterator[None]:
    """SIGINT goes to `handler` for a while, unless this process ignores it (a background job) or
    did not set its handler from Python."""
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN or previous is None:
        yield
        return
    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


async def _with_progress(app: App, run_id: str, resume: bool = False) -> RunRecord:
    record = app.store.get_run(run_id)
    done = sum(1 for step in record.steps if step.status is StepStatus.SUCCEEDED) if resume else 0
    try:
        with LiveRun(err) as live:
            if record.status is RunStatus.PLANNING or (record.request and not record.plan.steps):
                live.planning()
            else:
                live.steps(run_id, record.step_count, done)

            def on_event(event: RunEvent) -> None:
                if not isinstance(event, PhaseEvent):
                    live.step(event.step_id, event.agent, event.status, event.done, event.total)
                elif event.phase == "planning":
                    live.planning()
                elif event.phase == "steps":
                    live.steps(run_id, event.total)
                else:
                    live.answer()

            return await (app.resume if resume else app.execute)(run_id, on_event)
    except (KeyboardInterrupt, asyncio.CancelledError):
        # The engine records the run cancelled; what finished is kept and resume runs the rest.
        err.print(f"\ninterrupted: run {run_id} stopped; finish it with:\n  planner-mcp resume {run_id}")
        raise


def _finish(record: RunRecord, as_json: bool) -> int:
    if as_json:
        _plain(out, record.model_dump_json(indent=2))
    elif record.status is RunStatus.AWAITING_APPROVAL:
        err.print(f"run {record.id}: ", end="")
        err.print(status_text(record.status))
        _plain(err, f"{record.awaiting or 'its plan needs approval'}; decide with:")
        _plain(err, f"  planner-mcp approve {record.id}   (or --plan EDITED.json, or --reject)")
    else:
        err.print(f"run {record.id}: ", end="")
        err.print(status_text(record.status), end="")
        err.print(f"  ({_elapsed(record)})", style="dim")
        err.print(f"details: planner-mcp show {record.id}", style="dim")
        if record.error and record.status is not RunStatus.SUCCEEDED:
            _plain(err, record.error, style="red")
        _plain(out, record.answer or "")
    return 0 if record.status is RunStatus.SUCCEEDED else EXIT_FAILED


def _elapsed(record: RunRecord) -> str:
    timings = run_timings(record)
    return f"{seconds(timings.wall_s)} in all, steps {seconds(timings.steps_s)}"


async def _flyte_runs(app: App, args: argparse.Namespace) -> int:
    runs = await app.list_flyte_runs(
        phase=args.phase,
        task_name=args.task or PLAN_TASK,
        created_after=args.since,
        created_before=args.until,
        limit=args.limit,
    )
    if args.json:
        _plain(out, RunsPage(runs=[summary_view(run) for run in runs]).model_dump_json(indent=2))
        return 0
    table = Table("flyte run", "phase", "planner run", "created", "console")
    for run in runs:
        table.add_row(
            run.flyte_run_name, run.phase, run.planner_run_id or "", f"{run.created_at:%Y-%m-%d %H:%M:%S}", run.url
        )
    out.print(table)
    return 0


def _runs(app: App, args: argparse.Namespace) -> int:
    runs, cursor = app.store.list_runs(
        limit=args.limit, status=RunStatus(args.status) if args.status else None, cursor=args.cursor
    )
    if args.json:
        _plain(out, RunsPage(runs=[summary_view(run) for run in runs], next_cursor=cursor).model_dump_json(indent=2))
        return 0
    if not runs:
        err.print("no runs" + (f" with status {args.status}" if args.status else ""), style="dim")
        return 0
    out.print(runs_table(runs))
    if cursor:
        # The next page of the same listing: the filters go with the cursor.
        same = [f"--status {args.status}"] if args.status else []
        same += [f"--limit {args.limit}"] if args.limit != DEFAULT_LIMIT else []
        err.print(f"more: planner-mcp runs {' '.join([*same, f'--cursor {cursor}'])}", style="dim")
    return 0


def _show(record: RunRecord, *, mermaid: bool) -> None:
    out.print(run_report(record))
    if mermaid:
        _plain(out, "\n```mermaid\n" + run_flowchart(record) + "\n```")
        _plain(out, "\n```mermaid\n" + gantt(record) + "\n```")


_plain = print_plain
