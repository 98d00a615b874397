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

from tools.math.arithmetic import MAX_EXPRESSION_CHARS, MAX_FACTORIAL, MAX_INT_BITS, MAX_NESTING, MAX_ROUND_DIGITS
from tools.math.evaluator import evaluate
from tools.math.operations import add, divide, factorial, multiply, percent_of, power, round_to, sqrt, subtract

__all__ = [
    "MAX_EXPRESSION_CHARS",
    "MAX_FACTORIAL",
    "MAX_INT_BITS",
    "MAX_NESTING",
    "MAX_ROUND_DIGITS",
    "add",
    "divide",
    "evaluate",
    "factorial",
    "multiply",
    "percent_of",
    "power",
    "round_to",
    "sqrt",
    "subtract",
]
