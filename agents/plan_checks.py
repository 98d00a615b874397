"""Checks of a plan the planner wrote, beyond validation: what a small model gets wrong in a plan
that is otherwise valid. Each problem goes back to the model in a repair round; a person's plan is
taken as written.
"""

from __future__ import annotations

import json
import re
from typing import Any

from agents.prompts import summary
from agents.schemas import STEP_REFERENCE
from planning.catalog import Catalog
from planning.plan import Plan
from planning.validate import Problem


def problems(plan: Plan, catalog: Catalog, request: str) -> list[Problem]:
    """Every check's problems, in the order the model should read them."""
    return (
        refused_tools(plan, catalog)
        + _tasks_naming_tools(plan, catalog)
        + _unasked_values(plan, catalog, request)
        + _tasks_redoing_tool_steps(plan)
    )


def refused_tools(plan: Plan, catalog: Catalog) -> list[Problem]:
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


def _tasks_naming_tools(plan: Plan, catalog: Catalog) -> list[Problem]:
    """Agent steps whose task is only a tool's name or summary: the model meant a tool step (its
    agent's LLM would have to guess every argument from those words)."""
    problems = []
    for step in plan.steps:
        if step.task is None:
            continue
        said = _plain(step.task)
        for tool in catalog.agent(step.agent).llm_tools:
            if said in (_plain(tool.name), _plain(summary(tool))):
                problems.append(
                    Problem(
                        step_id=step.id,
                        message=f"the task {step.task!r} only names tool {tool.name!r}",
                        fix=f'write a tool step: "tool": "{tool.name}" with its "args" taken from the request',
                    )
                )
                break
    return problems


def _tasks_redoing_tool_steps(plan: Plan) -> list[Problem]:
    """Agent steps that do again what a tool step they do not depend on does: the task names the
    tool's action and holds every value of the tool step of three characters or more (measured: a
    send_email step followed by the task "Send an email to bob@… with the subject 'Lunch'…"). A
    step depending on the tool step works on its result ("summarize the search's pages")."""
    problems = []
    for step in plan.steps:
        if step.task is None:
            continue
        said = f" {_plain(step.task)} "
        needs = step.needs()
        for other in plan.steps:
            if other.id in needs:
                continue
            values = [_plain(str(v)) for v in (other.args or {}).values() if isinstance(v, str | int | float)]
            values = [v for v in values if len(v) >= 3]  # "es" for Spanish is not in a task's words
            named = _plain(other.tool or "").split()
            if other.tool is not None and values and all(f" {v} " in said for v in [*values, *named]):
                problems.append(
                    Problem(
                        step_id=step.id,
                        message=f"the task does again what step {other.id} ({other.tool}) does",
                        fix=f"leave step {step.id} out: step {other.id} already does it",
                    )
                )
                break
    return problems


def _unasked_values(plan: Plan, catalog: Catalog, request: str) -> list[Problem]:
    """Text values the request never mentions where they cannot be a reading of it: an optional
    parameter's (a timer's label "Timer 1": the reply schema makes the model decide about each
    optional parameter, and a small model sometimes invents one), or a value with digits copied
    from the tool's documented example (a hotel search's "$80-$120"). Allowed values (enums) and
    references are choices, not inventions."""
    asked = _plain(request)
    problems = []
    for step in plan.steps:
        if step.tool is None or not step.args:
            continue
        tool = catalog.agent(step.agent).tool(step.tool)
        optional = {info.alias or name for name, info in tool.args_model.model_fields.items() if not info.is_required()}
        properties = tool.parameters_schema().get("properties", {})
        for key, value in step.args.items():
            if not isinstance(value, str) or re.match(STEP_REFERENCE, value) or _plain(value) in asked:
                continue
            documented = f"{tool.description} {json.dumps(properties.get(key, {}))}"
            if key in optional and value not in _allowed(properties.get(key, {})):
                message, fix = (
                    "the request says nothing of it",
                    f"write null for {key!r} unless the request gives its value",
                )
            elif any(c.isdigit() for c in value) and f"'{value}'" in documented:
                message = "it is the documentation's example"
                fix = f"take {key!r} from the request, or leave the step out if the request does not ask for it"
            else:
                continue
            problems.append(Problem(step_id=step.id, message=f"parameter {key!r} = {value!r}: {message}", fix=fix))
    return problems


def _allowed(prop: dict[str, Any]) -> list[Any]:
    return [v for member in (prop, *prop.get("anyOf", [])) for v in member.get("enum", [])]


def _plain(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))
