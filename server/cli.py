"""`planner-mcp`: run plans and requests, list and inspect runs, serve MCP.

The CLI's own results go to stdout; progress, logs and errors go to stderr. This module only parses
arguments (it imports nothing heavy, so `--help` is instant); the commands are in server.commands.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

# Everything else is imported once main() holds Ctrl-C back (_sigint_held): pressed amid the
# imports up here, it ends the process with a KeyboardInterrupt traceback.
if TYPE_CHECKING:
    import argparse

DEFAULT_LIMIT = 20
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report a process that SIGINT ended


def main(argv: Sequence[str] | None = None) -> int:
    """The command line's exit status. Ctrl-C exits 130 without a traceback from here on: while a
    run executes, the run is recorded cancelled and how to resume it is printed (server.commands)."""
    try:
        return _main(argv)
    except KeyboardInterrupt:  # before the event loop runs (imports, reading the plan) or in it
        return EXIT_INTERRUPTED


def _main(argv: Sequence[str] | None) -> int:
    with _sigint_held():
        args = _parser().parse_args(argv)
        # Imported after parsing, so `--help`, `--version` and argument errors cost no more than argparse.
        import asyncio
        import logging
        from pathlib import Path

        from pydantic import ValidationError

        from planning.errors import UserFixableError
        from planning.settings import Settings
        from server.commands import EXIT_FAILED, EXIT_USAGE, dispatch, err
        from server.terminal import log_handler
        from server.terminal import print_plain as _plain

        level = logging.INFO if args.verbose else logging.WARNING
        # Through the stderr console: a log line prints above the live display instead of breaking it.
        logging.basicConfig(level=level, handlers=[log_handler(err, level)])
    if args.command == "serve":
        from server.mcp_transport import serve

        try:
            settings = Settings()
        except ValidationError as exc:
            _plain(err, f"error: invalid PLANNER_MCP_* setting: {exc}", style="red")
            return EXIT_USAGE
        serve(settings, transport=args.transport, host=args.host, port=args.port)
        return 0
    if args.command in ("run", "approve") and args.plan is not None:
        # Bytes: the plan parser reports text that is not UTF-8 like any other invalid JSON.
        try:
            args.plan = sys.stdin.buffer.read() if args.plan == "-" else Path(args.plan).read_bytes()
        except OSError as exc:
            _plain(err, f"error: cannot read the plan file {args.plan!r}: {exc.strerror or exc}", style="red")
            return EXIT_USAGE
    try:
        return asyncio.run(dispatch(args))
    except UserFixableError as exc:  # the one root of what a person can fix (planning.errors)
        _plain(err, f"error: {exc}", style="red")
        return exc.exit_code
    except ValidationError as exc:
        _plain(err, f"error: invalid PLANNER_MCP_* setting: {exc}", style="red")
        return EXIT_USAGE
    except OSError as exc:
        _plain(err, f"error: {exc}", style="red")
        return EXIT_FAILED


@contextmanager
def _sigint_held() -> Iterator[None]:
    """Ctrl-C while starting waits for the imports to end, then raises KeyboardInterrupt. Raised
    amid them, it could land in a weakref callback or a __del__ (imports run plenty of them), where
    Python prints "Exception ignored" and drops it: the Ctrl-C would be lost and the run go on."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)  # a held SIGINT is handled here


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

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
        import argparse

        raise argparse.ArgumentTypeError(f"{text!r:.40} is not a whole number of 1 or more")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        import argparse

        raise argparse.ArgumentTypeError(f"{text!r:.40} is not a whole number of 0 or more")
    return value


def _parser() -> argparse.ArgumentParser:
    import argparse
    from datetime import datetime
    from typing import get_args

    from planning.status import FlytePhase, RunStatus

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
    run.add_argument(
        "--approve", action="store_true", help="show the plan and ask on the terminal before anything runs"
    )
    run.add_argument(
        "--max-replans",
        type=_count,
        metavar="N",
        help="revisions the planner may write when steps fail for good, keeping what succeeded (0: none; "
        "default PLANNER_MCP_MAX_REPLANS, 1, for a request; 0 for --plan)",
    )

    plan = sub.add_parser("plan", help="print the validated plan for a request as JSON (run it with run --plan)")
    plan.add_argument("request")
    plan_output = plan.add_mutually_exclusive_group()
    plan_output.add_argument("--json", action="store_true", help="only the plan's JSON (the default output, quietly)")
    plan_output.add_argument("--mermaid", action="store_true", help="also print the DAG as a Mermaid flowchart")

    runs = sub.add_parser("runs", help="list runs, newest first")
    runs.add_argument("--status", choices=[s.value for s in RunStatus])
    runs.add_argument("--limit", type=_positive, default=DEFAULT_LIMIT, help="runs per page (1 or more)")
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

    approve = sub.add_parser("approve", help="decide on a run whose plan awaits approval, then run it")
    approve.add_argument("run_id")
    decide = approve.add_mutually_exclusive_group()
    decide.add_argument("--plan", metavar="FILE.json", help="run this edited plan instead ('-' reads stdin)")
    decide.add_argument("--reject", action="store_true", help="reject the plan: the run ends cancelled")
    approve.add_argument("--json", action="store_true", help="print the whole run record as JSON")

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
