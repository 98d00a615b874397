"""The arithmetic the named tools and the evaluator share, with its guards.

Inputs are already validated (by a tool's signature, or by the evaluator's allow-list); what is
checked here is what only the operation knows: results over MAX_INT_BITS (refused from an estimate
before any work), float overflow, division by zero, domains (sqrt, log, factorial).
"""

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import ROUND_HALF_UP, Context, Decimal

from tools.errors import ToolError

MAX_EXPRESSION_CHARS = 1_000
MAX_NESTING = 50
MAX_INT_BITS = 10_000
MAX_FACTORIAL = 1_000
MAX_ROUND_DIGITS = 100

# Enough precision for any finite float (309 integer digits) plus MAX_ROUND_DIGITS decimals.
_DECIMAL_CONTEXT = Context(prec=309 + MAX_ROUND_DIGITS + 20, rounding=ROUND_HALF_UP)


def show(value: object) -> str:
    """repr for messages; huge ints are summarised (repr of a 10,000-bit int is 3,000 digits)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"<an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits>"
    return repr(value)


# --- shared guards -------------------------------------------------------------------------------


def too_big_int(least_bits: int | float) -> ToolError:
    return ToolError(
        f"the result would be an integer of at least {int(least_bits):,} bits, over the limit of "
        f"{MAX_INT_BITS:,} bits "
        f"(about {int(MAX_INT_BITS * math.log10(2)):,} digits); use smaller numbers, or a float such as "
        "2.0 ** 100 if an approximate answer is enough"
    )


def guarded(value: int | float | complex) -> int | float:
    """Refuse results that are complex, not finite, or integers over the size limit."""
    if isinstance(value, complex):
        raise ToolError(
            "the result is a complex number (a negative number raised to a fractional power has no real "
            "value); use a non-negative base or a whole-number exponent"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise ToolError(
            "the result is too large for a floating-point number (the limit is about 1.8e308); use smaller numbers"
        )
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise too_big_int(value.bit_length())
    return value


def whole_number(number: int | float, name: str) -> int:
    """An int, or a float with no fractional part (5.0) as its int; anything else is refused."""
    if isinstance(number, float):
        if not number.is_integer():
            raise ToolError(f"{name} must be a whole number, got {number!r}; pass an integer such as 5")
        return int(number)
    return number


@contextmanager
def float_overflow(operation: str) -> Iterator[None]:
    try:
        yield
    except OverflowError:
        raise ToolError(
            f"{operation} is too large for a floating-point number (the limit is about 1.8e308); use smaller numbers"
        ) from None


# --- operations ------------------------------------------------------------------------------------


def add(a: int | float, b: int | float) -> int | float:
    with float_overflow("the sum"):
        return guarded(a + b)


def subtract(a: int | float, b: int | float) -> int | float:
    with float_overflow("the difference"):
        return guarded(a - b)


def multiply(a: int | float, b: int | float) -> int | float:
    # The product of ints has at least bits(a) + bits(b) - 1 bits: refuse before multiplying.
    if isinstance(a, int) and isinstance(b, int) and a and b:
        least_bits = a.bit_length() + b.bit_length() - 1
        if least_bits > MAX_INT_BITS:
            raise too_big_int(least_bits)
    with float_overflow("the product"):
        return guarded(a * b)


def refuse_zero_divisor(divisor: int | float, operation: str) -> None:
    if divisor == 0:
        raise ToolError(f"division by zero: the divisor of {operation} is 0; use a non-zero divisor")


def divide(a: int | float, b: int | float) -> int | float:
    refuse_zero_divisor(b, "a / b")
    if isinstance(a, int) and isinstance(b, int):
        quotient, remainder = divmod(a, b)
        if remainder == 0:
            return quotient
    with float_overflow("the quotient"):
        return guarded(a / b)


def floor_divide(a: int | float, b: int | float) -> int | float:
    refuse_zero_divisor(b, "a // b")
    with float_overflow("the quotient"):
        return guarded(a // b)


def modulo(a: int | float, b: int | float) -> int | float:
    refuse_zero_divisor(b, "a % b")
    with float_overflow("the remainder"):
        return guarded(a % b)


def negate(x: int | float) -> int | float:
    return -x


def identity(x: int | float) -> int | float:
    return x


def absolute(x: int | float) -> int | float:
    return abs(x)


def minimum(*values: int | float) -> int | float:
    return min(values)


def maximum(*values: int | float) -> int | float:
    return max(values)


def power(base: int | float, exponent: int | float) -> int | float:
    if base == 0 and exponent < 0:
        raise ToolError("0 cannot be raised to a negative power (that divides by zero); use a positive exponent")
    if isinstance(base, int) and isinstance(exponent, int):
        if exponent < 0 and abs(base) == 1:
            return base ** (-exponent)  # exact, so it stays an int
        if exponent > 0 and abs(base) > 1:
            # Estimate the result's size without computing it, so 10**10**10 is refused at once.
            # log2|base| >= 1 here, so an exponent over the limit is too big already (and too big to
            # multiply as a float).
            bits = exponent if exponent > MAX_INT_BITS else exponent * math.log2(abs(base))
            if bits > MAX_INT_BITS:
                raise too_big_int(bits)
    with float_overflow("the power"):
        return guarded(base**exponent)


def sqrt(x: int | float) -> int | float:
    if x < 0:
        raise ToolError(f"cannot take the square root of a negative number ({show(x)}); pass a number >= 0")
    if isinstance(x, int):
        root = math.isqrt(x)
        if root * root == x:
            return root
    with float_overflow("the square root's input"):
        return math.sqrt(x)


def factorial(n: int | float, name: str = "the factorial's argument") -> int:
    whole = whole_number(n, name)
    if whole < 0:
        raise ToolError(f"factorial is defined for whole numbers >= 0, got {whole}; pass 0 or more")
    if whole > MAX_FACTORIAL:
        raise ToolError(
            f"factorial({show(whole)}) is too large: the argument limit is {MAX_FACTORIAL:,}; use a smaller number"
        )
    return math.factorial(whole)


def round_to(value: int | float, digits: int | float = 0) -> int | float:
    places = whole_number(digits, "digits")
    if abs(places) > MAX_ROUND_DIGITS:
        raise ToolError(
            f"digits must be between -{MAX_ROUND_DIGITS} and {MAX_ROUND_DIGITS}, got {places}; "
            "use 2 for hundredths, 0 for a whole number, -2 for hundreds"
        )
    if isinstance(value, int):
        if places >= 0:
            return value
        step = 10**-places
        quotient, remainder = divmod(abs(value), step)
        if 2 * remainder >= step:  # halves round away from zero, as taught in school
            quotient += 1
        return guarded((quotient * step) if value >= 0 else -(quotient * step))
    # Round the shortest decimal form (what a person sees), so round_to(2.675, 2) == 2.68.
    rounded = Decimal(repr(value)).quantize(Decimal(1).scaleb(-places), context=_DECIMAL_CONTEXT)
    return int(rounded) if places <= 0 else float(rounded)


_DOMAIN_HINTS = {
    "log": "log needs a number > 0 (and a base > 0 other than 1)",
    "log10": "log10 needs a number > 0",
    "tan": "tan is undefined at odd multiples of pi/2",
}


def math_function(name: str, function: Callable[..., float]) -> Callable[..., int | float]:
    """Wrap a math-module function so domain errors and overflow become ToolErrors naming it."""

    def call(*args: int | float) -> int | float:
        try:
            return guarded(function(*args))
        except OverflowError:
            raise ToolError(
                f"{name}() of {', '.join(show(a) for a in args)} is too large for a floating-point number; "
                "use smaller numbers"
            ) from None
        except (ValueError, ZeroDivisionError):
            raise ToolError(
                f"{name}() is not defined for {', '.join(show(a) for a in args)}; "
                f"{_DOMAIN_HINTS.get(name, 'check the argument')}"
            ) from None

    return call
