"""A catalog unlike the product's, for `PLANNER_MCP_CATALOG=tests.server.custom_catalog:build`: the
product's agents without `weather`, plus a sixth agent, `units`. Offline: web search and the sandbox
are never called by the tests that use it."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from agents.catalog import build_catalog
from planning.catalog import AgentSpec, Catalog, ToolSpec
from planning.settings import Settings


def celsius_to_fahrenheit(celsius: Annotated[float, Field(ge=-273.15, description="Degrees Celsius.")]) -> float:
    """Convert a temperature from degrees Celsius to degrees Fahrenheit."""
    return celsius * 9 / 5 + 32


def km_to_miles(km: Annotated[float, Field(ge=0, description="A distance in kilometres.")]) -> float:
    """Convert a distance from kilometres to miles."""
    return km / 1.609344


UNITS = AgentSpec(
    name="units",
    description="Units: convert temperatures and distances.",
    instructions="Convert with the tools; never convert in your head.",
    tools=(ToolSpec.from_function(celsius_to_fahrenheit), ToolSpec.from_function(km_to_miles)),
)


def build(settings: Settings) -> Catalog:
    product = build_catalog(settings)
    return Catalog([*(a for a in product.agents.values() if a.name != "weather"), UNITS])
