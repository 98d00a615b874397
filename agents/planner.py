"""The planner agent: a request in, a validated plan out.

The model answers in a schema built from the catalog (agent and tool names are enumerations, so
constrained decoding cannot invent them); the reply is validated like any hand-written plan and
every problem goes back to the model for a bounded number of repair rounds.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from agents.llm import LLM, LLMError, LLMOutputError, Message, Usage
from agents.prompts import describe_tools
from agents.schemas import plan_draft_model
from planning.catalog import Catalog
from planning.plan import Plan
from planning.validate import PlanLimits, PlanValidationError, Problem, parse_plan

# One worked example in a domain no request of ours is about, with values that cannot be mistaken
# for the user's: small models copy examples, so any of its texts in a plan is sent back as an error.
EXAMPLE_REQUEST = "Multiply 7 by 6, and count the words in 'alpha beta gamma', then add the two results"
EXAMPLE_PLAN = {
    "steps": [
        {"id": 1, "agent": "math", "tool": "multiply", "args": {"a": 7, "b": 6}, "depends_on": []},
        {"id": 2, "agent": "string", "tool": "word_count", "args": {"text": "alpha beta gamma"}, "depends_on": []},
        {"id": 3, "agent": "math", "tool": "add", "args": {"a": "$1", "b": "$2"}, "depends_on": [1, 2]},
    ]
}
_EXAMPLE_MARKERS = ("alpha beta gamma",)


class PlanningError(Exception):
    """The planner could not produce a valid plan within its repair rounds."""

    def __init__(self, request: str, problems: list[Problem], usage: Usage | None = None) -> None:
        self.problems = problems
        self.usage = usage or Usage()  # what the failed planning cost
        listed = "\n".join(f"- {p}" for p in problems[:20])
        super().__init__(
            f"the planner could not make a valid plan for {request[:200]!r} after its repair rounds:\n{listed}\n"
            "Rephrase the request more explicitly, use a stronger model (PLANNER_MCP_MODEL_PLANNER), "
            "or write the plan yourself (execute_plan with a plan)."
        )


class PlanResult(BaseModel):
    plan: Plan
    usage: Usage
    rounds: int


def system_prompt(catalog: Catalog) -> str:
    agents = "\n".join(
        f"- {a.name}: {a.description}\n{describe_tools(a)}" for a in catalog.agents.values() if a.llm_tools
    )
    return f"""You are a planner. Break the user's request into steps for these specialist agents:
{agents}

Write a JSON plan: {{"steps": [...]}}. Each step has:
- "id": 1, 2, 3, ... in order;
- "agent": one of the agents above;
- EITHER "tool" + "args" when the request gives every argument (preferred: fast and exact; use only
  that agent's tools, with exactly the parameters listed) OR "task": a short instruction in words
  when the agent must work out the arguments itself;
- "depends_on": the ids of the steps whose results it needs.
Pass a result on with "$N" (N = step id) as an argument value; "$N" keeps numbers as numbers.
Use as few steps as the request needs. Copy values from the request exactly. An optional
parameter gets a value only when the request states one (the letter in "how many r's"); otherwise
null. For the code agent use a "task": it writes and runs the program itself.

Example (only to show the format; never copy its values):
Request: {EXAMPLE_REQUEST}
Plan: {json.dumps(EXAMPLE_PLAN)}"""


class Planner:
    def __init__(self, llm: LLM, catalog: Catalog, limits: PlanLimits, *, repair_rounds: int = 2) -> None:
        self.llm = llm
        self.catalog = catalog
        self.limits = limits
        self.repair_rounds = repair_rounds
        self.output = plan_draft_model(catalog)

    async def plan(self, request: str) -> PlanResult:
        messages = [
            Message(role="system", content=system_prompt(self.catalog)),
            Message(role="user", content=f"Request: {request}\nPlan:"),
        ]
        usage = Usage()
        problems: list[Problem] = []
        for round_number in range(1, self.repair_rounds + 2):
            try:
                completion = await self.llm.complete(messages, self.output, role="planner")
            except LLMOutputError as exc:
                usage = usage + (exc.usage or Usage())
                problems = [
                    Problem(
                        message=f"the reply is not a plan ({'; '.join(exc.errors[:5])})", fix="answer with a JSON plan"
                    )
                ]
                messages += [
                    Message(role="assistant", content=exc.raw),
                    Message(
                        role="user", content=f"That is not a valid plan: {problems[0]}. Answer with the JSON plan only."
                    ),
                ]
                continue
            except LLMError as exc:  # the calls of earlier rounds count too
                exc.with_usage(usage)
                raise
            usage = usage + completion.usage
            draft = as_written(completion.value, self.catalog)
            problems = _leaks(draft, request)
            try:
                plan = parse_plan(draft, self.catalog, self.limits)
            except PlanValidationError as exc:
                problems = exc.problems + problems
            else:
                problems = _refused_tools(plan, self.catalog) + problems
                if not problems:
                    return PlanResult(plan=plan, usage=usage, rounds=round_number)
            messages += [
                Message(role="assistant", content=json.dumps(draft)),
                Message(
                    role="user",
                    content="That plan has problems:\n"
                    + "\n".join(f"- {p}" for p in problems)
                    + f"\nWrite the whole corrected plan for the request: {request}",
                ),
            ]
        raise PlanningError(request, problems, usage)


def _refused_tools(plan: Plan, catalog: Catalog) -> list[Problem]:
    """Tool steps calling tools that change or delete things, which only a person's plan may call."""
    return [
        Problem(
            step_id=step.id,
            message=f"tool {step.tool!r} of agent {step.agent!r} changes or deletes things; the planner may not use it",
            fix="use only the tools listed above",
        )
        for step in plan.steps
        if step.tool is not None and not catalog.agent(step.agent).tool(step.tool).planner_may_call
    ]


def _leaks(draft: dict[str, object], request: str) -> list[Problem]:
    """Texts of the worked example that turned up in a plan although the request never said them."""
    text = json.dumps(draft)
    return [
        Problem(message=f"the plan copies the example's {marker!r}", fix="use only values from the request")
        for marker in _EXAMPLE_MARKERS
        if marker in text and marker not in request
    ]


def as_written(reply: BaseModel, catalog: Catalog) -> dict[str, Any]:
    """The reply as the model wrote it: no declared defaults filled in (they apply at call time),
    parameters under their own names; a null for a parameter whose default is null is dropped (the
    reply schema makes the model decide about those, and null is the same as leaving it out)."""
    draft = reply.model_dump(mode="json", by_alias=True, exclude_unset=True)
    for step in draft.get("steps", []):
        args = step.get("args")
        agent = catalog.agents.get(step.get("agent", ""))
        if not isinstance(args, dict) or agent is None or step.get("tool") not in agent.tool_by_name:
            continue
        fields = agent.tool_by_name[step["tool"]].args_model.model_fields
        optional = {
            info.alias or name for name, info in fields.items() if not info.is_required() and info.default is None
        }
        step["args"] = {k: v for k, v in args.items() if not (v is None and k in optional)}
    return draft
