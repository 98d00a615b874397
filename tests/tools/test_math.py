import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from planning.catalog import ToolSpec
from tools.errors import ToolArgumentsError, ToolError
from tools.math import (
    add,
    divide,
    evaluate,
    factorial,
    multiply,
    percent_of,
    power,
    round_to,
    sqrt,
    subtract,
)


def typed(value: object) -> tuple[object, type]:
    """Compare value and type together: 4 == 4.0 in Python, but the tools promise ints."""
    return value, type(value)


# --- named tools ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        (add, (2, 2), 4),
        (add, (0.5, 2), 2.5),
        (add, (2.5, 2.5), 5.0),
        (subtract, (10, 3), 7),
        (subtract, (1, 2.5), -1.5),
        (multiply, (10, 5), 50),
        (multiply, (-3, 0.5), -1.5),
        (divide, (10, 2), 5),
        (divide, (7, 2), 3.5),
        (divide, (-9, 3), -3),
        (divide, (1.0, 4), 0.25),
        (power, (2, 10), 1024),
        (power, (2, -2), 0.25),
        (power, (-1, -3), -1),
        (power, (9, 0.5), 3.0),
        (factorial, (0,), 1),
        (factorial, (5,), 120),
        (sqrt, (16,), 4),
        (sqrt, (2,), math.sqrt(2)),
        (sqrt, (16.0,), 4.0),
        (percent_of, (15, 200), 30),
        (percent_of, (50, 10), 5),
        (percent_of, (33, 10), 3.3),
        (percent_of, (12.5, 80), 10.0),
        (round_to, (3.14159, 2), 3.14),
        (round_to, (2.675, 2), 2.68),
        (round_to, (2.5,), 3),
        (round_to, (-2.5,), -3),
        (round_to, (3.7,), 4),
        (round_to, (7,), 7),
        (round_to, (1250, -2), 1300),
        (round_to, (-1249, -2), -1200),
        (round_to, (1234.5, -2), 1200),
    ],
)
def test_named_tools_keep_ints_when_inputs_are_ints_and_the_result_is_exact(
    tool: Callable[..., int | float], arguments: tuple[object, ...], expected: int | float
) -> None:
    assert typed(tool(*arguments)) == typed(expected)


def test_divide_by_zero_names_the_problem_and_the_fix() -> None:
    with pytest.raises(ToolError, match=r"division by zero.*use a non-zero divisor"):
        divide(1, 0)
    with pytest.raises(ToolError, match="division by zero"):
        divide(1.5, 0.0)


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        (add, (True, 1), r"invalid arguments for add: a: expected a number, got the boolean True"),
        (multiply, (2, False), r"b: expected a number, got the boolean False"),
        (add, (float("nan"), 1), r"a: expected a finite number, got nan"),
        (subtract, (1, float("inf")), r"b: expected a finite number, got inf"),
        (add, ("two", 2), r"a.int: Input should be a valid integer"),
        (add, (2**20_000, 1), r"a: too large \(<an integer of about 6021 digits>"),
        (multiply, (2**6_000, 2**6_000), r"at least 12,001 bits, over the limit of 10,000 bits"),
        (multiply, (1e308, 10), r"too large for a floating-point number"),
        (add, (1e308, 1e308), r"too large for a floating-point number"),
        (power, (10, 10**10), r"at least 10,000,000,000 bits, over the limit"),
        (power, (2.0, 5_000), r"the power is too large for a floating-point number"),
        (power, (-8, 1 / 3), r"complex number .* use a non-negative base"),
        (power, (0, -1), r"0 cannot be raised to a negative power"),
        (factorial, (1_001,), r"n: Input should be less than or equal to 1000 \(got 1001\)"),
        (factorial, (-1,), r"n: Input should be greater than or equal to 0 \(got -1\)"),
        (factorial, (2.5,), r"n: Input should be a valid integer, got a number with a fractional part"),
        (sqrt, (-4,), r"square root of a negative number \(-4\)"),
        (sqrt, (2**2_001 + 1,), r"too large for a floating-point number"),
        (round_to, (1.5, 500), r"digits: Input should be less than or equal to 100 \(got 500\)"),
        (round_to, (1.5, 0.5), r"digits: Input should be a valid integer"),
    ],
)
def test_named_tools_refuse_bad_input_with_a_message_naming_it(
    tool: Callable[..., int | float], arguments: tuple[object, ...], message: str
) -> None:
    with pytest.raises(ToolError, match=message):
        tool(*arguments)


def test_factorial_accepts_a_whole_float_as_its_integer() -> None:
    assert typed(factorial(5.0)) == typed(120)  # pyright: ignore[reportArgumentType]


@pytest.mark.parametrize(
    "arguments",
    [{"a": True, "b": 1}, {"a": float("nan"), "b": 1}, {"a": "inf", "b": 1}, {"a": 1}, {"a": 1, "b": 2, "c": 3}],
)
def test_the_catalog_and_a_direct_call_refuse_the_same_arguments(arguments: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ToolSpec.from_function(add).validate_args(arguments)  # pyright: ignore[reportArgumentType]
    with pytest.raises(ToolArgumentsError):
        add(**arguments)  # pyright: ignore[reportArgumentType]


@pytest.mark.anyio
async def test_the_catalog_and_a_direct_call_read_numeric_text_as_numbers() -> None:
    assert typed(add("2", 2)) == typed(4)  # pyright: ignore[reportArgumentType]
    assert typed(await ToolSpec.from_function(add).call({"a": "2", "b": 2})) == typed(4)


# --- evaluate: what it computes -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("2 + 3 * 4", 14),
        ("(2 + 3) * 4", 20),
        ("10 / 2", 5),
        ("7 / 2", 3.5),
        ("7 // 2", 3),
        ("-7 // 2", -4),
        ("7 % 3", 1),
        ("7.5 % 2", 1.5),
        ("2 ** 10", 1024),
        ("2 ** -2", 0.25),
        ("2 ** 3 ** 2", 512),
        ("-3 + +2", -1),
        ("- - - 3", -3),
        ("1_000 * 3", 3000),
        ("1e3 + 1", 1001.0),
        ("15 / 100 * 200", 30.0),
        ("abs(-5)", 5),
        ("round(2.5)", 3),
        ("round(2.675, 2)", 2.68),
        ("min(3, 1, 2)", 1),
        ("max(3, 1.5)", 3),
        ("sqrt(16)", 4),
        ("sqrt(2)", math.sqrt(2)),
        ("floor(2.7)", 2),
        ("ceil(2.1)", 3),
        ("log(8, 2)", 3.0),
        ("log(e)", 1.0),
        ("log10(1000)", 3.0),
        ("exp(0)", 1.0),
        ("sin(0)", 0.0),
        ("cos(0)", 1.0),
        ("tan(0)", 0.0),
        ("factorial(5)", 120),
        ("factorial(10 / 2)", 120),
        ("pi", math.pi),
        ("2 * pi", 2 * math.pi),
        ("  (1 + 2)\n", 3),
        ("2 ** 9999 // 2 ** 9998", 2),
    ],
)
def test_evaluate_computes_allowed_expressions_with_the_int_rule(expression: str, expected: int | float) -> None:
    assert typed(evaluate(expression)) == typed(expected)


def test_evaluate_handles_a_long_flat_sum_without_recursion() -> None:
    assert typed(evaluate("+".join(["1"] * 400))) == typed(400)


def test_evaluate_handles_a_long_run_of_unary_minus() -> None:
    assert typed(evaluate("-" * 999 + "1")) == typed(-1)


# --- evaluate: what it refuses --------------------------------------------------------------------

ALLOWED_LIST = r"the functions abs, round, min, max, sqrt, .* and the constants pi and e"


@pytest.mark.timeout(10)  # a hang guard only: these must be refused from an estimate, not computed
@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("10**10**10", r"at least 10,000,000,000 bits, over the limit of 10,000 bits"),
        ("9**9**9**9", r"at least 387,420,489 bits, over the limit of 10,000 bits"),
        ("2 ** 10000", r"at least 10,001 bits, over the limit"),
        ("(2 ** 5000) * (2 ** 5001)", r"at least 10,002 bits, over the limit"),
        ("factorial(1001)", r"the argument limit is 1,000"),
        ("factorial(10**100)", r"the argument limit is 1,000"),
    ],
)
def test_evaluate_refuses_huge_results_before_computing_them(expression: str, message: str) -> None:
    with pytest.raises(ToolError, match=message):
        evaluate(expression)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os')", r"function '__import__' is not allowed; the allowed functions are abs, round"),
        ("open('x')", r"function 'open' is not allowed"),
        ("(1).__class__", r"attribute access \('.__class__'\) cannot be used.*" + ALLOWED_LIST),
        ("math.pi", r"attribute access \('.pi'\) cannot be used"),
        ("(lambda: 1)()", r"calling anything but an allowed function by name cannot be used"),
        ("lambda: 1", r"lambda functions cannot be used.*" + ALLOWED_LIST),
        ("[1, 2][0]", r"indexing or slicing \(x\[i\]\) cannot be used"),
        ("[x for x in [1]]", r"comprehensions cannot be used"),
        ("sum(x for x in [1])", r"function 'sum' is not allowed"),
        ("'1' + '2'", r"text in quotes cannot be used.*numbers must be plain"),
        ("True + 1", r"the value True cannot be used"),
        ("1j * 2", r"the value 1j cannot be used"),
        ("round(2.567, ndigits=2)", r"keyword arguments \(ndigits=...\) cannot be used.*round\(x, digits\)"),
        ("x + 1", r"unknown name 'x': expressions cannot use variables.*" + ALLOWED_LIST),
        ("sqrt", r"'sqrt' without parentheses cannot be used.*call it, e.g. sqrt\(x\)"),
        ("sqrt(1, 2)", r"sqrt\(\) got 2 arguments; write it as sqrt\(x\)"),
        ("max()", r"max\(\) got 0 arguments"),
        ("max(*[1, 2])", r"star-unpacking"),
        ("1 < 2", r"comparisons \(<, >, ==\) cannot be used"),
        ("1 and 2", r"'and' / 'or' cannot be used"),
        ("not 1", r"'not' cannot be used"),
        ("1 if 2 else 3", r"conditional expressions"),
        ("(y := 2)", r"assignments \(:=\)"),
        ("2 ^ 3", r"'\^' \(bitwise xor\) cannot be used.*use \*\* for powers"),
        ("2 << 3", r"the operator LShift cannot be used"),
        ("10,000", r"a comma-separated list cannot be used.*drop thousands separators"),
        ("{1: 2}", r"dicts cannot be used"),
        ("", r"expression: String should have at least 1 character"),
        ("  ", r"expression: String should have at least 1 character"),
        ("2 +", r"could not parse '2 \+': invalid syntax"),
        ("import os", r"could not parse 'import os'"),
        ("3 × 4", r"could not parse .*use \*\* for powers, \* for times"),
        ("(" * 500, r"nested too deeply \(over 50 levels of parentheses\)"),
        ("1" + "+1" * 600, r"expression: String should have at most 1000 characters"),
        ("1 / 0", r"division by zero"),
        ("1 // 0.0", r"division by zero"),
        ("5 % 0", r"division by zero"),
        ("0 ** -1", r"0 cannot be raised to a negative power"),
        ("(-8) ** (1 / 3)", r"complex number"),
        ("1e308 * 10", r"too large for a floating-point number"),
        ("1e999", r"too large for a floating-point number"),
        ("exp(1000)", r"exp\(\) of 1000 is too large"),
        ("log(0)", r"log\(\) is not defined for 0; log needs a number > 0"),
        ("sqrt(-1)", r"square root of a negative number"),
        ("factorial(-1)", r"whole numbers >= 0"),
        ("factorial(2.5)", r"must be a whole number, got 2.5"),
        ("round(1, 0.5)", r"digits must be a whole number"),
    ],
)
def test_evaluate_refuses_what_is_not_plain_arithmetic_and_says_why(expression: str, message: str) -> None:
    with pytest.raises(ToolError, match=message):
        evaluate(expression)


def test_evaluate_refuses_an_expression_that_is_not_text() -> None:
    with pytest.raises(ToolError, match=r"expression: Input should be a valid string \(got 42\)"):
        evaluate(42)  # pyright: ignore[reportArgumentType]


def test_evaluate_reports_a_forbidden_part_even_after_an_expensive_one() -> None:
    with pytest.raises(ToolError, match="function '__import__' is not allowed"):
        evaluate("9**9**9**9 + __import__('os')")


# --- evaluate agrees with Python arithmetic -------------------------------------------------------


@dataclass(frozen=True)
class Op:
    symbol: Literal["+", "-", "*"]
    left: "Tree"
    right: "Tree"


Tree = int | Op


def render(tree: Tree) -> str:
    if isinstance(tree, int):
        return f"({tree})" if tree < 0 else str(tree)
    return f"({render(tree.left)} {tree.symbol} {render(tree.right)})"


def reference(tree: Tree) -> int:
    if isinstance(tree, int):
        return tree
    left, right = reference(tree.left), reference(tree.right)
    match tree.symbol:
        case "+":
            return left + right
        case "-":
            return left - right
        case "*":
            return left * right


trees = st.recursive(
    st.integers(min_value=-1_000, max_value=1_000),
    lambda children: st.builds(Op, st.sampled_from(["+", "-", "*"]), children, children),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(trees)
def test_evaluate_agrees_with_python_arithmetic_on_random_integer_expressions(tree: Tree) -> None:
    assert typed(evaluate(render(tree))) == typed(reference(tree))
