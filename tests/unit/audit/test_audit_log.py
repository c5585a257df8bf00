"""`AuditLog` on real stores: SQLite, and FerretDB (`mongo` marker) through the same tests.

Two `AuditLog`s on two connections to one database stand for two API replicas."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from libs.access.principal import Principal
from libs.audit.chain import AuditRecord, chain_hash
from libs.audit.log import HEAD_KEY, HEAD_KIND, KIND, AuditLog, AuditQuery
from libs.audit.publishing import bus_publisher
from libs.bus.memory import MemoryBus
from libs.bus.publisher import Publisher
from libs.contracts import topics, v1
from libs.contracts.envelope import Envelope
from libs.core.errors import BusError
from libs.store.mongo import MongoStore
from libs.store.ports import Store
from libs.store.sqlite import SqliteStore

ADMIN = Principal(key_id="key_a", user="ada@example.com", role="admin", workspace="default")
OTHER = Principal(key_id="key_b", user="bob@example.com", role="editor", workspace="team-b")
T0 = 1_700_000_000.0

Opener = Callable[[], Awaitable[Store]]


@pytest.fixture(params=["sqlite", pytest.param("mongo", marks=pytest.mark.mongo)])
async def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    """Opens a new connection to one database per test (closed afterwards)."""
    opened: list[Store] = []
    if request.param == "sqlite":
        def make() -> Store:
            return SqliteStore(str(tmp_path / "stepline.db"))
    else:
        url, database = request.getfixturevalue("mongo_url"), f"stepline_test_{uuid.uuid4().hex[:16]}"

        def make() -> Store:
            return MongoStore(url, database=database)

    async def opener() -> Store:
        store = make()
        await store.open()
        opened.append(store)
        return store

    yield opener
    for store in opened:
        await store.close()


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


async def test_appends_form_a_verifiable_chain(open_store: Opener) -> None:
    log = AuditLog(await open_store(), clock=Clock())
    first = await log.append(ADMIN, "secret.written", "secret/token", {"created": True})
    second = await log.append(None, "auth.denied", "DELETE /v1/secrets/token", {"reason": "missing key"})
    assert (first.seq, first.id, first.actor, first.role, first.workspace) == (
        1, "aud_000000000001", "ada@example.com", "admin", "default")
    assert (second.actor, second.role, second.prev_hash) == ("anonymous", None, first.hash)
    assert first.at == "2023-11-14T22:13:21.000Z"
    report = await log.verify()
    assert report.ok and (report.count, report.last_seq) == (2, 2)


class Interleaving:
    """An entry store that lets other tasks run before each call (SQLite answers without yielding, so
    concurrent appends would otherwise run one after another) and counts lost insert races."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.lost_inserts = 0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(0)
            result = await method(*args, **kwargs)
            if name == "insert_entry" and args[0] == KIND and not result[1]:
                self.lost_inserts += 1
            return result
        return call


async def test_concurrent_writers_on_one_store_keep_one_chain(open_store: Opener) -> None:
    replicas = [Interleaving(await open_store()), Interleaving(await open_store())]
    one, two = (AuditLog(replica) for replica in replicas)
    appended = await asyncio.gather(
        *(log.append(ADMIN, "run.started", f"run/{name}{i}") for i in range(12) for name, log in
          (("a", one), ("b", two))))
    assert sum(replica.lost_inserts for replica in replicas) > 0  # the writers did race
    assert sorted(r.seq for r in appended) == list(range(1, 25))
    stored = await (await open_store()).list_entries(KIND)
    assert [e.data for e in stored] == [r.data() for r in sorted(appended, key=lambda r: r.seq)]
    report = await one.verify()
    assert report.ok and report.last_seq == 24


async def test_a_head_that_lags_or_vanished_is_caught_up(open_store: Opener) -> None:
    store = await open_store()
    log = AuditLog(store)
    records = [await log.append(ADMIN, "tag.moved", f"workflow/w{i}") for i in range(3)]
    await store.put_entry(HEAD_KIND, HEAD_KEY, {"seq": 1, "hash": records[0].hash}, now=T0)
    fourth = await log.append(ADMIN, "tag.moved", "workflow/w3")
    assert (fourth.seq, fourth.prev_hash) == (4, records[2].hash)
    await store.delete_entry(HEAD_KIND, HEAD_KEY)
    fifth = await log.append(ADMIN, "tag.moved", "workflow/w4")
    assert (fifth.seq, fifth.prev_hash) == (5, fourth.hash)
    assert (await log.verify()).ok


async def test_verify_finds_an_edited_record(open_store: Opener) -> None:
    store = await open_store()
    log = AuditLog(store)
    for i in range(4):
        await log.append(ADMIN, "secret.deleted", f"secret/s{i}")
    entry = await store.get_entry(KIND, "000000000003")
    assert entry is not None
    await store.put_entry(KIND, entry.key, {**entry.data, "actor": "someone-else"}, now=T0)
    report = await log.verify()
    assert report.broken is not None
    assert (report.broken.seq, report.broken.id, report.last_seq) == (3, "aud_000000000003", 2)
    assert "edited" in report.broken.reason


async def test_verify_finds_removed_records_in_the_middle_and_at_the_end(open_store: Opener) -> None:
    store = await open_store()
    log = AuditLog(store)
    for i in range(4):
        await log.append(ADMIN, "workflow.deleted", f"workflow/w{i}")
    await store.delete_entry(KIND, "000000000004")
    end = await log.verify()
    assert end.broken is not None and end.broken.seq == 4 and "removed" in end.broken.reason
    await store.delete_entry(KIND, "000000000002")
    middle = await log.verify()
    assert middle.broken is not None and (middle.broken.index, middle.broken.seq) == (1, 3)


async def test_a_resealed_record_is_found_through_the_next_one(open_store: Opener) -> None:
    store = await open_store()
    log = AuditLog(store)
    for i in range(3):
        await log.append(ADMIN, "apikey.created", f"apikey/k{i}")
    entry = await store.get_entry(KIND, "000000000002")
    assert entry is not None
    forged = {**entry.data, "details": {"role": "owner"}}
    await store.put_entry(KIND, entry.key, {**forged, "hash": chain_hash(forged)}, now=T0)
    report = await log.verify()
    assert report.broken is not None and report.broken.seq == 3 and "prevHash" in report.broken.reason


async def test_query_filters_newest_first(open_store: Opener) -> None:
    log = AuditLog(await open_store(), clock=Clock())
    await log.append(ADMIN, "workflow.created", "workflow/a")
    await log.append(OTHER, "workflow.created", "workflow/b")
    await log.append(ADMIN, "run.started", "run/r1")
    await log.append(ADMIN, "workflow.deleted", "workflow/a")

    async def targets(**filters: Any) -> list[str]:
        return [r.target for r in await log.query(AuditQuery(**filters))]

    assert await targets() == ["workflow/a", "run/r1", "workflow/b", "workflow/a"]
    assert await targets(workspace="default") == ["workflow/a", "run/r1", "workflow/a"]
    assert await targets(workspace="team-b") == ["workflow/b"]
    assert await targets(action="workflow.created") == ["workflow/b", "workflow/a"]
    assert await targets(actor="bob@example.com") == ["workflow/b"]
    assert await targets(target="workflow/a") == ["workflow/a", "workflow/a"]
    assert await targets(since=T0 + 2, until=T0 + 3) == ["run/r1", "workflow/b"]
    assert await targets(limit=1) == ["workflow/a"]
    assert await targets(workspace="nobody") == []


async def test_query_reads_across_blocks_and_stops_before_since(open_store: Opener) -> None:
    log = AuditLog(await open_store(), clock=Clock())
    for i in range(130):
        await log.append(ADMIN if i % 2 else OTHER, "run.started", f"run/{i}")
    newest = await log.query(AuditQuery(workspace="team-b", limit=70))
    assert [r.target for r in newest] == [f"run/{i}" for i in range(128, -1, -2)][:65]
    recent = await log.query(AuditQuery(since=T0 + 120))
    assert [r.seq for r in recent] == list(range(130, 119, -1))


async def test_each_record_is_handed_to_the_publish_hook(open_store: Opener) -> None:
    published: list[AuditRecord] = []

    async def publish(record: AuditRecord) -> None:
        published.append(record)

    log = AuditLog(await open_store(), publish=publish)
    record = await log.append(ADMIN, "workflow.paused", "workflow/w")
    assert published == [record]


async def test_a_refused_publish_keeps_the_stored_record(open_store: Opener) -> None:
    async def refuse(record: AuditRecord) -> None:
        raise BusError("broker down")

    log = AuditLog(await open_store(), publish=refuse)
    record = await log.append(ADMIN, "workflow.resumed", "workflow/w")
    assert [r.id for r in await log.query(AuditQuery())] == [record.id]


async def test_the_bus_publisher_puts_records_on_the_audit_topic(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "s.db"))
    await store.open()
    bus = MemoryBus(partitions=4)
    received: asyncio.Queue[Envelope] = asyncio.Queue()
    bus.subscribe(topics.AUDIT, "test", received.put)
    await bus.start()
    try:
        log = AuditLog(store, publish=bus_publisher(Publisher(bus, "stepline/trigger")))
        record = await log.append(ADMIN, "approval.decided", "node-run/wfnr_1", {"decision": "APPROVED"})
        envelope = await asyncio.wait_for(received.get(), 10)
    finally:
        await bus.stop()
        await store.close()
    message = envelope.message()
    assert isinstance(message, v1.AuditRecorded)
    assert (envelope.type, envelope.subject, message.record) == (
        "dev.stepline.audit.recorded.v1", v1.AUDIT_KEY, record.data())


async def test_record_takes_the_action_as_a_string_and_refuses_unknown_ones(open_store: Opener) -> None:
    log = AuditLog(await open_store())
    await log.record(OTHER, "run.cancelled", "run/r9", {"why": "stuck"})
    with pytest.raises(ValueError, match="not an audit action"):
        await log.record(OTHER, "run.exploded", "run/r9", {})
    [stored] = await log.query(AuditQuery())
    assert (stored.action, stored.actor, stored.workspace, stored.details) == (
        "run.cancelled", "bob@example.com", "team-b", {"why": "stuck"})
