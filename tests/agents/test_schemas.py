import json
import re

import pytest
from pydantic import ValidationError

from agents.catalog import build_catalog
from agents.llm.embedded import grammar_schema
from agents.schemas import plan_draft_model, turn_model
from planning.catalog import Catalog
from planning.settings import Settings


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return build_catalog(Settings())


def test_a_tool_step_must_use_the_tools_own_parameter_names(catalog: Catalog) -> None:
    draft = plan_draft_model(catalog)

    with pytest.raises(ValidationError):
        draft.model_validate({"steps": [{"id": 1, "agent": "math", "tool": "multiply", "args": {"x": 1, "b": 2}}]})
    with pytest.raises(ValidationError):
        draft.model_validate({"steps": [{"id": 1, "agent": "math", "tool": "word_count", "args": {"text": "a"}}]})


def test_parameters_take_values_of_their_type_or_step_references(catalog: Catalog) -> None:
    draft = plan_draft_model(catalog)
    plan = {
        "steps": [
            {"id": 1, "agent": "math", "tool": "multiply", "args": {"a": 10, "b": 5}, "depends_on": []},
            {"id": 2, "agent": "math", "tool": "add", "args": {"a": "$1", "b": "$3.result"}, "depends_on": [1]},
            {"id": 3, "agent": "string", "task": "count the words", "depends_on": []},
        ],
    }

    assert draft.model_validate(plan).model_dump(mode="json", exclude_none=True) == plan
    with pytest.raises(ValidationError):
        draft.model_validate(
            {"steps": [{"id": 1, "agent": "math", "tool": "add", "args": {"a": {"value": 1}, "b": 2}}]}
        )
    with pytest.raises(ValidationError):
        draft.model_validate({"steps": [{"id": 1, "agent": "math", "tool": "add", "args": {"a": "ten", "b": 2}}]})


def test_parameters_also_take_explicit_references_but_no_other_dollar_text(catalog: Catalog) -> None:
    draft = plan_draft_model(catalog)
    step = {"id": 2, "agent": "math", "tool": "add", "args": {"a": "${1}", "b": "${1.total}"}}

    assert draft.model_validate({"steps": [step]}).model_dump(mode="json", exclude_unset=True) == {"steps": [step]}


def test_an_outlined_reply_names_the_requests_parts_before_its_steps(catalog: Catalog) -> None:
    draft = plan_draft_model(catalog, outline=True)
    step = {"id": 1, "agent": "math", "tool": "add", "args": {"a": 1, "b": 2}}

    assert list(draft.model_json_schema()["properties"]) == ["parts", "steps"]
    assert draft.model_validate({"parts": ["add"], "steps": [step]}).model_dump(mode="json")["parts"] == ["add"]
    assert draft.model_validate({"steps": [step]}).model_dump(mode="json")["parts"] == []  # hand-written: none
    with pytest.raises(ValidationError):
        draft.model_validate({"steps": [{"id": 1, "agent": "math", "tool": "add", "args": {"a": "$1 off", "b": 2}}]})


def test_agent_turns_may_reference_earlier_calls(catalog: Catalog) -> None:
    turn = turn_model(catalog.agent("math"))

    value = turn.model_validate(
        {"calls": [{"tool": "add", "args": {"a": 1, "b": 2}}, {"tool": "sqrt", "args": {"x": "#1"}}]}
    )

    assert value.model_dump(mode="json")["calls"][1] == {"tool": "sqrt", "args": {"x": "#1"}}


def test_every_reply_schema_converts_to_a_grammar_llama_cpp_can_parse(catalog: Catalog) -> None:
    pytest.importorskip("llama_cpp")
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    models = [
        plan_draft_model(catalog),
        plan_draft_model(catalog, max_steps=100),
        *(turn_model(agent) for agent in catalog.agents.values()),
    ]
    for model in models:
        grammar = json_schema_to_gbnf(json.dumps(grammar_schema(model)))
        # llama.cpp's GBNF parser (C side, at sampling time) knows only these escapes; anything else
        # ("\d", "\$" from a regex pattern) makes it drop the grammar and decode unconstrained.
        escapes = set(re.findall(r"\\(.)", grammar))
        assert escapes <= set('xuUtrn\\"[]-^'), (model.__name__, escapes)
