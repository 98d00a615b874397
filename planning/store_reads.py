"""Reading the run store: a run with its steps and plan versions, pages of runs, and the rows'
conversion into the records `planning.records` defines. Each function runs in the caller's
connection (under the store's lock, or inside one of its transactions)."""

from __future__ import annotations

import base64
import json
import sqlite3
from datetime import UTC, datetime
from typing import Any

from planning.plan import Plan
from planning.records import PlanVersion, RunRecord, RunStatus, RunSummary, StepError, StepRecord, Usage
from planning.store_faults import BadCursorError, RunNotFoundError


def read_run(db: sqlite3.Connection, run_id: str) -> RunRecord:
    """The run `run_id` with its steps and plan versions (raises RunNotFoundError)."""
    row = db.execute("SELECT * FROM runs WHERE id = ?", (bind_key(run_id),)).fetchone()
    if row is None:
        raise RunNotFoundError(run_id)
    steps = db.execute("SELECT * FROM steps WHERE run_id = ? ORDER BY step_id", (run_id,)).fetchall()
    versions = db.execute("SELECT * FROM plan_versions WHERE run_id = ? ORDER BY version", (run_id,)).fetchall()
    return RunRecord(
        **_summary_fields(row, len(steps)),
        plan=Plan.model_validate_json(row["plan"]),
        versions=_plan_versions(versions),
        max_replans=row["max_replans"],
        approval=row["approval"],
        approved_version=row["approved_version"],
        awaiting=row["awaiting"],
        answer=row["answer"],
        answer_source=row["answer_source"],
        error=row["error"],
        started_at=_time(row["started_at"]),
        usage=_usage(row),
        steps=[_step_record(s) for s in steps],
    )


def list_runs(
    db: sqlite3.Connection, *, limit: int, status: RunStatus | None, cursor: str | None
) -> tuple[list[RunSummary], str | None]:
    """Newest first; the cursor of the next page (None when there is none)."""
    where, params = [], []
    if status is not None:
        where.append("status = ?")
        params.append(str(status))
    if cursor is not None:
        created_at, run_id = _decode_cursor(cursor)
        where.append("(created_at < ? OR (created_at = ? AND id < ?))")
        params += [created_at, created_at, run_id]
    sql = (
        "SELECT runs.*, (SELECT COUNT(*) FROM steps WHERE steps.run_id = runs.id) AS step_count FROM runs"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + " ORDER BY created_at DESC, id DESC LIMIT ?"
    )
    rows = db.execute(sql, (*params, limit + 1)).fetchall()
    page = [RunSummary(**_summary_fields(r, r["step_count"])) for r in rows[:limit]]
    next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return page, next_cursor


def _summary_fields(row: sqlite3.Row, step_count: int) -> dict[str, Any]:
    return {
        "id": row["id"],
        "status": row["status"],
        "request": row["request"],
        "engine": row["engine"],
        "created_at": _time(row["created_at"]),
        "finished_at": _time(row["finished_at"]),
        "step_count": step_count,
    }


def _plan_versions(rows: list[sqlite3.Row]) -> list[PlanVersion]:
    return [
        PlanVersion(
            version=row["version"],
            kind=row["kind"],
            plan=Plan.model_validate_json(row["plan"]),
            reason=row["reason"],
            replaced=json.loads(row["replaced"]),
            created_at=_time(row["created_at"]) or datetime.now(UTC),
        )
        for row in rows
    ]


def _step_record(row: sqlite3.Row) -> StepRecord:
    return StepRecord(
        id=row["step_id"],
        agent=row["agent"],
        status=row["status"],
        attempts=row["attempts"],
        result=json.loads(row["result"]) if row["result"] is not None else None,
        summary=row["summary"],
        details=json.loads(row["details"]) if row["details"] is not None else None,
        error=StepError.model_validate_json(row["error"]) if row["error"] else None,
        started_at=_time(row["started_at"]),
        finished_at=_time(row["finished_at"]),
        usage=_usage(row),
    )


def _usage(row: sqlite3.Row) -> Usage:
    return Usage(
        calls=row["llm_calls"],
        prompt_tokens=row["prompt_tokens"],
        completion_tokens=row["completion_tokens"],
        latency_s=row["llm_latency_s"],
    )


def _time(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


def _encode_cursor(row: sqlite3.Row) -> str:
    return base64.urlsafe_b64encode(json.dumps([row["created_at"], row["id"]]).encode()).decode()


def bind_key(key: str) -> str:
    """A key as SQLite can bind it: a lone surrogate (from JSON's "\\ud800" or an undecodable argv
    byte) cannot be encoded; it becomes '?', which no run id holds."""
    return key.encode("utf-8", "replace").decode("utf-8")


def _decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        created_at, run_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return float(created_at), bind_key(str(run_id))
    except (ValueError, TypeError, RecursionError) as exc:
        raise BadCursorError(cursor) from exc
