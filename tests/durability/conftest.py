"""Fixtures of the durability tests: a fresh planner-mcp workspace (home, ledger, store) per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.durability.harness import Workspace


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path)
