"""The composition root: what executing a run needs, wired from the settings in one place."""

from __future__ import annotations

from pathlib import Path

from agents.llm import ScriptedLLM
from agents.planner import Planner
from agents.replanner import Replanner
from agents.runtime import build_parts
from planning.catalog import AgentSpec, Catalog, ToolSpec
from planning.settings import Settings
from server.app import App
from tools import math

CATALOG = Catalog([AgentSpec(name="math", description="Arithmetic", tools=(ToolSpec.from_function(math.multiply),))])


def test_the_parts_revise_failed_runs_with_the_planner_given_within_the_settings_bound(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, max_replans=3)
    llm = ScriptedLLM([])
    planner = Planner(llm, CATALOG, settings.plan_limits)

    with_planner = build_parts(settings, llm, CATALOG, planner=planner)
    without = build_parts(settings, llm, CATALOG)

    assert isinstance(with_planner.replan, Replanner) and with_planner.replan.planner is planner
    assert (with_planner.max_replans, without.replan) == (3, None)


def test_the_apps_engine_replans_with_the_apps_own_planner(tmp_path: Path) -> None:
    app = App.open(Settings(home=tmp_path, max_replans=2), llm=ScriptedLLM([]), catalog=CATALOG)
    no_llm = App.open(Settings(home=tmp_path / "other"), llm=None, catalog=CATALOG)
    try:
        replan = app.engine.replan
        assert isinstance(replan, Replanner) and replan.planner is app.planner
        assert app.engine.max_replans == 2
        assert no_llm.engine.replan is None
    finally:
        app.close()
        no_llm.close()
