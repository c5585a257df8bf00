"""The SQL statements of `SqliteStore`: constant strings, so SQLite's statement cache reuses them.

Conventions:
- every write is one statement whose condition is in its WHERE clause (or `ON CONFLICT DO NOTHING`),
  and `RETURNING` tells the caller whether it matched, so no extra read is needed;
- values written into `doc` that are floats or arbitrary JSON are bound as JSON text (`json(:x_j)`):
  binding a REAL would let SQLite print it with 15 significant digits and lose precision;
- strings, integers and NULL are bound directly (SQLite stores them exactly as JSON).
"""

from __future__ import annotations

from functools import cache, lru_cache

from libs.core.versioning import LIVE_TAG

# -- workflows and versions ---------------------------------------------------------------------

INSERT_WORKFLOW = """
INSERT INTO workflows (identifier, deleted, latest_version, doc) VALUES (?, 0, 0, ?)
ON CONFLICT DO NOTHING RETURNING identifier"""

REVIVE_WORKFLOW = """
UPDATE workflows SET deleted = 0, doc = json_set(?2, '$.latest_version', latest_version)
WHERE identifier = ?1 AND deleted = 1 RETURNING doc"""

GET_WORKFLOW = "SELECT doc FROM workflows WHERE identifier = ? AND (deleted = 0 OR ?)"

LIST_WORKFLOWS = "SELECT doc FROM workflows WHERE deleted = 0 OR ? ORDER BY identifier"

DELETE_WORKFLOW = """
UPDATE workflows SET deleted = 1, doc = json_set(doc, '$.deleted', json('true'), '$.updated_at', json(?2))
WHERE identifier = ?1 AND deleted = 0 RETURNING doc"""

LAST_VERSION = "SELECT coalesce(max(version), 0) FROM versions WHERE workflow = ?"

INSERT_VERSION = """
INSERT INTO versions (workflow, version, doc) VALUES (?, ?, ?) ON CONFLICT DO NOTHING RETURNING version"""

VERSION_EXISTS = "SELECT 1 FROM versions WHERE workflow = ? AND version = ?"

GET_VERSION = "SELECT doc FROM versions WHERE workflow = ? AND version = ?"

LIST_VERSIONS = "SELECT doc FROM versions WHERE workflow = ? ORDER BY version"

POINT_LIVE = f"""
UPDATE workflows SET latest_version = :version,
    doc = json_set(doc, '$.latest_version', :version, '$.tags."{LIVE_TAG}"', :version,
                   '$.title', coalesce(:title, doc ->> '$.title'),
                   '$.description', coalesce(:description, doc ->> '$.description'),
                   '$.updated_by', coalesce(:by, doc ->> '$.updated_by'),
                   '$.updated_at', json(:now_j))
WHERE identifier = :identifier AND latest_version < :version RETURNING doc"""
"""Only moves forward: a slower publisher of an older version does not take `$LIVE` back."""

SET_TAG = """
UPDATE workflows SET doc = json_set(doc, :path, :version, '$.updated_at', json(:now_j))
WHERE identifier = :identifier AND deleted = 0 RETURNING doc"""

# -- runs ---------------------------------------------------------------------------------------

INSERT_RUN = """
INSERT INTO runs (id, workflow, version, status, result, seq, idempotency_key, created_at, check_at, doc,
                  unrelayed)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id"""

GET_CONFLICTING_RUN = """
SELECT doc FROM runs WHERE id = ?1 OR (workflow = ?2 AND idempotency_key = ?3)
ORDER BY id = ?1 DESC LIMIT 1"""

GET_RUN = "SELECT doc FROM runs WHERE id = ?"

GET_RUN_BY_KEY = "SELECT doc FROM runs WHERE workflow = ? AND idempotency_key = ?"

UPDATE_RUN = """
UPDATE runs SET status = ?, result = ?, check_at = ?, seq = seq + 1, doc = ?, unrelayed = ?
WHERE id = ? AND seq = ? RETURNING seq"""
"""`id`, `workflow`, `version`, `idempotency_key` and `created_at` are immutable."""

DUE_RUNS = """
SELECT id FROM (
    SELECT id, check_at FROM runs WHERE status = 'IN_PROGRESS' AND check_at <= ?1
    UNION
    SELECT id, check_at FROM runs WHERE unrelayed > 0 AND check_at <= ?1
) ORDER BY check_at, id LIMIT ?2"""
"""Each half is served by its partial index (`runs_check`, `runs_unrelayed`)."""

CLEAR_OUTBOX = """
UPDATE runs SET unrelayed = 0, doc = json_set(doc, '$.outbox', json('[]')) WHERE id = ? AND seq = ? RETURNING id"""

POSTPONE_CHECK = "UPDATE runs SET check_at = ?1, doc = json_set(doc, '$.check_at', json(?2)) WHERE id = ?3"

_RUN_FILTER_COLUMNS = (("workflows", "workflow"), ("statuses", "status"), ("results", "result"),
                       ("versions", "version"), ("run_ids", "id"), ("created_by", "doc ->> '$.trigger.by'"),
                       ("trigger_types", "doc ->> '$.trigger.type'"))
"""`RunFilter` field → column; each set filter binds one JSON array parameter."""
_RUN_FILTER_CONDITIONS = (("workflow_prefix", "substr(workflow, 1, instr(workflow, '~')) = ?"),
                          ("created_from", "created_at >= ?"), ("created_to", "created_at < ?"))
"""`RunFilter` field → condition on its one value, when it is not None."""


@lru_cache(maxsize=64)
def run_filter_sql(present: tuple[str, ...]) -> tuple[str, str]:
    """(page query, count query) for the `RunFilter` fields named in `present` (in field order)."""
    clauses = [f"{column} IN (SELECT value FROM json_each(?))"
               for field, column in _RUN_FILTER_COLUMNS if field in present]
    clauses += [condition for field, condition in _RUN_FILTER_CONDITIONS if field in present]
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    page = f"SELECT doc FROM runs{where} ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?"
    return page, f"SELECT count(*) FROM runs{where}"


RUN_FILTER_FIELDS: tuple[str, ...] = tuple(field for field, _ in _RUN_FILTER_COLUMNS)
RUN_FILTER_VALUES: tuple[str, ...] = tuple(field for field, _ in _RUN_FILTER_CONDITIONS)

# -- node runs ----------------------------------------------------------------------------------

INSERT_NODE_RUN = """
INSERT INTO node_runs (key, id, run_id, status, lease_owner, lease_expires_at, created_at, doc)
VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING key"""

GET_NODE_RUN = "SELECT doc FROM node_runs WHERE key = ?"

GET_NODE_RUN_BY_ID = "SELECT doc FROM node_runs WHERE id = ?"

LIST_NODE_RUNS = """
SELECT doc FROM node_runs WHERE key >= ?1 || '/' AND key < ?1 || '0' ORDER BY created_at, rowid"""
"""A run's node runs: the keys `<runId>/<nodeId>/<attempt>` from `<runId>/` up to `<runId>0` ('0' follows
'/'), a range of the primary key, so inserting a node run maintains no index by run."""

CLAIM_NODE_RUN = """
UPDATE node_runs SET status = 'RUNNING', lease_owner = :owner, lease_expires_at = :until,
    doc = json_set(doc, '$.status', 'RUNNING', '$.lease_owner', :owner,
                   '$.lease_expires_at', json(:until_j), '$.updated_at', json(:now_j),
                   '$.started_at', CASE WHEN doc ->> '$.started_at' IS NULL
                                        THEN json(:now_j) ELSE doc -> '$.started_at' END)
WHERE key = :key AND (status = 'PENDING' OR (status = 'RUNNING' AND (
      lease_owner = :owner OR lease_expires_at IS NULL OR lease_expires_at < :now)))
RETURNING doc"""

RENEW_LEASE = """
UPDATE node_runs SET lease_expires_at = :until, doc = json_set(doc, '$.lease_expires_at', json(:until_j))
WHERE key = :key AND status = 'RUNNING' AND lease_owner = :owner RETURNING 1"""

_WAITING_DOC = """json_set(doc, '$.status', 'WAITING', '$.lease_owner', NULL, '$.lease_expires_at', NULL,
                   '$.output', json(:output_j), '$.updated_at', json(:now_j))"""


def _waiting(doc_expr: str) -> str:
    return f"""
UPDATE node_runs SET status = 'WAITING', lease_owner = NULL, lease_expires_at = NULL, doc = {doc_expr}
WHERE key = :key AND status = 'RUNNING' AND lease_owner = :owner RETURNING 1"""


FEW_LOGS = 32
"""Log entries that one `json_insert` appends (parameters :log0 …): 1 + 2n arguments, and SQLite allows
127 per function call. It costs a third of rebuilding the array through `json_each`, which appends any
number from one parameter :logs_j (a JSON array; nesting json_insert calls instead overflowed SQLite's
parser stack near 900 entries, and the statement failed)."""


def _with_logs(doc_expr: str, count: int) -> str:
    """`doc_expr` with `count` log entries appended to `$.logs` (see FEW_LOGS for the parameters)."""
    if count == 0:
        return doc_expr
    if count <= FEW_LOGS:
        pairs = ", ".join(f"'$.logs[#]', json(:log{i})" for i in range(count))
        return f"json_insert({doc_expr}, {pairs})"
    return f"""json_set({doc_expr}, '$.logs', (SELECT json_group_array(json(value)) FROM (
        SELECT value FROM json_each(doc, '$.logs') UNION ALL SELECT value FROM json_each(:logs_j))))"""


_FINISHED_DOC = """json_set(doc, '$.status', 'COMPLETED', '$.result', :result, '$.output', json(:output_j),
                   '$.error', :error, '$.retryable', json(:retryable_j), '$.branch', :branch,
                   '$.completed_at', json(:now_j), '$.updated_at', json(:now_j))"""

def _finish(doc: str) -> str:
    return f"""
UPDATE node_runs SET status = 'COMPLETED', doc = {doc}
WHERE key = :key AND status IN (SELECT value FROM json_each(:from_statuses))
  AND (:owner IS NULL OR lease_owner = :owner)
RETURNING doc"""


@cache
def _statements(count: int) -> tuple[str, str, str]:
    """Finish, mark waiting and append, each also appending `count` log entries."""
    append = _with_logs("json_set(doc, '$.updated_at', json(:now_j))", count)
    return (_finish(_with_logs(_FINISHED_DOC, count)), _waiting(_with_logs(_WAITING_DOC, count)), f"""
UPDATE node_runs SET doc = {append}
WHERE key = :key AND status <> 'COMPLETED' RETURNING 1""")


def finish_node_run(count: int) -> str:
    """The completion, appending `count` log entries (an executor's completion carries its attempt's
    engine log lines)."""
    return _statements(min(count, FEW_LOGS + 1))[0]


def mark_waiting(count: int) -> str:
    return _statements(min(count, FEW_LOGS + 1))[1]


def append_logs(count: int) -> str:
    return _statements(min(count, FEW_LOGS + 1))[2]

# -- timers -------------------------------------------------------------------------------------

INSERT_TIMER = "INSERT INTO timers (id, due_at, doc) VALUES (?, ?, ?) ON CONFLICT DO NOTHING RETURNING id"

CLAIM_DUE_TIMERS = """
UPDATE timers SET due_at = :until, doc = json_set(doc, '$.due_at', json(:until_j))
WHERE due_at <= :now
  AND id IN (SELECT id FROM timers WHERE due_at <= :now ORDER BY due_at, id LIMIT :limit)
RETURNING doc"""

DELETE_TIMER = "DELETE FROM timers WHERE id = ?"
