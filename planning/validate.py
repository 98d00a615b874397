"""Validation of plans against a catalog, before anything runs.

Every problem is reported at once, each with the step it concerns and a fix, so a model (or a
person) can repair the whole plan in one round.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from pydantic import BaseModel, Field, JsonValue, ValidationError

from planning.catalog import Catalog, format_errors
from planning.errors import UsageError
from planning.plan import Plan, Reference, Step, find_references, is_whole_reference, strings_in

# Far beyond any plan's needs, and within what the run store (64-bit integers) can record.
MAX_STEP_ID = 1_000_000_000


class PlanLimits(BaseModel):
    """Bounds on what a plan may contain (hostile or runaway planners)."""

    max_steps: int = Field(default=100, ge=1)
    max_string_chars: int = Field(default=100_000, ge=1)
    max_nesting: int = Field(default=20, ge=1)
    max_reported: int = Field(default=50, ge=1, description="Problems listed before 'and N more'.")


class Problem(BaseModel):
    """One thing wrong with a plan."""

    step_id: int | None = None
    message: str
    fix: str

    def __str__(self) -> str:
        where = f"step {self.step_id}: " if self.step_id is not None else "plan: "
        return f"{where}{self.message}. Fix: {self.fix}"


class PlanValidationError(UsageError, ValueError):
    """A plan that cannot run; `problems` lists everything wrong with it."""

    def __init__(self, problems: list[Problem], max_reported: int = 50) -> None:
        self.problems = problems
        shown = [f"- {p}" for p in problems[:max_reported]]
        if len(problems) > max_reported:
            shown.append(f"- ... and {len(problems) - max_reported} more")
        super().__init__(f"the plan is invalid ({len(problems)} problem(s)):\n" + "\n".join(shown))


def parse_plan(data: str | bytes | Mapping[str, Any] | list[Any], catalog: Catalog, limits: PlanLimits) -> Plan:
    """Parse and validate a plan document; raise PlanValidationError listing every problem."""
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise PlanValidationError(
                [Problem(message=f"the plan is not valid JSON ({exc})", fix='send a JSON object {"steps": [...]}')]
            ) from None
    raw_steps = data.get("steps") if isinstance(data, Mapping) else data
    if isinstance(raw_steps, list) and len(raw_steps) > limits.max_steps:
        # Refuse before parsing thousands of steps.
        raise PlanValidationError([_too_many(len(raw_steps), limits)])
    try:
        plan = Plan.model_validate(data)
    except ValidationError as exc:
        raise PlanValidationError(_shape_problems(exc, raw_steps), limits.max_reported) from None
    except RecursionError:
        raise PlanValidationError(
            [Problem(message="the plan is nested too deeply", fix="keep arguments flat")]
        ) from None
    problems = validate_plan(plan, catalog, limits)
    if problems:
        raise PlanValidationError(problems, limits.max_reported)
    return plan


def validate_plan(plan: Plan, catalog: Catalog, limits: PlanLimits) -> list[Problem]:
    """Every problem of a parsed plan: structure, catalog, arguments, dependencies, cycles, sizes."""
    problems: list[Problem] = []
    if not plan.steps:
        return [Problem(message="the plan has no steps", fix="add at least one step")]
    if len(plan.steps) > limits.max_steps:
        return [_too_many(len(plan.steps), limits)]

    seen: set[int] = set()
    for step in plan.steps:
        if step.id < 1:
            problems.append(Problem(step_id=step.id, message="ids must be positive", fix="number steps 1, 2, 3, ..."))
        elif step.id > MAX_STEP_ID:
            problems.append(
                Problem(step_id=step.id, message=f"ids go up to {MAX_STEP_ID:,}", fix="number steps 1, 2, 3, ...")
            )
        if step.id in seen:
            problems.append(
                Problem(
                    step_id=step.id, message=f"id {step.id} is used by several steps", fix="give each step its own id"
                )
            )
        seen.add(step.id)

    for step in plan.steps:
        problems.extend(_step_problems(step, seen, catalog, limits))
    problems.extend(_cycle_problems(plan, seen))
    return problems


def _too_many(count: int, limits: PlanLimits) -> Problem:
    return Problem(
        message=f"the plan has {count} steps, more than the limit of {limits.max_steps}",
        fix="merge steps or split the request into several plans",
    )


def _step_problems(step: Step, ids: set[int], catalog: Catalog, limits: PlanLimits) -> Iterable[Problem]:
    def problem(message: str, fix: str) -> Problem:
        return Problem(step_id=step.id, message=message, fix=fix)

    for text in _long_strings([step.task, step.args], limits.max_string_chars):
        yield problem(
            f"a text of {len(text)} characters exceeds the limit of {limits.max_string_chars}",
            "shorten it, or pass a large input through a previous step's result ($N)",
        )
    for text in _not_unicode([step.agent, step.tool, step.task, step.args]):
        yield problem(
            f"the text {text!r:.80} holds a lone surrogate, which is not valid Unicode",
            "send valid UTF-8 text (a \\uD800-\\uDFFF escape in JSON must be one half of a pair)",
        )
    if _depth(step.args) > limits.max_nesting:
        yield problem(f"args are nested deeper than {limits.max_nesting} levels", "flatten the arguments")

    if (step.task is None) == (step.tool is None):
        yield problem(
            "a step needs exactly one of `task` (agent step) or `tool` + `args` (tool step)",
            'write {"task": "..."} to let the agent choose, or {"tool": "name", "args": {...}}',
        )
    if step.task is not None and step.args is not None:
        yield problem("`args` belong to tool steps", "remove `args`, or replace `task` with a `tool`")
    if step.task is not None and not step.task.strip():
        yield problem("the task is empty", "describe what the agent should do")

    for dep in sorted(set(step.depends_on)):
        if dep == step.id:
            yield problem("the step depends on itself", f"remove {dep} from depends_on")
        elif dep not in ids:
            yield problem(f"depends on step {dep}, which does not exist", f"use one of the ids {sorted(ids)}")
    others = ids - {step.id}
    for ref in _explicit_references(step, others):
        if ref.step_id == step.id:
            yield problem(f"{ref.text} refers to the step's own result", "refer only to other steps")
        elif ref.step_id not in ids:
            yield problem(
                f"{ref.text} refers to step {ref.step_id}, which does not exist", f"use one of the ids {sorted(ids)}"
            )

    if step.agent not in catalog.agents:
        yield problem(f"unknown agent {step.agent!r}", f"use one of: {', '.join(sorted(catalog.agents))}")
        return
    agent = catalog.agents[step.agent]
    if step.tool is None:
        return
    if step.tool not in agent.tool_by_name:
        if agent.unavailable:
            yield problem(agent.unavailable, "fix the server, or use another agent")
            return
        yield problem(
            f"agent {agent.name!r} has no tool {step.tool!r}",
            f"use one of its tools: {', '.join(sorted(agent.tool_by_name))}",
        )
        return
    args = step.args or {}
    # Whole-value references are typed by the referenced result: checked when the step runs.
    deferred = {name for name, value in args.items() if is_whole_reference(value, others)}
    try:
        agent.tool_by_name[step.tool].validate_args(args)
    except ValidationError as exc:
        errors = [e for e in exc.errors() if not (e["loc"] and e["loc"][0] in deferred)]
        dollars: dict[str, list[Any]] = {}
        for error in errors:
            if error["loc"] and _looks_like_reference(error.get("input")):
                dollars.setdefault(str(error["loc"][0]), []).append(error)
        errors = [e for e in errors if not (e["loc"] and str(e["loc"][0]) in dollars)]
        for name, group in dollars.items():
            # "$10" where a number is due and there is no step 10: the model meant the amount.
            value = str(group[0]["input"])
            yield problem(
                f"args.{name} = {value!r} is not {_expected(group)} and not a reference (the plan has no other "
                f"step {value.strip('${}').split('.')[0]})",
                f"write the value itself without '$' (e.g. {_without_dollar(value)}); "
                "a reference $N needs a step with id N",
            )
        if errors:
            lines = format_errors(errors, "args")
            yield problem(
                f"arguments do not match {step.tool}: {'; '.join(lines)}",
                "pass exactly the tool's parameters (MCP: list_agents; CLI: planner-mcp schema --agents)",
            )


def _explicit_references(step: Step, others: set[int]) -> Iterator[Reference]:
    """References a reader cannot take for literal text: `${N}` anywhere, `$N` in declared text."""
    declared = set(step.depends_on)
    for text in strings_in(step.args):
        yield from (r for r in find_references(text, declared, others) if r.explicit)
    if step.task is not None:
        yield from (r for r in find_references(step.task, declared, None, whole=False) if r.explicit)


def _looks_like_reference(value: object) -> bool:
    return isinstance(value, str) and is_whole_reference(value)


def _expected(errors: list[Any]) -> str:
    kinds = {str(e["type"]).split("_")[0] for e in errors}
    if kinds & {"int", "float"}:
        return "a whole number" if kinds & {"int", "float"} == {"int"} else "a number"
    names = {"bool": "a boolean", "list": "a list", "dict": "an object", "literal": "one of the allowed values"}
    return next((names[k] for k in sorted(kinds) if k in names), "a valid value")


def _without_dollar(value: str) -> str:
    digits = value.strip("${}")
    return digits if digits.replace(".", "", 1).isdigit() else json.dumps(digits)


def _cycle_problems(plan: Plan, ids: set[int]) -> list[Problem]:
    """Name each dependency cycle, e.g. `1 -> 3 -> 2 -> 1`."""
    needs = {s.id: sorted(n for n in s.needs() if n in ids and n != s.id) for s in plan.steps}
    state: dict[int, int] = {}  # 1 = on the current path, 2 = done
    problems: list[Problem] = []
    for start in needs:
        if state.get(start):
            continue
        path: list[int] = []
        stack: list[tuple[int, int]] = [(start, 0)]
        while stack:
            node, index = stack.pop()
            if index == 0:
                state[node] = 1
                path.append(node)
            children = needs[node]
            if index < len(children):
                stack.append((node, index + 1))
                child = children[index]
                if state.get(child) == 1:
                    cycle = [*path[path.index(child) :], child]
                    problems.append(
                        Problem(
                            step_id=child,
                            message="dependency cycle " + " -> ".join(map(str, cycle)),
                            fix="remove one of these dependencies so the steps can run in order",
                        )
                    )
                elif not state.get(child):
                    stack.append((child, 0))
            else:
                state[node] = 2
                path.pop()
    return problems


def _shape_problems(error: ValidationError, raw_steps: object) -> list[Problem]:
    problems = []
    for item in error.errors(include_url=False):
        loc = item["loc"]
        step_id = None
        if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int) and isinstance(raw_steps, list):
            raw = raw_steps[loc[1]] if loc[1] < len(raw_steps) else None
            step_id = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), int) else None
            where = ".".join(str(p) for p in loc[2:]) or "step"
            if step_id is None:
                where = f"step at position {loc[1] + 1}: {where}"
        else:
            where = ".".join(str(p) for p in loc) or "plan"
        if item["type"] == "recursion_depth_exceeded":
            # Its input is too deep to repr (RecursionError) and its path is as long as the nesting.
            problems.append(
                Problem(step_id=step_id, message="the plan is nested too deeply", fix="keep arguments flat")
            )
            continue
        fix = {
            "missing": "add the field",
            "extra_forbidden": "remove the field (a step has id, agent, task or tool+args, depends_on, timeout_s)",
        }.get(item["type"], "give the field a value of the right type")
        got = "" if item["type"] == "missing" else f" (got {item.get('input')!r:.80})"
        problems.append(Problem(step_id=step_id, message=f"{where}: {item['msg']}{got}", fix=fix))
    return problems


def _long_strings(value: object, limit: int) -> Iterable[str]:
    if isinstance(value, str):
        if len(value) > limit:
            yield value
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _long_strings(v, limit)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _long_strings(v, limit)


def _not_unicode(value: object) -> Iterator[str]:
    """Strings, dict keys included, that UTF-8 cannot encode (lone surrogates, as JSON's "\\ud800"
    decodes to): the run store could not record them. Iterative: hostile input can be deep."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                yield item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)


def _depth(value: JsonValue, stop: int = 64) -> int:
    """Nesting depth of a JSON value, counted no further than `stop` (hostile input can be deep)."""
    if stop <= 0 or not isinstance(value, list | dict):
        return 0
    children = value.values() if isinstance(value, dict) else value
    return 1 + max((_depth(v, stop - 1) for v in children), default=0)
