"""The catalog: tools described by their signatures, agents and their lookups."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import AfterValidator, BaseModel, Field, ValidationError

from planning.catalog import AgentSpec, Catalog, CatalogError, ToolSpec, format_validation_error
from tests.planning.conftest import Tally, add, concat
from tools.arguments import checked
from tools.errors import ToolArgumentsError


def shorten(text: Annotated[str, Field(description="The text to shorten.")], limit: int = 10) -> str:
    """Cut a text to at most `limit` characters.

    Use it for previews.
    """
    return text[:limit]


class Point(BaseModel):
    x: int
    y: int


async def point(x: Annotated[int, Field(ge=0)], y: int) -> Point:
    """A point in the plane (non-negative x)."""
    return Point(x=x, y=y)


def pair(a: int) -> tuple[int, int]:
    """A pair."""
    return (a, a)


def test_tool_spec_takes_name_description_and_schema_from_the_function() -> None:
    tool = ToolSpec.from_function(shorten)

    assert (tool.name, tool.description, tool.function) == (
        "shorten",
        "Cut a text to at most `limit` characters.\n\nUse it for previews.",
        shorten,
    )
    assert tool.parameters_schema() == {
        "additionalProperties": False,
        "properties": {
            "text": {"description": "The text to shorten.", "title": "Text", "type": "string"},
            "limit": {"default": 10, "title": "Limit", "type": "integer"},
        },
        "required": ["text"],
        "title": "shorten arguments",
        "type": "object",
    }


def test_tool_spec_name_can_be_given_and_bound_methods_are_tools() -> None:
    tally = Tally()
    tool = ToolSpec.from_function(tally.count, name="tally")

    assert tool.name == "tally"
    assert tool.parameters_schema()["properties"] == {"value": {"title": "Value", "type": "integer"}}


def test_tool_without_annotations_is_refused_by_name() -> None:
    def untyped(a, b: int) -> int:  # type: ignore[no-untyped-def]
        return b

    with pytest.raises(TypeError, match=r"^tool 'untyped': argument 'a' needs a type annotation$"):
        ToolSpec.from_function(untyped)


def test_tool_with_var_args_is_refused_by_name() -> None:
    def variadic(*numbers: int) -> int:
        return sum(numbers)

    with pytest.raises(
        TypeError, match=r"^tool 'variadic': \*args/\*\*kwargs cannot be described; name every argument$"
    ):
        ToolSpec.from_function(variadic)


def test_validate_args_applies_defaults_constraints_and_refuses_extras() -> None:
    assert ToolSpec.from_function(shorten).validate_args({"text": "abc"}).model_dump() == {"text": "abc", "limit": 10}

    with pytest.raises(ValidationError) as info:
        ToolSpec.from_function(point).validate_args({"x": -1, "y": 2, "z": 3})

    assert format_validation_error(info.value, "args") == [
        "args.x: Input should be greater than or equal to 0 (got -1)",
        "args.z: Extra inputs are not permitted (got 3)",
    ]


@pytest.mark.anyio
async def test_call_runs_sync_and_async_tools_and_returns_json_data() -> None:
    assert await ToolSpec.from_function(add).call({"a": 2, "b": 3}) == 5
    assert await ToolSpec.from_function(point).call({"x": 1, "y": 2}) == {"x": 1, "y": 2}
    assert await ToolSpec.from_function(pair).call({"a": 4}) == [4, 4]


@pytest.mark.anyio
async def test_call_validates_before_calling() -> None:
    tally = Tally()

    with pytest.raises(ValidationError):
        await ToolSpec.from_function(tally.count).call({"value": "many"})

    assert tally.calls == 0


def test_agent_refuses_a_tool_listed_twice() -> None:
    with pytest.raises(ValueError, match=r"^agent 'math' lists tool 'add' twice$"):
        AgentSpec(name="math", description="m", tools=(ToolSpec.from_function(add), ToolSpec.from_function(add)))


def test_unknown_tool_lookup_lists_the_agents_tools() -> None:
    agent = AgentSpec(
        name="string", description="s", tools=(ToolSpec.from_function(concat), ToolSpec.from_function(shorten))
    )

    assert agent.tool("concat").function is concat
    with pytest.raises(CatalogError) as info:
        agent.tool("upper")
    assert str(info.value) == "agent 'string' has no tool 'upper'; its tools are: concat, shorten"


def test_catalog_refuses_an_agent_listed_twice() -> None:
    agent = AgentSpec(name="math", description="m", tools=())

    with pytest.raises(ValueError, match=r"^the catalog lists agent 'math' twice$"):
        Catalog([agent, agent])


def test_unknown_agent_lookup_lists_the_agents() -> None:
    catalog = Catalog(
        [AgentSpec(name="string", description="s", tools=()), AgentSpec(name="math", description="m", tools=())]
    )

    assert catalog.agent("math").name == "math"
    with pytest.raises(CatalogError) as info:
        catalog.agent("weather")
    assert str(info.value) == "unknown agent 'weather'; the agents are: math, string"


def test_describe_lists_agents_with_their_tools_schemas_in_catalog_order() -> None:
    catalog = Catalog(
        [
            AgentSpec(name="string", description="Text tools.", tools=(ToolSpec.from_function(shorten),)),
            AgentSpec(name="math", description="Arithmetic.", tools=(ToolSpec.from_function(add),)),
        ]
    )

    assert catalog.describe() == [
        {
            "name": "string",
            "description": "Text tools.",
            "tools": [
                {
                    "name": "shorten",
                    "description": "Cut a text to at most `limit` characters.\n\nUse it for previews.",
                    "parameters": ToolSpec.from_function(shorten).parameters_schema(),
                }
            ],
        },
        {
            "name": "math",
            "description": "Arithmetic.",
            "tools": [
                {
                    "name": "add",
                    "description": "Add two integers.",
                    "parameters": {
                        "additionalProperties": False,
                        "properties": {
                            "a": {"title": "A", "type": "integer"},
                            "b": {"title": "B", "type": "integer"},
                        },
                        "required": ["a", "b"],
                        "title": "add arguments",
                        "type": "object",
                    },
                }
            ],
        },
    ]


def test_format_validation_error_writes_one_line_per_error_with_the_bad_value() -> None:
    with pytest.raises(ValidationError) as info:
        ToolSpec.from_function(add).validate_args({"a": "x" * 200})

    assert format_validation_error(info.value, "args") == [
        "args.a: Input should be a valid integer, unable to parse string as an integer (got "
        + repr("x" * 200)[:80]
        + ")",
        "args.b: Field required",
    ]
    assert format_validation_error(info.value) == [
        "a: Input should be a valid integer, unable to parse string as an integer (got " + repr("x" * 200)[:80] + ")",
        "b: Field required",
    ]


def route(_from: Annotated[str, Field(description="Start city.")], to: str, json: bool = False) -> str:
    """A route between two cities."""
    return f"{_from}->{to}{' (json)' if json else ''}"


@pytest.mark.anyio
async def test_parameters_named_with_a_leading_underscore_or_like_pydantic_attributes_keep_their_names() -> None:
    tool = ToolSpec.from_function(route)

    assert tool.parameter_names() == ["_from", "to", "json"]
    assert tool.parameters_schema()["properties"]["_from"] == {
        "description": "Start city.",
        "title": "From",
        "type": "string",
    }
    assert tool.parameters_schema()["required"] == ["_from", "to"]
    assert await tool.call({"_from": "Oslo", "to": "Rome", "json": True}) == "Oslo->Rome (json)"
    with pytest.raises(ValidationError, match="_from"):
        tool.validate_args({"to": "Rome"})


def test_an_args_model_that_hides_a_parameter_as_private_is_refused_at_build() -> None:
    class Hidden(BaseModel):
        _from: str = "x"
        to: str

    with pytest.raises(TypeError, match=r"tool 'hidden': the args model Hidden keeps \['_from'\] as private"):
        ToolSpec(name="hidden", description="", function=route, args_model=Hidden)


def test_a_parameter_name_a_model_cannot_write_is_refused_at_build() -> None:
    def measure(größe: int) -> int:
        """Measure."""
        return größe

    with pytest.raises(TypeError, match=r"tool 'measure': parameter 'größe' cannot be written by a model"):
        ToolSpec.from_function(measure)


_validated: list[int] = []
Counted = Annotated[int, AfterValidator(lambda n: _validated.append(n) or n), Field(ge=0)]


@checked
def double(n: Counted) -> int:
    """Twice n."""
    return 2 * n


class Doubler:
    @checked
    async def double(self, n: Counted) -> int:
        """Twice n."""
        return 2 * n


@pytest.mark.anyio
async def test_a_checked_tool_called_through_the_catalog_is_validated_once_and_directly_still_is() -> None:
    _validated.clear()
    function, method = ToolSpec.from_function(double), ToolSpec.from_function(Doubler().double)

    assert (await function.call({"n": "21"}), await method.call({"n": 5})) == (42, 10)
    assert _validated == [21, 5]  # once each: the catalog's model, not `checked` again
    assert (double("4"), await Doubler().double(n=3)) == (8, 6)  # pyright: ignore[reportArgumentType]
    assert _validated == [21, 5, 4, 3]
    with pytest.raises(ToolArgumentsError, match="n: Input should be greater than or equal to 0"):
        double(-1)
    with pytest.raises(ValidationError):
        await function.call({"n": -1})
