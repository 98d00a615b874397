"""The plan contract: what a planner LLM or an assistant writes, and what the executor runs.

A plan is a list of steps routed to specialist agents. A step is either an *agent step* (`task`, in
natural language; the specialist's LLM picks tools) or a *tool step* (`tool` + `args`, called
directly, no LLM). `depends_on` names earlier steps by id; `"$N"` in an argument is step N's result.

The models here check types only, so that every structural and semantic problem can be reported at
once by `planning.validate`; the seed tutorial's shape (no ids, 0-based `dependencies`) is accepted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

# "$N" is step N's result, "$N.name.name" a field of it (a JSON object); "$$" is a literal "$".
_REFERENCE = re.compile(r"\$(?:(\$)|(\d+)((?:\.[A-Za-z_]\w*)*))")


class UnresolvedReferenceError(LookupError):
    """A `$N.field` reference names a field that step N's result does not have."""


class Step(BaseModel):
    """One unit of work routed to a specialist agent."""

    model_config = ConfigDict(extra="forbid")

    id: int = Field(description="Unique positive integer id of this step (1, 2, 3, ...).")
    agent: str = Field(description="The specialist that runs the step: see the agent catalog.")
    task: str | None = Field(
        default=None,
        description="Agent step: what to do, in natural language. The agent's LLM chooses the tools.",
    )
    tool: str | None = Field(
        default=None, description="Tool step: the name of one of the agent's tools, called directly."
    )
    args: dict[str, JsonValue] | None = Field(
        default=None,
        description="Tool step: the tool's arguments. \"$N\" as a whole value is step N's result (typed); "
        "$N inside a longer string is replaced by that result's text.",
    )
    depends_on: list[int] = Field(
        default_factory=list,
        description="Ids of the steps whose results this step needs. A $N reference implies one.",
    )
    timeout_s: float | None = Field(
        default=None, gt=0, description="Optional time limit for this step, overriding the agent's default."
    )

    @property
    def is_tool_step(self) -> bool:
        return self.tool is not None

    def references(self) -> set[int]:
        """Ids of the steps referenced with `$N` in the task or the arguments."""
        found: set[int] = set()
        for text in _strings([self.task, self.args]):
            found.update(int(m.group(2)) for m in _REFERENCE.finditer(text) if m.group(2))
        return found

    def needs(self) -> set[int]:
        """Every step this one waits for: declared dependencies plus references."""
        return set(self.depends_on) | self.references()


class Plan(BaseModel):
    """A dependency-aware plan: the steps run as soon as their own dependencies are done."""

    model_config = ConfigDict(extra="forbid")

    steps: list[Step] = Field(description="The steps, each with a unique id.")

    @model_validator(mode="before")
    @classmethod
    def _accept_seed_shape(cls, data: Any) -> Any:
        """Convert the seed tutorial's plans: no ids, 0-based `dependencies` indices."""
        if isinstance(data, list):
            data = {"steps": data}
        if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
            return data
        steps = data["steps"]
        if not any(isinstance(s, dict) and "dependencies" in s for s in steps):
            return data
        converted = []
        for position, raw in enumerate(steps):
            if not isinstance(raw, dict):
                converted.append(raw)
                continue
            # The seed treats `dependencies` as optional: a step without it still gets its id.
            step = {k: v for k, v in raw.items() if k != "dependencies"}
            step.setdefault("id", position + 1)
            if "dependencies" in raw:
                deps = raw["dependencies"]
                if isinstance(deps, list) and all(isinstance(d, int) and not isinstance(d, bool) for d in deps):
                    deps = [d + 1 for d in deps]
                step["depends_on"] = deps
            converted.append(step)
        return {**data, "steps": converted}

    def step(self, step_id: int) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def waves(self) -> dict[int, int]:
        """Each step's dependency depth (1 = no dependencies): how people read a plan, never a barrier.

        Assumes a validated (acyclic) plan.
        """
        by_id = {s.id: s for s in self.steps}
        depth: dict[int, int] = {}

        def wave(step_id: int) -> int:
            if step_id not in depth:
                needs = [n for n in by_id[step_id].needs() if n in by_id]
                depth[step_id] = 1 + max((wave(n) for n in needs), default=0)
            return depth[step_id]

        for s in self.steps:
            wave(s.id)
        return depth


def plan_json_schema() -> dict[str, Any]:
    """The JSON Schema of a plan, for clients that write plans by hand."""
    return Plan.model_json_schema()


def result_text(value: JsonValue) -> str:
    """The text of a result, as substituted for `$N` inside a longer string."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def resolve_references(value: JsonValue, results: dict[int, JsonValue]) -> JsonValue:
    """Replace `$N` references in an argument value with results of earlier steps.

    A whole-value reference keeps the result's type (a number stays a number); a reference inside
    a longer string is replaced by the result's text; `$N.name` picks a field of an object result;
    `$$` stands for a literal `$`.
    """
    if isinstance(value, str):
        whole = _REFERENCE.fullmatch(value)
        if whole and whole.group(2):
            return _lookup(whole, results)
        return _REFERENCE.sub(lambda m: "$" if m.group(1) else result_text(_lookup(m, results)), value)
    if isinstance(value, list):
        return [resolve_references(v, results) for v in value]
    if isinstance(value, dict):
        return {k: resolve_references(v, results) for k, v in value.items()}
    return value


def _lookup(match: re.Match[str], results: dict[int, JsonValue]) -> JsonValue:
    step_id, path = int(match.group(2)), match.group(3)
    value = results[step_id]
    for name in filter(None, path.split(".")):
        if not isinstance(value, dict) or name not in value:
            fields = f"its fields are: {', '.join(value)}" if isinstance(value, dict) else "it is not an object"
            raise UnresolvedReferenceError(f"{match.group(0)}: step {step_id}'s result has no field {name!r}; {fields}")
        value = value[name]
    return value


def is_whole_reference(value: JsonValue) -> bool:
    if not isinstance(value, str):
        return False
    match = _REFERENCE.fullmatch(value)
    return match is not None and match.group(2) is not None


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
