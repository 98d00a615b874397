"""The composition root: what executing a run needs, built from the settings in one place.

`build_parts` wires the step runner (catalog, specialist agents on the LLM, retries), the answer's
writer, the concurrency cap and the replanner (revisions of a plan whose steps failed). The App
(server.app) calls it with its own LLM, catalog and planner; a Flyte cluster's task pods call
`cluster_parts` (named by `Settings.runtime`), which takes the LLM from the pod's environment (the
injected secrets) and has no replanner (a run replans where its run store is: in the App).
"""

from __future__ import annotations

import os

from agents.llm import LLM
from agents.llm.select import select_llm
from agents.planner import Planner
from agents.replanner import Replanner
from agents.specialist import SpecialistRunner
from agents.synthesis import Synthesizer
from planning.catalog import Catalog, load_catalog
from planning.engine import RunParts
from planning.settings import Settings
from planning.steps import StepRunner


def build_parts(settings: Settings, llm: LLM | None, catalog: Catalog, *, planner: Planner | None = None) -> RunParts:
    """Steps run by the catalog's tools and agents on `llm`; the answer written by `llm` when the
    settings ask for it, else stated from the results; with a `planner`, failed runs revised by it
    (at most `settings.max_replans` times for a run of a request)."""
    steps = StepRunner(
        catalog,
        run_agent=SpecialistRunner(llm) if llm is not None else None,
        retries=settings.step_retries,
        retry_base_s=settings.retry_base_s,
    )
    synthesize = Synthesizer(llm if settings.synthesize else None)
    return RunParts(
        steps=steps,
        synthesize=synthesize,
        max_concurrency=settings.max_concurrency,
        replan=Replanner(planner) if planner is not None else None,
        max_replans=settings.max_replans,
    )


def cluster_parts(settings: Settings) -> RunParts:
    """The parts in a cluster's task pod: the LLM from the pod's environment, the settings' catalog."""
    return build_parts(settings, select_llm(os.environ, settings.home), load_catalog(settings))
