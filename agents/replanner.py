"""Replanning: after a planned run's steps failed, the planner writes the rest of the plan.

The planner sees the request, the plan it wrote, the results of the steps that succeeded (as
untrusted data) and what went wrong, and answers with new steps only, numbered after every id the
run has used. Succeeded steps are kept and never run again; a new step may use their results
(`$N`). The whole revised plan (kept + new) is validated like any plan, and every problem goes back
to the model for the planner's bounded number of repair rounds. `Replanner` is the engine's
`planning.replanning.Replanner`.
"""

from __future__ import annotations

import json
import time
from typing import Any

import anyio

from agents.llm import LLMError, LLMOutputError, Message, Usage
from agents.llm.protocol import Generation
from agents.plan_checks import refused_tools
from agents.planner import TEMPERATURES, Planner, as_written
from agents.prompts import data_block
from planning.plan import Plan, Step
from planning.records import RunRecord, StepStatus
from planning.replanning import ReplanError, Revision
from planning.validate import PlanValidationError, Problem, parse_plan

# A run of a hand-written plan that asked to replan has no request: its plan is the goal.
_NO_REQUEST = "(no request: the plan was written by hand; finish what it was written to do)"


class Replanner:
    """Writes revisions with the planner's LLM, catalog, limits and repair rounds."""

    def __init__(self, planner: Planner) -> None:
        self.planner = planner

    async def __call__(self, record: RunRecord, reason: str) -> Revision:
        try:
            return await revise(self.planner, record, reason)
        except LLMError as exc:
            raise ReplanError(f"the planner's LLM failed: {exc}", exc.usage) from exc


async def revise(planner: Planner, record: RunRecord, reason: str) -> Revision:
    """A revised plan for the run: its succeeded steps unchanged, then the planner's new steps.

    Each round is bounded like the planner's (call and total time, tokens, rising temperature); a
    reply that repeats an earlier one ends the rounds. Raises ReplanError (with what it cost) when
    they end without a valid revision."""
    rows = {step.id: step for step in record.steps}
    kept = [step for step in record.plan.steps if step.id in rows and rows[step.id].status is StepStatus.SUCCEEDED]
    failed = [step for step in record.plan.steps if step.id in rows and rows[step.id].status is StepStatus.FAILED]
    first_id = max(rows, default=0) + 1
    planner.refresh()
    messages = [
        Message(role="system", content=planner.prompt),
        Message(role="user", content=planner.request_message(record.request or _NO_REQUEST)),
        Message(role="assistant", content=record.plan.model_dump_json(exclude_defaults=True)),
        Message(role="user", content=_revision_prompt(record, kept, reason, first_id)),
    ]
    usage = Usage()
    problems: list[Problem] = []
    replies: list[str] = []
    deadline = time.monotonic() + planner.total_timeout_s
    for round_number in range(1, planner.repair_rounds + 2):
        limit = min(planner.call_timeout_s, deadline - time.monotonic())
        if limit <= 0:
            break
        generation = Generation(
            temperature=TEMPERATURES[min(round_number - 1, len(TEMPERATURES) - 1)],
            max_tokens=planner.max_tokens,
            repair_rounds=0,  # this loop repairs, with the catalog's own validation
        )
        draft: dict[str, Any] | None = None
        reply = ""
        with anyio.move_on_after(limit) as scope:
            try:
                completion = await planner.llm.complete(messages, planner.output, role="planner", generation=generation)
            except LLMOutputError as exc:
                usage = usage + (exc.usage or Usage())
                problems = [Problem(message="the reply is not a plan", fix="answer with a JSON plan of the new steps")]
                reply = exc.raw
            except LLMError as exc:
                raise exc.with_usage(usage) from None
            else:
                usage = usage + completion.usage
                draft = as_written(completion.value, planner.catalog)
                reply = json.dumps(draft)
        if scope.cancelled_caught:
            usage = usage + Usage(latency_s=limit)
            problems = [Problem(message=f"no reply within {limit:.0f} s", fix="answer with the new steps only")]
        if reply and reply in replies:
            problems.append(Problem(message="the reply repeats an earlier one", fix="change what the problems name"))
            break
        replies.append(reply)
        if draft is not None:
            plan, problems = _check(planner, kept, failed, draft, first_id)
            if plan is not None:
                return Revision(plan=plan, usage=usage)
        messages += [
            Message(role="assistant", content=reply or "(no reply)"),
            Message(
                role="user",
                content="Those new steps have problems:\n"
                + "\n".join(f"- {p}" for p in problems)
                + f"\nWrite all the new steps again, corrected, numbered from {first_id}.",
            ),
        ]
    listed = "\n".join(f"- {p}" for p in problems[:20])
    raise ReplanError(f"no valid revision of the plan after {planner.repair_rounds} repair round(s):\n{listed}", usage)


def _revision_prompt(record: RunRecord, kept: list[Step], reason: str, first_id: int) -> str:
    lines = [f"Running that plan did not finish the request: {reason}."]
    kept_ids = {step.id for step in kept}
    others = [s.id for s in record.steps if s.id not in kept_ids and s.status is StepStatus.SKIPPED]
    if others:
        lines.append(f"Steps {', '.join(map(str, others))} did not run because a step they need failed.")
    if kept:
        lines.append(f"Steps {', '.join(str(s.id) for s in kept)} succeeded: they are kept and never run again.")
        lines.append(data_block({s.id: s.result for s in record.steps if s.id in kept_ids}))
    lines.append(
        f"Write only the NEW steps that finish the request, numbered from {first_id}. A new step may use a kept "
        'step\'s result as "$N" and list it in depends_on; it must not depend on a step that failed or did not '
        "run. Do not repeat a failed step unchanged: fix what made it fail or reach the result another way."
    )
    return "\n".join(lines)


def _check(
    planner: Planner, kept: list[Step], failed: list[Step], draft: dict[str, object], first_id: int
) -> tuple[Plan | None, list[Problem]]:
    """The kept steps plus the draft's, validated; or every problem with the draft."""
    new_steps = draft.get("steps")
    new_steps = new_steps if isinstance(new_steps, list) else []
    problems = [
        Problem(step_id=s["id"], message="that id is already used by this run", fix=f"number new steps from {first_id}")
        for s in new_steps
        if isinstance(s, dict) and isinstance(s.get("id"), int) and s["id"] < first_id
    ]
    failed_calls = [_call(step.model_dump(mode="json", exclude_none=True)) for step in failed]
    for s in new_steps:
        if isinstance(s, dict) and _call(s) in failed_calls:
            step_id = s.get("id")
            problems.append(
                Problem(
                    step_id=step_id if isinstance(step_id, int) else None,
                    message="it repeats a step that failed, unchanged",
                    fix="change what made it fail, or reach the result another way",
                )
            )
    if problems:
        return None, problems
    document = {"steps": [step.model_dump(mode="json", exclude_none=True) for step in kept] + new_steps}
    try:
        plan = parse_plan(document, planner.catalog, planner.limits)
    except PlanValidationError as exc:
        return None, exc.problems
    refused = refused_tools(plan, planner.catalog)  # the planner's limits hold for revisions too
    return (None, refused) if refused else (plan, [])


def _call(step: dict[str, object]) -> dict[str, object]:
    """What a step does, apart from its id and its dependencies."""
    return {key: value for key, value in step.items() if key not in ("id", "depends_on") and value is not None}
