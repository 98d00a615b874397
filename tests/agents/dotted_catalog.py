"""A catalog of JSON-Schema tools named the way other systems name them (dots, dashes), for tests
that serve it: `PLANNER_MCP_CATALOG=tests.agents.dotted_catalog:build_catalog`."""

from __future__ import annotations

import math

from pydantic import JsonValue

from planning.catalog import AgentSpec, Catalog, ToolSpec
from planning.settings import Settings

SUM_OF_MULTIPLES = "math_toolkit.sum_of_multiples"
GCD = "math_toolkit.gcd-of"


async def _sum_of_multiples(args: dict[str, JsonValue]) -> JsonValue:
    limit, factors = args["limit"], args["multiples"]
    assert isinstance(limit, int) and isinstance(factors, list)
    return sum(n for n in range(1, limit) if any(n % f == 0 for f in factors if isinstance(f, int)))


async def _gcd(args: dict[str, JsonValue]) -> JsonValue:
    a, b = args["a"], args["b"]
    assert isinstance(a, int) and isinstance(b, int)
    return math.gcd(a, b)


def build_catalog(settings: Settings | None = None) -> Catalog:
    return Catalog(
        [
            AgentSpec(
                name="math_toolkit",
                description="Number theory from another system's toolkit.",
                tools=(
                    ToolSpec.from_json_schema(
                        SUM_OF_MULTIPLES,
                        "Sum of the numbers below `limit` that are multiples of any of `multiples`.",
                        {
                            "type": "object",
                            "properties": {
                                "limit": {"type": "integer", "minimum": 1},
                                "multiples": {"type": "array", "items": {"type": "integer", "minimum": 1}},
                            },
                            "required": ["limit", "multiples"],
                        },
                        _sum_of_multiples,
                    ),
                    ToolSpec.from_json_schema(
                        GCD,
                        "Greatest common divisor of a and b.",
                        {
                            "type": "object",
                            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                            "required": ["a", "b"],
                        },
                        _gcd,
                    ),
                ),
            )
        ]
    )
