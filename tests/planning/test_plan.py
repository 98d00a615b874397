"""The plan contract: seed-shape conversion, `$N` references and their typing, waves."""

from __future__ import annotations

import pytest
from pydantic import JsonValue

from planning.plan import (
    Plan,
    Step,
    UnresolvedReferenceError,
    is_whole_reference,
    plan_json_schema,
    resolve_references,
    result_text,
)
from tests.planning.conftest import make_plan


def test_seed_shape_without_ids_gets_ids_from_positions_and_one_based_dependencies() -> None:
    plan = Plan.model_validate(
        {
            "steps": [
                {"agent": "math", "task": "Calculate 5 factorial", "dependencies": []},
                {"agent": "string", "task": "Count letters in 'test'", "dependencies": []},
                {"agent": "math", "task": "Multiply the results", "dependencies": [0, 1]},
            ]
        }
    )

    assert plan == Plan(
        steps=[
            Step(id=1, agent="math", task="Calculate 5 factorial"),
            Step(id=2, agent="string", task="Count letters in 'test'"),
            Step(id=3, agent="math", task="Multiply the results", depends_on=[1, 2]),
        ]
    )


def test_seed_shape_as_a_bare_list_is_accepted() -> None:
    plan = Plan.model_validate([{"agent": "math", "task": "a", "dependencies": []}])

    assert plan == Plan(steps=[Step(id=1, agent="math", task="a")])


def test_seed_shape_step_that_omits_dependencies_still_gets_its_position_as_id() -> None:
    # The seed read `step.get("dependencies", [])`: small models leave out an empty list.
    plan = Plan.model_validate(
        {"steps": [{"agent": "math", "task": "a"}, {"agent": "math", "task": "b", "dependencies": [0]}]}
    )

    assert plan == Plan(steps=[Step(id=1, agent="math", task="a"), Step(id=2, agent="math", task="b", depends_on=[1])])


def test_plan_with_ids_is_not_converted() -> None:
    plan = Plan.model_validate({"steps": [{"id": 7, "agent": "math", "task": "a", "depends_on": [3]}]})

    assert plan == Plan(steps=[Step(id=7, agent="math", task="a", depends_on=[3])])


def test_references_are_whole_values_explicit_forms_or_declared_dollars_in_text() -> None:
    step = Step(
        id=5,
        agent="math",
        tool="total",
        args={"values": ["$1", {"x": "cost: $2 and ${3}"}], "note": "$4.50 and ${14.total}"},
        depends_on=[2],
    )

    assert step.references() == {1, 2, 3, 14}
    assert Step(id=2, agent="math", task="double $1, not $9", depends_on=[1]).references() == {1}


def test_dollar_amounts_are_literal_text() -> None:
    plan = Plan.model_validate(
        {
            "steps": [
                {"id": 1, "agent": "string", "tool": "upper", "args": {"text": "$10"}},
                {"id": 2, "agent": "string", "tool": "upper", "args": {"text": "from $20-$30, or $1 off"}},
                {"id": 3, "agent": "web", "task": "hotels at $2 a night"},
            ]
        }
    )

    assert [step.needs() for step in plan.steps] == [set(), set(), set()]
    assert plan.steps[0].resolved_args({}) == {"text": "$10"}
    assert plan.steps[1].resolved_args({}) == {"text": "from $20-$30, or $1 off"}
    assert plan.steps[2].resolved_task({}) == "hotels at $2 a night"


def test_a_whole_dollar_number_is_a_reference_only_where_the_plan_has_that_step() -> None:
    plan = Plan.model_validate(
        {
            "steps": [
                {"id": 1, "agent": "math", "tool": "add", "args": {"a": 1, "b": 2}},
                {"id": 2, "agent": "string", "tool": "concat", "args": {"a": "$1", "b": "$7"}},
            ]
        }
    )

    assert plan.steps[1].needs() == {1}
    assert plan.steps[1].resolved_args({1: 3}) == {"a": 3, "b": "$7"}


def test_references_imply_dependencies() -> None:
    step = Step(id=3, agent="math", tool="add", args={"a": "$1", "b": 2}, depends_on=[2])

    assert step.needs() == {1, 2}


def test_whole_value_reference_keeps_the_result_type() -> None:
    results = {1: 42, 2: 2.5, 3: [1, 2], 4: {"k": "v"}, 5: None, 6: True}
    args = {"a": "$1", "b": "$2", "c": "$3", "d": "$4", "e": "$5", "f": "$6", "nested": ["$1", {"x": "$4"}]}

    assert resolve_references(args, results) == {
        "a": 42,
        "b": 2.5,
        "c": [1, 2],
        "d": {"k": "v"},
        "e": None,
        "f": True,
        "nested": [42, {"x": {"k": "v"}}],
    }


def test_reference_inside_a_string_becomes_the_result_text() -> None:
    results = {1: 42, 2: "Paris", 3: {"temp": 21.5}, 4: [1, "a"]}

    resolved = resolve_references("$2: $1 and ${3} and $4.", results)

    assert resolved == 'Paris: 42 and {"temp": 21.5} and [1, "a"].'


def test_inside_text_a_bare_reference_needs_a_declared_dependency_and_the_explicit_form_does_not() -> None:
    step = Step(id=3, agent="string", tool="upper", args={"text": "$1 or ${2}, $1.5 each"}, depends_on=[2])

    assert step.resolved_args({1: "a", 2: "b"}) == {"text": "$1 or b, $1.5 each"}
    assert resolve_references("$2 and ${2}", {2: 7}, declared=[2]) == "7 and 7"


def test_values_without_references_are_unchanged() -> None:
    args = {"a": 1, "b": 2.0, "c": None, "d": [True], "e": "no refs", "f": "$ alone", "g": "$$5", "h": "$9"}

    assert resolve_references(args, {}) == args


def test_a_field_reference_picks_a_field_of_an_object_result_keeping_its_type() -> None:
    results: dict[int, JsonValue] = {1: {"current": {"temp": 21.5, "tags": ["sun"]}, "city": "Paris"}}

    assert resolve_references({"t": "$1.current.temp", "tags": "$1.current.tags"}, results) == {
        "t": 21.5,
        "tags": ["sun"],
    }
    assert resolve_references("${1.city} is at $1.current.temp C.", results) == "Paris is at 21.5 C."


def test_a_field_reference_counts_as_a_reference_to_its_step() -> None:
    assert Step(id=3, agent="math", task="use $2.temp and ${1.x}", depends_on=[2]).references() == {1, 2}


def test_a_missing_field_names_the_fields_the_result_has() -> None:
    with pytest.raises(UnresolvedReferenceError) as info:
        resolve_references("$1.temperature", {1: {"temp": 21.5, "city": "Paris"}})
    assert str(info.value) == "$1.temperature: step 1's result has no field 'temperature'; its fields are: temp, city"

    with pytest.raises(UnresolvedReferenceError) as info:
        resolve_references("$1.temp", {1: 21.5})
    assert str(info.value) == "$1.temp: step 1's result has no field 'temp'; it is not an object"


def test_digits_after_a_reference_are_text_not_a_field() -> None:
    assert resolve_references("$1.50 each", {1: 3}) == "3.50 each"
    assert resolve_references("Double $1.", {1: 3}) == "Double 3."


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("$1", True),
        ("$12", True),
        ("${3.x}", True),
        (" $1", False),
        ("$1 ", False),
        ("$1$2", False),
        ("$$1", False),
        (1, False),
    ],
)
def test_only_an_exact_dollar_number_is_a_whole_reference(value: object, expected: bool) -> None:
    assert is_whole_reference(value) is expected  # type: ignore[arg-type]


def test_result_text_keeps_strings_and_writes_json_for_the_rest() -> None:
    values: list[JsonValue] = ["héllo", 3, 1.5, None, ["ü"], {"a": 1}]

    assert [result_text(v) for v in values] == [
        "héllo",
        "3",
        "1.5",
        "null",
        '["ü"]',
        '{"a": 1}',
    ]


def test_waves_are_dependency_depths_including_references() -> None:
    plan = make_plan(
        {"id": 1, "agent": "math", "task": "a"},
        {"id": 2, "agent": "math", "task": "b", "depends_on": [1]},
        {"id": 3, "agent": "math", "tool": "add", "args": {"a": "$2", "b": "$1"}},
        {"id": 4, "agent": "math", "task": "d"},
        {"id": 5, "agent": "math", "task": "e from ${4}"},
    )

    assert plan.waves() == {1: 1, 2: 2, 3: 3, 4: 1, 5: 2}


def test_step_lookup_by_id_and_unknown_id_raises_key_error() -> None:
    plan = make_plan({"id": 4, "agent": "math", "task": "a"})

    assert plan.step(4) == Step(id=4, agent="math", task="a")
    with pytest.raises(KeyError):
        plan.step(5)


def test_plan_json_schema_describes_steps_for_hand_written_plans() -> None:
    schema = plan_json_schema()

    assert schema["required"] == ["steps"]
    step_schema = schema["$defs"]["Step"]
    assert set(step_schema["properties"]) == {"id", "agent", "task", "tool", "args", "depends_on", "timeout_s"}
    assert step_schema["required"] == ["id", "agent"]
    assert step_schema["additionalProperties"] is False
