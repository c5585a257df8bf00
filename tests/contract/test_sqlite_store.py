"""`SqliteStore` against the store contract, on a temporary file so that WAL and locking are real."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from libs.core.errors import StoreUnavailableError
from libs.store.ports import Store
from libs.store.sqlite import SqliteStore

from .store_contract import StoreContract, run


class TestSqliteStore(StoreContract):
    @pytest.fixture(autouse=True)
    def _database(self, tmp_path: Path) -> None:
        self.path = str(tmp_path / "stepline.db")

    async def make_store(self) -> Store:
        store = SqliteStore(self.path)
        await store.open()
        return store


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
