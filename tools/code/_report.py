"""The runner's report, read back from its pipe (protocol in _runner.py).

The first line is the runner's own: it is written before the program runs. Anything after it may
come from the program, which can write to the pipe too, so it is validated like any input from
outside, and a report that does not hold together costs the program its `result`, never the server.
"""

import json
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, JsonValue, ValidationError

from tools.code._process import Capture
from tools.code.models import LimitName


class _Opening(BaseModel):
    event: Literal["started", "refused"]
    unapplied_limits: list[str] = []


class _Finished(BaseModel):
    event: Literal["finished"]
    exit_code: int
    result_json: str | None = None
    result_error: str | None = None
    limit_hit: LimitName | None = None


_TAMPERED = "the program wrote over the sandbox's report channel, so `result` was lost"


@dataclass(frozen=True)
class Report:
    started: bool  # False: the sandbox failed before the program could run
    refused: list[str] | None  # limits the runner could not set, when it refused to run the program
    unapplied_limits: list[str]  # limits the platform does not support (non-Linux only)
    finished: bool  # False: the program was killed or ended itself without the runner's report
    exit_code: int | None
    limit_hit: LimitName | None
    result: JsonValue
    result_error: str | None


def parse(capture: Capture) -> Report:
    lines = capture.data().splitlines()
    try:
        opening = _Opening.model_validate_json(lines[0]) if lines else None
    except ValidationError:
        opening = None
    finished: _Finished | None = None
    for line in reversed(lines[1:]):
        try:
            finished = _Finished.model_validate_json(line)
            break
        except ValidationError:
            continue

    result: JsonValue = None
    result_error = finished.result_error if finished else None
    if capture.truncated:
        result_error = _TAMPERED
    elif finished is not None and finished.result_json is not None:
        try:
            result = json.loads(finished.result_json)
        except ValueError:
            result_error = _TAMPERED
    return Report(
        started=opening is not None and opening.event == "started",
        refused=opening.unapplied_limits if opening is not None and opening.event == "refused" else None,
        unapplied_limits=opening.unapplied_limits if opening is not None else [],
        finished=finished is not None,
        exit_code=finished.exit_code if finished else None,
        limit_hit=finished.limit_hit if finished else None,
        result=result,
        result_error=result_error,
    )
