import json
from collections.abc import Mapping
from typing import Annotated, Literal

import anyio
import pytest
from pydantic import Field, JsonValue

from agents.llm import ScriptedLLM
from agents.planner import EXAMPLE_PLAN, TEMPERATURES, Planner, PlanningError, system_prompt
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
    worse = {"steps": [{"id": 1, "agent": "math", "task": "x", "depends_on": [8]}]}
    worst = {"steps": [{"id": 1, "agent": "math", "task": "x", "depends_on": [9]}]}
    llm = ScriptedLLM([bad, worse, worst])

    with pytest.raises(PlanningError, match="depends on step 9, which does not exist") as caught:
        await Planner(llm, catalog, PlanLimits(), repair_rounds=2).plan("do x")

    assert len(llm.calls) == 3
    assert "write the plan yourself" in str(caught.value)


async def test_a_repair_round_that_answers_the_same_plan_again_ends_the_rounds(catalog: Catalog) -> None:
    bad = {"steps": [{"id": 1, "agent": "math", "task": "x", "depends_on": [7]}]}
    llm = ScriptedLLM([bad, bad, GOOD_PLAN])

    with pytest.raises(PlanningError, match="the model answered the same plan again"):
        await Planner(llm, catalog, PlanLimits(), repair_rounds=2).plan("do x")

    assert len(llm.calls) == 2


async def test_a_plan_that_copies_the_worked_example_is_sent_back(catalog: Catalog) -> None:
    llm = ScriptedLLM([EXAMPLE_PLAN, GOOD_PLAN])

    result = await Planner(llm, catalog, PlanLimits()).plan(SEED_REQUEST)

    assert result.plan.model_dump(exclude_defaults=True) == GOOD_PLAN
    assert "copies the example" in llm.calls[1].messages[-1].content


def test_the_prompt_lists_every_agent_and_tool_signature(catalog: Catalog) -> None:
    prompt = system_prompt(catalog)

    assert "- math: Arithmetic" in prompt
    assert "multiply(a: number, b: number)" in prompt
    assert "word_count(text: str)" in prompt
    assert 'Write a JSON plan: {"steps": [...]}.' in prompt  # the worked example shows how to break it up


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
    assert "the reply is not a plan" in llm.calls[1].messages[-1].content


# --- bounded planning, repair that moves, plans as written ---------------------------------------


def _json(plan: Mapping[str, object]) -> str:
    return json.dumps(plan)


async def test_a_reply_that_repeats_its_steps_is_cut_while_generated_and_sent_back(catalog: Catalog) -> None:
    looping = {"steps": [dict(s, id=i + 1) for i, s in enumerate([*GOOD_PLAN["steps"][:2]] * 6)]}
    llm = ScriptedLLM([_json(looping), GOOD_PLAN])

    result = await Planner(llm, catalog, PlanLimits()).plan(SEED_REQUEST)

    assert result.rounds == 2
    assert result.plan.model_dump(exclude_defaults=True) == GOOD_PLAN
    assert json.loads(llm.calls[1].messages[-2].content) == {"steps": looping["steps"][:2]}
    feedback = llm.calls[1].messages[-1].content
    assert "the reply repeated steps 1-2 again and again; it was cut after step 2" in feedback


async def test_a_reply_repeating_itself_again_after_being_told_keeps_the_steps_before_the_repetition(
    catalog: Catalog,
) -> None:
    one = {"id": 1, "agent": "math", "tool": "multiply", "args": {"a": 10, "b": 5}}
    twice = _json({"steps": [one, dict(one, id=2)]})
    llm = ScriptedLLM([twice, twice, GOOD_PLAN])

    result = await Planner(llm, catalog, PlanLimits()).plan("What is 10 times 5?")

    assert (result.rounds, len(llm.calls)) == (2, 2)
    assert [s.model_dump(exclude_defaults=True) for s in result.plan.steps] == [one]
    assert result.plan.notes == ["the reply repeated step 1 again and again; it was cut after step 1"]


async def test_a_reply_cut_at_its_length_limit_is_a_repair_round(catalog: Catalog) -> None:
    text = _json(GOOD_PLAN)
    cut = text[: text.index('{"id": 3') + 20]
    llm = ScriptedLLM([cut, GOOD_PLAN])

    result = await Planner(llm, catalog, PlanLimits()).plan(SEED_REQUEST)

    assert result.rounds == 2
    assert json.loads(llm.calls[1].messages[-2].content) == {"steps": GOOD_PLAN["steps"][:2]}
    assert "cut off at its length limit after 2 complete step(s)" in llm.calls[1].messages[-1].content


async def test_a_planning_call_over_its_time_budget_is_a_repair_round(catalog: Catalog) -> None:
    answered = []

    async def slow_then_good(messages: object, output: object, role: str) -> Mapping[str, object]:
        if not answered:
            answered.append(1)
            await anyio.sleep_forever()
        return GOOD_PLAN

    llm = ScriptedLLM(slow_then_good)

    result = await Planner(llm, catalog, PlanLimits(), call_timeout_s=0.05).plan(SEED_REQUEST)

    assert result.rounds == 2
    assert "the reply took longer than 0.05 s" in llm.calls[1].messages[-1].content


async def test_the_whole_planning_phase_has_a_time_budget(catalog: Catalog) -> None:
    async def never(messages: object, output: object, role: str) -> dict[str, object]:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    with anyio.fail_after(10):
        with pytest.raises(PlanningError, match=r"within its time budget of 0\.2 s"):
            await Planner(
                ScriptedLLM(never), catalog, PlanLimits(), repair_rounds=50, call_timeout_s=0.05, total_timeout_s=0.2
            ).plan("x")


async def test_each_repair_round_samples_differently_and_needs_no_inner_repair(catalog: Catalog) -> None:
    bad = {"steps": [{"id": 1, "agent": "math", "task": "x", "depends_on": [7]}]}
    worse = {"steps": [{"id": 1, "agent": "math", "task": "x", "depends_on": [8]}]}
    llm = ScriptedLLM([bad, worse, GOOD_PLAN])

    await Planner(llm, catalog, PlanLimits()).plan(SEED_REQUEST)

    generations = [call.generation for call in llm.calls]
    assert [g.temperature for g in generations if g] == list(TEMPERATURES)
    assert {g.repair_rounds for g in generations if g} == {0}
    assert all(g and g.max_tokens for g in generations)


async def test_a_schema_invalid_reply_is_quoted_back_to_the_model(catalog: Catalog) -> None:
    llm = ScriptedLLM(['{"steps": [{"id": 1, "agent": "math", "tool": "multiply", "args": {"x": 10}}]}', GOOD_PLAN])

    result = await Planner(llm, catalog, PlanLimits()).plan(SEED_REQUEST)

    assert result.rounds == 2
    assert "the reply is not a plan" in llm.calls[1].messages[-1].content


async def test_dependencies_a_tool_step_does_not_use_are_removed_with_a_note(catalog: Catalog) -> None:
    draft = {
        "steps": [
            {"id": 1, "agent": "math", "tool": "multiply", "args": {"a": 10, "b": 5}},
            {"id": 2, "agent": "string", "tool": "word_count", "args": {"text": "Hello World"}, "depends_on": [1]},
            {"id": 3, "agent": "math", "tool": "add", "args": {"a": "$1", "b": 2}, "depends_on": [1, 2]},
            {"id": 4, "agent": "math", "task": "think about it", "depends_on": [3]},
        ]
    }
    result = await Planner(ScriptedLLM([draft]), catalog, PlanLimits()).plan("x")

    assert [s.depends_on for s in result.plan.steps] == [[], [], [1], [3]]
    assert result.plan.notes == [
        "step 2: removed depends_on [1]: its arguments do not use that result",
        "step 3: removed depends_on [2]: its arguments do not use that result",
    ]


async def test_the_plan_keeps_what_the_model_wrote_without_declared_defaults() -> None:
    tools = tuple(ToolSpec.from_function(f) for f in (string.letter_count, string.concat, string.upper))
    catalog = Catalog([AgentSpec(name="string", description="Text", tools=tools)])
    reply = {
        "steps": [
            {"id": 1, "agent": "string", "tool": "letter_count", "args": {"text": "banana", "letter": None}},
            {"id": 2, "agent": "string", "tool": "concat", "args": {"parts": ["a", "b"]}},
            {"id": 3, "agent": "string", "tool": "upper", "args": {"text": "$10 off"}},
        ]
    }
    result = await Planner(ScriptedLLM([reply]), catalog, PlanLimits()).plan("count letters in banana; join a b")

    assert [s.args for s in result.plan.steps] == [{"text": "banana"}, {"parts": ["a", "b"]}, {"text": "$10 off"}]


async def test_a_tool_parameter_with_a_leading_underscore_goes_through_planning_unchanged() -> None:
    def route(_from: str, to: str) -> str:
        """A route between two cities."""
        return f"{_from}->{to}"

    catalog = Catalog([AgentSpec(name="travel", description="Trips", tools=(ToolSpec.from_function(route),))])
    reply = {"steps": [{"id": 1, "agent": "travel", "tool": "route", "args": {"_from": "Oslo", "to": "Rome"}}]}
    planner = Planner(ScriptedLLM([reply]), catalog, PlanLimits())

    result = await planner.plan("route from Oslo to Rome")

    assert result.plan.steps[0].args == {"_from": "Oslo", "to": "Rome"}
    assert "route(_from: str, to: str)" in planner.prompt
    assert '"_from"' in json.dumps(planner.output.model_json_schema())


def test_the_reply_schema_caps_the_steps_at_the_plan_limit(catalog: Catalog) -> None:
    schema = plan_draft_model(catalog, max_steps=7).model_json_schema()

    assert schema["properties"]["steps"]["maxItems"] == 7


def test_the_prompt_carries_each_parameters_documentation() -> None:
    def forecast(
        location: Annotated[str, Field(description="Place name, e.g. 'Paris, France'.")],
        unit: Annotated[Literal["celsius", "fahrenheit"], Field(description="Temperature unit.")] = "celsius",
        days: Annotated[int, Field(ge=1, le=16, description="Number of days, starting today.")] = 3,
    ) -> str:
        """Daily forecast for a place.

        Long explanation that stays out of the prompt.
        """
        return location

    catalog = Catalog([AgentSpec(name="weather", description="Weather", tools=(ToolSpec.from_function(forecast),))])
    prompt = system_prompt(catalog)

    assert 'forecast(location: str, unit: "celsius"|"fahrenheit" = "celsius", days: int 1..16 = 3)' in prompt
    assert "location: Place name, e.g. 'Paris, France'; days: Number of days, starting today" in prompt
    assert "Long explanation" not in prompt


def test_a_json_schema_tools_optional_parameters_keep_their_default_range_and_note() -> None:
    async def forecast(args: dict[str, JsonValue]) -> JsonValue:
        return None

    schema = {
        "type": "object",
        "properties": {
            "location": {"type": "string", "description": "Place name, e.g. 'Paris, France'."},
            "days": {
                "type": "integer",
                "minimum": 1,
                "maximum": 16,
                "default": 3,
                "description": "Number of days, from today.",
            },
            "_unit": {"type": "string", "enum": ["C", "F"], "description": "Temperature unit: 'C' or 'F'."},
        },
        "required": ["location"],
    }
    tool = ToolSpec.from_json_schema("weather.forecast", "Daily forecast.", schema, forecast)
    prompt = system_prompt(Catalog([AgentSpec(name="weather", description="Weather", tools=(tool,))]))

    assert 'weather.forecast(location: str, days: int | null 1..16 = 3, _unit: "C"|"F" | null = null)' in prompt
    assert "days: Number of days, from today; _unit: Temperature unit: 'C' or 'F'" in prompt


def test_the_prompt_names_no_agent_the_catalog_does_not_have() -> None:
    def route(_from: str, to: str) -> str:
        """A route between two cities."""
        return _from

    catalog = Catalog([AgentSpec(name="travel", description="Trips", tools=(ToolSpec.from_function(route),))])
    prompt = system_prompt(catalog)

    for absent in ("math", "string", "code agent", "word_count", "alpha beta gamma"):
        assert absent not in prompt
    # The example shows the format only: an example made of the catalog's own tools gets copied.
    example = prompt.split("Examples")[1]
    assert '"tool": "<tool>", "agent": "<agent>"' in example and "route" not in example
    # Without a worked example the reply outlines the request first; with one it does not.
    assert '{"parts": [...], "steps": [...]}' in prompt
    assert Planner(ScriptedLLM([]), catalog, PlanLimits()).output.model_json_schema()["required"] == ["parts", "steps"]


async def test_an_agent_step_writes_tool_null_so_tool_names_compete_with_it(catalog: Catalog) -> None:
    step = plan_draft_model(catalog).model_json_schema()["$defs"]["agent_step"]

    assert list(step["properties"])[:4] == ["id", "tool", "agent", "task"]
    assert step["properties"]["tool"]["type"] == "null" and "tool" in step["required"]
    # A scripted or hand-written reply without the null is still an agent step.
    llm = ScriptedLLM([{"steps": [{"id": 1, "agent": "math", "task": "multiply the numbers of the request"}]}])
    result = await Planner(llm, catalog, PlanLimits()).plan("What is 10 times 5?")
    assert result.plan.steps[0].task == "multiply the numbers of the request" and result.plan.steps[0].tool is None


async def test_a_task_that_only_names_a_tool_is_sent_back_as_a_tool_step_to_write(catalog: Catalog) -> None:
    named = {"steps": [{"id": 1, "agent": "math", "tool": None, "task": "Multiply"}]}
    llm = ScriptedLLM([named, {"steps": [{"id": 1, "agent": "math", "tool": "multiply", "args": {"a": 10, "b": 5}}]}])

    result = await Planner(llm, catalog, PlanLimits()).plan("What is 10 times 5?")

    assert result.rounds == 2 and result.plan.steps[0].tool == "multiply"
    said = llm.calls[1].messages[-1].content
    assert "the task 'Multiply' only names tool 'multiply'" in said and '"tool": "multiply"' in said


def test_a_long_catalog_is_summarised_and_the_request_brings_the_details_of_its_tools() -> None:
    tools = []
    for index in range(40):

        def tool(amount: Annotated[int, Field(description=f"Amount in unit {index} " + "x" * 200)]) -> int:
            return amount

        tool.__doc__ = f"Tool number {index}."
        tools.append(ToolSpec.from_function(tool, name=f"tool_{index}"))
    tools.append(ToolSpec.from_function(lambda_route, name="convert_currency"))
    catalog = Catalog([AgentSpec(name="many", description="Many tools", tools=tuple(tools))])
    planner = Planner(ScriptedLLM([]), catalog, PlanLimits())

    assert "convert_currency: Convert an amount between currencies" in planner.prompt
    assert "Amount in unit" not in planner.prompt
    message = planner.request_message("convert 20 dollars to currency EUR")
    assert message.startswith("Tool details:\n- convert_currency(amount: number, _from: str, to: str)")
    assert message.endswith("Request: convert 20 dollars to currency EUR\nPlan:")
    assert system_prompt(catalog) == planner.prompt


def lambda_route(
    amount: Annotated[float, Field(description="The amount, in the source currency.")],
    _from: Annotated[str, Field(description="ISO code, e.g. 'USD'.")],
    to: str,
) -> float:
    """Convert an amount between currencies."""
    return amount


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


async def test_an_optional_text_parameter_the_request_never_mentions_is_sent_back() -> None:
    def set_timer(duration: int, label: str | None = None, sound: Literal["bell", "beep"] | None = None) -> str:
        """Start a countdown timer."""
        return f"{duration} {label} {sound}"

    catalog = Catalog([AgentSpec(name="home", description="Home", tools=(ToolSpec.from_function(set_timer),))])
    invented = {
        "id": 1,
        "agent": "home",
        "tool": "set_timer",
        "args": {"duration": 10, "label": "Timer 1", "sound": None},
    }
    chosen = {"id": 1, "agent": "home", "tool": "set_timer", "args": {"duration": 10, "label": None, "sound": "bell"}}
    llm = ScriptedLLM([{"steps": [invented]}, {"steps": [chosen]}])

    result = await Planner(llm, catalog, PlanLimits()).plan("Set a 10 minute timer")

    said = llm.calls[1].messages[-1].content
    assert "parameter 'label' = 'Timer 1': the request says nothing of it" in said
    # An allowed value is a choice among the tool's own values, not an invention.
    assert result.rounds == 2 and result.plan.steps[0].args == {"duration": 10, "sound": "bell"}


async def test_a_value_copied_from_the_tools_documented_example_is_sent_back() -> None:
    def find_hotels(
        city: Annotated[str, Field(description="City name.")],
        price_range: Annotated[str, Field(description="Nightly price range as written by the user, e.g. '$80-$120'.")],
    ) -> str:
        """Find hotels in a city within a nightly price range."""
        return city

    catalog = Catalog([AgentSpec(name="travel", description="Trips", tools=(ToolSpec.from_function(find_hotels),))])
    copied = {"id": 1, "agent": "travel", "tool": "find_hotels", "args": {"city": "Prague", "price_range": "$80-$120"}}
    asked = dict(copied, args={"city": "Prague", "price_range": "$50-$90"})
    llm = ScriptedLLM([{"steps": [copied]}, {"steps": [asked]}])

    result = await Planner(llm, catalog, PlanLimits()).plan("Find hotels in Prague for $50-$90")

    assert (
        "parameter 'price_range' = '$80-$120': it is the documentation's example" in llm.calls[1].messages[-1].content
    )
    assert result.rounds == 2 and result.plan.steps[0].args == asked["args"]


async def test_an_agent_step_redoing_a_tool_step_is_sent_back_but_one_using_its_result_is_kept() -> None:
    def send_email(to: str, subject: str) -> str:
        """Send an email."""
        return to

    catalog = Catalog([AgentSpec(name="mail", description="Mail", tools=(ToolSpec.from_function(send_email),))])
    tool_step = {"id": 1, "agent": "mail", "tool": "send_email", "args": {"to": "bob@example.com", "subject": "Lunch"}}
    redo = {"id": 2, "agent": "mail", "tool": None, "task": "Send an email to bob@example.com about 'Lunch'"}
    follow_up = dict(redo, task="Send an email to bob@example.com saying the Lunch email went out", depends_on=[1])
    llm = ScriptedLLM([{"steps": [tool_step, redo]}, {"steps": [tool_step, follow_up]}])

    result = await Planner(llm, catalog, PlanLimits()).plan("Email bob@example.com with subject 'Lunch', then confirm")

    said = llm.calls[1].messages[-1].content
    assert "the task does again what step 1 (send_email) does" in said and "leave step 2 out" in said
    assert result.rounds == 2 and [s.id for s in result.plan.steps] == [1, 2]
