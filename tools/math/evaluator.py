"""`evaluate`: arithmetic expressions computed without eval.

The expression is parsed with `ast`, the whole tree is checked against an allow-list of node
types, functions and constants, then computed bottom-up with an explicit stack (no recursion) by
the same operations as the named tools (tools.math.arithmetic).
"""

import ast
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field, StringConstraints

from tools.arguments import checked
from tools.errors import ToolError
from tools.math import arithmetic
from tools.math.arithmetic import MAX_EXPRESSION_CHARS, MAX_NESTING


@dataclass(frozen=True)
class _Function:
    implementation: Callable[..., int | float]
    min_args: int
    max_args: int | None  # None: any number
    usage: str


_FUNCTIONS: dict[str, _Function] = {
    "abs": _Function(arithmetic.absolute, 1, 1, "abs(x)"),
    "round": _Function(arithmetic.round_to, 1, 2, "round(x) or round(x, digits)"),
    "min": _Function(arithmetic.minimum, 1, None, "min(a, b, ...)"),
    "max": _Function(arithmetic.maximum, 1, None, "max(a, b, ...)"),
    "sqrt": _Function(arithmetic.sqrt, 1, 1, "sqrt(x)"),
    "floor": _Function(arithmetic.math_function("floor", math.floor), 1, 1, "floor(x)"),
    "ceil": _Function(arithmetic.math_function("ceil", math.ceil), 1, 1, "ceil(x)"),
    "log": _Function(arithmetic.math_function("log", math.log), 1, 2, "log(x) for the natural log or log(x, base)"),
    "log10": _Function(arithmetic.math_function("log10", math.log10), 1, 1, "log10(x)"),
    "exp": _Function(arithmetic.math_function("exp", math.exp), 1, 1, "exp(x)"),
    "sin": _Function(arithmetic.math_function("sin", math.sin), 1, 1, "sin(x) with x in radians"),
    "cos": _Function(arithmetic.math_function("cos", math.cos), 1, 1, "cos(x) with x in radians"),
    "tan": _Function(arithmetic.math_function("tan", math.tan), 1, 1, "tan(x) with x in radians"),
    "factorial": _Function(arithmetic.factorial, 1, 1, "factorial(n)"),
}
_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}

_BINARY: dict[type[ast.operator], Callable[[int | float, int | float], int | float]] = {
    ast.Add: arithmetic.add,
    ast.Sub: arithmetic.subtract,
    ast.Mult: arithmetic.multiply,
    ast.Div: arithmetic.divide,
    ast.FloorDiv: arithmetic.floor_divide,
    ast.Mod: arithmetic.modulo,
    ast.Pow: arithmetic.power,
}
_UNARY: dict[type[ast.unaryop], Callable[[int | float], int | float]] = {
    ast.USub: arithmetic.negate,
    ast.UAdd: arithmetic.identity,
}

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
            return arithmetic.guarded(value)
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
