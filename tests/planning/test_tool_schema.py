"""Tools defined by a JSON Schema: names as other systems spell them, every value checked against the schema."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import JsonValue, ValidationError

from agents.planner import system_prompt
from agents.schemas import plan_draft_model, turn_model
from planning.catalog import AgentSpec, Catalog, ToolSpec, format_validation_error
from planning.mermaid import flowchart
from planning.plan import Plan
from planning.tool_schema import ToolSchemaError
from planning.validate import PlanLimits, PlanValidationError, parse_plan

pytestmark = pytest.mark.anyio

SUM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "limit": {"type": "integer", "minimum": 1, "description": "Upper bound (exclusive)."},
        "multiples": {"type": "array", "items": {"$ref": "#/$defs/Factor"}},
        "from-date": {"type": "string", "format": "date"},
        "_class": {"enum": ["fast", "exact"]},
    },
    "required": ["limit", "multiples"],
    "$defs": {"Factor": {"type": "integer", "minimum": 2}},
}
SUM_NAME = "math_toolkit.sum_of-multiples"


class Recorder:
    """The tool's far side: records what it was called with."""

    def __init__(self) -> None:
        self.calls: list[dict[str, JsonValue]] = []

    async def __call__(self, args: dict[str, JsonValue]) -> JsonValue:
        self.calls.append(args)
        return {"sum": 23}


def sum_tool(recorder: Recorder | None = None) -> ToolSpec:
    return ToolSpec.from_json_schema(SUM_NAME, "Sum the multiples below a limit.", SUM_SCHEMA, recorder or Recorder())


@pytest.fixture
def catalog() -> Catalog:
    return Catalog([AgentSpec(name="toolkit", description="Toolkit from another system.", tools=(sum_tool(),))])


async def test_a_call_passes_exactly_the_arguments_given_under_their_own_names() -> None:
    recorder = Recorder()

    result = await sum_tool(recorder).call({"limit": 10, "multiples": [3, 5], "_class": "exact", "from-date": None})

    assert result == {"sum": 23}
    assert recorder.calls == [{"limit": 10, "multiples": [3, 5], "_class": "exact"}]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"limit": 0, "multiples": [3]}, ["limit: 0 is less than the minimum of 1 (got 0)"]),
        ({"limit": 10, "multiples": [1]}, ["multiples: 1 is less than the minimum of 2 (got [1])"]),
        (
            {"limit": "ten", "multiples": [3], "_class": "slow"},
            [
                "limit: 'ten' is not of type 'integer' (got 'ten')",
                "_class: 'slow' is not one of ['fast', 'exact'] (got 'slow')",
            ],
        ),
        ({"multiples": [3]}, ["limit: Field required"]),
        ({"limit": 3, "multiples": [3], "limits": 4}, ["limits: Extra inputs are not permitted (got 4)"]),
    ],
)
def test_every_value_is_checked_against_the_schema(args: dict[str, Any], expected: list[str]) -> None:
    with pytest.raises(ValidationError) as info:
        sum_tool().validate_args(args)

    assert format_validation_error(info.value) == expected


def test_constraints_on_the_whole_object_are_checked() -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "lat": {"type": "number"}},
        "anyOf": [{"required": ["city"]}, {"required": ["lat"]}],
    }
    tool = ToolSpec.from_json_schema("geo.lookup", "", schema, Recorder())

    tool.validate_args({"lat": 1.5})
    with pytest.raises(ValidationError) as info:
        tool.validate_args({})
    assert "is not valid under any of the given schemas" in format_validation_error(info.value)[0]


@pytest.mark.parametrize(
    ("name", "schema", "message"),
    [
        ("has space", {"type": "object"}, "tool name 'has space' is not usable"),
        ("x" * 129, {"type": "object"}, "is not usable: use 1-128"),
        ("ok", {"type": "object", "properties": {"a b": {"type": "string"}}}, "parameter 'a b' cannot be written"),
        ("ok", {"type": "object", "properties": {"a": {"type": "nonsense"}}}, "is not a valid JSON Schema"),
        ("ok", {"type": "string"}, "must describe an object"),
    ],
)
def test_a_tool_that_cannot_be_used_as_defined_is_refused_at_build(name: str, schema: Any, message: str) -> None:
    with pytest.raises(ToolSchemaError, match="tool") as info:
        ToolSpec.from_json_schema(name, "", schema, Recorder())

    assert message in str(info.value)


def test_the_longest_mcp_name_is_accepted() -> None:
    assert ToolSpec.from_json_schema("a." * 63 + "zz", "", {"type": "object"}, Recorder()).name == "a." * 63 + "zz"


def test_plans_name_such_tools_and_validation_reports_them_as_spelled(catalog: Catalog) -> None:
    good = {"steps": [{"id": 1, "agent": "toolkit", "tool": SUM_NAME, "args": {"limit": 10, "multiples": [3, 5]}}]}
    assert parse_plan(good, catalog, PlanLimits()).steps[0].tool == SUM_NAME

    bad = {
        "steps": [
            {"id": 1, "agent": "toolkit", "tool": SUM_NAME, "args": {"limit": "$2", "multiples": [1]}},
            {"id": 2, "agent": "toolkit", "tool": "math_toolkit.sum", "args": {}},
        ]
    }
    with pytest.raises(PlanValidationError) as info:
        parse_plan(bad, catalog, PlanLimits())
    assert [str(p) for p in info.value.problems] == [
        f"step 1: arguments do not match {SUM_NAME}: args.multiples: 1 is less than the minimum of 2 (got [1]). "
        "Fix: pass exactly the tool's parameters (MCP: list_agents; CLI: planner-mcp schema --agents)",
        f"step 2: agent 'toolkit' has no tool 'math_toolkit.sum'. Fix: use one of its tools: {SUM_NAME}",
    ]


def test_the_planner_reply_schema_uses_the_names_and_parameter_schemas_as_given(catalog: Catalog) -> None:
    draft = plan_draft_model(catalog)
    plan = {
        "steps": [
            {
                "id": 1,
                "agent": "toolkit",
                "tool": SUM_NAME,
                "args": {"limit": 10, "multiples": [3, 5], "from-date": None, "_class": "fast"},
            },
            {
                "id": 2,
                "agent": "toolkit",
                "tool": SUM_NAME,
                "args": {"limit": "$1.sum", "multiples": [2], "from-date": None, "_class": None},
            },
        ]
    }

    reply = draft.model_validate(plan).model_dump(mode="json", by_alias=True, exclude_none=True)

    assert [step["args"] for step in reply["steps"]] == [
        {"limit": 10, "multiples": [3, 5], "_class": "fast"},
        {"limit": "$1.sum", "multiples": [2]},
    ]
    schema = json.dumps(draft.model_json_schema())
    assert '"from-date"' in schema and '"_class"' in schema and '"minimum": 2' in schema  # $ref inlined
    assert "Upper bound (exclusive)." in system_prompt(catalog) or SUM_NAME in system_prompt(catalog)


def test_reply_schemas_with_such_names_convert_to_a_llama_cpp_grammar(catalog: Catalog) -> None:
    pytest.importorskip("llama_cpp")
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    from agents.llm.embedded import grammar_schema

    for model in (plan_draft_model(catalog), turn_model(catalog.agent("toolkit"))):
        grammar = json_schema_to_gbnf(json.dumps(grammar_schema(model)))
        assert json.dumps(SUM_NAME)[1:-1] in grammar.replace("\\", "")


def test_mermaid_shows_the_tool_name_as_written() -> None:
    plan = Plan.model_validate({"steps": [{"id": 1, "agent": "toolkit", "tool": SUM_NAME, "args": {}}]})

    assert f'    s1["1. toolkit: {SUM_NAME}()<br/>wave 1"]' in flowchart(plan)
