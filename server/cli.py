"""`planner-mcp`: run plans and requests, list and inspect runs, serve MCP.

The CLI's own results go to stdout; progress, logs and errors go to stderr. With `--json` a
command prints exactly one JSON document on stdout and nothing else there. Exit codes: 0 done,
1 the run (or the command) failed, 2 bad input (usage, a plan that is not valid, an unreadable
plan file), 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import get_args

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from planning import flyte_setup

flyte_setup.import_flyte()

from agents.llm import LLM, LLMError, LLMNotConfiguredError  # noqa: E402 - flyte must be tamed first
from agents.llm.select import select_llm  # noqa: E402
from agents.planner import PlanningError  # noqa: E402
from planning.catalog import CatalogFactoryError  # noqa: E402
from planning.engine import StepEvent  # noqa: E402
from planning.mermaid import flowchart, gantt  # noqa: E402
from planning.plan import plan_json_schema  # noqa: E402
from planning.records import RunRecord, RunStatus, StepStatus  # noqa: E402
from planning.remote import PLAN_TASK, FlytePhase, RemoteError  # noqa: E402
from planning.settings import Settings  # noqa: E402
from planning.store import StoreError  # noqa: E402
from planning.validate import PlanValidationError  # noqa: E402
from server.app import App, RunBusyError  # noqa: E402
from server.terminal import (  # noqa: E402
    LiveRun,
    log_handler,
    plan_summary,
    print_plain,
    run_report,
    runs_table,
    seconds,
    status_text,
)
from server.views import RunsPage, run_timings, summary_view  # noqa: E402

logger = logging.getLogger(__name__)

# Markup is only ever in our own literals; text from plans, results and errors is printed plain
# (`_plain`), so "[/]" or ":smile:" in it is shown as written, never parsed.
err = Console(stderr=True, soft_wrap=True, emoji=False)
out = Console(highlight=False, soft_wrap=True, emoji=False)

_EXIT_FAILED = 1
_EXIT_USAGE = 2
_DEFAULT_LIMIT = 20


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    level = logging.INFO if args.verbose else logging.WARNING
    # Through the stderr console: a log line prints above the live display instead of breaking it.
    logging.basicConfig(level=level, handlers=[log_handler(err, level)])
    if args.command == "serve":
        from server.mcp_server import serve

        serve(Settings(), transport=args.transport, host=args.host, port=args.port)
        return 0
    if args.command == "run" and args.plan is not None:
        # Bytes: the plan parser reports text that is not UTF-8 like any other invalid JSON.
        try:
            args.plan = sys.stdin.buffer.read() if args.plan == "-" else Path(args.plan).read_bytes()
        except OSError as exc:
            _plain(err, f"error: cannot read the plan file {args.plan!r}: {exc.strerror or exc}", style="red")
            return _EXIT_USAGE
    try:
        return asyncio.run(_dispatch(args))
    except PlanValidationError as exc:
        _plain(err, str(exc), style="red")
        return _EXIT_USAGE
    except ValidationError as exc:
        _plain(err, f"error: invalid PLANNER_MCP_* setting: {exc}", style="red")
        return _EXIT_USAGE
    except (LLMError, PlanningError, StoreError, RunBusyError, CatalogFactoryError, RemoteError, OSError) as exc:
        _plain(err, f"error: {exc}", style="red")
        return _EXIT_FAILED
    except KeyboardInterrupt:
        return 130


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


async def _dispatch(args: argparse.Namespace) -> int:
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
            record = await _with_progress(app, args.run_id, resume=True)
            return _finish(record, args.json)
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
        return _EXIT_USAGE
    if args.plan is not None:
        plan = app.parse(args.plan)  # the file's text, read in main()
        request, usage = None, None
    else:
        request = args.request
        with LiveRun(err) as live:
            live.planning()
            planned = await app.plan(request)
        plan, usage = planned.plan, planned.usage
    record = app.submit(plan, request=request, engine=args.engine, usage=usage)
    if record.engine == "remote":
        record = await app.execute(record.id)
        url = app.store.flyte_run(record.id)
        err.print(f"submitted run {record.id} to Flyte: {url.url if url else ''}")
        err.print(f"follow it: planner-mcp show {record.id}", style="dim")
        if args.json:
            _plain(out, record.model_dump_json(indent=2))
        return 0
    record = await _with_progress(app, record.id)
    return _finish(record, args.json)


async def _with_progress(app: App, run_id: str, resume: bool = False) -> RunRecord:
    record = app.store.get_run(run_id)
    done = sum(1 for step in record.steps if step.status is StepStatus.SUCCEEDED) if resume else 0
    try:
        with LiveRun(err) as live:
            live.steps(run_id, record.step_count, done)

            def on_event(event: StepEvent) -> None:
                live.step(event.step_id, event.agent, event.status, event.done, event.total)

            return await (app.resume if resume else app.execute)(run_id, on_event)
    except (KeyboardInterrupt, asyncio.CancelledError):
        # The engine records the run cancelled; what finished is kept and resume runs the rest.
        err.print(f"\ninterrupted: run {run_id} stopped; finish it with:\n  planner-mcp resume {run_id}")
        raise


def _finish(record: RunRecord, as_json: bool) -> int:
    if as_json:
        _plain(out, record.model_dump_json(indent=2))
    else:
        err.print(f"run {record.id}: ", end="")
        err.print(status_text(record.status), end="")
        err.print(f"  ({_elapsed(record)}; details: planner-mcp show {record.id})", style="dim")
        if record.error and record.status is not RunStatus.SUCCEEDED:
            _plain(err, record.error, style="red")
        _plain(out, record.answer or "")
    return 0 if record.status is RunStatus.SUCCEEDED else _EXIT_FAILED


def _elapsed(record: RunRecord) -> str:
    timings = run_timings(record)
    return f"{seconds(timings.wall_s)} in all, steps {seconds(timings.steps_s)}"


async def _flyte_runs(app: App, args: argparse.Namespace) -> int:
    runs = await app.remote.list_flyte_runs(
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
        same += [f"--limit {args.limit}"] if args.limit != _DEFAULT_LIMIT else []
        err.print(f"more: planner-mcp runs {' '.join([*same, f'--cursor {cursor}'])}", style="dim")
    return 0


def _show(record: RunRecord, *, mermaid: bool) -> None:
    out.print(run_report(record))
    if mermaid:
        statuses = {s.id: s.status for s in record.steps}
        _plain(out, "\n```mermaid\n" + flowchart(record.plan, statuses) + "\n```")
        _plain(out, "\n```mermaid\n" + gantt(record) + "\n```")


_plain = print_plain


def _version() -> str:
    try:
        return version("planner-mcp")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "(not installed)"


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r:.40} is not a whole number of 1 or more")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="planner-mcp", description=__doc__)
    parser.add_argument("--version", action="version", version=f"planner-mcp {_version()}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="plan and execute a request, or execute a plan file")
    run.add_argument("request", nargs="?", help="what to do, in natural language (needs an LLM)")
    run.add_argument(
        "--plan", metavar="FILE.json", help="execute this plan ('-' reads stdin); no LLM needed for tool steps"
    )
    run.add_argument("--json", action="store_true", help="print the whole run record as JSON")
    run.add_argument(
        "--engine", choices=["local", "remote"], help="where the run executes (default PLANNER_MCP_ENGINE, else local)"
    )

    plan = sub.add_parser("plan", help="print the validated plan for a request as JSON (run it with run --plan)")
    plan.add_argument("request")
    plan_output = plan.add_mutually_exclusive_group()
    plan_output.add_argument("--json", action="store_true", help="only the plan's JSON (the default output, quietly)")
    plan_output.add_argument("--mermaid", action="store_true", help="also print the DAG as a Mermaid flowchart")

    runs = sub.add_parser("runs", help="list runs, newest first")
    runs.add_argument("--status", choices=[s.value for s in RunStatus])
    runs.add_argument("--limit", type=_positive, default=_DEFAULT_LIMIT, help="runs per page (1 or more)")
    runs.add_argument("--cursor", help="next page, from the previous listing")
    runs.add_argument("--flyte", action="store_true", help="list runs on the configured Flyte cluster instead")
    runs.add_argument("--phase", action="append", choices=get_args(FlytePhase), help="--flyte: only this phase")
    runs.add_argument("--task", help="--flyte: only runs of this Flyte task (default: planner-mcp's orchestrator)")
    runs.add_argument("--since", type=datetime.fromisoformat, help="--flyte: created at or after (ISO time)")
    runs.add_argument("--until", type=datetime.fromisoformat, help="--flyte: created before (ISO time)")
    runs.add_argument("--json", action="store_true", help="print the page as JSON: runs and next_cursor")

    show = sub.add_parser("show", help="a run's steps, timings, results and usage")
    show.add_argument("run_id")
    show.add_argument("--mermaid", action="store_true", help="also print the DAG flowchart and the timeline gantt")
    show.add_argument("--json", action="store_true", help="print the whole run record as JSON")

    resume = sub.add_parser("resume", help="re-run the steps of a run that did not succeed")
    resume.add_argument("run_id")
    resume.add_argument("--json", action="store_true", help="print the whole run record as JSON")

    cancel = sub.add_parser("cancel", help="cancel a pending run")
    cancel.add_argument("run_id")
    cancel.add_argument("--json", action="store_true", help="print the whole run record as JSON")

    schema = sub.add_parser("schema", help="print the plan JSON Schema (or --agents: the catalog)")
    schema.add_argument("--agents", action="store_true")
    schema.add_argument("--json", action="store_true", help="accepted for symmetry: the output is always JSON")

    serve = sub.add_parser("serve", help="serve MCP (stdio by default)")
    serve.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    return parser


if __name__ == "__main__":
    sys.exit(main())
