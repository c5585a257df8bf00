"""The sweeper (services/scheduler/sweeper.py) keeps one `ReconcileRun` in flight per idle run, backs
off (doubling up to `max_seconds`) while reconciling a run achieves nothing and starts over once it
progresses, and makes a run whose command could not be published due again at once. On a real
`SqliteStore` and `MemoryBus`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from libs.bus.memory import MemoryBus
from libs.bus.publisher import Publisher
from libs.contracts import topics
from libs.contracts.envelope import Envelope
from libs.core.errors import BusError
from libs.store.sqlite import SqliteStore
from services.scheduler.sweeper import Sweeper, next_check
from tests.contract.store_contract import NOW, run

STALE, MAX = 2.0, 16.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(str(tmp_path / "stepline.db"))
    await s.open()
    yield s
    await s.close()


async def commands(bus: MemoryBus) -> list[str]:
    """The run ids of the `ReconcileRun`s published so far, read by a fresh consumer group."""
    seen: list[str] = []

    async def collect(envelope: Envelope) -> None:
        seen.append(envelope.message().run_id)

    await bus.add_subscription(topics.RUN_COMMANDS, f"probe-{id(seen)}", collect)
    await bus.drain()
    return seen


def sweeper(store: SqliteStore, bus: MemoryBus, clock: Clock) -> Sweeper:
    return Sweeper(store, Publisher(bus, "stepline/scheduler"), clock=clock, interval=0.5, stale_seconds=STALE,
                   batch=10, max_seconds=MAX)


async def handled(store: SqliteStore, clock: Clock) -> None:
    """What handling a ReconcileRun that changed nothing does to the run's check."""
    await store.postpone_check(run(1).id, clock.now + STALE)


async def test_one_reconcile_in_flight_per_run(store: SqliteStore) -> None:
    clock, bus = Clock(), MemoryBus(partitions=2)
    await bus.start()
    await store.insert_run(run(1, check_at=NOW))
    sweeping = sweeper(store, bus, clock)
    assert await sweeping.sweep_once() == 1
    clock.now += 5 * STALE  # the command waits in a backlog: the run is not reconciled again
    assert await sweeping.sweep_once() == 0
    clock.now += MAX  # never handled (say, dead-lettered): sent again
    assert await sweeping.sweep_once() == 1
    assert await commands(bus) == [run(1).id] * 2
    await bus.stop()


async def test_reconciles_back_off_while_the_run_makes_no_progress(store: SqliteStore) -> None:
    clock, bus = Clock(), MemoryBus(partitions=2)
    await bus.start()
    await store.insert_run(run(1, check_at=NOW))
    sweeping, sent = sweeper(store, bus, clock), []
    for _ in range(80):  # 40 s, a pass every half second
        if await sweeping.sweep_once():
            sent.append(clock.now - NOW)
            await handled(store, clock)
        clock.now += 0.5
    assert sent == [0, 2, 6, 14, 30]  # 2, 4, 8, 16 s apart: the stale time doubling up to MAX
    stored = await store.get_run(run(1).id)
    await store.update_run(stored.model_copy(update={"check_at": clock.now + STALE}), expected_seq=stored.seq)
    clock.now += STALE  # progress: the next idle spell starts over at the stale time, not 16 s
    assert await sweeping.sweep_once() == 1
    await handled(store, clock)
    clock.now += STALE
    assert await sweeping.sweep_once() == 1
    assert len(await commands(bus)) == 7
    await bus.stop()


async def test_a_run_whose_command_was_not_published_is_due_again_at_once(store: SqliteStore) -> None:
    clock, bus = Clock(), MemoryBus(partitions=2)
    await bus.start()
    await bus.stop()  # publishing now raises BusError
    await store.insert_run(run(1, check_at=NOW))
    with pytest.raises(BusError):
        await sweeper(store, bus, clock).sweep_once()
    assert await store.runs_due_for_check(clock.now, limit=10) == [run(1).id]


def test_the_longest_wait_is_never_shorter_than_the_stale_time() -> None:
    sweeping = Sweeper(None, None, clock=Clock(), interval=1, stale_seconds=10, batch=1, max_seconds=3)  # type: ignore[arg-type]
    assert sweeping.max_seconds == 10


def test_a_write_moves_the_runs_check_only_when_it_is_out_of_the_stale_window() -> None:
    now, stale = 1000.0, 30.0
    assert next_check(now + 20, now, stale) == now + 20, "half to all of stale_seconds ahead: kept"
    assert next_check(now + 15, now, stale) == now + 15
    assert next_check(now + 14.9, now, stale) == now + 30, "under half: a stalled run would be checked too soon"
    assert next_check(now - 5, now, stale) == now + 30, "overdue"
    assert next_check(now + 300, now, stale) == now + 30, "a reconcile in flight moved it far ahead"
