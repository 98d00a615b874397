"""Mermaid views of plans and runs: the DAG as a flowchart, the timeline as a gantt chart.

Step texts come from an LLM that may have read web pages: they are data, never markup. Every
character Mermaid or HTML would read as syntax is written as a Mermaid entity code (`#lt;`, `#35;`),
which Mermaid shows as the character itself: `<img src=...>` cannot make a renderer fetch a URL,
`%%{init}%%` cannot configure it, and `&lt;` shows as the five characters it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from planning.plan import Plan, Step
from planning.records import RunRecord, StepStatus

_STATUS_CLASSES = {
    StepStatus.SUCCEEDED: "fill:#d4edda,stroke:#28a745",
    StepStatus.FAILED: "fill:#f8d7da,stroke:#dc3545",
    StepStatus.SKIPPED: "fill:#eeeeee,stroke:#999999,stroke-dasharray:4",
    StepStatus.RUNNING: "fill:#fff3cd,stroke:#ffc107",
    StepStatus.CANCELLED: "fill:#eeeeee,stroke:#6c757d",
    StepStatus.REPLACED: "fill:#ffffff,stroke:#999999,stroke-dasharray:2,color:#999999",
}


# `#` first in meaning: an entity code starts with it, so a literal one must not survive as a code.
_ENTITY_CODES = {
    "#": "#35;",
    '"': "#quot;",
    "&": "#amp;",
    "<": "#lt;",
    ">": "#gt;",
    "%": "#37;",
    "`": "#96;",
    "\\": "#92;",
    "{": "#123;",
    "}": "#125;",
    "[": "#91;",
    "]": "#93;",
    "|": "#124;",
}


def escape_text(text: str) -> str:
    """`text` as the literal content of a quoted Mermaid label: one line, no markup."""
    return "".join(_ENTITY_CODES.get(c, c) for c in " ".join(text.split()))


def _label(step: Step) -> str:
    what = f"{step.tool}()" if step.tool else (step.task or "")
    what = " ".join(what.split())
    if len(what) > 40:
        what = what[:39] + "…"  # cut before escaping: never in the middle of an entity code
    return escape_text(f"{step.id}. {step.agent}: {what}")


def flowchart(plan: Plan, statuses: Mapping[int, StepStatus] | None = None, replaced: Sequence[Step] = ()) -> str:
    """`flowchart TD` of the plan's DAG; with statuses, nodes are coloured by step status.

    `replaced`: steps of earlier versions that a revision dropped, drawn apart (dashed, "replaced",
    dotted edges) so the chart shows what the run tried before."""
    statuses = statuses or {}
    waves = plan.waves()
    lines = ["flowchart TD"]
    for step in plan.steps:
        status = statuses.get(step.id)
        suffix = f" · {status.value}" if status else ""
        lines.append(f'    s{step.id}["{_label(step)}<br/>wave {waves[step.id]}{suffix}"]')
    for step in replaced:
        lines.append(f'    s{step.id}["{_label(step)}<br/>replaced"]')
    for step in plan.steps:
        for need in sorted(step.needs()):
            lines.append(f"    s{need} --> s{step.id}")
    for step in replaced:
        for need in sorted(step.needs()):
            lines.append(f"    s{need} -.-> s{step.id}")
    shown = {**statuses, **{step.id: StepStatus.REPLACED for step in replaced}}
    for status, style in _STATUS_CLASSES.items():
        members = [f"s{i}" for i, s in shown.items() if s is status]
        if members:
            lines.append(f"    classDef {status.value} {style}")
            lines.append(f"    class {','.join(members)} {status.value}")
    return "\n".join(lines)


def run_flowchart(record: RunRecord) -> str:
    """The run's flowchart: its current plan coloured by status, and the steps revisions replaced."""
    statuses = {step.id: step.status for step in record.steps}
    replaced = [
        step
        for row in record.steps
        if row.status is StepStatus.REPLACED and (step := record.planned_step(row.id)) is not None
    ]
    return flowchart(record.plan, statuses, replaced)


# Mermaid draws a gantt axis with d3 in the viewer's time zone. Seconds and milliseconds read the
# same in every zone, so a run shorter than a minute is drawn from 0 ("12.500 s"); a longer one is
# drawn at its real times on the viewer's clock ("14:05:09"), which never wraps around.
_SHORT_RUN_MS = 60_000
_GANTT_TAGS = {StepStatus.FAILED: "crit, ", StepStatus.RUNNING: "active, ", StepStatus.CANCELLED: "done, "}


def gantt(record: RunRecord) -> str:
    """`gantt` of when each step ran: failed steps red (crit), running ones active, cancelled ones
    greyed (done); succeeded ones plain."""
    started = [s.started_at for s in record.steps if s.started_at]
    lines = ["gantt", f"    title Run {record.id}", "    dateFormat x"]
    if not started:
        return "\n".join([*lines, "    axisFormat %S.%L s", "    section no step has started"])
    origin = min(started)
    last = max((s.finished_at or s.started_at) for s in record.steps if s.started_at)
    short = (last - origin).total_seconds() * 1000 < _SHORT_RUN_MS
    base = 0 if short else int(origin.timestamp() * 1000)
    lines.append("    axisFormat %S.%L s" if short else "    axisFormat %H:%M:%S")
    for step in record.steps:
        if not step.started_at:
            continue
        start = base + int((step.started_at - origin).total_seconds() * 1000)
        end = base + int(((step.finished_at or step.started_at) - origin).total_seconds() * 1000)
        tag = _GANTT_TAGS.get(step.status, "")
        lines.append(f"    section step {step.id}")
        lines.append(f"    {step.agent} ({step.status.value}) :{tag}s{step.id}, {start}, {max(end, start + 1)}")
    return "\n".join(lines)
