"""Plan validation: every kind of problem, each with its step id and a fix, all reported at once."""

from __future__ import annotations

import json
from typing import Any

import pytest

from planning.catalog import Catalog
from planning.plan import Plan, Step
from planning.validate import PlanLimits, PlanValidationError, Problem, parse_plan, validate_plan

ARGS_FIX = "pass exactly the tool's parameters (MCP: list_agents; CLI: planner-mcp schema --agents)"
ONE_OF_FIX = 'write {"task": "..."} to let the agent choose, or {"tool": "name", "args": {...}}'


def problems_of(data: Any, catalog: Catalog, limits: PlanLimits | None = None) -> list[Problem]:
    with pytest.raises(PlanValidationError) as info:
        parse_plan(data, catalog, limits or PlanLimits())
    return info.value.problems


def step(id: int, **fields: Any) -> dict[str, Any]:
    return {"id": id, "agent": "math", **fields}


def test_valid_plan_is_returned_parsed(catalog: Catalog, limits: PlanLimits) -> None:
    data = {
        "steps": [
            step(1, tool="add", args={"a": 1, "b": 2}),
            step(2, task="Double $1"),
            {"id": 3, "agent": "string", "tool": "concat", "args": {"a": "$2", "b": "!"}, "depends_on": [1]},
        ]
    }
    expected = Plan(
        steps=[
            Step(id=1, agent="math", tool="add", args={"a": 1, "b": 2}),
            Step(id=2, agent="math", task="Double $1"),
            Step(id=3, agent="string", tool="concat", args={"a": "$2", "b": "!"}, depends_on=[1]),
        ]
    )

    assert parse_plan(data, catalog, limits) == expected
    assert parse_plan(json.dumps(data), catalog, limits) == expected
    assert parse_plan(json.dumps(data).encode(), catalog, limits) == expected
    assert parse_plan(data["steps"], catalog, limits) == expected


def test_unknown_agent_lists_the_valid_agents(catalog: Catalog) -> None:
    assert problems_of({"steps": [{"id": 1, "agent": "maths", "task": "add"}]}, catalog) == [
        Problem(step_id=1, message="unknown agent 'maths'", fix="use one of: ctl, math, other, string")
    ]


def test_unknown_tool_lists_the_agents_tools(catalog: Catalog) -> None:
    assert problems_of({"steps": [step(1, tool="subtract", args={"a": 1, "b": 2})]}, catalog) == [
        Problem(
            step_id=1,
            message="agent 'math' has no tool 'subtract'",
            fix="use one of its tools: add, fail, kind_of, multiply, total",
        )
    ]


def test_args_of_the_wrong_type_give_a_readable_message_naming_the_arg(catalog: Catalog) -> None:
    assert problems_of({"steps": [step(1, tool="add", args={"a": 1, "b": "two"})]}, catalog) == [
        Problem(
            step_id=1,
            message="arguments do not match add: args.b: Input should be a valid integer, "
            "unable to parse string as an integer (got 'two')",
            fix=ARGS_FIX,
        )
    ]


def test_missing_arg_is_named(catalog: Catalog) -> None:
    assert problems_of({"steps": [step(1, tool="add", args={"a": 1})]}, catalog) == [
        Problem(step_id=1, message="arguments do not match add: args.b: Field required", fix=ARGS_FIX)
    ]


def test_tool_step_without_args_reports_every_missing_arg(catalog: Catalog) -> None:
    assert problems_of({"steps": [step(1, tool="add")]}, catalog) == [
        Problem(
            step_id=1,
            message="arguments do not match add: args.a: Field required; args.b: Field required",
            fix=ARGS_FIX,
        )
    ]


def test_extra_arg_is_refused_by_name(catalog: Catalog) -> None:
    assert problems_of({"steps": [step(1, tool="add", args={"a": 1, "b": 2, "c": 3})]}, catalog) == [
        Problem(
            step_id=1,
            message="arguments do not match add: args.c: Extra inputs are not permitted (got 3)",
            fix=ARGS_FIX,
        )
    ]


def test_missing_id_is_reported_by_position(catalog: Catalog) -> None:
    assert problems_of({"steps": [step(1, task="a"), {"agent": "math", "task": "b"}]}, catalog) == [
        Problem(step_id=None, message="step at position 2: id: Field required", fix="add the field")
    ]


def test_id_of_the_wrong_type_is_reported_with_the_value(catalog: Catalog) -> None:
    assert problems_of({"steps": [{"id": "one", "agent": "math", "task": "a"}]}, catalog) == [
        Problem(
            step_id=None,
            message="step at position 1: id: Input should be a valid integer, unable to parse string as an integer "
            "(got 'one')",
            fix="give the field a value of the right type",
        )
    ]


def test_unknown_step_field_is_refused_with_the_fields_a_step_has(catalog: Catalog) -> None:
    assert problems_of({"steps": [step(1, task="a", dependencies_on=[2])]}, catalog) == [
        Problem(
            step_id=1,
            message="dependencies_on: Extra inputs are not permitted (got [2])",
            fix="remove the field (a step has id, agent, task or tool+args, depends_on, timeout_s)",
        )
    ]


def test_dependency_on_a_missing_id_lists_the_ids(catalog: Catalog) -> None:
    assert problems_of({"steps": [step(1, task="a"), step(2, task="b", depends_on=[7])]}, catalog) == [
        Problem(step_id=2, message="depends on step 7, which does not exist", fix="use one of the ids [1, 2]")
    ]


def test_reference_to_a_missing_step_is_reported_in_args_and_in_tasks(catalog: Catalog) -> None:
    plan = {
        "steps": [
            step(1, tool="add", args={"a": "${9}", "b": 1}),
            step(2, task="use ${8}"),
            step(3, task="use ${7.temp}"),
        ]
    }
    fix = "use one of the ids [1, 2, 3]"

    assert problems_of(plan, catalog) == [
        Problem(step_id=1, message="${9} refers to step 9, which does not exist", fix=fix),
        Problem(step_id=2, message="${8} refers to step 8, which does not exist", fix=fix),
        Problem(step_id=3, message="${7.temp} refers to step 7, which does not exist", fix=fix),
    ]


def test_a_dollar_amount_where_a_number_is_due_gets_advice_the_model_can_follow(catalog: Catalog) -> None:
    plan = {"steps": [step(1, tool="add", args={"a": "$10", "b": 2})]}

    assert problems_of(plan, catalog) == [
        Problem(
            step_id=1,
            message="args.a = '$10' is not a whole number and not a reference (the plan has no other step 10)",
            fix="write the value itself without '$' (e.g. 10); a reference $N needs a step with id N",
        )
    ]


def test_dollars_in_text_are_literal_and_need_no_escape(catalog: Catalog, limits: PlanLimits) -> None:
    plan = parse_plan(
        {
            "steps": [
                {"id": 1, "agent": "string", "tool": "concat", "args": {"a": "$10", "b": "from $20-$30"}},
                step(2, task="costs $9"),
            ]
        },
        catalog,
        limits,
    )

    assert [s.needs() for s in plan.steps] == [set(), set()]


def test_self_dependency_is_refused(catalog: Catalog) -> None:
    assert problems_of({"steps": [step(1, task="a", depends_on=[1])]}, catalog) == [
        Problem(step_id=1, message="the step depends on itself", fix="remove 1 from depends_on")
    ]


def test_self_reference_is_refused(catalog: Catalog) -> None:
    assert problems_of({"steps": [step(1, tool="add", args={"a": "${1}", "b": 1})]}, catalog) == [
        Problem(step_id=1, message="${1} refers to the step's own result", fix="refer only to other steps")
    ]


CYCLE_FIX = "remove one of these dependencies so the steps can run in order"


def test_two_step_cycle_is_named(catalog: Catalog) -> None:
    plan = {"steps": [step(1, task="a", depends_on=[2]), step(2, task="b", depends_on=[1])]}

    assert problems_of(plan, catalog) == [Problem(step_id=1, message="dependency cycle 1 -> 2 -> 1", fix=CYCLE_FIX)]


def test_three_step_cycle_through_a_reference_is_named(catalog: Catalog) -> None:
    plan = {
        "steps": [
            step(1, task="a", depends_on=[3]),
            step(2, task="b", depends_on=[1]),
            step(3, task="c from ${2}"),
            step(4, task="independent"),
        ]
    }

    assert problems_of(plan, catalog) == [
        Problem(step_id=1, message="dependency cycle 1 -> 3 -> 2 -> 1", fix=CYCLE_FIX)
    ]


def test_duplicate_ids_are_refused(catalog: Catalog) -> None:
    assert problems_of({"steps": [step(1, task="a"), step(1, task="b")]}, catalog) == [
        Problem(step_id=1, message="id 1 is used by several steps", fix="give each step its own id")
    ]


def test_non_positive_id_is_refused(catalog: Catalog) -> None:
    assert problems_of({"steps": [step(0, task="a")]}, catalog) == [
        Problem(step_id=0, message="ids must be positive", fix="number steps 1, 2, 3, ...")
    ]


def test_empty_plan_is_refused(catalog: Catalog) -> None:
    assert problems_of({"steps": []}, catalog) == [
        Problem(step_id=None, message="the plan has no steps", fix="add at least one step")
    ]


def test_more_than_100_steps_are_refused_by_default(catalog: Catalog) -> None:
    plan = {"steps": [step(i, task="a") for i in range(1, 102)]}

    assert problems_of(plan, catalog) == [
        Problem(
            message="the plan has 101 steps, more than the limit of 100",
            fix="merge steps or split the request into several plans",
        )
    ]
    assert parse_plan({"steps": plan["steps"][:100]}, catalog, PlanLimits()).steps[-1].id == 100


def test_step_cap_is_configurable(catalog: Catalog) -> None:
    plan = {"steps": [step(i, task="a") for i in range(1, 4)]}

    assert problems_of(plan, catalog, PlanLimits(max_steps=2)) == [
        Problem(
            message="the plan has 3 steps, more than the limit of 2",
            fix="merge steps or split the request into several plans",
        )
    ]


def test_ten_thousand_steps_are_refused_before_any_step_is_parsed(catalog: Catalog) -> None:
    # Steps that are not even objects: had they been parsed, their shape errors would be listed.
    assert problems_of({"steps": [None] * 10_000}, catalog) == [
        Problem(
            message="the plan has 10000 steps, more than the limit of 100",
            fix="merge steps or split the request into several plans",
        )
    ]


def test_validate_plan_refuses_too_many_steps_of_an_already_parsed_plan(catalog: Catalog) -> None:
    plan = Plan(steps=[Step(id=i, agent="math", task="a") for i in range(1, 4)])

    assert validate_plan(plan, catalog, PlanLimits(max_steps=2)) == [
        Problem(
            message="the plan has 3 steps, more than the limit of 2",
            fix="merge steps or split the request into several plans",
        )
    ]


def test_strings_over_the_size_cap_are_refused_in_tasks_and_args(catalog: Catalog) -> None:
    plan = {
        "steps": [
            step(1, task="x" * 11),
            {"id": 2, "agent": "string", "tool": "concat", "args": {"a": "short", "b": "y" * 12}},
        ]
    }
    fix = "shorten it, or pass a large input through a previous step's result ($N)"

    assert problems_of(plan, catalog, PlanLimits(max_string_chars=10)) == [
        Problem(step_id=1, message="a text of 11 characters exceeds the limit of 10", fix=fix),
        Problem(step_id=2, message="a text of 12 characters exceeds the limit of 10", fix=fix),
    ]


def test_default_string_cap_is_100_000_characters(catalog: Catalog) -> None:
    assert problems_of({"steps": [step(1, task="x" * 100_001)]}, catalog) == [
        Problem(
            step_id=1,
            message="a text of 100001 characters exceeds the limit of 100000",
            fix="shorten it, or pass a large input through a previous step's result ($N)",
        )
    ]


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def test_args_nested_deeper_than_the_limit_are_refused(catalog: Catalog) -> None:
    plan = {"steps": [step(1, tool="kind_of", args={"value": nested(21)})]}

    assert problems_of(plan, catalog) == [
        Problem(step_id=1, message="args are nested deeper than 20 levels", fix="flatten the arguments")
    ]
    assert problems_of(plan, catalog, PlanLimits(max_nesting=3)) == [
        Problem(step_id=1, message="args are nested deeper than 3 levels", fix="flatten the arguments")
    ]
    assert parse_plan({"steps": [step(1, tool="kind_of", args={"value": nested(19)})]}, catalog, PlanLimits())


def test_hostile_nesting_is_a_problem_not_a_crash(catalog: Catalog) -> None:
    plan = {"steps": [step(1, tool="kind_of", args={"value": nested(3000)})]}

    assert problems_of(plan, catalog) == [
        Problem(step_id=1, message="the plan is nested too deeply", fix="keep arguments flat")
    ]


def test_hostile_nesting_in_json_text_is_a_problem_not_a_crash(catalog: Catalog) -> None:
    [problem] = problems_of("[" * 100_000 + "]" * 100_000, catalog)

    assert problem.step_id is None
    assert problem.message.startswith("the plan is not valid JSON")


def test_step_with_both_task_and_tool_is_refused(catalog: Catalog) -> None:
    assert problems_of({"steps": [step(1, task="add them", tool="add", args={"a": 1, "b": 2})]}, catalog) == [
        Problem(
            step_id=1,
            message="a step needs exactly one of `task` (agent step) or `tool` + `args` (tool step)",
            fix=ONE_OF_FIX,
        ),
        Problem(step_id=1, message="`args` belong to tool steps", fix="remove `args`, or replace `task` with a `tool`"),
    ]


def test_step_with_neither_task_nor_tool_is_refused(catalog: Catalog) -> None:
    assert problems_of({"steps": [step(1)]}, catalog) == [
        Problem(
            step_id=1,
            message="a step needs exactly one of `task` (agent step) or `tool` + `args` (tool step)",
            fix=ONE_OF_FIX,
        )
    ]


def test_args_on_an_agent_step_are_refused(catalog: Catalog) -> None:
    assert problems_of({"steps": [step(1, task="add", args={"a": 1})]}, catalog) == [
        Problem(step_id=1, message="`args` belong to tool steps", fix="remove `args`, or replace `task` with a `tool`")
    ]


def test_blank_task_is_refused(catalog: Catalog) -> None:
    assert problems_of({"steps": [step(1, task="   ")]}, catalog) == [
        Problem(step_id=1, message="the task is empty", fix="describe what the agent should do")
    ]


def test_invalid_json_text_is_refused_with_the_expected_shape(catalog: Catalog) -> None:
    assert problems_of('{"steps": [', catalog) == [
        Problem(
            message="the plan is not valid JSON (Expecting value: line 1 column 12 (char 11))",
            fix='send a JSON object {"steps": [...]}',
        )
    ]


def test_whole_value_reference_skips_the_plan_time_type_check(catalog: Catalog, limits: PlanLimits) -> None:
    # Step 1 returns a string; whether it fits an int is only known when step 2 runs.
    plan = {
        "steps": [
            {"id": 1, "agent": "string", "tool": "concat", "args": {"a": "4", "b": "2"}},
            step(2, tool="add", args={"a": "$1", "b": 1}),
        ]
    }

    assert parse_plan(plan, catalog, limits).steps[1].needs() == {1}


def test_reference_inside_a_string_is_type_checked_as_text(catalog: Catalog) -> None:
    plan = {"steps": [step(1, tool="add", args={"a": 1, "b": 2}), step(2, tool="add", args={"a": "1$1", "b": 1})]}

    assert problems_of(plan, catalog) == [
        Problem(
            step_id=2,
            message="arguments do not match add: args.a: Input should be a valid integer, "
            "unable to parse string as an integer (got '1$1')",
            fix=ARGS_FIX,
        )
    ]


def test_every_problem_of_a_plan_is_reported_at_once_with_its_step_and_fix(catalog: Catalog) -> None:
    plan = {
        "steps": [
            {"id": 1, "agent": "maths", "task": "a", "depends_on": [7]},
            step(2, tool="add", args={"a": "q", "b": 1}),
            {"id": 2, "agent": "string", "tool": "nope", "args": {}},
            step(3, task="b", depends_on=[4]),
            step(4, task="c from ${3}"),
            step(5, task="d", depends_on=[5]),
        ]
    }

    problems = problems_of(plan, catalog)

    assert problems == [
        Problem(step_id=2, message="id 2 is used by several steps", fix="give each step its own id"),
        Problem(step_id=1, message="depends on step 7, which does not exist", fix="use one of the ids [1, 2, 3, 4, 5]"),
        Problem(step_id=1, message="unknown agent 'maths'", fix="use one of: ctl, math, other, string"),
        Problem(
            step_id=2,
            message="arguments do not match add: args.a: Input should be a valid integer, "
            "unable to parse string as an integer (got 'q')",
            fix=ARGS_FIX,
        ),
        Problem(step_id=2, message="agent 'string' has no tool 'nope'", fix="use one of its tools: concat"),
        Problem(step_id=5, message="the step depends on itself", fix="remove 5 from depends_on"),
        Problem(step_id=3, message="dependency cycle 3 -> 4 -> 3", fix=CYCLE_FIX),
    ]


def test_shape_errors_of_several_steps_are_reported_at_once(catalog: Catalog) -> None:
    plan = {"steps": [{"id": "one", "agent": "math", "task": "a"}, {"id": 2, "task": "b"}, step(3, task=5)]}

    assert problems_of(plan, catalog) == [
        Problem(
            message="step at position 1: id: Input should be a valid integer, unable to parse string as an integer "
            "(got 'one')",
            fix="give the field a value of the right type",
        ),
        Problem(step_id=2, message="agent: Field required", fix="add the field"),
        Problem(
            step_id=3,
            message="task: Input should be a valid string (got 5)",
            fix="give the field a value of the right type",
        ),
    ]


def test_error_message_lists_problems_and_says_how_many_were_left_out(catalog: Catalog) -> None:
    plan = {"steps": [{"id": i, "agent": "nobody", "task": "a"} for i in range(1, 5)]}

    with pytest.raises(PlanValidationError) as info:
        parse_plan(plan, catalog, PlanLimits(max_reported=2))

    assert len(info.value.problems) == 4
    assert str(info.value) == (
        "the plan is invalid (4 problem(s)):\n"
        "- step 1: unknown agent 'nobody'. Fix: use one of: ctl, math, other, string\n"
        "- step 2: unknown agent 'nobody'. Fix: use one of: ctl, math, other, string\n"
        "- ... and 2 more"
    )


def test_problem_without_a_step_reads_as_a_plan_problem() -> None:
    assert str(Problem(message="the plan has no steps", fix="add at least one step")) == (
        "plan: the plan has no steps. Fix: add at least one step"
    )
