"""The filters, updates, sorts and indexes of `MongoStore`, as plain documents.

Each conditional write of the SQLite adapter (`sqlite/sql.py`) is one filter + one update here, with the
same condition: the filter is the WHERE clause, `$set`/`$push` the SET clause. Only what MongoDB and
FerretDB 1.x share is used: equality, `$in/$ne/$lt/$lte/$or` in filters and `$set/$push($each)` in
updates (no update pipelines, no partial, sparse or TTL indexes).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from libs.core.run import LogEntry, Outcome
from libs.core.versioning import LIVE_TAG
from libs.store.mongo.documents import Doc, encode, log_documents, tag_field
from libs.store.ports import RunFilter

WORKFLOWS, VERSIONS, RUNS, NODE_RUNS, TIMERS = "workflows", "versions", "runs", "node_runs", "timers"
ENTRIES = "entries"

Keys = list[tuple[str, int]]

INDEXES: tuple[tuple[str, Keys, Doc], ...] = (
    (VERSIONS, [("workflow", 1), ("version", 1)], {"name": "workflow_version", "unique": True}),
    (RUNS, [("idem", 1)], {"name": "idempotency", "unique": True}),
    (RUNS, [("status", 1), ("check_at", 1)], {"name": "status_check"}),
    (RUNS, [("created_at", -1), ("_id", -1)], {"name": "created"}),
    (RUNS, [("workflow", 1), ("created_at", -1)], {"name": "workflow_created"}),
    (NODE_RUNS, [("id", 1)], {"name": "public_id", "unique": True}),
    (NODE_RUNS, [("run_id", 1), ("created_at", 1)], {"name": "run_created"}),
    (TIMERS, [("due_at", 1)], {"name": "due"}),
    (ENTRIES, [("kind", 1), ("key", 1)], {"name": "kind_key"}),
)
"""(collection, keys, options); `create_index` is idempotent for an identical specification."""

BY_ID: Keys = [("_id", 1)]
BY_VERSION: Keys = [("version", 1)]
LAST_VERSION: Keys = [("version", -1)]
NEWEST_FIRST: Keys = [("created_at", -1), ("_id", -1)]
CREATION_ORDER: Keys = [("created_at", 1), ("_id", 1)]
"""SQLite breaks created_at ties by insertion order (rowid); MongoDB has none, so by key."""
DUE_ORDER: Keys = [("check_at", 1), ("_id", 1)]
TIMER_ORDER: Keys = [("due_at", 1), ("_id", 1)]
ID_ONLY: Doc = {"_id": 1}


def setting(**fields: Any) -> Doc:
    """`{"$set": fields}` with each value encoded (field names are plain or already escaped)."""
    return {"$set": {name: encode(value) for name, value in fields.items()}}


# -- workflows ----------------------------------------------------------------------------------

def workflow_filter(identifier: str, *, include_deleted: bool) -> Doc:
    return {"_id": identifier} if include_deleted else {"_id": identifier, "deleted": False}


def point_live(number: int, *, title: str | None, description: str | None, by: str | None,
               now: float) -> Doc:
    """Move `latest_version` and `$LIVE` to `number`; title/description/updated_by only when given.
    Pair with the filter `latest_version < number` so that `$LIVE` only moves forward."""
    given = {"title": title, "description": description, "updated_by": by}
    fields: Doc = {"latest_version": number, tag_field(LIVE_TAG): number, "updated_at": now}
    return {"$set": {**fields, **{name: value for name, value in given.items() if value is not None}}}


# -- runs ---------------------------------------------------------------------------------------

_RUN_FILTER_FIELDS = (("workflows", "workflow"), ("statuses", "status"), ("results", "result"),
                      ("versions", "version"), ("run_ids", "_id"), ("created_by", "trigger.by"),
                      ("trigger_types", "trigger.type"))


def run_filter(flt: RunFilter) -> Doc:
    match: Doc = {field: {"$in": list(getattr(flt, name))}
                  for name, field in _RUN_FILTER_FIELDS if getattr(flt, name)}
    if flt.workflow_prefix is not None:
        pattern = f"^{re.escape(flt.workflow_prefix)}" if flt.workflow_prefix else "^[^~]*$"
        match["workflow"] = {**match.get("workflow", {}), "$regex": pattern}
    created = {op: at for op, at in (("$gte", flt.created_from), ("$lt", flt.created_to)) if at is not None}
    if created:
        match["created_at"] = created
    return match


def due_runs(now: float) -> Doc:
    """In progress, or holding events not yet relayed (`outbox.0` exists), and due."""
    return {"check_at": {"$lte": now}, "$or": [{"status": "IN_PROGRESS"}, {"outbox.0": {"$exists": True}}]}


# -- node runs ----------------------------------------------------------------------------------

def claim_filter(key: str, *, owner: str, now: float, first: bool) -> Doc:
    """PENDING, or RUNNING with my lease or an expired (or no) lease.

    SQLite sets `started_at` only on the first claim with a CASE; a MongoDB update without a pipeline
    cannot branch, so the claim is split in two disjoint conditional updates: `first` (started_at
    unset: also set it) and not `first` (started_at set: keep it). Their union is SQLite's condition.
    """
    lease_free = [{"lease_owner": owner}, {"lease_expires_at": None}, {"lease_expires_at": {"$lt": now}}]
    claimable = [{"status": "PENDING"}, {"status": "RUNNING", "$or": lease_free}]
    started = None if first else {"$ne": None}
    return {"_id": key, "started_at": started, "$or": claimable}


def claim_update(*, owner: str, now: float, lease_until: float, first: bool) -> Doc:
    fields: Doc = {"status": "RUNNING", "lease_owner": owner, "lease_expires_at": lease_until,
                   "updated_at": now}
    return {"$set": {**fields, "started_at": now} if first else fields}


def leased_to(key: str, owner: str) -> Doc:
    return {"_id": key, "status": "RUNNING", "lease_owner": owner}


def finish_filter(key: str, from_statuses: frozenset[str], owner: str | None) -> Doc:
    flt: Doc = {"_id": key, "status": {"$in": sorted(from_statuses)}}
    return flt if owner is None else {**flt, "lease_owner": owner}


def finish_update(outcome: Outcome, *, now: float) -> Doc:
    update = setting(status="COMPLETED", result=outcome.result, output=outcome.output,
                     error=outcome.error, retryable=outcome.retryable, branch=outcome.branch,
                     completed_at=now, updated_at=now)
    return with_logs(update, outcome.logs)


def with_logs(update: Doc, logs: Sequence[LogEntry]) -> Doc:
    """`update` that also appends `logs` in order, if there are any."""
    if not logs:
        return update
    return {**update, "$push": {"logs": {"$each": log_documents(logs)}}}


NOT_COMPLETED: Doc = {"status": {"$ne": "COMPLETED"}}
