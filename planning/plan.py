"""The plan contract: what a planner LLM or an assistant writes, and what the executor runs.

A plan is a list of steps routed to specialist agents. A step is either an *agent step* (`task`, in
natural language; the specialist's LLM picks tools) or a *tool step* (`tool` + `args`, called
directly, no LLM). `depends_on` names earlier steps by id.

References (everything else with a `$` is literal text: "$10", "$20-$30", "costs $5"):
- `"$N"` or `"$N.field"` as a whole argument value, where the plan has another step N: step N's
  result, typed (a number stays a number);
- `${N}` or `${N.field}` anywhere in an argument or a task: the result (its text inside longer text);
- `$N` inside longer text where the step lists N in `depends_on`: the result's text.

The models here check types only, so that every structural and semantic problem can be reported at
once by `planning.validate`; the seed tutorial's shape (no ids, 0-based `dependencies`) is accepted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, PrivateAttr, model_validator

# `${N.path}` (explicit) or `$N.path` (bare); the path picks fields of an object result.
_REFERENCE = re.compile(r"\$(?:\{([0-9]+)((?:\.[A-Za-z_]\w*)*)\}|([0-9]+)((?:\.[A-Za-z_]\w*)*))")


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

    # The ids of the plan's other steps, known once the step is part of a Plan: a whole "$N" is a
    # reference only where step N exists. None (a step on its own): every whole "$N" counts.
    _others: frozenset[int] | None = PrivateAttr(default=None)

    @property
    def is_tool_step(self) -> bool:
        return self.tool is not None

    def references(self) -> set[int]:
        """Ids of the steps this step's task or arguments refer to (see the module docstring)."""
        declared = set(self.depends_on)
        found: set[int] = set()
        for text in strings_in(self.args):
            found.update(ref.step_id for ref in find_references(text, declared, self._others))
        if self.task is not None:
            found.update(ref.step_id for ref in find_references(self.task, declared, None, whole=False))
        return found

    def __eq__(self, other: object) -> bool:
        # What was written, not which plan the step sits in (`_others`).
        if not isinstance(other, Step):
            return NotImplemented
        return self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]  # mutable, like every BaseModel

    def resolved_args(self, results: dict[int, JsonValue]) -> JsonValue:
        """The arguments with references replaced by `results` (those of the steps this one needs)."""
        return resolve_references(self.args or {}, results, set(self.depends_on))

    def resolved_task(self, results: dict[int, JsonValue]) -> str:
        """The task with `${N}` and declared `$N` replaced by the results' text."""
        return _substitute(self.task or "", results, set(self.depends_on))

    def needs(self) -> set[int]:
        """Every step this one waits for: declared dependencies plus references."""
        return set(self.depends_on) | self.references()


class Plan(BaseModel):
    """A dependency-aware plan: the steps run as soon as their own dependencies are done."""

    model_config = ConfigDict(extra="forbid")

    steps: list[Step] = Field(description="The steps, each with a unique id.")
    notes: list[str] = Field(
        default_factory=list,
        description="What the planner changed in the model's draft (e.g. dependencies removed); informational.",
    )

    @model_validator(mode="after")
    def _tell_steps_the_ids(self) -> Plan:
        ids = frozenset(step.id for step in self.steps)
        for step in self.steps:
            step._others = ids - {step.id}
        return self

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
    """The text of a result, as substituted for a reference inside a longer string."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


class Reference(BaseModel):
    """One reference found in a text: which step, which field path, and how it was written."""

    step_id: int
    path: tuple[str, ...]
    text: str
    explicit: bool
    whole: bool


def find_references(
    text: str, declared: Collection[int], others: Collection[int] | None, *, whole: bool = True
) -> list[Reference]:
    """The references in one string of a step (see the module docstring for the rules).

    `declared` is the step's depends_on; `others` the plan's other step ids (None: unknown, every
    whole `$N` counts); `whole=False` for a task, where a whole "$N" is read like text.
    """
    found = []
    for match in _REFERENCE.finditer(text):
        explicit = match.group(1) is not None
        step_id = int(match.group(1) or match.group(3))
        path = tuple(filter(None, (match.group(2) if explicit else match.group(4)).split(".")))
        is_whole = whole and match.group(0) == text
        if explicit or (is_whole and (others is None or step_id in others)) or (not is_whole and step_id in declared):
            found.append(Reference(step_id=step_id, path=path, text=match.group(0), explicit=explicit, whole=is_whole))
    return found


def resolve_references(
    value: JsonValue, results: dict[int, JsonValue], declared: Collection[int] | None = None
) -> JsonValue:
    """Replace references in an argument value with results of earlier steps.

    A whole-value reference (`"$N"`, `"${N}"`, `"$N.name"`) to a step in `results` keeps the
    result's type; `${N}` inside longer text, and `$N` where N is `declared` (None: any step in
    `results`), become the result's text; `$N.name` picks a field of an object result. Anything
    else is literal. A `${N}` naming a step that is not in `results` raises KeyError.
    """
    if isinstance(value, str):
        refs = find_references(value, results if declared is None else declared, results)
        if refs and refs[0].whole:
            return _lookup(refs[0], results)
        return _substitute(value, results, declared)
    if isinstance(value, list):
        return [resolve_references(v, results, declared) for v in value]
    if isinstance(value, dict):
        return {k: resolve_references(v, results, declared) for k, v in value.items()}
    return value


def _substitute(text: str, results: dict[int, JsonValue], declared: Collection[int] | None) -> str:
    allowed = results if declared is None else {n for n in declared if n in results}
    refs = {ref.text: ref for ref in find_references(text, allowed, results, whole=False)}

    def replace(match: re.Match[str]) -> str:
        ref = refs.get(match.group(0))
        return result_text(_lookup(ref, results)) if ref is not None else match.group(0)

    return _REFERENCE.sub(replace, text) if refs else text


def _lookup(ref: Reference, results: dict[int, JsonValue]) -> JsonValue:
    value = results[ref.step_id]
    for name in ref.path:
        if not isinstance(value, dict) or name not in value:
            fields = f"its fields are: {', '.join(value)}" if isinstance(value, dict) else "it is not an object"
            raise UnresolvedReferenceError(f"{ref.text}: step {ref.step_id}'s result has no field {name!r}; {fields}")
        value = value[name]
    return value


def is_whole_reference(value: JsonValue, others: Collection[int] | None = None) -> bool:
    """Whether an argument value is a whole reference (to one of `others`, when given)."""
    if not isinstance(value, str):
        return False
    refs = find_references(value, (), others)
    return bool(refs) and refs[0].whole


def strings_in(value: object) -> Iterator[str]:
    """Every string in a JSON value, at any depth."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from strings_in(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings_in(v)
