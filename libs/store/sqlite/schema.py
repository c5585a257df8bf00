"""The SQLite schema of `SqliteStore`: one table per MongoDB collection, shaped like documents.

Each table holds the full record as JSON in `doc` (the source of truth for reads) plus projections of
the fields that conditional updates and queries need (status, seq, lease, due times, ...). Every
statement that changes a projected field changes the same field inside `doc` (`json_set`), so the
two never disagree. Only rowid tables: docs (definitions, outputs, logs) can be large.
"""

from __future__ import annotations

PRAGMAS: tuple[str, ...] = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = OFF",
    "PRAGMA temp_store = MEMORY",
    "PRAGMA wal_autocheckpoint = 10000",
)
"""Run after `busy_timeout` (so that switching to WAL waits for other connections too)."""

SCHEMA = """
BEGIN IMMEDIATE;

CREATE TABLE IF NOT EXISTS workflows (
    identifier      TEXT PRIMARY KEY,
    deleted         INTEGER NOT NULL,
    latest_version  INTEGER NOT NULL,
    doc             TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS versions (
    workflow  TEXT NOT NULL,
    version   INTEGER NOT NULL,
    doc       TEXT NOT NULL,
    PRIMARY KEY (workflow, version)
);

CREATE TABLE IF NOT EXISTS runs (
    id               TEXT PRIMARY KEY,
    workflow         TEXT NOT NULL,
    version          INTEGER NOT NULL,
    status           TEXT NOT NULL,
    result           TEXT,
    seq              INTEGER NOT NULL,
    idempotency_key  TEXT,
    created_at       REAL NOT NULL,
    check_at         REAL NOT NULL,
    doc              TEXT NOT NULL,
    unrelayed        INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS runs_idempotency
    ON runs (workflow, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS runs_created ON runs (created_at, id);
CREATE INDEX IF NOT EXISTS runs_workflow_created ON runs (workflow, created_at, id);
CREATE INDEX IF NOT EXISTS runs_check ON runs (check_at) WHERE status = 'IN_PROGRESS';

CREATE TABLE IF NOT EXISTS node_runs (
    key               TEXT PRIMARY KEY,
    id                TEXT NOT NULL UNIQUE,
    run_id            TEXT NOT NULL,
    status            TEXT NOT NULL,
    lease_owner       TEXT,
    lease_expires_at  REAL,
    created_at        REAL NOT NULL,
    doc               TEXT NOT NULL
);
DROP INDEX IF EXISTS node_runs_run;

CREATE TABLE IF NOT EXISTS timers (
    id      TEXT PRIMARY KEY,
    due_at  REAL NOT NULL,
    doc     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS timers_due ON timers (due_at);

CREATE TABLE IF NOT EXISTS entries (
    kind        TEXT NOT NULL,
    key         TEXT NOT NULL,
    rev         INTEGER NOT NULL,
    updated_at  REAL NOT NULL,
    data        TEXT NOT NULL,
    PRIMARY KEY (kind, key)
);

COMMIT;
"""
"""Idempotent (`IF NOT EXISTS`) and applied in one transaction, so concurrent openers are safe."""

RUNS_COLUMNS = "SELECT name FROM pragma_table_info('runs')"

UPGRADES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("unrelayed", (
        "ALTER TABLE runs ADD COLUMN unrelayed INTEGER NOT NULL DEFAULT 0",
        "UPDATE runs SET unrelayed = json_array_length(doc, '$.outbox') WHERE json_array_length(doc, '$.outbox') > 0",
        "DROP INDEX IF EXISTS runs_outbox",
    )),
)
"""(column of `runs`, the statements that add it to a file made before it existed). `unrelayed` counts
the outbox's entries: the partial index that finds runs with events to relay reads it instead of
parsing `doc` on every write of a run (as its predecessor `runs_outbox` did)."""

INDEXES = """
CREATE INDEX IF NOT EXISTS runs_unrelayed ON runs (check_at) WHERE unrelayed > 0;
"""
"""Indexes over upgraded columns: created once every upgrade has run."""
