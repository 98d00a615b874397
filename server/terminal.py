"""How the CLI draws runs, steps and plans in a terminal (80 columns or more, or piped).

Rules: run ids are never cut; a status is a symbol *and* a word, each status its own colour;
results are shown whole (wrapped) up to a screenful, a program's run as the value it computed
with its sandbox tier and warning. Text from plans, results and errors is never parsed as markup.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime

from pydantic import JsonValue
from rich import box
from rich.console import Console, Group, RenderableType
from rich.logging import RichHandler
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from planning.plan import Plan, result_text
from planning.records import RunRecord, RunStatus, RunSummary, StepRecord, StepStatus
from server.views import run_timings

# Longest result text shown in a table cell; `show --json` has every result whole.
CELL_CHARS = 600

RUN_STYLES: dict[str, tuple[str, str]] = {
    RunStatus.SUCCEEDED: ("✓", "green"),
    RunStatus.PARTIAL: ("◐", "yellow"),
    RunStatus.FAILED: ("✗", "red"),
    RunStatus.CANCELLED: ("⊘", "magenta"),
    RunStatus.INTERRUPTED: ("⚠", "yellow"),
    RunStatus.RUNNING: ("…", "cyan"),
    RunStatus.PENDING: ("·", "blue"),
    RunStatus.AWAITING_APPROVAL: ("?", "yellow"),
    "planning": ("…", "cyan"),
}
STEP_STYLES: dict[str, tuple[str, str]] = {
    StepStatus.SUCCEEDED: ("✓", "green"),
    StepStatus.FAILED: ("✗", "red"),
    StepStatus.SKIPPED: ("↷", "yellow"),
    StepStatus.CANCELLED: ("⊘", "magenta"),
    StepStatus.RUNNING: ("…", "cyan"),
    StepStatus.PENDING: ("·", "blue"),
    StepStatus.REPLACED: ("⤳", "dim"),
}


def status_text(status: str, styles: dict[str, tuple[str, str]] = RUN_STYLES) -> Text:
    symbol, style = styles.get(status, ("·", "default"))
    return Text(f"{symbol} {status}", style=style)


def seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 60:
        return f"{value:.2f}s" if value < 10 else f"{value:.1f}s"
    minutes, rest = divmod(round(value), 60)
    return f"{minutes}m {rest:02d}s" if minutes < 60 else f"{minutes // 60}h {minutes % 60:02d}m"


def runs_table(runs: Iterable[RunSummary]) -> Table:
    # Full width: the request takes what the other columns leave (a long one is cut, never the id).
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, expand=True)
    # The id is what users copy into `show`: never wrapped, never cut.
    table.add_column("id", no_wrap=True, min_width=23)
    table.add_column("status", no_wrap=True)
    table.add_column("steps", justify="right", no_wrap=True)
    table.add_column("created", no_wrap=True)
    table.add_column("request", overflow="ellipsis", no_wrap=True, ratio=1, min_width=8)
    for run in runs:
        table.add_row(
            run.id,
            status_text(run.status),
            str(run.step_count),
            _local(run.created_at).strftime("%m-%d %H:%M"),
            Text(" ".join((run.request or "(plan)").split())),
        )
    return table


def run_report(record: RunRecord) -> Group:
    """`show`: the run's status, request, where the time went, LLM usage, every step, the answer."""
    head = Text()
    head.append(f"run {record.id}  ", style="bold")
    head.append_text(status_text(record.status))
    head.append(f"  ({record.engine}, created {_local(record.created_at):%Y-%m-%d %H:%M:%S})", style="dim")
    fields = _fields()
    if record.request:
        fields.add_row("request", Text(record.request))
    timings = run_timings(record)
    fields.add_row(
        "time",
        f"{seconds(timings.wall_s)} in all: planning {seconds(timings.planning_s)}, "
        f"steps {seconds(timings.steps_s)}, answer {seconds(timings.synthesis_s)}",
    )
    total = record.total_usage()
    fields.add_row(
        "LLM",
        f"{total.calls} call{'s' if total.calls > 1 else ''}, {total.prompt_tokens:,} prompt + {total.completion_tokens:,} completion tokens"
        f" ({seconds(total.latency_s)})"
        if total.calls
        else "no calls",
    )
    for version in record.versions[1:]:
        line = Text(f"v{version.version} {version.kind}: {_cut(version.reason)}")
        if version.replaced:
            line.append(f" (replaced step {', '.join(map(str, version.replaced))})", style="dim")
        fields.add_row("plan", line)
    if record.status is RunStatus.AWAITING_APPROVAL and record.awaiting:
        fields.add_row("approval", Text(f"{record.awaiting}; approve: planner-mcp approve {record.id}", style="yellow"))
    ending = _fields()
    if record.answer:
        ending.add_row("answer", Text(_cut(record.answer, limit=4 * CELL_CHARS), style="bold"))
    if record.error and record.status is not RunStatus.SUCCEEDED:
        ending.add_row("error", Text(_cut(record.error, limit=4 * CELL_CHARS), style="red"))
    return Group(head, fields, steps_table(record), ending)


def steps_table(record: RunRecord) -> Table:
    with_llm = any(step.usage.calls for step in record.steps)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("agent", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("time", justify="right", no_wrap=True)
    if with_llm:
        table.add_column("LLM", justify="right", no_wrap=True)
    table.add_column("result / error", overflow="fold", ratio=1, min_width=20)
    for step in record.steps:
        status = status_text(step.status, STEP_STYLES)
        if step.attempts > 1:
            status.append(f" ×{step.attempts}", style="dim")
        plan_step = record.planned_step(step.id)
        what = f"{step.agent}.{plan_step.tool}" if plan_step and plan_step.tool else step.agent
        row: list[RenderableType] = [str(step.id), what, status, seconds(step.duration_s)]
        if with_llm:
            row.append(f"{step.usage.calls}/{step.usage.prompt_tokens + step.usage.completion_tokens:,}")
        row.append(step_cell(step))
        table.add_row(*row)
    return table


def step_cell(step: StepRecord) -> Text:
    """What a step produced, or why it did not: the value that matters, whole up to a screenful;
    for a program (code steps) also its exit code, sandbox tier and any warning or stderr."""
    program = _program_run(step.details) or _program_run(step.result)
    if step.error is not None and step.status is not StepStatus.SUCCEEDED:
        _, style = STEP_STYLES.get(step.status, ("", "red"))
        cell = Text(f"{step.error.kind}: {_cut(step.error.message)}", style=style)
    elif step.status is not StepStatus.SUCCEEDED:
        return Text("")
    elif program is not None and program is step.result:  # a record from before `details`
        value = program.get("result")
        cell = Text(_cut(result_text(value) if value is not None else str(program.get("stdout") or "").strip()))
    else:
        cell = Text(_cut(result_text(step.result)))
        if step.summary:
            cell.append(f"\nvia {_cut(step.summary)}", style="dim")
    if program is not None:
        exit_code = program.get("exit_code")
        cell.append(f"\nexit {exit_code} · sandbox {program.get('tier')}", style="dim" if exit_code == 0 else "red")
        if exit_code != 0 and program.get("stderr") and step.status is StepStatus.SUCCEEDED:
            cell.append(f"\n{_cut(str(program.get('stderr')), tail=True)}", style="red")
        if program.get("warning"):
            cell.append(f"\n⚠ {program.get('warning')}", style="yellow")
    return cell


def _program_run(value: JsonValue) -> Mapping[str, JsonValue] | None:
    """`value` when it is what the code sandbox reports of a program's run."""
    return value if isinstance(value, dict) and "tier" in value and "exit_code" in value else None


def plan_summary(plan: Plan) -> Text:
    """A plan's steps by wave, for stderr beside the plan's JSON."""
    waves = plan.waves()
    text = Text()
    for wave in sorted(set(waves.values())):
        steps = [step for step in plan.steps if waves[step.id] == wave]
        names = ", ".join(f"{s.id} {s.agent}.{s.tool}" if s.tool else f"{s.id} {s.agent}" for s in steps)
        text.append(f"wave {wave}: {names}\n")
    return text


def print_plain(console: Console, text: str, style: str | None = None) -> None:
    """Print text exactly as it is: no markup, no highlighting (it may come from a plan or the web)."""
    console.print(text, style=style, markup=False, highlight=False)


def _fields() -> Table:
    """Label-value lines whose values wrap under themselves."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True, min_width=7)
    grid.add_column(overflow="fold")
    return grid


def _cut(text: str, *, limit: int = CELL_CHARS, tail: bool = False) -> str:
    if len(text) <= limit:
        return text
    more = f"(+{len(text) - limit:,} characters: show --json)"
    return f"… {more} " + text[-limit:] if tail else text[:limit] + f"… {more}"


def _local(moment: datetime) -> datetime:
    return moment.astimezone()


class LiveRun:
    """A run's live display on stderr, one phase at a time: planning (spinner, elapsed time, LLM
    attempts), steps (bar, done/total, elapsed), the answer (spinner, elapsed). Step lines and log
    records print above it and stay; the display itself disappears when the run ends.

    Log records reach it through `log_handler()`, which prints through the same console, so a
    warning never breaks the bar. Without a terminal nothing moves: only the step lines print."""

    def __init__(self, console: Console, run_id: str | None = None) -> None:
        self.console = console
        self.run_id = run_id
        self.attempts = 0
        self._retries = _RetryCounter(self)
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=24),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.task = self.progress.add_task("starting", total=None, counts="")

    def __enter__(self) -> LiveRun:
        self.progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._retries.detach()
        self.progress.stop()

    def planning(self, attempt: int = 1) -> None:
        """The planner LLM is working; each retry of its call (a timeout, a 5xx) counts an attempt."""
        self.attempts = attempt
        if attempt == 1:
            self.progress.reset(self.task, total=None, description="planning", counts="")
            self._retries.attach()
        else:
            self.progress.update(self.task, counts=f"attempt {attempt}")

    def steps(self, run_id: str, total: int, done: int = 0) -> None:
        self._retries.detach()
        self.run_id = run_id
        self.progress.reset(
            self.task, total=total, completed=done, description=f"run {run_id}", counts=f"{done}/{total}"
        )

    def step(self, step_id: int, agent: str, status: StepStatus, done: int, total: int) -> None:
        line = Text("  ")
        line.append_text(status_text(status, STEP_STYLES))
        line.append(f"  step {step_id} ({agent})")
        self.console.print(line)
        self.progress.update(self.task, completed=done, counts=f"{done}/{total}")
        if done == total and status is not StepStatus.RUNNING:
            self.answer()

    def answer(self) -> None:
        self.progress.reset(self.task, total=None, description="writing the answer", counts="")


class _RetryCounter(logging.Handler):
    """Counts the retries of the planner's LLM call into the display's attempts: the OpenAI-compatible
    client logs each retry (a warning the log handler prints above the display) with its number as
    the record's `llm_retry`."""

    _LOGGER = "agents.llm.openai_compat"

    def __init__(self, live: LiveRun) -> None:
        super().__init__(logging.WARNING)
        self.live = live
        self._attached = False

    def attach(self) -> None:
        if not self._attached:
            logging.getLogger(self._LOGGER).addHandler(self)
            self._attached = True

    def detach(self) -> None:
        if self._attached:
            logging.getLogger(self._LOGGER).removeHandler(self)
            self._attached = False

    def emit(self, record: logging.LogRecord) -> None:
        retry = getattr(record, "llm_retry", None)
        if isinstance(retry, int):
            self.live.planning(attempt=retry + 1)


def log_handler(console: Console, level: int) -> logging.Handler:
    """Log records printed through `console` (above any live display), never as markup."""
    handler = RichHandler(
        console=console, level=level, show_time=False, show_path=False, markup=False, rich_tracebacks=False
    )
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    return handler
