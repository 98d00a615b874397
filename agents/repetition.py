"""Spotting a planner reply that repeats itself while it is being generated.

A small model sometimes writes its first steps again and again (seen: steps 1-3 repeated up to
step 39, 2,048 tokens, 194 s, JSON cut). The guard looks at the reply each time a step may have
closed, and ends the generation when the latest steps repeat the ones just before them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

# Steps compared as a block: a longer repeated block is not a loop a guard needs to catch early.
MAX_BLOCK = 8
_BARE_OR_EXPLICIT = re.compile(r"\$\{?([0-9]+)")


@dataclass(frozen=True)
class Repetition:
    """Steps `first`..`first + size - 1` were written again right after themselves."""

    first: int  # position (0-based) of the block's first step
    size: int
    kept: list[dict[str, Any]]  # the steps before the repetition

    def describe(self) -> str:
        start = self.first + 1
        block = f"step {start}" if self.size == 1 else f"steps {start}-{start + self.size - 1}"
        return f"the reply repeated {block} again and again; it was cut after step {len(self.kept)}"


def complete_steps(text: str) -> list[dict[str, Any]] | None:
    """The steps of a partial `{"steps": [...` reply, if it ends right after a step; else None."""
    stripped = text.rstrip()
    if not stripped.endswith("}"):
        return None
    try:
        data = json.loads(stripped + "]}")
    except ValueError:
        return None
    steps = data.get("steps") if isinstance(data, dict) else None
    if not isinstance(steps, list) or not all(isinstance(s, dict) for s in steps):
        return None
    return steps


def find_repetition(steps: list[dict[str, Any]]) -> Repetition | None:
    """The block of 1..MAX_BLOCK steps at the end that repeats the block just before it.

    Steps are compared without their ids, and again with references made relative ($1 in step 3
    and $4 in step 6 are both "2 back"). A single step counts only when written three times in a
    row relative to its predecessor, or twice word for word (a chain like "add 5, add 5" is real).
    """
    exact = [_signature(s, relative=False) for s in steps]
    relative = [_signature(s, relative=True) for s in steps]
    count = len(steps)
    for size in range(1, min(MAX_BLOCK, count // 2) + 1):
        first = count - 2 * size
        if exact[first : first + size] == exact[first + size :]:
            return Repetition(first=first, size=size, kept=steps[: first + size])
        if relative[first : first + size] == relative[first + size :]:
            if size > 1:
                return Repetition(first=first, size=size, kept=steps[: first + size])
            if count >= 3 and relative[count - 3] == relative[count - 1]:
                return Repetition(first=count - 3, size=1, kept=steps[: count - 2])
    return None


@dataclass
class RepetitionGuard:
    """A `Generation.stop` for plan replies: True once the reply repeats a block of steps.

    It remembers the longest text it saw (what a truncated reply held) and the repetition found.
    """

    seen: str = ""
    repetition: Repetition | None = None
    _checked: int = field(default=0, repr=False)

    def __call__(self, text: str) -> bool:
        if self.repetition is not None:
            return True
        if len(text) > len(self.seen):
            self.seen = text
        steps = complete_steps(text)
        if steps is None or len(steps) <= self._checked:
            return False
        self._checked = len(steps)
        self.repetition = find_repetition(steps)
        return self.repetition is not None


def _signature(step: dict[str, Any], *, relative: bool) -> str:
    own = step.get("id")
    body = {k: v for k, v in step.items() if k not in ("id", "depends_on")}
    text = json.dumps(body, sort_keys=True)
    if not relative or not isinstance(own, int):
        return text
    text = _BARE_OR_EXPLICIT.sub(lambda m: f"$-{own - int(m.group(1))}", text)
    depends = step.get("depends_on")
    if isinstance(depends, list):
        shifted = [own - d if isinstance(d, int) else d for d in depends]
        text += json.dumps(shifted)
    return text
