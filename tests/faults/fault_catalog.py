"""A catalog for planner-mcp subprocesses under fault tests: `PLANNER_MCP_CATALOG=tests.faults.fault_catalog:build`.

The usual catalog plus one agent, `blob`, whose tool returns a large text made from a small request:
results that fill a small disk while the plan itself stays small.
"""

from __future__ import annotations

import hashlib

from pydantic import Field

from agents.catalog import build_catalog
from planning.catalog import AgentSpec, Catalog, ToolSpec
from planning.settings import Settings


def blob(kib: int = Field(ge=1, le=1024), seed: int = 0) -> str:
    """A text of `kib` KiB that does not compress (hex of a hash chain), different per seed."""
    digest = hashlib.sha256(str(seed).encode()).digest()
    chunks = []
    for _ in range(kib * 1024 // 64):
        digest = hashlib.sha256(digest).digest()
        chunks.append(digest.hex())
    return "".join(chunks)


def build(settings: Settings) -> Catalog:
    usual = build_catalog(settings)
    extra = AgentSpec(name="blob", description="Large texts.", tools=(ToolSpec.from_function(blob),))
    return Catalog([*usual.agents.values(), extra])
