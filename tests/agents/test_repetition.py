import json

from agents.repetition import RepetitionGuard, complete_steps, find_repetition

A = {"id": 1, "agent": "math", "tool": "add", "args": {"a": 1, "b": 2}}
B = {"id": 2, "agent": "math", "tool": "multiply", "args": {"a": "$1", "b": 3}, "depends_on": [1]}


def again(step: dict[str, object], new_id: int, shift: int = 0) -> dict[str, object]:
    """The step written again under a new id, its references moved along by `shift`."""
    copy = dict(step, id=new_id)
    if "depends_on" in step:
        copy["depends_on"] = [1 + shift]
        copy["args"] = {"a": f"${1 + shift}", "b": 3}
    return copy


def test_only_text_that_ends_after_a_whole_step_yields_steps() -> None:
    assert complete_steps('{"steps": [{"id": 1, "agent": "m", "task": "x"}') == [{"id": 1, "agent": "m", "task": "x"}]
    assert complete_steps('{"steps": [{"id": 1, "agent": "m", "args": {"a": 1}') is None
    assert complete_steps('{"steps": [{"id": 1, "agent": "m", "task": "x"}, {"id"') is None


def test_a_block_of_steps_written_again_is_a_repetition_with_references_shifted() -> None:
    steps = [A, B, again(A, 3), again(B, 4, shift=2)]

    found = find_repetition(steps)

    assert found is not None and (found.first, found.size, found.kept) == (0, 2, [A, B])
    assert found.describe() == "the reply repeated steps 1-2 again and again; it was cut after step 2"


def test_a_chain_of_the_same_operation_twice_is_not_a_repetition_but_three_times_is() -> None:
    first = {"id": 1, "agent": "math", "tool": "add", "args": {"a": 3, "b": 5}}
    chain = [first] + [{"id": i, "agent": "math", "tool": "add", "args": {"a": f"${i - 1}", "b": 5}} for i in (2, 3, 4)]

    assert find_repetition(chain[:3]) is None
    found = find_repetition(chain)
    assert found is not None and len(found.kept) == 2


def test_different_steps_are_no_repetition() -> None:
    assert find_repetition([A, B]) is None
    assert find_repetition([A]) is None


def test_the_guard_stops_at_the_first_repeat_and_remembers_what_it_saw() -> None:
    guard = RepetitionGuard()
    text = '{"steps": [' + ", ".join(json.dumps(dict(A, id=i)) for i in (1, 2, 3))

    stops = [end for end in range(1, len(text) + 1) if text[end - 1] == "}" and guard(text[:end])]

    assert guard.repetition is not None and guard.repetition.kept == [A]
    assert stops and guard.seen == text[: stops[0]]
