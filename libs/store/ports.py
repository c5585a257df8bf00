"""The store port: everything Stepline persists, as conditional single-record operations.

Every write is either an insert-if-absent on a deterministic key or a conditional update, so that
at-least-once delivery never changes state twice (docs/architecture.md, "The protocol"). Adapters
(`SqliteStore`, later `MongoStore`) pass the same contract suite in `tests/contract/store_contract.py`.
Times are float seconds since the epoch, supplied by the caller (no adapter reads the clock).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from libs.core.run import LogEntry, NodeRun, Outcome, Run
from libs.core.versioning import VersionRecord, WorkflowRecord


@dataclass(frozen=True)
class RunFilter:
    workflows: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    results: tuple[str, ...] = ()
    versions: tuple[int, ...] = ()
    run_ids: tuple[str, ...] = ()
    workflow_prefix: str | None = None
    """Only runs of workflows whose store key, up to and including its first `~`, is exactly this
    (`""`: keys without `~`): the runs of one workspace (libs/core/workspaces.py)."""
    created_by: tuple[str, ...] = ()
    """`trigger.by`: the user whose key started the run."""
    trigger_types: tuple[str, ...] = ()
    """`trigger.type` (`API`, `WEBHOOK`, `SCHEDULE`, ...)."""
    created_from: float | None = None
    """Created at or after this instant (epoch seconds)."""
    created_to: float | None = None
    """Created before this instant (epoch seconds)."""


class ClaimOutcome(Enum):
    CLAIMED = "claimed"
    """PENDING, or RUNNING with an expired lease (or already leased by the same owner): now RUNNING, mine."""
    COMPLETED = "completed"
    """Already COMPLETED: re-publish its stored result and stop."""
    BUSY = "busy"
    """RUNNING under another live lease, or WAITING for an external completion: stop."""
    MISSING = "missing"


@dataclass(frozen=True)
class Claim:
    outcome: ClaimOutcome
    node_run: NodeRun | None


@dataclass(frozen=True)
class Timer:
    """A durable due-time callback. `id` is deterministic (e.g. `retry:{run}/{node}/{attempt}`)."""

    id: str
    run_id: str
    kind: str
    due_at: float
    payload: dict[str, Any]


class DefinitionStore(Protocol):
    async def create_workflow(self, record: WorkflowRecord, definition: dict[str, Any]) -> tuple[WorkflowRecord, VersionRecord]:
        """Insert the workflow with version 1 and `$LIVE` → 1. ConflictError if the identifier exists
        and is not deleted (a deleted one is revived with its version numbering continued)."""
        ...

    async def get_workflow(self, identifier: str, *, include_deleted: bool = False) -> WorkflowRecord:
        """NotFoundError if absent (or deleted, unless include_deleted)."""
        ...

    async def list_workflows(self, *, include_deleted: bool = False) -> list[WorkflowRecord]: ...

    async def add_version(self, identifier: str, definition: dict[str, Any], *, now: float, by: str | None = None,
                          title: str | None = None, description: str | None = None) -> tuple[WorkflowRecord, VersionRecord]:
        """Store the next version number (insert-if-absent on `{identifier}/{n}`, retried on a race)
        and move `$LIVE` to it. NotFoundError if the workflow does not exist."""
        ...

    async def get_version(self, identifier: str, version: int) -> VersionRecord:
        """NotFoundError if absent. Versions are immutable, so callers may cache them."""
        ...

    async def list_versions(self, identifier: str) -> list[VersionRecord]: ...

    async def set_tag(self, identifier: str, tag: str, version: int, *, now: float) -> WorkflowRecord:
        """Point `tag` at `version` atomically. NotFoundError if the workflow or version is absent."""
        ...

    async def delete_workflow(self, identifier: str, *, now: float) -> WorkflowRecord:
        """Soft delete; runs and versions stay readable. NotFoundError if absent."""
        ...

    async def definitions_stamp(self) -> int:
        """A number that grows with every successful `create_workflow`, `add_version`, `set_tag` and
        `delete_workflow`, moved after the write: while it stays equal, so does every live
        definition. (A crash between a write and its stamp leaves the stamp behind until the next.)"""
        ...


class RunStore(Protocol):
    async def insert_run(self, run: Run) -> tuple[Run, bool]:
        """Insert-if-absent by `run.id`, and by (`workflow`, `idempotency_key`) when a key is set.
        Returns the stored run and whether this call inserted it."""
        ...

    async def get_run(self, run_id: str) -> Run:
        """NotFoundError if absent."""
        ...

    async def find_run_by_idempotency_key(self, workflow: str, key: str) -> Run | None: ...

    async def update_run(self, run: Run, *, expected_seq: int) -> Run:
        """Replace the run if its stored `seq` equals `expected_seq`; the stored copy gets
        `seq = expected_seq + 1` and is returned. ConcurrentUpdateError otherwise."""
        ...

    async def list_runs(self, flt: RunFilter, *, limit: int, offset: int) -> tuple[list[Run], int]:
        """Newest first; returns the page and the total number of matches."""
        ...

    async def runs_due_for_check(self, now: float, *, limit: int) -> list[str]:
        """Ids of runs whose `check_at` <= now and that are IN_PROGRESS or hold events in their
        `outbox` (a completed run whose last events were not relayed), oldest check first."""
        ...

    async def clear_outbox(self, run_id: str, seq: int) -> bool:
        """Empty the run's `outbox` if it is still at `seq` (its events were relayed), without
        touching `seq`; whether it matched."""
        ...

    async def postpone_check(self, run_id: str, check_at: float) -> None:
        """Set `check_at` without touching `seq` (the sweeper is not a writer of run state)."""
        ...


class NodeRunStore(Protocol):
    async def insert_node_run(self, node_run: NodeRun) -> tuple[NodeRun, bool]:
        """Insert-if-absent by `key`; returns the stored record and whether this call inserted it."""
        ...

    async def get_node_run(self, key: str) -> NodeRun:
        """NotFoundError if absent."""
        ...

    async def get_node_run_by_id(self, node_run_id: str) -> NodeRun:
        """By public `wfnr_` id. NotFoundError if absent."""
        ...

    async def list_node_runs(self, run_id: str) -> list[NodeRun]:
        """All attempts of all nodes of a run, in creation order."""
        ...

    async def claim_node_run(self, key: str, *, owner: str, now: float, lease_until: float) -> Claim:
        """One conditional update: PENDING, or RUNNING with lease_expires_at < now (or owner == me)
        → RUNNING with this owner and lease; sets started_at on first claim."""
        ...

    async def renew_lease(self, key: str, *, owner: str, lease_until: float) -> bool:
        """Extend my lease while RUNNING; False if I no longer hold it."""
        ...

    async def mark_waiting(self, key: str, *, owner: str, now: float, output: Any = None,
                           logs: Sequence[LogEntry] = ()) -> bool:
        """RUNNING and owner is me → WAITING (lease cleared), `logs` appended. False otherwise."""
        ...

    async def finish_node_run(self, key: str, outcome: Outcome, *, now: float,
                              from_statuses: frozenset[str], owner: str | None = None) -> NodeRun | None:
        """Conditional: status in `from_statuses` (and lease owner == `owner` when given) →
        COMPLETED with the outcome's result (never None here), output, error, retryable and branch, its
        logs appended. Returns the updated record, or None when the condition did not match (someone
        else finished it)."""
        ...

    async def append_logs(self, key: str, logs: list[LogEntry], *, now: float) -> bool:
        """Append to a node run that is not COMPLETED; False if COMPLETED or absent."""
        ...


class TimerStore(Protocol):
    async def put_timer(self, timer: Timer) -> bool:
        """Insert-if-absent by id; True if inserted."""
        ...

    async def claim_due_timers(self, now: float, *, lease_seconds: float, limit: int) -> list[Timer]:
        """Timers with due_at <= now; each returned one has its due_at pushed to now + lease_seconds
        by a conditional update, so concurrent sweepers rarely fire the same timer twice."""
        ...

    async def delete_timer(self, timer_id: str) -> None: ...


@dataclass(frozen=True)
class Entry:
    """One small JSON document in a named collection (`kind`): secrets, catalog entities, webhook
    deliveries, schedule leases, workflow flags, concurrency slots. `rev` starts at 1 and grows by
    one with every write, so `replace_entry` is a compare-and-set."""

    kind: str
    key: str
    data: dict[str, Any]
    rev: int
    updated_at: float


class EntryStore(Protocol):
    """Keyed JSON documents with insert-if-absent and compare-and-set: the store of every feature
    that needs a little state beside runs (each write is one conditional single-document write)."""

    async def get_entry(self, kind: str, key: str) -> Entry | None: ...

    async def insert_entry(self, kind: str, key: str, data: dict[str, Any], *, now: float) -> tuple[Entry, bool]:
        """Insert-if-absent; returns the stored entry and whether this call inserted it."""
        ...

    async def replace_entry(self, kind: str, key: str, data: dict[str, Any], *, expected_rev: int,
                            now: float) -> Entry | None:
        """Replace if the stored `rev` equals `expected_rev` (stored rev becomes expected_rev + 1);
        None if absent or changed meanwhile."""
        ...

    async def put_entry(self, kind: str, key: str, data: dict[str, Any], *, now: float) -> Entry:
        """Unconditional upsert (rev + 1, or 1 when new)."""
        ...

    async def delete_entry(self, kind: str, key: str) -> bool:
        """True if it existed."""
        ...

    async def list_entries(self, kind: str, *, prefix: str = "", limit: int = 1000, offset: int = 0) -> list[Entry]:
        """Entries of `kind` whose key starts with `prefix`, in key order."""
        ...


class Store(DefinitionStore, RunStore, NodeRunStore, TimerStore, EntryStore, Protocol):
    async def open(self) -> None:
        """Connect and create tables/indexes. Idempotent."""
        ...

    async def close(self) -> None: ...

    async def flush(self) -> None:
        """Make every write so far durable before what reports it leaves the process (SQLite's
        commit window); nothing to do where each write is durable when it returns."""
        ...

    async def ping(self) -> bool:
        """Readiness: True if the store answers."""
        ...
