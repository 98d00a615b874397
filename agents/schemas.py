"""Reply schemas for constrained decoding, derived from the catalog.

Small models follow a schema far better than prose: every tool gets its own variant with its exact
parameter names and types, so the decoder cannot invent a tool, misspell a parameter or wrap a
number in an object. A parameter may also hold a reference string (`$N`, `#K`) instead of a value.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model, model_validator

from planning.catalog import AgentSpec, Catalog, ToolSpec

# Written with plain character classes: llama.cpp's schema-to-grammar converter knows no \d or \$.
_PATH = "([.][A-Za-z_][A-Za-z0-9_]*)*"
STEP_REFERENCE = rf"^([$][0-9]+{_PATH}|[$][{{][0-9]+{_PATH}[}}])$"
STEP_OR_CALL_REFERENCE = rf"^([$][0-9]+{_PATH}|[$][{{][0-9]+{_PATH}[}}]|#[0-9]+)$"

_STRICT = ConfigDict(extra="forbid")


class _AgentStep(BaseModel):
    """An agent step in a reply: `"tool": null`, its agent, then a task.

    The schema requires the null so that a model under a grammar decides between a tool name and
    null for `tool`, where the name the request calls for wins, instead of between the keys `tool`
    and `task` (measured: a small model wrote `"task": "count_population"` for most requests over
    an unfamiliar catalog). A reply that leaves it out (a scripted or hand-written one) is accepted.
    """

    model_config = _STRICT

    @model_validator(mode="before")
    @classmethod
    def _tool_may_be_left_out(cls, data: Any) -> Any:
        return {"tool": None, **data} if isinstance(data, dict) and "tool" not in data else data


def args_model(tool: ToolSpec, reference: str, name: str) -> type[BaseModel]:
    """The tool's parameters, each also accepting a reference string."""
    ref = Annotated[str, StringConstraints(pattern=reference)]
    fields: dict[str, Any] = {}
    for field, info in tool.args_model.model_fields.items():
        annotation = info.annotation
        if tool.input_schema is not None:  # a JSON-Schema tool: show each parameter's own schema
            annotation = Annotated[(annotation, *info.metadata)]  # type: ignore[valid-type]
        typed = annotation if annotation is str else annotation | ref  # type: ignore[operator]
        # A parameter that defaults to None is required here (null allowed): a small model asked to
        # write it decides about it (`"letter": "r"`), where it would skip an optional one.
        required = info.is_required() or info.default is None
        # The same field names and aliases as the tool's own model: `_from` stays `_from`.
        fields[field] = (typed, Field(... if required else info.default, alias=info.alias))
    return create_model(name, __config__=_STRICT, **fields)


class _PlanDraft(BaseModel):
    """A reply: the request's parts in a few words each, then the steps.

    Naming the parts first anchors the number of steps: without them a small model went on after
    the step a one-call request needed and invented further calls (measured: half the misses on the
    accuracy benchmark's foreign catalog). A reply that leaves the parts out is accepted."""

    model_config = _STRICT

    @model_validator(mode="before")
    @classmethod
    def _parts_may_be_left_out(cls, data: Any) -> Any:
        return {"parts": [], **data} if isinstance(data, dict) and "parts" not in data else data


def plan_draft_model(catalog: Catalog, max_steps: int | None = None, *, outline: bool = False) -> type[BaseModel]:
    """A plan whose steps are either one variant per (agent, tool) or an agent step with a task;
    `max_steps` caps the step list (the grammar then cannot run past the plan limit); with
    `outline` the reply names the request's parts first.

    A step names its tool before its agent: the model picks the tool the request's words call for
    and the agent follows from it (agent first, "$100-$150" in a hotel request chose the finance
    agent, and then a stock price)."""
    variants: list[type[BaseModel]] = []
    for agent in catalog.agents.values():
        for tool in agent.llm_tools:
            variants.append(
                create_model(
                    f"{agent.name}_{tool.name}_step",
                    __config__=_STRICT,
                    id=(int, Field(ge=1)),
                    tool=(Literal[tool.name], ...),  # type: ignore[valid-type]
                    agent=(Literal[agent.name], ...),  # type: ignore[valid-type]
                    args=(args_model(tool, STEP_REFERENCE, f"{agent.name}_{tool.name}_args"), ...),
                    depends_on=(list[int], Field(default_factory=list)),
                )
            )
    variants.append(
        create_model(
            "agent_step",
            __base__=_AgentStep,
            id=(int, Field(ge=1)),
            tool=(None, ...),
            # Only agents whose LLM has tools it may call (a server that failed to start has none).
            agent=(Literal[tuple(a.name for a in catalog.agents.values() if a.llm_tools)], ...),  # type: ignore[valid-type]
            task=(str, Field(min_length=1)),
            depends_on=(list[int], Field(default_factory=list)),
        )
    )
    step = _union(variants)
    steps = (list[step], Field(min_length=1, max_length=max_steps))  # type: ignore[valid-type]
    if outline:
        return create_model("PlanDraft", __base__=_PlanDraft, parts=(list[str], ...), steps=steps)
    return create_model("PlanDraft", __config__=_STRICT, steps=steps)


def turn_model(agent: AgentSpec) -> type[BaseModel]:
    """One turn of a specialist: calls to its own tools, with typed arguments."""
    variants = [
        create_model(
            f"{agent.name}_{tool.name}_call",
            __config__=_STRICT,
            tool=(Literal[tool.name], ...),  # type: ignore[valid-type]
            args=(args_model(tool, STEP_OR_CALL_REFERENCE, f"{agent.name}_{tool.name}_call_args"), ...),
        )
        for tool in agent.llm_tools
    ]
    call = _union(variants)
    return create_model(
        f"{agent.name}_turn",
        __config__=_STRICT,
        calls=(list[call], Field(min_length=1, max_length=8)),  # type: ignore[valid-type]
    )


def _union(variants: list[type[BaseModel]]) -> Any:
    union: Any = variants[0]
    for variant in variants[1:]:
        union = union | variant
    return union
