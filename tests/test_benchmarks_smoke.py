"""`python -m benchmarks --smoke` (what CI runs) in a real process: every benchmark runs at its tiny
size and reports a row; no timing is asserted."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_smoke_benchmarks_run_every_benchmark_and_print_one_table() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )

    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("machine: ")
    for case in (
        "3 no-op steps, chain",
        "10 no-op steps, independent",
        "eager makespan ÷ critical path",
        "wave barriers makespan ÷ critical path",
        "one 3-step run at a time",
        "5 concurrent 3-step runs",
        "skipped in --smoke",
    ):
        assert case in out, f"{case!r} missing from:\n{out}"
    assert "errors 0/5" in out
    # On the virtual clock the eager scheduler finishes exactly at the critical path.
    assert re.search(r"eager makespan ÷ critical path\s*│\s*median 1\.00, p90 1\.00, max 1\.00", out), out


def test_an_unknown_benchmark_name_is_refused_with_the_choices() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--only", "nope"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 2
    assert "invalid choice: 'nope'" in done.stderr
    assert "steps" in done.stderr
