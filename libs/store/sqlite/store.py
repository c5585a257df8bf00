"""`SqliteStore`: the `Store` port on SQLite, for embedded mode and small installs.

Statements run on the event loop's own thread through the standard `sqlite3` module. Every statement
here is a single-row conditional write or an indexed read against a local WAL file, so it completes
in tens of microseconds; handing each one to a worker thread (aiosqlite) cost 160 µs per call alone,
and 690 µs under concurrency, which capped the engine far below its throughput target (see
docs/architecture.md, "Store"). A long `busy_timeout` would block the loop, so it is kept short; one
embedded process owns the file.

Modelled on documents like the MongoDB adapter: one table per collection holding the full record as
JSON in `doc`, plus projected columns for conditions and queries (see `schema`). One connection;
every write is one conditional statement (`sql`), so each is atomic on its own and nothing relies
on a transaction spanning two. Each commits by itself, or with the others of a commit window
(`commit_window`, embedded mode). `add_version` and `create_workflow` are sequences of
such statements that tolerate races and crashes between them, exactly as they will on MongoDB.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from pydantic import TypeAdapter
from pydantic_core import to_json

from libs.core.errors import (
    ConcurrentUpdateError,
    ConflictError,
    InputError,
    Issue,
    NotFoundError,
    StoreError,
    StoreUnavailableError,
)
from libs.core.run import LogEntry, NodeRun, Outcome, Run
from libs.core.versioning import VersionRecord, WorkflowRecord, is_valid_tag
from libs.store.ports import Claim, ClaimOutcome, RunFilter, Timer
from libs.store.sqlite import sql
from libs.store.sqlite.commit_window import CommitWindow
from libs.store.sqlite.entries import SqliteEntries
from libs.store.sqlite.schema import INDEXES, PRAGMAS, RUNS_COLUMNS, SCHEMA, UPGRADES
from libs.store.version_publishing import VersionPublishing
from libs.telemetry import metrics

Params = Sequence[Any] | Mapping[str, Any]

_TIMER = TypeAdapter(Timer)
_RETRYABLE_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR,
                              sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_FULL, sqlite3.SQLITE_NOMEM,
                              sqlite3.SQLITE_PROTOCOL})
"""Primary result codes after which the same statement may succeed later."""


def _json(value: Any) -> str:
    """JSON text for a `json(:x_j)` parameter (exact floats, pydantic-compatible encoding)."""
    return to_json(value).decode()


def _run_filter_params(flt: RunFilter) -> tuple[tuple[str, ...], list[Any]]:
    """The filter's set fields (in `run_filter_sql` order) and their parameters."""
    lists = tuple(name for name in sql.RUN_FILTER_FIELDS if getattr(flt, name))
    values = tuple(name for name in sql.RUN_FILTER_VALUES if getattr(flt, name) is not None)
    return (*lists, *values), [_json(list(getattr(flt, n))) for n in lists] + [getattr(flt, n) for n in values]


def _translate(exc: sqlite3.Error) -> StoreError:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(exc, sqlite3.OperationalError) and (code is None or code & 0xFF in _RETRYABLE_CODES):
        return StoreUnavailableError(f"SQLite store unavailable: {exc}")
    return StoreError(f"SQLite store error: {exc}")


def _claim_outcome(node_run: NodeRun) -> ClaimOutcome:
    """The outcome for a node run that the claim's condition did not match."""
    return ClaimOutcome.COMPLETED if node_run.status == "COMPLETED" else ClaimOutcome.BUSY


def _logs_param(logs: Sequence[LogEntry]) -> dict[str, str]:
    """The parameters of `len(logs)` appended entries: :log0 … each entry, or :logs_j all of them (sql.FEW_LOGS)."""
    if len(logs) <= sql.FEW_LOGS:
        return {f"log{i}": log.model_dump_json() for i, log in enumerate(logs)}
    return {"logs_j": "[" + ",".join(log.model_dump_json() for log in logs) + "]"}


def _apply_schema(db: sqlite3.Connection) -> None:
    """The tables, the upgrades a file made by an earlier version lacks (in one transaction, so two
    openers do not both apply one), then the indexes over upgraded columns."""
    db.executescript(SCHEMA)
    db.execute("BEGIN IMMEDIATE")
    try:
        columns = {row[0] for row in db.execute(RUNS_COLUMNS).fetchall()}
        for column, statements in UPGRADES:
            for statement in statements if column not in columns else ():
                db.execute(statement)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.executescript(INDEXES)


def _private_file(path: str) -> None:
    """Create the database file 0600 (or make it so): SQLite gives its -wal and -shm files the
    database file's permissions, so the owner alone can read runs, outputs and sealed secrets."""
    if path == ":memory:" or path.startswith("file:"):
        return
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        os.chmod(path, 0o600)
    except OSError as exc:
        raise StoreUnavailableError(f"SQLite store unavailable: cannot open {path}: {exc.strerror}") from exc


class SqliteStore(SqliteEntries, VersionPublishing):
    """The `Store` port on one SQLite file (or ":memory:"). Call `open()` before use."""

    def __init__(self, path: str, *, busy_timeout_ms: int = 1000, commit_window: float = 0.0) -> None:
        """`commit_window`: seconds during which writes share one transaction (commit_window.py);
        0 commits every statement by itself."""
        self._path = path
        self._busy_timeout_ms = int(busy_timeout_ms)
        self._db: sqlite3.Connection | None = None
        self._window = CommitWindow(commit_window)

    # -- lifecycle --------------------------------------------------------------------------------

    async def open(self) -> None:
        if self._db is not None:
            return
        _private_file(self._path)
        try:
            db = sqlite3.connect(self._path, isolation_level=None, cached_statements=256)
        except sqlite3.Error as exc:
            raise _translate(exc) from exc
        try:
            db.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}").fetchall()
            for pragma in PRAGMAS:
                db.execute(pragma).fetchall()
            _apply_schema(db)
        except sqlite3.Error as exc:
            db.close()
            raise _translate(exc) from exc
        self._db = db

    async def close(self) -> None:
        try:
            await self.flush()
        except StoreError:
            pass  # a batch that cannot be committed is lost, and logged as such
        finally:
            db, self._db = self._db, None
            if db is not None:
                db.close()

    async def flush(self) -> None:
        db = self._db
        if db is None:
            return
        try:
            self._window.flush(db)
        except sqlite3.Error as exc:
            raise _translate(exc) from exc

    async def ping(self) -> bool:
        try:
            return bool(await self._scalar("SELECT 1") == 1)
        except StoreError:
            return False

    async def __aenter__(self) -> SqliteStore:
        await self.open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    # -- statement helpers ------------------------------------------------------------------------

    async def _rows(self, statement: str, params: Params = ()) -> list[Any]:
        db = self._db
        if db is None:
            raise StoreUnavailableError("the SQLite store is not open")
        started = time.perf_counter()
        batched = False
        try:
            batched = self._window.begin(db)
            return db.execute(statement, params).fetchall()
        except sqlite3.Error as exc:
            self._window.lost(db, batched, exc)
            raise _translate(exc) from exc
        finally:
            metrics.STORE_CALLS.observe(metrics.sql_call(statement), time.perf_counter() - started)

    async def _scalar(self, statement: str, params: Params = ()) -> Any:
        """The first column of the first row, or None when there is no row."""
        rows = await self._rows(statement, params)
        return rows[0][0] if rows else None

    async def _docs(self, statement: str, params: Params = ()) -> list[str]:
        return [row[0] for row in await self._rows(statement, params)]

    # -- workflows and versions -------------------------------------------------------------------

    async def create_workflow(self, record: WorkflowRecord,
                              definition: dict[str, Any]) -> tuple[WorkflowRecord, VersionRecord]:
        fresh = record.model_copy(update={"tags": {}, "latest_version": 0, "deleted": False})
        doc = fresh.model_dump_json()
        if not await self._rows(sql.INSERT_WORKFLOW, (record.identifier, doc)):
            if not await self._rows(sql.REVIVE_WORKFLOW, (record.identifier, doc)):
                raise ConflictError(f"workflow {record.identifier!r} already exists")
        return await self._publish(record.identifier, definition, now=record.created_at,
                                   by=record.created_by, title=None, description=None)

    async def get_workflow(self, identifier: str, *, include_deleted: bool = False) -> WorkflowRecord:
        doc = await self._scalar(sql.GET_WORKFLOW, (identifier, include_deleted))
        if doc is None:
            raise NotFoundError(f"workflow {identifier!r} not found")
        return WorkflowRecord.model_validate_json(doc)

    async def list_workflows(self, *, include_deleted: bool = False) -> list[WorkflowRecord]:
        return [WorkflowRecord.model_validate_json(doc)
                for doc in await self._docs(sql.LIST_WORKFLOWS, (include_deleted,))]

    async def _last_version(self, identifier: str) -> int:
        return int(await self._scalar(sql.LAST_VERSION, (identifier,)))

    async def _insert_version(self, version: VersionRecord) -> bool:
        return bool(await self._rows(sql.INSERT_VERSION, (version.workflow, version.version, version.model_dump_json())))

    async def _point_live(self, identifier: str, number: int, *, title: str | None, description: str | None,
                          by: str | None, now: float) -> WorkflowRecord | None:
        doc = await self._scalar(sql.POINT_LIVE, {
            "identifier": identifier, "version": number, "title": title,
            "description": description, "by": by, "now_j": _json(now)})
        return None if doc is None else WorkflowRecord.model_validate_json(doc)

    async def get_version(self, identifier: str, version: int) -> VersionRecord:
        doc = await self._scalar(sql.GET_VERSION, (identifier, version))
        if doc is None:
            raise NotFoundError(f"version {version} of workflow {identifier!r} not found")
        return VersionRecord.model_validate_json(doc)

    async def list_versions(self, identifier: str) -> list[VersionRecord]:
        return [VersionRecord.model_validate_json(doc)
                for doc in await self._docs(sql.LIST_VERSIONS, (identifier,))]

    async def set_tag(self, identifier: str, tag: str, version: int, *, now: float) -> WorkflowRecord:
        if not is_valid_tag(tag):  # also what makes the JSON path below safe
            raise InputError(f"invalid tag {tag!r}", [Issue("/tag", r"must match ^\$[A-Z_]+$")])
        if await self._scalar(sql.VERSION_EXISTS, (identifier, version)) is None:
            raise NotFoundError(f"version {version} of workflow {identifier!r} not found")
        doc = await self._scalar(sql.SET_TAG, {
            "identifier": identifier, "path": f'$.tags."{tag}"', "version": version,
            "now_j": _json(now)})
        if doc is None:
            raise NotFoundError(f"workflow {identifier!r} not found")
        await self._definitions_changed(now)
        return WorkflowRecord.model_validate_json(doc)

    async def delete_workflow(self, identifier: str, *, now: float) -> WorkflowRecord:
        doc = await self._scalar(sql.DELETE_WORKFLOW, (identifier, _json(now)))
        if doc is None:
            raise NotFoundError(f"workflow {identifier!r} not found")
        await self._definitions_changed(now)
        return WorkflowRecord.model_validate_json(doc)

    # -- runs -------------------------------------------------------------------------------------

    async def insert_run(self, run: Run) -> tuple[Run, bool]:
        inserted = await self._rows(sql.INSERT_RUN, (
            run.id, run.workflow, run.version, run.status, run.result, run.seq, run.idempotency_key,
            run.created_at, run.check_at, run.model_dump_json(), len(run.outbox)))
        if inserted:
            return run, True
        doc = await self._scalar(sql.GET_CONFLICTING_RUN, (run.id, run.workflow, run.idempotency_key))
        if doc is None:  # the conflicting run cannot disappear: runs are never deleted
            raise StoreError(f"run {run.id!r} conflicted but could not be read back")
        return Run.model_validate_json(doc), False

    async def get_run(self, run_id: str) -> Run:
        doc = await self._scalar(sql.GET_RUN, (run_id,))
        if doc is None:
            raise NotFoundError(f"run {run_id!r} not found")
        return Run.model_validate_json(doc)

    async def find_run_by_idempotency_key(self, workflow: str, key: str) -> Run | None:
        doc = await self._scalar(sql.GET_RUN_BY_KEY, (workflow, key))
        return None if doc is None else Run.model_validate_json(doc)

    async def update_run(self, run: Run, *, expected_seq: int) -> Run:
        stored = run.model_copy(update={"seq": expected_seq + 1})
        matched = await self._rows(sql.UPDATE_RUN, (
            stored.status, stored.result, stored.check_at, stored.model_dump_json(), len(stored.outbox), run.id,
            expected_seq))
        if not matched:
            raise ConcurrentUpdateError(f"run {run.id!r} is absent or no longer at seq {expected_seq}")
        return stored

    async def list_runs(self, flt: RunFilter, *, limit: int, offset: int) -> tuple[list[Run], int]:
        present, values = _run_filter_params(flt)
        page_sql, count_sql = sql.run_filter_sql(present)
        docs = await self._docs(page_sql, (*values, limit, offset))
        total = int(await self._scalar(count_sql, values))
        return [Run.model_validate_json(doc) for doc in docs], total

    async def runs_due_for_check(self, now: float, *, limit: int) -> list[str]:
        return [row[0] for row in await self._rows(sql.DUE_RUNS, (now, limit))]

    async def clear_outbox(self, run_id: str, seq: int) -> bool:
        return bool(await self._rows(sql.CLEAR_OUTBOX, (run_id, seq)))

    async def postpone_check(self, run_id: str, check_at: float) -> None:
        await self._rows(sql.POSTPONE_CHECK, (check_at, _json(check_at), run_id))

    # -- node runs --------------------------------------------------------------------------------

    async def insert_node_run(self, node_run: NodeRun) -> tuple[NodeRun, bool]:
        inserted = await self._rows(sql.INSERT_NODE_RUN, (
            node_run.key, node_run.id, node_run.run_id, node_run.status, node_run.lease_owner,
            node_run.lease_expires_at, node_run.created_at, node_run.model_dump_json()))
        if inserted:
            return node_run, True
        doc = await self._scalar(sql.GET_NODE_RUN, (node_run.key,))
        if doc is None:
            raise ConflictError(f"node run id {node_run.id!r} is taken by another key")
        return NodeRun.model_validate_json(doc), False

    async def get_node_run(self, key: str) -> NodeRun:
        doc = await self._scalar(sql.GET_NODE_RUN, (key,))
        if doc is None:
            raise NotFoundError(f"node run {key!r} not found")
        return NodeRun.model_validate_json(doc)

    async def get_node_run_by_id(self, node_run_id: str) -> NodeRun:
        doc = await self._scalar(sql.GET_NODE_RUN_BY_ID, (node_run_id,))
        if doc is None:
            raise NotFoundError(f"node run {node_run_id!r} not found")
        return NodeRun.model_validate_json(doc)

    async def list_node_runs(self, run_id: str) -> list[NodeRun]:
        return [NodeRun.model_validate_json(doc)
                for doc in await self._docs(sql.LIST_NODE_RUNS, (run_id,))]

    async def claim_node_run(self, key: str, *, owner: str, now: float, lease_until: float) -> Claim:
        doc = await self._scalar(sql.CLAIM_NODE_RUN, {
            "key": key, "owner": owner, "now": now, "now_j": _json(now),
            "until": lease_until, "until_j": _json(lease_until)})
        if doc is not None:
            return Claim(ClaimOutcome.CLAIMED, NodeRun.model_validate_json(doc))
        doc = await self._scalar(sql.GET_NODE_RUN, (key,))
        if doc is None:
            return Claim(ClaimOutcome.MISSING, None)
        stored = NodeRun.model_validate_json(doc)
        return Claim(_claim_outcome(stored), stored)

    async def renew_lease(self, key: str, *, owner: str, lease_until: float) -> bool:
        return bool(await self._rows(sql.RENEW_LEASE, {
            "key": key, "owner": owner, "until": lease_until, "until_j": _json(lease_until)}))

    async def mark_waiting(self, key: str, *, owner: str, now: float, output: Any = None,
                           logs: Sequence[LogEntry] = ()) -> bool:
        return bool(await self._rows(sql.mark_waiting(len(logs)), {
            "key": key, "owner": owner, "output_j": _json(output), "now_j": _json(now), **_logs_param(logs)}))

    async def finish_node_run(self, key: str, outcome: Outcome, *, now: float,
                              from_statuses: frozenset[str], owner: str | None = None) -> NodeRun | None:
        doc = await self._scalar(sql.finish_node_run(len(outcome.logs)), {
            "key": key, "from_statuses": _json(sorted(from_statuses)), "owner": owner,
            "result": outcome.result, "output_j": _json(outcome.output),
            "error": outcome.error, "retryable_j": _json(outcome.retryable), "branch": outcome.branch,
            "now_j": _json(now), **_logs_param(outcome.logs)})
        return None if doc is None else NodeRun.model_validate_json(doc)

    async def append_logs(self, key: str, logs: list[LogEntry], *, now: float) -> bool:
        return bool(await self._rows(sql.append_logs(len(logs)), {
            "key": key, "now_j": _json(now), **_logs_param(logs)}))

    # -- timers -----------------------------------------------------------------------------------

    async def put_timer(self, timer: Timer) -> bool:
        doc = _TIMER.dump_json(timer).decode()
        return bool(await self._rows(sql.INSERT_TIMER, (timer.id, timer.due_at, doc)))

    async def claim_due_timers(self, now: float, *, lease_seconds: float, limit: int) -> list[Timer]:
        until = now + lease_seconds
        docs = await self._docs(sql.CLAIM_DUE_TIMERS, {
            "now": now, "until": until, "until_j": _json(until), "limit": limit})
        return [_TIMER.validate_json(doc) for doc in docs]

    async def delete_timer(self, timer_id: str) -> None:
        await self._rows(sql.DELETE_TIMER, (timer_id,))
