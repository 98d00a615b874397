from collections.abc import Callable

import pytest
from pydantic import ValidationError

from planning.catalog import ToolSpec
from tools.errors import ToolArgumentsError, ToolError
from tools.string import (
    MAX_RESULT_CHARS,
    char_count,
    concat,
    count_substring,
    letter_count,
    lower,
    replace,
    reverse,
    upper,
    word_count,
)


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        (word_count, ("Hello World",), 2),
        (word_count, ("  Hello,\tbig\n world!  ",), 3),
        (word_count, ("",), 0),
        (word_count, ("   ",), 0),
        (letter_count, ("Hello World!",), 10),
        (letter_count, ("a1 b2-c3",), 3),
        (letter_count, ("",), 0),
        (letter_count, ("Hello World", "l"), 3),
        (letter_count, ("Hello World", "L"), 3),
        (letter_count, ("strawberry", "r"), 3),
        (letter_count, ("Straße", "S"), 1),
        (letter_count, ("Ångström", "å"), 1),
        (letter_count, ("cafe\u0301 café", "é"), 2),  # decomposed and composed é are the same letter
        (letter_count, ("Hello", "z"), 0),
        (char_count, ("Hi there!",), 9),
        (char_count, ("",), 0),
        (reverse, ("abc",), "cba"),
        (reverse, ("",), ""),
        (upper, ("Hello",), "HELLO"),
        (lower, ("HeLLo",), "hello"),
        (replace, ("cat hat cat", "cat", "dog"), "dog hat dog"),
        (replace, ("a-b-c", "-", ""), "abc"),
        (replace, ("Cat", "cat", "dog"), "Cat"),
        (count_substring, ("the cat and the hat", "the"), 2),
        (count_substring, ("aaaa", "aa"), 2),
        (count_substring, ("The the", "the"), 1),
        (count_substring, ("abc", "x"), 0),
        (concat, (["a", "b", "c"],), "abc"),
        (concat, (["Hello", "World"], " "), "Hello World"),
        (concat, (["a", "b"], ", "), "a, b"),
        (concat, ([],), ""),
    ],
)
def test_string_tools_compute_the_documented_result(
    tool: Callable[..., object], arguments: tuple[object, ...], expected: object
) -> None:
    result = tool(*arguments)
    assert (result, type(result)) == (expected, type(expected))


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        (letter_count, ("Hello", "ll"), r"letter must be exactly one letter, got 'll' \(2 characters\)"),
        (letter_count, ("Hello", ""), r"letter must be exactly one letter, got '' \(0 characters\).*omit letter"),
        (letter_count, ("Hello", "'l'"), r"exactly one letter, got \"'l'\" \(3 characters\).*no quotes"),
        (letter_count, ("Hello", " "), r"letter must be a letter, got ' '; .*use count_substring"),
        (letter_count, ("a1", "1"), r"letter must be a letter, got '1'"),
        (replace, ("abc", "", "x"), r"invalid arguments for replace: old: String should have at least 1 character"),
        (count_substring, ("abc", ""), r"substring: String should have at least 1 character"),
        (word_count, (42,), r"invalid arguments for word_count: text: Input should be a valid string \(got 42\)"),
        (upper, (None,), r"text: Input should be a valid string \(got None\)"),
        (concat, ("abc",), r"parts: Input should be a valid list \(got 'abc'\)"),
        (concat, (["a", 1],), r"parts.1: Input should be a valid string \(got 1\)"),
        (concat, (["a", "b"], None), r"separator: Input should be a valid string"),
    ],
)
def test_string_tools_refuse_bad_input_with_a_message_naming_it(
    tool: Callable[..., object], arguments: tuple[object, ...], message: str
) -> None:
    with pytest.raises(ToolError, match=message):
        tool(*arguments)


def test_replace_refuses_a_result_over_the_size_limit_before_building_it() -> None:
    with pytest.raises(ToolError, match=r"the result would be 10,000,000 characters, over the limit of 1,000,000"):
        replace("a" * 10_000, "a", "b" * 1_000)


def test_concat_refuses_a_result_over_the_size_limit_before_building_it() -> None:
    with pytest.raises(ToolError, match=r"the result would be 1,001,000 characters, over the limit of 1,000,000"):
        concat([""] * 1_002, "x" * 1_000)


def test_results_at_the_size_limit_are_allowed() -> None:
    assert len(concat(["a" * (MAX_RESULT_CHARS // 2)] * 2)) == MAX_RESULT_CHARS


def test_the_catalog_and_a_direct_call_refuse_empty_search_text_alike() -> None:
    with pytest.raises(ValidationError):
        ToolSpec.from_function(replace).validate_args({"text": "abc", "old": "", "new": "x"})
    with pytest.raises(ToolArgumentsError):
        replace("abc", "", "x")
