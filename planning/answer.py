"""The deterministic answer of a run, used when no LLM writes one: readable, never a " | " join."""

from __future__ import annotations

from agents.llm.protocol import Usage
from planning.plan import result_text
from planning.records import RunRecord, StepStatus


def final_steps(record: RunRecord) -> list[int]:
    """Steps nothing else depends on: their results are what the request asked for."""
    needed = {n for step in record.plan.steps for n in step.needs()}
    return [step.id for step in record.plan.steps if step.id not in needed]


def summarize(record: RunRecord) -> str:
    steps = {s.id: s for s in record.steps}
    finals = [steps[i] for i in final_steps(record)]
    if len(finals) == 1 and finals[0].status is StepStatus.SUCCEEDED:
        return result_text(finals[0].result)
    lines = []
    for step in finals:
        if step.status is StepStatus.SUCCEEDED:
            lines.append(f"Step {step.id} ({step.agent}): {result_text(step.result)}")
        else:
            reason = step.error.message if step.error else step.status.value
            lines.append(f"Step {step.id} ({step.agent}) {step.status.value}: {reason}")
    return "\n".join(lines)


async def plain_answer(record: RunRecord) -> tuple[str, Usage]:
    """The synthesizer used when a run asks for no LLM-written answer."""
    return summarize(record), Usage()
