from collections.abc import Callable

import pytest
from pydantic import ValidationError, validate_call

from tools.errors import ToolError
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
        (replace, ("abc", "", "x"), r"old must not be empty; pass the text to find"),
        (count_substring, ("abc", ""), r"substring must not be empty; pass the text to count"),
        (word_count, (42,), r"text must be a string, got int 42; pass text"),
        (upper, (None,), r"text must be a string, got NoneType None"),
        (concat, ("abc",), r"parts must be a list of strings, got str 'abc'; wrap it, e.g. \['abc'\]"),
        (concat, (["a", 1],), r"parts\[1\] must be a string, got int 1"),
        (concat, (["a", "b"], None), r"separator must be a string"),
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


def test_signatures_refuse_empty_search_text_when_validated_by_pydantic() -> None:
    validated_replace: Callable[..., str] = validate_call(replace)
    with pytest.raises(ValidationError):
        validated_replace("abc", "", "x")
