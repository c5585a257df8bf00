"""`SqliteStore` against the store contract, on a temporary file so that WAL and locking are real."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from libs.core.errors import NotFoundError, StoreError, StoreUnavailableError
from libs.store.ports import ClaimOutcome, Store
from libs.store.sqlite import SqliteStore

from .store_contract import LEASE, NOW, StoreContract, StoreFactory, node_run, run, timer


class TestSqliteStore(StoreContract):
    @pytest.fixture(autouse=True)
    def _database(self, tmp_path: Path) -> None:
        self.path = str(tmp_path / "stepline.db")

    async def make_store(self) -> Store:
        store = SqliteStore(self.path)
        await store.open()
        return store


class TestSqliteStoreInACommitWindow(TestSqliteStore):
    """The same contract with the embedded engine's group commit, its window longer than any test:
    every write of a test stays in one open batch, read back through the store's own connection."""

    async def make_store(self) -> Store:
        store = SqliteStore(self.path, commit_window=60.0)
        await store.open()
        return store

    async def test_concurrent_claims_across_store_instances(self, store: Store, open_store: StoreFactory) -> None:
        """Replaced: one connection per file keeps a window. Another connection's write waits for the
        open batch (here it gives up: busy), then succeeds once the batch is committed."""
        async with SqliteStore(self.path, busy_timeout_ms=20) as other:
            key = (await store.insert_node_run(node_run("n1")))[0].key
            with pytest.raises(StoreUnavailableError):
                await other.claim_node_run(key, owner="w2", now=NOW, lease_until=NOW + LEASE)
            await store.flush()
            claim = await other.claim_node_run(key, owner="w2", now=NOW, lease_until=NOW + LEASE)
        assert claim.outcome is ClaimOutcome.CLAIMED
        assert (await store.claim_node_run(key, owner="w1", now=NOW, lease_until=NOW + LEASE)).outcome is ClaimOutcome.BUSY


REFUSE_BOOM = """CREATE TRIGGER refuse_boom BEFORE INSERT ON timers WHEN NEW.id = 'boom'
BEGIN SELECT RAISE(ROLLBACK, 'refused'); END"""
"""A statement that rolls the whole transaction back, as SQLITE_FULL or SQLITE_IOERR may."""


async def test_a_batch_that_sqlite_rolls_back_is_reported_and_the_store_goes_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = str(tmp_path / "stepline.db")
    async with SqliteStore(path):
        pass
    with closing(sqlite3.connect(path)) as raw:
        raw.execute(REFUSE_BOOM)
    async with SqliteStore(path, commit_window=60.0) as store:
        await store.insert_run(run(1))
        with pytest.raises(StoreError) as refused:
            await store.put_timer(timer("boom", NOW))
        assert "refused" in str(refused.value)
        assert any("rolled back the engine's writes" in r.getMessage() for r in caplog.records)
        with pytest.raises(NotFoundError):
            await store.get_run(run(1).id)  # lost with its batch, as in a crash
        await store.insert_run(run(2))
    async with SqliteStore(path) as reopened:
        assert (await reopened.get_run(run(2).id)).id == run(2).id, "the next batch is committed on close"


async def test_open_is_idempotent_and_uses_wal(tmp_path: Path) -> None:
    path = str(tmp_path / "stepline.db")
    store = SqliteStore(path)
    await store.open()
    await store.open()
    async with SqliteStore(path) as second:  # schema creation on an existing database
        assert await second.ping()
    await store.close()
    await store.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    raw.close()


OLD_RUNS = """
CREATE TABLE runs (id TEXT PRIMARY KEY, workflow TEXT NOT NULL, version INTEGER NOT NULL, status TEXT NOT NULL,
    result TEXT, seq INTEGER NOT NULL, idempotency_key TEXT, created_at REAL NOT NULL, check_at REAL NOT NULL,
    doc TEXT NOT NULL);
CREATE INDEX runs_outbox ON runs (check_at) WHERE json_array_length(doc, '$.outbox') > 0;
"""
"""The runs table of a file written before the `unrelayed` column."""


async def test_a_file_from_before_the_unrelayed_column_is_upgraded_once(tmp_path: Path) -> None:
    path = str(tmp_path / "stepline.db")
    event = {"id": f"{run(1).id}/3", "type": "run.completed", "data": {"seq": 3}}
    with sqlite3.connect(path) as raw:
        raw.executescript(OLD_RUNS)
        for n, outbox in ((1, [event]), (2, [])):
            stored = run(n, status="COMPLETED", result="SUCCESS", outbox=outbox)
            raw.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (
                stored.id, stored.workflow, stored.version, stored.status, stored.result, stored.seq, None,
                stored.created_at, stored.check_at, stored.model_dump_json()))
    raw.close()
    for _ in range(2):  # the second opening finds the upgrade done
        async with SqliteStore(path) as store:
            assert await store.runs_due_for_check(run(2).check_at, limit=10) == [run(1).id]
            assert (await store.get_run(run(1).id)).outbox == [event]
    with sqlite3.connect(path) as raw:
        indexes = {row[0] for row in raw.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert ("runs_unrelayed" in indexes, "runs_outbox" in indexes) == (True, False)
    raw.close()


async def test_in_memory_database(tmp_path: Path) -> None:
    async with SqliteStore(":memory:") as store:
        assert (await store.insert_run(run(1)))[1] is True
        assert await store.get_run(run(1).id) == run(1)


async def test_locked_database_is_unavailable_and_retryable(tmp_path: Path) -> None:
    path = str(tmp_path / "stepline.db")
    async with SqliteStore(path, busy_timeout_ms=50) as store:
        blocker = sqlite3.connect(path, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            with pytest.raises(StoreUnavailableError) as caught:
                await store.insert_run(run(1))
            assert caught.value.retryable is True
            assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
            blocker.execute("ROLLBACK")
        finally:
            blocker.close()
        assert (await store.insert_run(run(1)))[1] is True


async def test_closed_store_is_unavailable(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "stepline.db"))
    with pytest.raises(StoreUnavailableError):
        await store.get_run("wfr_x")
    await store.open()
    await store.close()
    with pytest.raises(StoreUnavailableError):
        await store.get_run("wfr_x")
