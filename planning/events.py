"""What a run reports while it executes: the phase it entered, and each step's start and finish.

Progress notifications (MCP) and the CLI's live display are made of these. Kept apart from the
engine so that reading them imports no Flyte.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel

from planning.records import StepStatus

Phase = Literal["planning", "steps", "answer"]


class StepEvent(BaseModel):
    """A step started or finished."""

    run_id: str
    step_id: int
    agent: str
    status: StepStatus
    done: int
    total: int


class PhaseEvent(BaseModel):
    """A run entered a phase: planning its request, running its steps, or writing its answer."""

    run_id: str
    phase: Phase
    total: int = 0  # steps, once the plan is known


RunEvent = StepEvent | PhaseEvent
OnEvent = Callable[[RunEvent], None]
