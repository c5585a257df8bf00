"""Long polls woken by the run's completion event, re-reading the store only then (or at the slow
recheck), and capped."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from libs.contracts import v1
from libs.contracts.envelope import Envelope
from libs.core.run import Run, TriggerInfo
from libs.store.sqlite import SqliteStore
from services.trigger import waiting as insert_waiting
from services.trigger.errors import TooManyRequestsError
from services.trigger.run_waiters import RunWaiters
from services.trigger.waiting import wait_for_insert


class CountingStore(SqliteStore):
    reads = 0

    async def get_run(self, run_id: str) -> Run:
        self.reads += 1
        return await super().get_run(run_id)


@pytest.fixture
async def store(tmp_path: Path) -> CountingStore:
    db = CountingStore(str(tmp_path / "db.sqlite"))
    await db.open()
    await db.insert_run(Run(id="wfr_1", workflow="wf", version=1, trigger=TriggerInfo(), created_at=1.0, updated_at=1.0))
    return db


async def complete(store: SqliteStore) -> None:
    run = await store.get_run("wfr_1")
    await store.update_run(run.model_copy(update={"status": "COMPLETED", "result": "SUCCESS"}), expected_seq=run.seq)


def completed_event() -> Envelope:
    """Only the type and the subject (the run id) matter to the waiters."""
    return Envelope(type=v1.RunCompleted.TYPE, source="tests", subject="wfr_1", data={})


async def test_a_waiter_wakes_on_the_completion_event_without_polling(store: CountingStore) -> None:
    waiters = RunWaiters(recheck_seconds=60)
    waiting = asyncio.create_task(waiters.wait_for_completion(store, "wfr_1", 30))
    while waiters.waiting == 0:
        await asyncio.sleep(0)
    await complete(store)
    reads_before = store.reads
    await waiters.handle(completed_event())
    run = await asyncio.wait_for(waiting, 5)
    assert run.status == "COMPLETED" and store.reads - reads_before == 1
    assert waiters.waiting == 0


async def test_without_an_event_the_slow_recheck_still_answers(store: CountingStore) -> None:
    waiters = RunWaiters(recheck_seconds=0.05)
    waiting = asyncio.create_task(waiters.wait_for_completion(store, "wfr_1", 30))
    await complete(store)
    assert (await asyncio.wait_for(waiting, 5)).status == "COMPLETED"


async def test_the_number_of_waiters_is_capped(store: CountingStore) -> None:
    waiters = RunWaiters(limit=1, recheck_seconds=60)
    first = asyncio.create_task(waiters.wait_for_completion(store, "wfr_1", 30))
    while waiters.waiting == 0:
        await asyncio.sleep(0)
    with pytest.raises(TooManyRequestsError, match="1 requests are waiting"):
        await waiters.wait_for_completion(store, "wfr_1", 30)
    await complete(store)
    await waiters.handle(completed_event())
    await asyncio.wait_for(first, 5)
    await store.close()


async def test_a_start_is_woken_by_its_runs_first_event_of_any_type() -> None:
    waiters = RunWaiters()
    with waiters.starting("wfr_1") as started, waiters.starting("wfr_2") as other:
        await waiters.handle(Envelope(type=v1.RunStarted.TYPE, source="tests", subject="wfr_1", data={}))
        assert started.is_set() and not other.is_set()
    await waiters.handle(Envelope(type=v1.RunStarted.TYPE, source="tests", subject="wfr_1", data={}))  # nobody waits


async def test_an_insert_wait_reads_the_store_once_it_is_woken(store: CountingStore,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(insert_waiting, "WOKEN_RECHECK", 60.0)  # only the event can wake it
    woken = asyncio.Event()
    waiting = asyncio.create_task(wait_for_insert(store, "wfr_new", "w", None, 30, woken))
    for _ in range(10):
        await asyncio.sleep(0)
    reads = store.reads
    assert reads == 0, "nothing to read before the run's first event"
    await store.insert_run(Run(id="wfr_new", workflow="w", version=1, trigger=TriggerInfo(), created_at=1.0,
                               updated_at=1.0))
    woken.set()
    run = await asyncio.wait_for(waiting, 5)
    assert run is not None and run.id == "wfr_new" and store.reads == reads + 1
