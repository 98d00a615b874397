"""The rows every benchmark returns, and the table `python -m benchmarks` prints."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table


@dataclass(frozen=True)
class Row:
    """One measured number (or a line saying why it was skipped), with how it was measured."""

    benchmark: str
    case: str
    result: str
    method: str


def render(rows: Sequence[Row], console: Console) -> None:
    table = Table(show_lines=True)
    for name, ratio in (("benchmark", 1), ("case", 2), ("result", 3), ("method", 5)):
        table.add_column(name, ratio=ratio, overflow="fold")
    previous: Row | None = None
    for row in rows:
        same = previous is not None and (previous.benchmark, previous.method) == (row.benchmark, row.method)
        table.add_row(row.benchmark, row.case, row.result, "as above" if same else row.method)
        previous = row
    console.print(table)


def percentile(values: Sequence[float], fraction: float) -> float:
    """The `fraction` quantile (nearest rank: an observed value, not an interpolation)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))]


def spread(values: Sequence[float], fmt: str = "{:.2f}") -> str:
    """median / p90 / max of a sample, formatted."""
    return (
        f"median {fmt.format(statistics.median(values))}, p90 {fmt.format(percentile(values, 0.9))}, "
        f"max {fmt.format(max(values))}"
    )
