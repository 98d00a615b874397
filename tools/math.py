"""Arithmetic tools for the math specialist: named operations and a safe expression evaluator.

Number rule, shared by every tool here: results are ints when all inputs are ints and the result is
exact (divide(10, 2) == 5, sqrt(16) == 4); otherwise they are floats. round_to with digits <= 0 and
floor/ceil return ints, like Python's round(x). Transcendental functions (log, exp, sin, ...) return
floats.

Guards, also shared: no bools, NaN or infinity as inputs; integers at most MAX_INT_BITS bits at every
step; powers whose result would exceed that are refused from an estimate before any work is done;
factorial arguments at most MAX_FACTORIAL; float overflow is an error, never inf.

`evaluate` never calls eval: it parses with `ast` and walks an allow-list of node types.
"""

import ast
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

from tools.arguments import NOT_BOOL, checked
from tools.errors import ToolError

MAX_EXPRESSION_CHARS = 1_000
MAX_NESTING = 50
MAX_INT_BITS = 10_000
MAX_FACTORIAL = 1_000
MAX_ROUND_DIGITS = 100

# Enough precision for any finite float (309 integer digits) plus MAX_ROUND_DIGITS decimals.
_DECIMAL_CONTEXT = Context(prec=309 + MAX_ROUND_DIGITS + 20, rounding=ROUND_HALF_UP)


def _show(value: object) -> str:
    """repr for messages; huge ints are summarised (repr of a 10,000-bit int is 3,000 digits)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"<an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits>"
    return repr(value)


def _ordinary(value: int | float) -> int | float:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value!r}; pass an ordinary number")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise ValueError(f"too large ({_show(value)}, over {MAX_INT_BITS:,} bits); use a smaller number")
    return value


# The named tools' inputs: the signature is where they are checked (see tools.arguments).
# Constraints (Field) come before validators in Annotated, or pydantic cannot put them in the schema.
Number = Annotated[int | float, NOT_BOOL, AfterValidator(_ordinary)]


# --- shared guards -------------------------------------------------------------------------------


def _too_big_int(least_bits: int | float) -> ToolError:
    return ToolError(
        f"the result would be an integer of at least {int(least_bits):,} bits, over the limit of "
        f"{MAX_INT_BITS:,} bits "
        f"(about {int(MAX_INT_BITS * math.log10(2)):,} digits); use smaller numbers, or a float such as "
        "2.0 ** 100 if an approximate answer is enough"
    )


def _checked(value: int | float | complex) -> int | float:
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
        raise _too_big_int(value.bit_length())
    return value


def _whole_number(number: int | float, name: str) -> int:
    """An int, or a float with no fractional part (5.0) as its int; anything else is refused."""
    if isinstance(number, float):
        if not number.is_integer():
            raise ToolError(f"{name} must be a whole number, got {number!r}; pass an integer such as 5")
        return int(number)
    return number


@contextmanager
def _float_overflow(operation: str) -> Iterator[None]:
    try:
        yield
    except OverflowError:
        raise ToolError(
            f"{operation} is too large for a floating-point number (the limit is about 1.8e308); use smaller numbers"
        ) from None


# --- shared operations (inputs already validated, by a signature or by the evaluator) ------------


def _add(a: int | float, b: int | float) -> int | float:
    with _float_overflow("the sum"):
        return _checked(a + b)


def _subtract(a: int | float, b: int | float) -> int | float:
    with _float_overflow("the difference"):
        return _checked(a - b)


def _multiply(a: int | float, b: int | float) -> int | float:
    # The product of ints has at least bits(a) + bits(b) - 1 bits: refuse before multiplying.
    if isinstance(a, int) and isinstance(b, int) and a and b:
        least_bits = a.bit_length() + b.bit_length() - 1
        if least_bits > MAX_INT_BITS:
            raise _too_big_int(least_bits)
    with _float_overflow("the product"):
        return _checked(a * b)


def _refuse_zero_divisor(divisor: int | float, operation: str) -> None:
    if divisor == 0:
        raise ToolError(f"division by zero: the divisor of {operation} is 0; use a non-zero divisor")


def _divide(a: int | float, b: int | float) -> int | float:
    _refuse_zero_divisor(b, "a / b")
    if isinstance(a, int) and isinstance(b, int):
        quotient, remainder = divmod(a, b)
        if remainder == 0:
            return quotient
    with _float_overflow("the quotient"):
        return _checked(a / b)


def _floor_divide(a: int | float, b: int | float) -> int | float:
    _refuse_zero_divisor(b, "a // b")
    with _float_overflow("the quotient"):
        return _checked(a // b)


def _modulo(a: int | float, b: int | float) -> int | float:
    _refuse_zero_divisor(b, "a % b")
    with _float_overflow("the remainder"):
        return _checked(a % b)


def _negate(x: int | float) -> int | float:
    return -x


def _identity(x: int | float) -> int | float:
    return x


def _abs(x: int | float) -> int | float:
    return abs(x)


def _min(*values: int | float) -> int | float:
    return min(values)


def _max(*values: int | float) -> int | float:
    return max(values)


def _power(base: int | float, exponent: int | float) -> int | float:
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
                raise _too_big_int(bits)
    with _float_overflow("the power"):
        return _checked(base**exponent)


def _sqrt(x: int | float) -> int | float:
    if x < 0:
        raise ToolError(f"cannot take the square root of a negative number ({_show(x)}); pass a number >= 0")
    if isinstance(x, int):
        root = math.isqrt(x)
        if root * root == x:
            return root
    with _float_overflow("the square root's input"):
        return math.sqrt(x)


def _factorial(n: int | float, name: str = "the factorial's argument") -> int:
    whole = _whole_number(n, name)
    if whole < 0:
        raise ToolError(f"factorial is defined for whole numbers >= 0, got {whole}; pass 0 or more")
    if whole > MAX_FACTORIAL:
        raise ToolError(
            f"factorial({_show(whole)}) is too large: the argument limit is {MAX_FACTORIAL:,}; use a smaller number"
        )
    return math.factorial(whole)


def _round_to(value: int | float, digits: int | float = 0) -> int | float:
    places = _whole_number(digits, "digits")
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
        return _checked((quotient * step) if value >= 0 else -(quotient * step))
    # Round the shortest decimal form (what a person sees), so round_to(2.675, 2) == 2.68.
    rounded = Decimal(repr(value)).quantize(Decimal(1).scaleb(-places), context=_DECIMAL_CONTEXT)
    return int(rounded) if places <= 0 else float(rounded)


_DOMAIN_HINTS = {
    "log": "log needs a number > 0 (and a base > 0 other than 1)",
    "log10": "log10 needs a number > 0",
    "tan": "tan is undefined at odd multiples of pi/2",
}


def _math_function(name: str, function: Callable[..., float]) -> Callable[..., int | float]:
    """Wrap a math-module function so domain errors and overflow become ToolErrors naming it."""

    def call(*args: int | float) -> int | float:
        try:
            return _checked(function(*args))
        except OverflowError:
            raise ToolError(
                f"{name}() of {', '.join(_show(a) for a in args)} is too large for a floating-point number; "
                "use smaller numbers"
            ) from None
        except (ValueError, ZeroDivisionError):
            raise ToolError(
                f"{name}() is not defined for {', '.join(_show(a) for a in args)}; "
                f"{_DOMAIN_HINTS.get(name, 'check the argument')}"
            ) from None

    return call


# --- named tools ----------------------------------------------------------------------------------


@checked
def add(
    a: Annotated[Number, Field(description="The first number.")],
    b: Annotated[Number, Field(description="The number to add to a.")],
) -> int | float:
    """Add two numbers: a + b. Two integers give an integer (add(2, 2) == 4)."""
    return _add(a, b)


@checked
def subtract(
    a: Annotated[Number, Field(description="The number to subtract from.")],
    b: Annotated[Number, Field(description="The number to subtract.")],
) -> int | float:
    """Subtract b from a: a - b. Two integers give an integer."""
    return _subtract(a, b)


@checked
def multiply(
    a: Annotated[Number, Field(description="The first factor.")],
    b: Annotated[Number, Field(description="The second factor.")],
) -> int | float:
    """Multiply two numbers: a * b. Two integers give an integer (multiply(10, 5) == 50)."""
    return _multiply(a, b)


@checked
def divide(
    a: Annotated[Number, Field(description="The dividend (the number being divided).")],
    b: Annotated[Number, Field(description="The divisor; must not be 0.")],
) -> int | float:
    """Divide a by b: a / b (divide(10, 2) == 5, divide(7, 2) == 3.5); b must not be 0.

    Gives an integer when both are integers and b divides a exactly, otherwise a float.
    """
    return _divide(a, b)


@checked
def power(
    base: Annotated[Number, Field(description="The base.")],
    exponent: Annotated[Number, Field(description="The exponent (may be negative or fractional).")],
) -> int | float:
    """Raise base to exponent: base ** exponent (power(2, 10) == 1024, power(2, -1) == 0.5).

    Integer results over 10,000 bits (about 3,000 digits) are refused; a negative base with a
    fractional exponent has no real result and is an error.
    """
    return _power(base, exponent)


@checked
def factorial(
    n: Annotated[int, Field(ge=0, le=MAX_FACTORIAL, description="A whole number from 0 to 1000."), NOT_BOOL],
) -> int:
    """The factorial n! = 1 * 2 * ... * n (factorial(5) == 120, factorial(0) == 1)."""
    return _factorial(n, "n")


@checked
def sqrt(
    x: Annotated[Number, Field(description="A number >= 0.")],
) -> int | float:
    """The square root of x >= 0 (sqrt(16) == 4, sqrt(2) == 1.4142135623730951).

    A perfect-square integer gives an integer, otherwise a float. Negative numbers are an error.
    """
    return _sqrt(x)


@checked
def percent_of(
    percent: Annotated[Number, Field(description="The percentage, e.g. 15 for 15%.")],
    value: Annotated[Number, Field(description="The number to take the percentage of.")],
) -> int | float:
    """Take percent % of value: percent * value / 100 (15% of 200 is percent_of(15, 200) == 30).

    An integer when both inputs are integers and the result is a whole number.
    """
    return _divide(_multiply(percent, value), 100)


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
    return _round_to(value, digits)


# --- expression evaluator -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Function:
    implementation: Callable[..., int | float]
    min_args: int
    max_args: int | None  # None: any number
    usage: str


_FUNCTIONS: dict[str, _Function] = {
    "abs": _Function(_abs, 1, 1, "abs(x)"),
    "round": _Function(_round_to, 1, 2, "round(x) or round(x, digits)"),
    "min": _Function(_min, 1, None, "min(a, b, ...)"),
    "max": _Function(_max, 1, None, "max(a, b, ...)"),
    "sqrt": _Function(_sqrt, 1, 1, "sqrt(x)"),
    "floor": _Function(_math_function("floor", math.floor), 1, 1, "floor(x)"),
    "ceil": _Function(_math_function("ceil", math.ceil), 1, 1, "ceil(x)"),
    "log": _Function(_math_function("log", math.log), 1, 2, "log(x) for the natural log or log(x, base)"),
    "log10": _Function(_math_function("log10", math.log10), 1, 1, "log10(x)"),
    "exp": _Function(_math_function("exp", math.exp), 1, 1, "exp(x)"),
    "sin": _Function(_math_function("sin", math.sin), 1, 1, "sin(x) with x in radians"),
    "cos": _Function(_math_function("cos", math.cos), 1, 1, "cos(x) with x in radians"),
    "tan": _Function(_math_function("tan", math.tan), 1, 1, "tan(x) with x in radians"),
    "factorial": _Function(_factorial, 1, 1, "factorial(n)"),
}
_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}

_BINARY: dict[type[ast.operator], Callable[[int | float, int | float], int | float]] = {
    ast.Add: _add,
    ast.Sub: _subtract,
    ast.Mult: _multiply,
    ast.Div: _divide,
    ast.FloorDiv: _floor_divide,
    ast.Mod: _modulo,
    ast.Pow: _power,
}
_UNARY: dict[type[ast.unaryop], Callable[[int | float], int | float]] = {ast.USub: _negate, ast.UAdd: _identity}

_ALLOWED = (
    "use numbers, + - * / // % ** and parentheses, the functions "
    f"{', '.join(_FUNCTIONS)} and the constants {' and '.join(_CONSTANTS)}"
)

_REFUSED_NODES: dict[type[ast.AST], str] = {
    ast.Subscript: "indexing or slicing (x[i])",
    ast.Lambda: "lambda functions",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions",
    ast.Compare: "comparisons (<, >, ==)",
    ast.BoolOp: "'and' / 'or'",
    ast.IfExp: "conditional expressions (x if c else y)",
    ast.NamedExpr: "assignments (:=)",
    ast.JoinedStr: "strings",
    ast.Starred: "star-unpacking (*args)",
    ast.List: "lists",
    ast.Set: "sets",
    ast.Dict: "dicts",
}


def _refuse(what: str, hint: str = "") -> ToolError:
    return ToolError(f"{what} cannot be used in an arithmetic expression; {hint or _ALLOWED}")


def _operands(node: ast.expr) -> list[ast.expr]:
    """The sub-expressions of an allowed node; raises ToolError for anything off the allow-list."""
    match node:
        case ast.Constant(value=value):
            if type(value) not in (int, float):  # type(), not isinstance: True is an int
                kind = "text in quotes" if isinstance(value, str | bytes) else f"the value {value!r}"
                raise _refuse(kind, f"numbers must be plain, such as 3 or 2.5; {_ALLOWED}")
            return []
        case ast.Name(id=name):
            if name in _FUNCTIONS:
                raise _refuse(f"{name!r} without parentheses", f"call it, e.g. {_FUNCTIONS[name].usage}")
            if name not in _CONSTANTS:
                raise ToolError(f"unknown name {name!r}: expressions cannot use variables; {_ALLOWED}")
            return []
        case ast.UnaryOp(op=op, operand=operand):
            if type(op) not in _UNARY:
                raise _refuse("'not'" if isinstance(op, ast.Not) else "bitwise '~'")
            return [operand]
        case ast.BinOp(op=op, left=left, right=right):
            if isinstance(op, ast.BitXor):
                raise _refuse("'^' (bitwise xor)", "use ** for powers, e.g. 2 ** 3")
            if type(op) not in _BINARY:
                raise _refuse(f"the operator {type(op).__name__}")
            return [left, right]
        case ast.Call(func=func, args=args, keywords=keywords):
            if not isinstance(func, ast.Name):
                raise _refuse("calling anything but an allowed function by name")
            function = _FUNCTIONS.get(func.id)
            if function is None:
                raise ToolError(
                    f"function {func.id!r} is not allowed; the allowed functions are {', '.join(_FUNCTIONS)}"
                )
            if keywords:
                name = f"{keywords[0].arg}=..." if keywords[0].arg else "**"
                raise _refuse(f"keyword arguments ({name})", f"pass arguments by position: {function.usage}")
            if len(args) < function.min_args or (function.max_args is not None and len(args) > function.max_args):
                raise ToolError(f"{func.id}() got {len(args)} arguments; write it as {function.usage}")
            return list(args)
        case ast.Attribute(attr=attribute):
            raise _refuse(f"attribute access ('.{attribute}')")
        case ast.Tuple():
            raise _refuse(
                "a comma-separated list",
                "write one expression; drop thousands separators (10000, not 10,000), or use min()/max()",
            )
        case _:
            raise _refuse(_REFUSED_NODES.get(type(node), f"{type(node).__name__} expressions"))


def _nesting_depth(expression: str) -> int:
    depth = deepest = 0
    for char in expression:
        if char in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in ")]}":
            depth -= 1
    return deepest


def _parse(text: str) -> ast.expr:
    """The expression's syntax tree (its size is limited by `evaluate`'s signature)."""
    if _nesting_depth(text) > MAX_NESTING:
        raise ToolError(
            f"the expression is nested too deeply (over {MAX_NESTING} levels of parentheses); "
            "split the calculation into smaller steps"
        )
    try:
        return ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError) as error:
        where = f" at column {error.offset}" if isinstance(error, SyntaxError) and error.offset else ""
        reason = error.msg if isinstance(error, SyntaxError) else str(error)
        raise ToolError(
            f"could not parse {text!r}: {reason}{where}; write a plain arithmetic expression such as "
            "'(2 + 3) * 4' (use ** for powers, * for times, no units or words)"
        ) from None
    except (RecursionError, MemoryError):
        # A long run of unary operators (- - - ... 1) nests without parentheses.
        raise ToolError(
            "the expression is nested too deeply to parse; split the calculation into smaller steps"
        ) from None


def _apply(node: ast.expr, values: list[int | float]) -> int | float:
    """Compute one allowed node whose operands' values are the last entries of `values`."""
    match node:
        case ast.Constant(value=int() | float() as value):
            return _checked(value)
        case ast.Name(id=name):
            return _CONSTANTS[name]
        case ast.UnaryOp(op=op):
            return _UNARY[type(op)](values.pop())
        case ast.BinOp(op=op):
            right, left = values.pop(), values.pop()
            return _BINARY[type(op)](left, right)
        case ast.Call(func=ast.Name(id=name), args=args):
            arguments = values[len(values) - len(args) :]
            del values[len(values) - len(args) :]
            return _FUNCTIONS[name].implementation(*arguments)
        case _:  # _operands refused everything else before evaluation started
            raise AssertionError(f"unchecked node {ast.dump(node)}")


@checked
def evaluate(
    expression: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_EXPRESSION_CHARS),
        Field(
            description="An arithmetic expression, e.g. '(2 + 3) * sqrt(16) / 4' or '15 / 100 * 200'.",
        ),
    ],
) -> int | float:
    """Compute arithmetic like '(2 + 3) * sqrt(16) / 4': + - * / // % ** (), math functions, pi, e.

    Allowed: numbers (3, 2.5, 1e6), + - * / // % ** and parentheses; the functions abs, round(x,
    digits), min, max, sqrt, floor, ceil, log (natural; log(x, base) for another base), log10, exp,
    sin, cos, tan (radians) and factorial; the constants pi and e. round() rounds halves away from
    zero. Use ** for powers (^ is not a power). No variables, words, units, thousands separators or
    percent signs. Integers stay integers when the result is exact: '10 / 2' gives 5, '7 / 2' 3.5.
    """
    root = _parse(expression)
    # Check the whole tree first, so a forbidden part is reported even after an expensive one.
    pending = [root]
    while pending:
        pending.extend(_operands(pending.pop()))
    # Post-order walk with an explicit stack: '1 + 2 + ... + 400' is as deep as it is long, and
    # recursion would tie what we accept to the caller's stack depth.
    todo: list[tuple[ast.expr, bool]] = [(root, False)]
    values: list[int | float] = []
    while todo:
        node, operands_done = todo.pop()
        if operands_done:
            values.append(_apply(node, values))
        else:
            todo.append((node, True))
            todo.extend((operand, False) for operand in reversed(_operands(node)))
    (result,) = values
    return result
