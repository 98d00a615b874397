"""The durable run store: one SQLite file (WAL) holding every run and every step's state.

Every state change is one short committed transaction, written before the executor moves on, so a
process killed at any moment leaves a consistent store and resume re-runs only what did not finish.
One connection per store object, shared across threads under a lock (the MCP server's loop and
Flyte's task loop both write); several processes may open the same file.

Faults of the file or its disk (full, read-only, not a database, damaged, owned by another user, a
data directory that cannot exist) become StoreUnavailableError: one line naming the path, the
cause and the fix. A failed write changes nothing (its transaction is rolled back).

This module holds the connection, its transactions and the writes; the rest is in modules of its own,
re-exported here: store_faults.py (the errors, and faults of the file as one line with the fix),
store_schema.py (the tables: append-only migrations), store_reads.py (a run, pages of runs, rows
into records).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from planning.plan import Plan
from planning.records import (
    AnswerSource,
    Approval,
    RunRecord,
    RunStatus,
    RunSummary,
    StepOutcome,
    StepStatus,
    Usage,
    VersionKind,
)
from planning.store_faults import BadCursorError as BadCursorError  # re-exported
from planning.store_faults import RunNotFoundError as RunNotFoundError  # re-exported
from planning.store_faults import StoreError as StoreError  # re-exported
from planning.store_faults import StoreUnavailableError as StoreUnavailableError  # re-exported
from planning.store_faults import check_owner
from planning.store_faults import store_fault as store_fault  # re-exported
from planning.store_reads import bind_key, list_runs, read_run
from planning.store_schema import MIGRATIONS as MIGRATIONS  # re-exported
from planning.store_schema import migrate


class FlyteRunRef(BaseModel):
    """The Flyte run that executes a run on a cluster: its name and its console URL."""

    name: str
    url: str


def new_run_id() -> str:
    """Time-ordered, unguessable: milliseconds since the epoch in hex, then random bits."""
    return f"r{int(time.time() * 1000):012x}{secrets.token_hex(5)}"


class RunStore:
    """Runs and steps in a SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            check_owner(path)
            # Autocommit mode; multi-statement changes use explicit BEGIN IMMEDIATE.
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        except (OSError, sqlite3.Error) as exc:
            raise store_fault(path, exc) from exc
        self._db.row_factory = sqlite3.Row
        try:
            self._enable_wal()
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA busy_timeout=30000")
            self._migrate()
        except sqlite3.Error as exc:
            self._db.close()
            raise store_fault(path, exc) from exc
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _enable_wal(self, patience_s: float = 30.0) -> None:
        """Switch a new file to WAL (it stays so). Several processes opening a new store at once
        race for that switch, and SQLite answers the losers "locked" without waiting: retry."""
        deadline = time.monotonic() + patience_s
        while True:
            try:
                if self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal":
                    return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc):
                    raise
            if time.monotonic() > deadline:
                raise StoreError(f"{self.path} stayed locked for {patience_s:g} s; is another program holding it?")
            time.sleep(0.02)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One committed change, or none at all: a failed statement or commit rolls back, and a
        fault of the file or its disk becomes StoreUnavailableError."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise store_fault(self.path, exc) from exc

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._db
            except sqlite3.Error as exc:
                raise store_fault(self.path, exc) from exc

    def _migrate(self) -> None:
        with self._transaction() as db:
            migrate(db, self.path)

    @property
    def schema_version(self) -> int:
        with self._reading():
            return self._db.execute("PRAGMA user_version").fetchone()[0]

    # -- runs -------------------------------------------------------------------------------------

    def create_run(
        self,
        plan: Plan | None,
        *,
        request: str | None = None,
        engine: str = "local",
        owner: str | None = None,
        idempotency_key: str | None = None,
        usage: Usage | None = None,
        max_replans: int | None = None,
        approval: Approval | None = None,
    ) -> RunRecord:
        """Record a new run with all its steps pending; with a known idempotency key, return that run.

        `plan` None records a request still to be planned (status `planning`, owned by `owner`);
        `set_plan` gives it its steps. `max_replans` None: the server's setting applies; `approval`
        "required": every version of its plan waits for a person's approval before it runs."""
        usage = usage or Usage()
        status = RunStatus.PENDING if plan is not None else RunStatus.PLANNING
        plan = plan or Plan(steps=[])
        with self._transaction() as db:
            if idempotency_key is not None:
                row = db.execute("SELECT id FROM runs WHERE idempotency_key = ?", (idempotency_key,)).fetchone()
                if row:
                    return read_run(db, row["id"])
            run_id = new_run_id()
            db.execute(
                "INSERT INTO runs (id, created_at, request, plan, status, engine, owner, idempotency_key,"
                " llm_calls, prompt_tokens, completion_tokens, llm_latency_s, max_replans, approval)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    time.time(),
                    request,
                    plan.model_dump_json(exclude_defaults=True),
                    status,
                    engine,
                    owner,
                    idempotency_key,
                    usage.calls,
                    usage.prompt_tokens,
                    usage.completion_tokens,
                    usage.latency_s,
                    max_replans,
                    approval,
                ),
            )
            db.executemany(
                "INSERT INTO steps (run_id, step_id, agent, status) VALUES (?, ?, ?, ?)",
                [(run_id, s.id, s.agent, StepStatus.PENDING) for s in plan.steps],
            )
            return read_run(db, run_id)

    def revise_plan(
        self, run_id: str, plan: Plan, *, kind: VersionKind, reason: str, usage: Usage | None = None
    ) -> RunRecord:
        """Make `plan` the run's current plan and record the versions (the first one too, the first
        time). Succeeded steps must stay unchanged (finished work is never lost or redone) and a
        replaced step's id is never used again, else StoreError. A step of the old plan that is not
        in the new one becomes `replaced` when it has an outcome (failed, skipped: it stays to read)
        and is dropped while pending; new steps are pending. The run's status is left as it is."""
        with self._transaction() as db:
            record = read_run(db, run_id)
            old = {step.id: step for step in record.plan.steps}
            new = {step.id: step for step in plan.steps}
            rows = {step.id: step for step in record.steps}
            changed = [i for i, s in rows.items() if s.status is StepStatus.SUCCEEDED and new.get(i) != old.get(i)]
            if changed:
                raise StoreError(
                    f"the new plan of run {run_id!r} drops or changes succeeded step(s) {changed}; keep them as they "
                    "are (new steps may use their results as $N)"
                )
            reused = sorted(i for i in new if i in rows and rows[i].status is StepStatus.REPLACED)
            if reused:
                raise StoreError(
                    f"step id(s) {reused} of run {run_id!r} belong to replaced steps; number new steps after "
                    f"{max(rows)}"
                )
            dropped = sorted(set(old) - set(new))
            now_s = time.time()
            if not record.versions:
                db.execute(
                    "INSERT INTO plan_versions (run_id, version, kind, plan, reason, replaced, created_at)"
                    " VALUES (?, 1, 'planned', ?, ?, '[]', ?)",
                    (
                        run_id,
                        record.plan.model_dump_json(exclude_defaults=True),
                        "planned from the request" if record.request is not None else "written by hand",
                        record.created_at.timestamp(),
                    ),
                )
            db.execute(
                "INSERT INTO plan_versions (run_id, version, kind, plan, reason, replaced, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    record.version + 1,
                    kind,
                    plan.model_dump_json(exclude_defaults=True),
                    reason,
                    json.dumps(dropped),
                    now_s,
                ),
            )
            ran = [i for i in dropped if i in rows and rows[i].status is not StepStatus.PENDING]
            db.executemany(
                "UPDATE steps SET status = ? WHERE run_id = ? AND step_id = ?",
                [(StepStatus.REPLACED, run_id, i) for i in ran],
            )
            db.executemany(
                "DELETE FROM steps WHERE run_id = ? AND step_id = ?", [(run_id, i) for i in dropped if i not in ran]
            )
            db.executemany(
                "INSERT INTO steps (run_id, step_id, agent, status) VALUES (?, ?, ?, ?)",
                [(run_id, i, new[i].agent, StepStatus.PENDING) for i in sorted(set(new) - set(rows))],
            )
            db.executemany(
                "UPDATE steps SET agent = ? WHERE run_id = ? AND step_id = ?",
                [(new[i].agent, run_id, i) for i in sorted(set(new) & set(rows))],
            )
            db.execute(
                "UPDATE runs SET plan = ?, answer = NULL, answer_source = NULL WHERE id = ?",
                (plan.model_dump_json(exclude_defaults=True), run_id),
            )
            if usage is not None:
                self._add_usage(db, run_id, usage)
            return read_run(db, run_id)

    # -- approval ---------------------------------------------------------------------------------

    def await_approval(self, run_id: str, why: str) -> RunRecord:
        """The run stops until a person approves (or rejects) its current plan; no process owns it."""
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET status = ?, awaiting = ?, owner = NULL, error = NULL, finished_at = NULL WHERE id = ?",
                (RunStatus.AWAITING_APPROVAL, why, run_id),
            )
            return read_run(db, run_id)

    def approve(self, run_id: str, version: int) -> bool:
        """A person approved plan `version`: the run is pending again. False when the run is not
        awaiting approval of that version (another caller decided first, or the plan changed)."""
        with self._transaction() as db:
            record = read_run(db, run_id)
            if record.status is not RunStatus.AWAITING_APPROVAL or record.version != version:
                return False
            db.execute(
                "UPDATE runs SET status = ?, approved_version = ?, awaiting = NULL WHERE id = ?",
                (RunStatus.PENDING, version, run_id),
            )
            return True

    def reject(self, run_id: str) -> bool:
        """A person rejected the plan: the run ends `cancelled`, saying so. False when the run is not
        awaiting approval."""
        with self._transaction() as db:
            record = read_run(db, run_id)
            if record.status is not RunStatus.AWAITING_APPROVAL:
                return False
            db.execute(
                "UPDATE steps SET status = ? WHERE run_id = ? AND status = ?",
                (StepStatus.CANCELLED, run_id, StepStatus.PENDING),
            )
            db.execute(
                "UPDATE runs SET status = ?, awaiting = NULL, error = ?, finished_at = ? WHERE id = ?",
                (
                    RunStatus.CANCELLED,
                    f"plan version {record.version} was rejected at approval; resume the run to be asked again",
                    time.time(),
                    run_id,
                ),
            )
            return True

    def set_plan(self, run_id: str, plan: Plan, usage: Usage) -> RunRecord:
        """A planned request: its plan and steps (pending), and what planning cost."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE runs SET plan = ?, status = ?, error = NULL WHERE id = ? AND status = ?",
                (plan.model_dump_json(exclude_defaults=True), RunStatus.PENDING, run_id, RunStatus.PLANNING),
            )
            if cursor.rowcount == 0:
                raise StoreError(f"run {run_id!r} is not being planned; its plan cannot be set")
            db.executemany(
                "INSERT INTO steps (run_id, step_id, agent, status) VALUES (?, ?, ?, ?)",
                [(run_id, s.id, s.agent, StepStatus.PENDING) for s in plan.steps],
            )
            self._add_usage(db, run_id, usage)
            return read_run(db, run_id)

    def start_run(self, run_id: str, owner: str) -> None:
        self._update_run(run_id, status=RunStatus.RUNNING, owner=owner, started_at=time.time(), finished_at=None)

    def finish_run(
        self,
        run_id: str,
        status: RunStatus,
        *,
        answer: str | None = None,
        answer_source: AnswerSource | None = None,
        error: str | None = None,
    ) -> None:
        self._update_run(
            run_id, status=status, answer=answer, answer_source=answer_source, error=error, finished_at=time.time()
        )

    def add_run_usage(self, run_id: str, usage: Usage) -> None:
        with self._transaction() as db:
            self._add_usage(db, run_id, usage)

    @staticmethod
    def _add_usage(db: sqlite3.Connection, run_id: str, usage: Usage) -> None:
        db.execute(
            "UPDATE runs SET llm_calls = llm_calls + ?, prompt_tokens = prompt_tokens + ?,"
            " completion_tokens = completion_tokens + ?, llm_latency_s = llm_latency_s + ? WHERE id = ?",
            (usage.calls, usage.prompt_tokens, usage.completion_tokens, usage.latency_s, run_id),
        )

    def _update_run(self, run_id: str, **fields: Any) -> None:
        columns = ", ".join(f"{name} = ?" for name in fields)
        with self._transaction() as db:
            cursor = db.execute(f"UPDATE runs SET {columns} WHERE id = ?", (*fields.values(), run_id))
            if cursor.rowcount == 0:
                raise RunNotFoundError(run_id)

    def claim_run(
        self, run_id: str, owner: str, is_alive: Callable[[str], bool], *, status: RunStatus = RunStatus.RUNNING
    ) -> bool:
        """Mark a run running (or `planning`) under `owner` unless a live process already runs it
        (atomic across processes: the check and the write are one IMMEDIATE transaction). A request
        recorded by `owner` itself, still to be planned, is `owner`'s to plan."""
        with self._transaction() as db:
            row = db.execute("SELECT owner, status FROM runs WHERE id = ?", (bind_key(run_id),)).fetchone()
            if row is None:
                raise RunNotFoundError(run_id)
            held = row["status"] == RunStatus.RUNNING or (row["status"] == RunStatus.PLANNING and row["owner"] != owner)
            if held and row["owner"] and is_alive(row["owner"]):
                return False
            started = "started_at = ?," if status is RunStatus.RUNNING else ""
            db.execute(
                f"UPDATE runs SET owner = ?, status = ?, {started} finished_at = NULL WHERE id = ?",
                (owner, status, *([time.time()] if started else []), run_id),
            )
            return True

    def owner(self, run_id: str) -> str | None:
        with self._reading():
            row = self._db.execute("SELECT owner FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise RunNotFoundError(run_id)
        return row["owner"]

    def running_owners(self) -> dict[str, list[str]]:
        """Owners of runs still marked running or planning, with their run ids (for crash detection).
        Runs on a Flyte cluster are left out: no local process owns them, Flyte does."""
        with self._reading():
            rows = self._db.execute(
                "SELECT id, owner FROM runs WHERE status IN (?, ?) AND flyte_run_name IS NULL",
                (RunStatus.RUNNING, RunStatus.PLANNING),
            ).fetchall()
        owners: dict[str, list[str]] = {}
        for row in rows:
            owners.setdefault(row["owner"] or "", []).append(row["id"])
        return owners

    def mark_interrupted(self, run_ids: list[str], *, owner: str | None = None) -> list[str]:
        """Runs whose process died: the run and its in-flight steps become resumable.

        With `owner` (the dead process), only runs it still owns are marked: a live process may have
        claimed one between the liveness check and this write. Returns the runs that were marked.
        """
        marked = []
        condition, params = ("", ()) if owner is None else (" AND owner IS ?", (owner or None,))  # '' lists NULL
        with self._transaction() as db:
            for run_id in run_ids:
                cursor = db.execute(
                    f"UPDATE runs SET status = ?, error = ? WHERE id = ? AND status IN (?, ?){condition}",
                    (
                        RunStatus.INTERRUPTED,
                        "its process ended before the run finished; resume it",
                        run_id,
                        RunStatus.RUNNING,
                        RunStatus.PLANNING,
                        *params,
                    ),
                )
                if cursor.rowcount == 0:
                    continue
                db.execute(
                    "UPDATE steps SET status = ? WHERE run_id = ? AND status = ?",
                    (StepStatus.PENDING, run_id, StepStatus.RUNNING),
                )
                marked.append(run_id)
        return marked

    def abandon_run(self, run_id: str, error: str) -> None:
        """A run that cannot go on (its store failed a write): failed with `error`, and its steps in
        flight back to pending, so none is left `running` and resume runs them again."""
        with self._transaction() as db:
            db.execute(
                "UPDATE steps SET status = ?, started_at = NULL WHERE run_id = ? AND status = ?",
                (StepStatus.PENDING, run_id, StepStatus.RUNNING),
            )
            db.execute(
                "UPDATE runs SET status = ?, error = ?, finished_at = ? WHERE id = ?",
                (RunStatus.FAILED, error, time.time(), run_id),
            )

    def reset_unfinished_steps(self, run_id: str) -> None:
        """Before a resume: every step that did not succeed runs again."""
        with self._transaction() as db:
            db.execute(
                "UPDATE steps SET status = ?, error = NULL, result = NULL, summary = NULL, details = NULL, started_at = NULL,"
                " finished_at = NULL WHERE run_id = ? AND status NOT IN (?, ?)",
                (StepStatus.PENDING, run_id, StepStatus.SUCCEEDED, StepStatus.REPLACED),
            )
            db.execute("UPDATE runs SET answer = NULL, answer_source = NULL, error = NULL WHERE id = ?", (run_id,))

    def set_flyte_run(self, run_id: str, ref: FlyteRunRef) -> None:
        """Record the Flyte run that now executes this run (a resubmission replaces the last one)."""
        self._update_run(run_id, flyte_run_name=ref.name, flyte_url=ref.url)

    def flyte_run(self, run_id: str) -> FlyteRunRef | None:
        """The Flyte run recorded for this run; None for a run that never went to a cluster."""
        with self._reading():
            row = self._db.execute("SELECT flyte_run_name, flyte_url FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise RunNotFoundError(run_id)
        if row["flyte_run_name"] is None:
            return None
        return FlyteRunRef(name=row["flyte_run_name"], url=row["flyte_url"] or "")

    # -- steps ------------------------------------------------------------------------------------

    def step_started(self, run_id: str, step_id: int) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE steps SET status = ?, started_at = ?, attempts = attempts + 1 WHERE run_id = ? AND step_id = ?",
                (StepStatus.RUNNING, time.time(), run_id, step_id),
            )

    def step_finished(self, run_id: str, step_id: int, outcome: StepOutcome) -> None:
        usage = outcome.usage
        with self._transaction() as db:
            db.execute(
                "UPDATE steps SET status = ?, result = ?, summary = ?, details = ?, error = ?, finished_at = ?,"
                " attempts = MAX(attempts, ?), llm_calls = ?, prompt_tokens = ?, completion_tokens = ?,"
                " llm_latency_s = ? WHERE run_id = ? AND step_id = ?",
                (
                    outcome.status,
                    json.dumps(outcome.result),
                    outcome.summary,
                    json.dumps(outcome.details) if outcome.details is not None else None,
                    outcome.error.model_dump_json() if outcome.error else None,
                    time.time(),
                    outcome.attempts,
                    usage.calls,
                    usage.prompt_tokens,
                    usage.completion_tokens,
                    usage.latency_s,
                    run_id,
                    step_id,
                ),
            )

    # -- reading ----------------------------------------------------------------------------------

    def get_run(self, run_id: str) -> RunRecord:
        with self._reading() as db:
            return read_run(db, run_id)

    def list_runs(
        self, *, limit: int = 20, status: RunStatus | None = None, cursor: str | None = None
    ) -> tuple[list[RunSummary], str | None]:
        """Newest first; pass the returned cursor to get the next page (None when there is none)."""
        with self._reading() as db:
            return list_runs(db, limit=limit, status=status, cursor=cursor)

    def integrity_check(self) -> str:
        with self._reading():
            return self._db.execute("PRAGMA integrity_check").fetchone()[0]
