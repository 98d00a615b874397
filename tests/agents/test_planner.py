import json

import pytest
from pydantic import JsonValue

from agents.llm import ScriptedLLM
from agents.planner import EXAMPLE_PLAN, Planner, PlanningError, system_prompt
from agents.schemas import plan_draft_model
from planning.catalog import AgentSpec, Catalog, ToolSpec
from planning.plan import Plan
from planning.validate import PlanLimits
from tools import math, string

pytestmark = pytest.mark.anyio

SEED_REQUEST = (
    "Calculate 10 times 5 and count words in 'Hello World', then multiply the word count by the calculation result"
)
GOOD_PLAN = {
    "steps": [
        {"id": 1, "agent": "math", "tool": "multiply", "args": {"a": 10, "b": 5}},
        {"id": 2, "agent": "string", "tool": "word_count", "args": {"text": "Hello World"}},
        {"id": 3, "agent": "math", "tool": "multiply", "args": {"a": "$2", "b": "$1"}, "depends_on": [1, 2]},
    ]
}


@pytest.fixture
def catalog() -> Catalog:
    return Catalog(
        [
            AgentSpec(
                name="math",
                description="Arithmetic",
                tools=(ToolSpec.from_function(math.multiply), ToolSpec.from_function(math.add)),
            ),
            AgentSpec(name="string", description="Text", tools=(ToolSpec.from_function(string.word_count),)),
        ]
    )


async def test_a_valid_first_reply_becomes_the_plan_in_one_round(catalog: Catalog) -> None:
    llm = ScriptedLLM([GOOD_PLAN])

    result = await Planner(llm, catalog, PlanLimits()).plan(SEED_REQUEST)

    assert result.rounds == 1
    assert result.plan.model_dump(exclude_defaults=True) == GOOD_PLAN
    assert result.usage.calls == 1
    assert [call.role for call in llm.calls] == ["planner"]


async def test_validation_errors_go_back_to_the_model_until_the_plan_is_valid(catalog: Catalog) -> None:
    bad = {
        "steps": [
            {"id": 1, "agent": "math", "tool": "multiply", "args": {"a": 10, "b": "$5"}},
            {"id": 2, "agent": "math", "tool": "add", "args": {"a": "$1", "b": 1}, "depends_on": [2]},
        ]
    }
    llm = ScriptedLLM([bad, GOOD_PLAN])

    result = await Planner(llm, catalog, PlanLimits()).plan(SEED_REQUEST)

    assert result.rounds == 2
    assert result.plan.model_dump(exclude_defaults=True) == GOOD_PLAN
    feedback = llm.calls[1].messages[-1].content
    assert "step 1: args.b = '$5' is not a number and not a reference (the plan has no other step 5)" in feedback
    assert "step 2: the step depends on itself" in feedback
    assert SEED_REQUEST in feedback
    assert Plan.model_validate_json(llm.calls[1].messages[-2].content) == Plan.model_validate(bad)


async def test_the_planner_gives_up_after_its_repair_rounds_with_every_problem(catalog: Catalog) -> None:
    bad = {"steps": [{"id": 1, "agent": "math", "task": "x", "depends_on": [7]}]}
    llm = ScriptedLLM([bad, bad, bad])

    with pytest.raises(PlanningError, match="depends on step 7, which does not exist") as caught:
        await Planner(llm, catalog, PlanLimits(), repair_rounds=2).plan("do x")

    assert len(llm.calls) == 3
    assert "write the plan yourself" in str(caught.value)


async def test_a_plan_that_copies_the_worked_example_is_sent_back(catalog: Catalog) -> None:
    llm = ScriptedLLM([EXAMPLE_PLAN, GOOD_PLAN])

    result = await Planner(llm, catalog, PlanLimits()).plan(SEED_REQUEST)

    assert result.plan.model_dump(exclude_defaults=True) == GOOD_PLAN
    assert "copies the example" in llm.calls[1].messages[-1].content


def test_the_prompt_lists_every_agent_and_tool_signature(catalog: Catalog) -> None:
    prompt = system_prompt(catalog)

    assert "- math: Arithmetic" in prompt
    assert "multiply(a: int | number, b: int | number)" in prompt
    assert "word_count(text: str)" in prompt


def test_the_reply_schema_only_admits_catalog_names(catalog: Catalog) -> None:
    schema = json.dumps(plan_draft_model(catalog).model_json_schema())

    assert '"enum": ["math", "string"]' in schema
    assert "word_count" in schema


async def test_a_reply_that_is_not_a_plan_at_all_is_repaired_too(catalog: Catalog) -> None:
    not_a_plan = {"steps": [{"id": 1, "agent": "math", "tool": "multiply", "args": {"x": 10}}]}
    llm = ScriptedLLM([not_a_plan, GOOD_PLAN])

    result = await Planner(llm, catalog, PlanLimits()).plan(SEED_REQUEST)

    assert result.rounds == 2
    assert result.plan.model_dump(exclude_defaults=True) == GOOD_PLAN
    assert "That is not a valid plan" in llm.calls[1].messages[-1].content


async def test_tools_that_change_things_are_refused_in_planner_written_plans(catalog: Catalog) -> None:
    async def delete(args: dict[str, JsonValue]) -> JsonValue:
        raise AssertionError("never called")

    erase = ToolSpec.from_json_schema(
        "files.delete-file",
        "Delete a file.",
        {"type": "object", "properties": {"path": {"type": "string"}}},
        delete,
        planner_may_call=False,
    )
    catalog = Catalog([*catalog.agents.values(), AgentSpec(name="files", description="Files", tools=(erase,))])
    refused = {"steps": [{"id": 1, "agent": "files", "tool": "files.delete-file", "args": {"path": "/x"}}]}
    llm = ScriptedLLM([refused, GOOD_PLAN])

    result = await Planner(llm, catalog, PlanLimits()).plan(SEED_REQUEST)

    assert result.rounds == 2
    assert "the reply is not a plan" in llm.calls[1].messages[-1].content  # outside the reply schema
    assert "delete-file" not in system_prompt(catalog)
    assert "delete-file" not in json.dumps(plan_draft_model(catalog).model_json_schema())
