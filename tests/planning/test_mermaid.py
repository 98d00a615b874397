"""Mermaid output: step texts written by an LLM render as text, never as markup or directives."""

import re

import pytest

from planning.mermaid import escape_text, flowchart
from planning.plan import Plan
from planning.records import StepStatus

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
