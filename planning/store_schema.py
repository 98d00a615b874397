"""The run store's tables: append-only migrations, and applying those a file lacks."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from planning.store_faults import StoreError

# Append-only: each entry upgrades the schema by one version (PRAGMA user_version).
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        request TEXT,
        plan TEXT NOT NULL,
        status TEXT NOT NULL,
        answer TEXT,
        error TEXT,
        engine TEXT NOT NULL
    );
    CREATE INDEX runs_by_time ON runs (created_at DESC, id DESC);
    CREATE TABLE steps (
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        step_id INTEGER NOT NULL,
        agent TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        result TEXT,
        summary TEXT,
        error TEXT,
        started_at REAL,
        finished_at REAL,
        PRIMARY KEY (run_id, step_id)
    );
    """,
    """
    ALTER TABLE steps ADD COLUMN llm_calls INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE steps ADD COLUMN prompt_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE steps ADD COLUMN completion_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE steps ADD COLUMN llm_latency_s REAL NOT NULL DEFAULT 0;
    ALTER TABLE runs ADD COLUMN llm_calls INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE runs ADD COLUMN prompt_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE runs ADD COLUMN completion_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE runs ADD COLUMN llm_latency_s REAL NOT NULL DEFAULT 0;
    """,
    """
    ALTER TABLE runs ADD COLUMN owner TEXT;
    ALTER TABLE runs ADD COLUMN idempotency_key TEXT;
    CREATE UNIQUE INDEX runs_by_idempotency_key ON runs (idempotency_key) WHERE idempotency_key IS NOT NULL;
    CREATE INDEX runs_by_status ON runs (status, created_at DESC);
    """,
    """
    ALTER TABLE runs ADD COLUMN flyte_run_name TEXT;
    ALTER TABLE runs ADD COLUMN flyte_url TEXT;
    """,
    """
    ALTER TABLE steps ADD COLUMN details TEXT;
    """,
    """
    ALTER TABLE runs ADD COLUMN answer_source TEXT;
    """,
    """
    ALTER TABLE runs ADD COLUMN max_replans INTEGER;
    ALTER TABLE runs ADD COLUMN approval TEXT;
    ALTER TABLE runs ADD COLUMN approved_version INTEGER;
    ALTER TABLE runs ADD COLUMN awaiting TEXT;
    CREATE TABLE plan_versions (
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        kind TEXT NOT NULL,
        plan TEXT NOT NULL,
        reason TEXT NOT NULL,
        replaced TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (run_id, version)
    );
    """,
)


def migrate(db: sqlite3.Connection, path: Path) -> None:
    """Bring the store at `path` to the newest schema, within the caller's transaction."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise StoreError(
            f"{path} has schema version {version}, newer than this planner-mcp "
            f"({len(MIGRATIONS)}); upgrade planner-mcp or point PLANNER_MCP_HOME elsewhere"
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        for statement in filter(str.strip, script.split(";")):
            db.execute(statement)
        db.execute(f"PRAGMA user_version = {number}")
