"""`MongoStore`: the `Store` port on MongoDB (or FerretDB) through PyMongo's asyncio API.

It mirrors `SqliteStore` write for write: the same records as documents (`documents.py`), one
collection per SQLite table, and each conditional statement as one single-document conditional update
with the same condition (`queries.py`). No transactions, change streams or TTL indexes: every write
is atomic on its own, and the multi-step operations (`create_workflow`, `add_version`) tolerate races
and crashes between their steps exactly as they do on SQLite.

Differences forced by the MongoDB subset that FerretDB 1.x shares:
- the (workflow, idempotency key) uniqueness is a unique index on a synthetic `idem` field that every
  run has (no partial or sparse indexes) — see `documents.idempotency_value`;
- a claim is two disjoint conditional updates (first claim sets `started_at`; later ones keep it),
  since a non-pipeline update cannot branch — see `queries.claim_filter`;
- node runs created at the same instant are listed by key rather than by insertion order;
- a completion whose output FerretDB takes for the stored one (same values, other field names) is
  written again after an `$unset` — see `finish_node_run`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from pymongo import AsyncMongoClient

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
from libs.store.mongo import documents as docs
from libs.store.mongo import queries as q
from libs.store.mongo.collections import Collections, translated
from libs.store.mongo.documents import Doc
from libs.store.mongo.entries import MongoEntries
from libs.store.mongo.queries import NODE_RUNS, RUNS, TIMERS, VERSIONS, WORKFLOWS
from libs.store.ports import Claim, ClaimOutcome, RunFilter, Timer
from libs.store.version_publishing import VersionPublishing


class MongoStore(MongoEntries, VersionPublishing):
    """The `Store` port on one MongoDB database. Call `open()` before use."""

    def __init__(self, url: str, *, database: str = "stepline",
                 server_selection_timeout_ms: int = 3000) -> None:
        self._url = url
        self._database = database
        self._timeout_ms = int(server_selection_timeout_ms)
        self._client: AsyncMongoClient[Doc] | None = None
        self._collections: Collections | None = None

    # -- lifecycle --------------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, check that the server answers and create the indexes (idempotent)."""
        if self._client is not None:
            return
        with translated():
            client: AsyncMongoClient[Doc] = AsyncMongoClient(
                self._url, serverSelectionTimeoutMS=self._timeout_ms, connectTimeoutMS=self._timeout_ms,
                appname="stepline")
        try:
            collections = Collections(client[self._database])
            await collections.command("ping")
            await collections.create_indexes(q.INDEXES)
        except BaseException:
            await client.close()
            raise
        self._client, self._collections = client, collections

    async def close(self) -> None:
        client, self._client, self._collections = self._client, None, None
        if client is not None:
            await client.close()

    async def flush(self) -> None:
        """Nothing to do: each write is acknowledged by the server when it returns."""

    async def ping(self) -> bool:
        try:
            return bool((await self._db.command("ping")).get("ok"))
        except StoreError:
            return False

    async def __aenter__(self) -> MongoStore:
        await self.open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    @property
    def _db(self) -> Collections:
        if self._collections is None:
            raise StoreUnavailableError("the MongoDB store is not open")
        return self._collections

    # -- workflows and versions -------------------------------------------------------------------

    async def create_workflow(self, record: WorkflowRecord,
                              definition: dict[str, Any]) -> tuple[WorkflowRecord, VersionRecord]:
        fresh = record.model_copy(update={"tags": {}, "latest_version": 0, "deleted": False})
        doc = docs.workflow_document(fresh)
        if not await self._db.insert(WORKFLOWS, doc):
            revival = {name: value for name, value in doc.items() if name not in ("_id", "latest_version")}
            revived = await self._db.modify(WORKFLOWS, {"_id": record.identifier, "deleted": True},
                                            {"$set": revival})
            if revived is None:
                raise ConflictError(f"workflow {record.identifier!r} already exists")
        return await self._publish(record.identifier, definition, now=record.created_at,
                                   by=record.created_by, title=None, description=None)

    async def get_workflow(self, identifier: str, *, include_deleted: bool = False) -> WorkflowRecord:
        # By `_id` alone, `deleted` checked here: FerretDB's SQLite backend evaluates any other filter
        # by reading the whole collection, and the trigger reads the workflow on every run start.
        doc = await self._db.find_one(WORKFLOWS, {"_id": identifier})
        if doc is None or (doc.get("deleted") and not include_deleted):
            raise NotFoundError(f"workflow {identifier!r} not found")
        return docs.workflow_from(doc)

    async def list_workflows(self, *, include_deleted: bool = False) -> list[WorkflowRecord]:
        flt: Doc = {} if include_deleted else {"deleted": False}
        return [docs.workflow_from(doc) for doc in await self._db.find(WORKFLOWS, flt, sort=q.BY_ID)]

    async def _last_version(self, identifier: str) -> int:
        doc = await self._db.find_one(VERSIONS, {"workflow": identifier}, projection={"version": 1},
                                      sort=q.LAST_VERSION)
        return 0 if doc is None else int(doc["version"])

    async def _insert_version(self, version: VersionRecord) -> bool:
        return await self._db.insert(VERSIONS, docs.version_document(version))

    async def _point_live(self, identifier: str, number: int, *, title: str | None, description: str | None,
                          by: str | None, now: float) -> WorkflowRecord | None:
        doc = await self._db.modify(WORKFLOWS, {"_id": identifier, "latest_version": {"$lt": number}},
                                    q.point_live(number, title=title, description=description, by=by, now=now))
        return None if doc is None else docs.workflow_from(doc)

    async def get_version(self, identifier: str, version: int) -> VersionRecord:
        doc = await self._db.find_one(VERSIONS, {"_id": docs.version_id(identifier, version)})
        if doc is None:
            raise NotFoundError(f"version {version} of workflow {identifier!r} not found")
        return docs.version_from(doc)

    async def list_versions(self, identifier: str) -> list[VersionRecord]:
        return [docs.version_from(doc)
                for doc in await self._db.find(VERSIONS, {"workflow": identifier}, sort=q.BY_VERSION)]

    async def set_tag(self, identifier: str, tag: str, version: int, *, now: float) -> WorkflowRecord:
        if not is_valid_tag(tag):
            raise InputError(f"invalid tag {tag!r}", [Issue("/tag", r"must match ^\$[A-Z_]+$")])
        if await self._db.find_one(VERSIONS, {"_id": docs.version_id(identifier, version)},
                                   projection=q.ID_ONLY) is None:
            raise NotFoundError(f"version {version} of workflow {identifier!r} not found")
        doc = await self._db.modify(WORKFLOWS, q.workflow_filter(identifier, include_deleted=False),
                                    {"$set": {docs.tag_field(tag): version, "updated_at": now}})
        if doc is None:
            raise NotFoundError(f"workflow {identifier!r} not found")
        await self._definitions_changed(now)
        return docs.workflow_from(doc)

    async def delete_workflow(self, identifier: str, *, now: float) -> WorkflowRecord:
        doc = await self._db.modify(WORKFLOWS, q.workflow_filter(identifier, include_deleted=False),
                                    {"$set": {"deleted": True, "updated_at": now}})
        if doc is None:
            raise NotFoundError(f"workflow {identifier!r} not found")
        await self._definitions_changed(now)
        return docs.workflow_from(doc)

    # -- runs -------------------------------------------------------------------------------------

    async def insert_run(self, run: Run) -> tuple[Run, bool]:
        if await self._db.insert(RUNS, docs.run_document(run)):
            return run, True
        doc = await self._db.find_one(RUNS, {"_id": run.id})
        if doc is None and run.idempotency_key is not None:
            doc = await self._db.find_one(RUNS, {"idem": docs.idempotency_value(run)})
        if doc is None:  # the conflicting run cannot disappear: runs are never deleted
            raise StoreError(f"run {run.id!r} conflicted but could not be read back")
        return docs.run_from(doc), False

    async def get_run(self, run_id: str) -> Run:
        doc = await self._db.find_one(RUNS, {"_id": run_id})
        if doc is None:
            raise NotFoundError(f"run {run_id!r} not found")
        return docs.run_from(doc)

    async def find_run_by_idempotency_key(self, workflow: str, key: str) -> Run | None:
        doc = await self._db.find_one(RUNS, {"idem": docs.idempotency_lookup(workflow, key)})
        return None if doc is None else docs.run_from(doc)

    async def update_run(self, run: Run, *, expected_seq: int) -> Run:
        stored = run.model_copy(update={"seq": expected_seq + 1})
        if not await self._db.update(RUNS, {"_id": run.id, "seq": expected_seq},
                                     {"$set": docs.run_fields(stored)}):
            raise ConcurrentUpdateError(f"run {run.id!r} is absent or no longer at seq {expected_seq}")
        return stored

    async def list_runs(self, flt: RunFilter, *, limit: int, offset: int) -> tuple[list[Run], int]:
        match = q.run_filter(flt)
        if limit <= 0:  # MongoDB reads limit 0 as "no limit"
            return [], await self._db.count(RUNS, match)
        page, total = await asyncio.gather(
            self._db.find(RUNS, match, sort=q.NEWEST_FIRST, skip=max(offset, 0), limit=limit),
            self._db.count(RUNS, match))
        return [docs.run_from(doc) for doc in page], total

    async def runs_due_for_check(self, now: float, *, limit: int) -> list[str]:
        if limit <= 0:
            return []
        found = await self._db.find(RUNS, q.due_runs(now), sort=q.DUE_ORDER, projection=q.ID_ONLY, limit=limit)
        return [str(doc["_id"]) for doc in found]

    async def clear_outbox(self, run_id: str, seq: int) -> bool:
        return await self._db.update(RUNS, {"_id": run_id, "seq": seq}, {"$set": {"outbox": []}})

    async def postpone_check(self, run_id: str, check_at: float) -> None:
        await self._db.update(RUNS, {"_id": run_id}, {"$set": {"check_at": check_at}})

    # -- node runs --------------------------------------------------------------------------------

    async def insert_node_run(self, node_run: NodeRun) -> tuple[NodeRun, bool]:
        if await self._db.insert(NODE_RUNS, docs.node_run_document(node_run)):
            return node_run, True
        doc = await self._db.find_one(NODE_RUNS, {"_id": node_run.key})
        if doc is None:
            raise ConflictError(f"node run id {node_run.id!r} is taken by another key")
        return docs.node_run_from(doc), False

    async def get_node_run(self, key: str) -> NodeRun:
        doc = await self._db.find_one(NODE_RUNS, {"_id": key})
        if doc is None:
            raise NotFoundError(f"node run {key!r} not found")
        return docs.node_run_from(doc)

    async def get_node_run_by_id(self, node_run_id: str) -> NodeRun:
        doc = await self._db.find_one(NODE_RUNS, {"id": node_run_id})
        if doc is None:
            raise NotFoundError(f"node run {node_run_id!r} not found")
        return docs.node_run_from(doc)

    async def list_node_runs(self, run_id: str) -> list[NodeRun]:
        return [docs.node_run_from(doc)
                for doc in await self._db.find(NODE_RUNS, {"run_id": run_id}, sort=q.CREATION_ORDER)]

    async def claim_node_run(self, key: str, *, owner: str, now: float, lease_until: float) -> Claim:
        for first in (True, False):  # two disjoint conditions: see queries.claim_filter
            doc = await self._db.modify(NODE_RUNS, q.claim_filter(key, owner=owner, now=now, first=first),
                                        q.claim_update(owner=owner, now=now, lease_until=lease_until, first=first))
            if doc is not None:
                return Claim(ClaimOutcome.CLAIMED, docs.node_run_from(doc))
        doc = await self._db.find_one(NODE_RUNS, {"_id": key})
        if doc is None:
            return Claim(ClaimOutcome.MISSING, None)
        stored = docs.node_run_from(doc)
        return Claim(ClaimOutcome.COMPLETED if stored.status == "COMPLETED" else ClaimOutcome.BUSY, stored)

    async def renew_lease(self, key: str, *, owner: str, lease_until: float) -> bool:
        return await self._db.update(NODE_RUNS, q.leased_to(key, owner),
                                     {"$set": {"lease_expires_at": lease_until}})

    async def mark_waiting(self, key: str, *, owner: str, now: float, output: Any = None,
                           logs: Sequence[LogEntry] = ()) -> bool:
        return await self._db.update(NODE_RUNS, q.leased_to(key, owner), q.with_logs(q.setting(
            status="WAITING", lease_owner=None, lease_expires_at=None, output=output, updated_at=now), logs))

    async def finish_node_run(self, key: str, outcome: Outcome, *, now: float,
                              from_statuses: frozenset[str], owner: str | None = None) -> NodeRun | None:
        update = q.finish_update(outcome, now=now)
        doc = await self._db.modify(NODE_RUNS, q.finish_filter(key, from_statuses, owner), update)
        if doc is not None and doc.get("output") != update["$set"]["output"]:
            doc = await self._rewrite_output(key, update["$set"]["output"], completed_at=now) or doc
        return None if doc is None else docs.node_run_from(doc)

    async def _rewrite_output(self, key: str, output: Any, *, completed_at: float) -> Doc | None:
        """FerretDB 1.x skips a `$set` whose value it deems identical to the stored one, and it compares
        embedded documents by their values alone, ignoring the field names: a DELAY's waiting output
        `{resumeAt: T}` would stay in place of its result `{waitedUntil: T}`. Unset the field, then set
        it, both only on this very completion (a completed node run is final: no writer competes)."""
        mine = {"_id": key, "status": "COMPLETED", "completed_at": completed_at}
        await self._db.update(NODE_RUNS, mine, {"$unset": {"output": ""}})
        return await self._db.modify(NODE_RUNS, mine, {"$set": {"output": output}})

    async def append_logs(self, key: str, logs: list[LogEntry], *, now: float) -> bool:
        return await self._db.update(NODE_RUNS, {"_id": key, **q.NOT_COMPLETED},
                                     q.with_logs(q.setting(updated_at=now), logs))

    # -- timers -----------------------------------------------------------------------------------

    async def put_timer(self, timer: Timer) -> bool:
        return await self._db.insert(TIMERS, docs.timer_document(timer))

    async def claim_due_timers(self, now: float, *, lease_seconds: float, limit: int) -> list[Timer]:
        """The earliest `limit` due timers, each then leased by its own conditional update; one that
        a concurrent sweeper leased in between is left out (so a batch may come back short)."""
        if limit <= 0:
            return []
        due: Doc = {"due_at": {"$lte": now}}
        candidates = await self._db.find(TIMERS, due, sort=q.TIMER_ORDER, projection=q.ID_ONLY, limit=limit)
        update = {"$set": {"due_at": now + lease_seconds}}
        leased = await asyncio.gather(*(self._db.modify(TIMERS, {"_id": doc["_id"], **due}, update)
                                        for doc in candidates))
        return [docs.timer_from(doc) for doc in leased if doc is not None]

    async def delete_timer(self, timer_id: str) -> None:
        await self._db.delete(TIMERS, {"_id": timer_id})
