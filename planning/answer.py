"""The answer of a run stated from its final results, and the check an LLM-written answer must pass.

A run whose final results are numbers or short texts from tool steps needs no LLM to answer: the
answer names what was computed (`multiply(a=50, b=2) = 100`). An LLM-written answer is accepted
only when every final result appears in it as a whole token ("19" does not contain the result 9).
"""

from __future__ import annotations

import json
import re

from pydantic import BaseModel, JsonValue

from planning.plan import Step, UnresolvedReferenceError, resolve_references, result_text
from planning.records import AnswerSource, RunRecord, StepRecord, StepStatus
from planning.usage import Usage

# Results longer than this are prose or data: stated as they are, never checked token by token.
_CHECKED_CHARS = 200
_SHOWN_ARG_CHARS = 60


class RunAnswer(BaseModel):
    """A run's final answer, how it was made, and what the LLM calls for it cost."""

    text: str
    source: AnswerSource
    usage: Usage = Usage()


def final_steps(record: RunRecord) -> list[int]:
    """Steps nothing else depends on: their results are what the request asked for."""
    needed = {n for step in record.plan.steps for n in step.needs()}
    return [step.id for step in record.plan.steps if step.id not in needed]


def summarize(record: RunRecord) -> str:
    """The final steps' results, each with the call that computed it (or why it has none). A plan
    run without a request (its author wrote the calls) with one final result gets just that result."""
    steps = {s.id: s for s in record.steps}
    results = {s.id: s.result for s in record.steps if s.status is StepStatus.SUCCEEDED}
    finals = [steps[i] for i in final_steps(record)]
    if record.request is None and len(finals) == 1 and finals[0].status is StepStatus.SUCCEEDED:
        return result_text(finals[0].result)
    lines = []
    for step in finals:
        if step.status is StepStatus.SUCCEEDED:
            lines.append(_stated(record.plan.step(step.id), step, results))
        else:
            reason = step.error.message if step.error else step.status.value
            lines.append(f"Step {step.id} ({step.agent}) {step.status.value}: {reason}")
    return "\n".join(lines)


def _stated(step: Step, record: StepRecord, results: dict[int, JsonValue]) -> str:
    """`multiply(a=50, b=2) = 100` for a tool step; an agent step's result as it is."""
    value = result_text(record.result)
    if step.tool is None or len(value) > _CHECKED_CHARS:
        return value
    try:
        args = resolve_references(step.args or {}, results)
    except (UnresolvedReferenceError, KeyError):
        args = step.args or {}
    shown = ", ".join(f"{name}={_short(arg)}" for name, arg in (args.items() if isinstance(args, dict) else ()))
    return f"{step.tool}({shown}) = {json.dumps(record.result, ensure_ascii=False)}"


def _short(value: JsonValue) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= _SHOWN_ARG_CHARS else text[: _SHOWN_ARG_CHARS - 1] + "…"


def needs_writing(record: RunRecord) -> bool:
    """Whether an LLM adds something to the results: an agent step's work, a structured or long
    result (web, weather, code output), or a request that asks for prose."""
    succeeded = {s.id for s in record.steps if s.status is StepStatus.SUCCEEDED}
    if any(step.task is not None for step in record.plan.steps if step.id in succeeded):
        return True
    final_ids = set(final_steps(record))
    finals = [s for s in record.steps if s.id in final_ids and s.status is StepStatus.SUCCEEDED]
    if any(isinstance(s.result, dict | list) or len(result_text(s.result)) > _CHECKED_CHARS for s in finals):
        return True
    return bool(_PROSE.search(record.request or ""))


_PROSE = re.compile(r"\b(explain|describe|summari[sz]e|why|how does|write|compare|tell me about)\b", re.IGNORECASE)


def states_results(answer: str, record: RunRecord) -> list[int]:
    """The final steps whose (short) result the answer does not state as a whole token."""
    missing = []
    final_ids = set(final_steps(record))
    for step in record.steps:
        if step.id not in final_ids or step.status is not StepStatus.SUCCEEDED:
            continue
        text = result_text(step.result)
        if len(text) <= _CHECKED_CHARS and not any(_whole(form).search(answer) for form in _forms(step.result)):
            missing.append(step.id)
    return missing


def _forms(value: JsonValue) -> list[str]:
    """How an answer may write a result: 1234.0 as "1234", 12345 as "12,345" too."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return [result_text(value)]
    forms = {result_text(value)}
    if isinstance(value, float) and value.is_integer():
        forms.add(str(int(value)))
    if abs(value) >= 1000 and float(value).is_integer():
        forms.add(f"{int(value):,}")
    return sorted(forms)


def _whole(text: str) -> re.Pattern[str]:
    """`text` not inside a longer word or number: 9 matches "is 9." but not "19" or "9.5"."""
    return re.compile(rf"(?<![\w.]){re.escape(text)}(?![\w]|\.\d)")


async def plain_answer(record: RunRecord) -> RunAnswer:
    """The answer used when a run asks for no LLM-written one."""
    return RunAnswer(text=summarize(record), source="results")
