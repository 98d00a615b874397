"""The math specialist's named operations: add, subtract, multiply, divide, power, factorial,
sqrt, percent_of and round_to. Their signatures check their inputs (see tools.arguments)."""

import math
from typing import Annotated

from pydantic import AfterValidator, Field

from tools.arguments import NOT_BOOL, checked
from tools.math import arithmetic
from tools.math.arithmetic import MAX_FACTORIAL, MAX_INT_BITS, MAX_ROUND_DIGITS


def _ordinary(value: int | float) -> int | float:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value!r}; pass an ordinary number")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise ValueError(f"too large ({arithmetic.show(value)}, over {MAX_INT_BITS:,} bits); use a smaller number")
    return value


# The named tools' inputs: the signature is where they are checked (see tools.arguments).
# Constraints (Field) come before validators in Annotated, or pydantic cannot put them in the schema.
Number = Annotated[int | float, NOT_BOOL, AfterValidator(_ordinary)]


@checked
def add(
    a: Annotated[Number, Field(description="The first number.")],
    b: Annotated[Number, Field(description="The number to add to a.")],
) -> int | float:
    """Add two numbers: a + b. Two integers give an integer (add(2, 2) == 4)."""
    return arithmetic.add(a, b)


@checked
def subtract(
    a: Annotated[Number, Field(description="The number to subtract from.")],
    b: Annotated[Number, Field(description="The number to subtract.")],
) -> int | float:
    """Subtract b from a: a - b. Two integers give an integer."""
    return arithmetic.subtract(a, b)


@checked
def multiply(
    a: Annotated[Number, Field(description="The first factor.")],
    b: Annotated[Number, Field(description="The second factor.")],
) -> int | float:
    """Multiply two numbers: a * b. Two integers give an integer (multiply(10, 5) == 50)."""
    return arithmetic.multiply(a, b)


@checked
def divide(
    a: Annotated[Number, Field(description="The dividend (the number being divided).")],
    b: Annotated[Number, Field(description="The divisor; must not be 0.")],
) -> int | float:
    """Divide a by b: a / b (divide(10, 2) == 5, divide(7, 2) == 3.5); b must not be 0.

    Gives an integer when both are integers and b divides a exactly, otherwise a float.
    """
    return arithmetic.divide(a, b)


@checked
def power(
    base: Annotated[Number, Field(description="The base.")],
    exponent: Annotated[Number, Field(description="The exponent (may be negative or fractional).")],
) -> int | float:
    """Raise base to exponent: base ** exponent (power(2, 10) == 1024, power(2, -1) == 0.5).

    Integer results over 10,000 bits (about 3,000 digits) are refused; a negative base with a
    fractional exponent has no real result and is an error.
    """
    return arithmetic.power(base, exponent)


@checked
def factorial(
    n: Annotated[int, Field(ge=0, le=MAX_FACTORIAL, description="A whole number from 0 to 1000."), NOT_BOOL],
) -> int:
    """The factorial n! = 1 * 2 * ... * n (factorial(5) == 120, factorial(0) == 1)."""
    return arithmetic.factorial(n, "n")


@checked
def sqrt(
    x: Annotated[Number, Field(description="A number >= 0.")],
) -> int | float:
    """The square root of x >= 0 (sqrt(16) == 4, sqrt(2) == 1.4142135623730951).

    A perfect-square integer gives an integer, otherwise a float. Negative numbers are an error.
    """
    return arithmetic.sqrt(x)


@checked
def percent_of(
    percent: Annotated[Number, Field(description="The percentage, e.g. 15 for 15%.")],
    value: Annotated[Number, Field(description="The number to take the percentage of.")],
) -> int | float:
    """Take percent % of value: percent * value / 100 (15% of 200 is percent_of(15, 200) == 30).

    An integer when both inputs are integers and the result is a whole number.
    """
    return arithmetic.divide(arithmetic.multiply(percent, value), 100)


@checked
def round_to(
    value: Annotated[Number, Field(description="The number to round.")],
    digits: Annotated[
        int,
        Field(
            ge=-MAX_ROUND_DIGITS,
            le=MAX_ROUND_DIGITS,
            description="Decimal places to keep: 2 for hundredths, 0 for a whole number, -2 for hundreds.",
        ),
        NOT_BOOL,
    ] = 0,
) -> int | float:
    """Round value to `digits` decimal places (round_to(3.14159, 2) == 3.14, round_to(2.5) == 3).

    Halves round away from zero. digits <= 0 gives an integer; negative digits round to tens,
    hundreds, ... (round_to(1250, -2) == 1300).
    """
    return arithmetic.round_to(value, digits)
