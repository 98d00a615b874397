"""planner-mcp benchmarks: `uv run python -m benchmarks [--smoke] [--only NAME ...]`.

Prints one table; each row says how it was measured. Benchmarks:

- steps:   per-step orchestration CPU at 10/100/1,000 no-op steps, chain and independent
- dags:    eager makespan ÷ critical path on 30 random planner-shaped DAGs, beside wave barriers
- http:    50 and 200 concurrent execute_plan calls over streamable HTTP (errors, p50/p99, RSS)
- planner: the embedded planner end to end, cold/restart/warm, LLM calls and tokens (`local` extra)
- accuracy: the planner-accuracy benchmark (benchmarks.accuracy; only with --only accuracy)

`--smoke` runs tiny sizes quickly (CI; no model). Run the full set on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import platform
import sys
from collections.abc import Callable, Sequence

from rich.console import Console

from benchmarks.table import Row, render

DEFAULT = ("steps", "dags", "http", "planner")
CHOICES = (*DEFAULT, "accuracy")


def machine() -> str:
    """This machine in one line: CPU model, cores and Python."""
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), model)
    except OSError:
        pass
    return (
        f"{model}, {os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable), Python {platform.python_version()}"
    )


def suite(name: str) -> Callable[[bool], list[Row]]:
    """A benchmark's `run(smoke)`, imported only when it is asked for (each pulls in its own stack)."""
    return importlib.import_module(f"benchmarks.{name}").run


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description="planner-mcp benchmarks: one table, each row with its method"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, quickly, no model (CI)")
    parser.add_argument("--only", nargs="+", choices=CHOICES, metavar="NAME", help=f"run only these: {CHOICES}")
    args = parser.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 160)  # a wide table in files and pipes
    names = args.only or DEFAULT
    if "accuracy" in names:
        if importlib.util.find_spec("benchmarks.accuracy") is None:
            console.print("accuracy: skipped, benchmarks/accuracy.py is not in this checkout")
        else:
            code = importlib.import_module("benchmarks.accuracy").main(["--smoke"] if args.smoke else [])
            if code:
                return code
        names = [n for n in names if n != "accuracy"]
    if not names:
        return 0
    console.print(f"machine: {machine()}")
    rows: list[Row] = []
    for name in names:
        console.print(f"running {name}…", style="dim")
        rows += suite(name)(args.smoke)
    render(rows, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
