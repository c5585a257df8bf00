"""The scheduler below the service level: one `Scheduler` on the in-memory SQLite store and the
in-memory bus, driven one message at a time (no consumers, no executor, a clock the test moves), so
each decision's writes and messages can be read in the order they happened."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from libs.bus.memory import MemoryBus
from libs.bus.publisher import Publisher
from libs.contracts import topics, v1, wrap
from libs.contracts.envelope import Envelope
from libs.core import planner
from libs.core.errors import ConcurrentUpdateError, NotFoundError
from libs.core.run import TriggerInfo, node_run_key
from libs.core.versioning import WorkflowRecord
from libs.store.races import LOST, MAX_RACES, Lost, until_won
from libs.store.sqlite import SqliteStore
from services.scheduler.effects import Effects
from services.scheduler.handlers import Scheduler

LONG_BACKOFF = 3600.0
"""Beyond the scheduler's wake-up horizon: a retry timer is only stored, and the test fires it."""


def definition(identifier: str, **extra: Any) -> dict[str, Any]:
    return {"identifier": identifier, **extra,
            "nodes": [{"identifier": "trigger",
                       "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {"properties": {}}}},
                      {"identifier": "call", "config": {"type": "WEBHOOK", "url": "http://127.0.0.1:9/x"},
                       "retry": {"maxAttempts": 2, "initialIntervalSeconds": LONG_BACKOFF}}],
            "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "call"}]}


class ObservedBus(MemoryBus):
    """The in-memory bus, remembering every publish in order and, for each ExecuteNode, whether its
    node run was already stored when it was published."""

    def __init__(self, store: SqliteStore) -> None:
        super().__init__(partitions=1)
        self.store = store
        self.log: list[tuple[str, Envelope]] = []
        self.dispatched_after_insert: list[bool] = []

    async def publish(self, topic: str, envelope: Envelope) -> None:
        if topic == topics.NODE_DISPATCH:
            key = envelope.data["node_run_key"]
            self.dispatched_after_insert.append(await _exists(self.store, key))
        self.log.append((topic, envelope))
        await super().publish(topic, envelope)

    def on(self, topic: str) -> list[Envelope]:
        return [e for t, e in self.log if t == topic]

    def events(self, run_id: str) -> list[str]:
        return [e.type for e in self.on(topics.RUN_EVENTS) if e.subject == run_id]


async def _exists(store: SqliteStore, key: str) -> bool:
    try:
        await store.get_node_run(key)
    except NotFoundError:
        return False
    return True


@dataclass
class Harness:
    store: SqliteStore
    bus: ObservedBus
    scheduler: Scheduler
    now: list[float] = field(default_factory=lambda: [1000.0])

    async def send(self, msg: v1.Message) -> None:
        await self.scheduler.handle(wrap(msg, source="tests"))

    async def start(self, run_id: str, workflow: str = "wf") -> None:
        trigger = TriggerInfo(type="API", by="ann", at=self.now[0], node="trigger")
        await self.send(v1.StartRun(run_id=run_id, workflow=workflow, version=1, trigger=trigger))

    async def result(self, run_id: str, result: str, *, attempt: int = 1, retryable: bool = False) -> None:
        await self.send(v1.NodeResult(run_id=run_id, node_id="call", attempt=attempt, result=result,
                                      node_run_key=node_run_key(run_id, "call", attempt), retryable=retryable,
                                      output={"ok": result == "SUCCESS"}))


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    async with SqliteStore(":memory:") as store:
        for identifier, extra in (("wf", {}), ("gated", {"concurrencyLimit": 1})):
            await store.create_workflow(WorkflowRecord(identifier=identifier, created_at=0.0, updated_at=0.0),
                                        definition(identifier, **extra))
        bus = ObservedBus(store)
        now = [1000.0]
        scheduler = Scheduler(store, Publisher(bus, "stepline/scheduler"), clock=lambda: now[0], stale_seconds=30.0)
        yield Harness(store, bus, scheduler, now)
        await scheduler.cancel_wakeups()


# ---- one command, one handler -----------------------------------------------------------------

def test_every_command_and_result_has_one_handler(h: Harness) -> None:
    assert set(h.scheduler.handlers) == {v1.StartRun, v1.CompleteNode, v1.FireTimer, v1.ReconcileRun,
                                         v1.CancelRun, v1.AdmitRun, v1.NodeResult}
    assert set(h.scheduler.timers) == {"retry", "timeout", "delay", "approval-sla"}


async def test_a_message_without_a_handler_changes_nothing(h: Harness) -> None:
    await h.send(v1.ExecuteNode(run_id="wfr_x", workflow="wf", version=1, node_id="call", attempt=1,
                                node_run_key="wfr_x/call/1"))
    assert h.bus.log == []
    with pytest.raises(NotFoundError):
        await h.store.get_run("wfr_x")


# ---- the start sequence -----------------------------------------------------------------------

async def test_a_start_stores_the_run_and_its_trigger_node_run_then_drives_the_next_node(h: Harness) -> None:
    await h.start("wfr_a")
    run = await h.store.get_run("wfr_a")
    assert {n: p.state for n, p in run.nodes.items()} == {"trigger": "SUCCEEDED", "call": "PENDING"}
    assert (await h.store.get_node_run("wfr_a/trigger/1")).status == "COMPLETED"
    assert h.bus.events("wfr_a") == ["run.started", "node.completed", "node.started"]
    [execute] = [e.message() for e in h.bus.on(topics.NODE_DISPATCH)]
    assert isinstance(execute, v1.ExecuteNode) and (execute.node_id, execute.attempt) == ("call", 1)
    assert h.bus.dispatched_after_insert == [True], "the node run is stored before ExecuteNode is published"
    last_event = max(i for i, (t, _) in enumerate(h.bus.log) if t == topics.RUN_EVENTS)
    first_dispatch = min(i for i, (t, _) in enumerate(h.bus.log) if t == topics.NODE_DISPATCH)
    assert last_event < first_dispatch, "the decision's events are relayed before its attempts are driven"


async def test_a_redelivered_start_changes_nothing_but_re_drives_the_pending_node(h: Harness) -> None:
    await h.start("wfr_a")
    first = await h.store.get_run("wfr_a")
    await h.start("wfr_a")
    assert h.bus.events("wfr_a") == ["run.started", "node.completed", "node.started"]
    assert [e.data["node_id"] for e in h.bus.on(topics.NODE_DISPATCH)] == ["call", "call"]
    assert (await h.store.get_run("wfr_a")).seq == first.seq


async def test_a_queued_run_admitted_later_starts_with_run_started(h: Harness) -> None:
    await h.start("wfr_first", "gated")
    await h.start("wfr_second", "gated")
    assert (await h.store.get_run("wfr_second")).queued
    assert h.bus.events("wfr_second") == ["run.queued"]
    await h.result("wfr_first", "SUCCESS")
    [admit] = [e.message() for e in h.bus.on(topics.RUN_COMMANDS)]
    assert admit == v1.AdmitRun(run_id="wfr_second")
    await h.send(admit)
    assert h.bus.events("wfr_second") == ["run.queued", "run.started", "node.completed", "node.started"]
    assert (await h.store.get_node_run("wfr_second/trigger/1")).status == "COMPLETED"
    assert h.bus.dispatched_after_insert == [True, True]


# ---- results, retries, races ------------------------------------------------------------------

async def test_a_result_completes_the_run_and_its_duplicate_changes_nothing(h: Harness) -> None:
    await h.start("wfr_a")
    await h.result("wfr_a", "SUCCESS")
    run = await h.store.get_run("wfr_a")
    assert (run.status, run.result, run.outbox) == ("COMPLETED", "SUCCESS", [])
    published = len(h.bus.log)
    await h.result("wfr_a", "SUCCESS")
    assert len(h.bus.log) == published and (await h.store.get_run("wfr_a")).seq == run.seq
    assert h.bus.events("wfr_a") == ["run.started", "node.completed", "node.started", "node.completed",
                                     "run.completed"]


async def test_a_retry_timer_is_stored_then_fired_into_the_next_attempt(h: Harness) -> None:
    await h.start("wfr_a")
    await h.result("wfr_a", "FAILED", retryable=True)
    [timer] = await h.store.claim_due_timers(h.now[0] + LONG_BACKOFF, lease_seconds=30.0, limit=10)
    assert timer.id == "retry:wfr_a/call/2" and len(h.bus.on(topics.NODE_DISPATCH)) == 1
    h.now[0] += LONG_BACKOFF
    await h.send(v1.FireTimer(run_id="wfr_a", timer_id=timer.id, kind=timer.kind, payload=timer.payload))
    dispatched = [e.message() for e in h.bus.on(topics.NODE_DISPATCH)]
    assert [(m.node_id, m.attempt) for m in dispatched] == [("call", 1), ("call", 2)]  # type: ignore[attr-defined]
    assert await h.store.claim_due_timers(h.now[0] + LONG_BACKOFF, lease_seconds=30.0, limit=10) == []
    assert h.bus.events("wfr_a")[-2:] == ["node.retrying", "node.started"]


async def test_a_result_that_lost_the_race_is_decided_again_against_the_stored_run(h: Harness) -> None:
    """Another replica cancels the run after this scheduler cached it: applying a result from the
    cached copy loses the seq-guarded write, reloads, and finds nothing left to apply."""
    await h.start("wfr_a")
    other = Scheduler(h.store, Publisher(MemoryBus(1), "stepline/scheduler"), clock=lambda: h.now[0],
                      stale_seconds=30.0)
    await other.handle(wrap(v1.CancelRun(run_id="wfr_a", by="bob"), source="tests"))
    await h.result("wfr_a", "SUCCESS")
    run = await h.store.get_run("wfr_a")
    assert (run.status, run.result, run.nodes["call"].state) == ("COMPLETED", "CANCELLED", "CANCELLED")
    assert h.bus.events("wfr_a") == ["run.started", "node.completed", "node.started"], "nothing of the lost decision"


async def test_until_won_retries_lost_attempts_then_gives_up() -> None:
    tries: list[int] = []

    async def wins_third_time() -> str | Lost:
        tries.append(1)
        return "done" if len(tries) == 3 else LOST

    assert await until_won(wins_third_time, "x") == "done" and len(tries) == 3

    async def always_loses() -> None | Lost:
        tries.append(1)
        return LOST

    tries.clear()
    with pytest.raises(ConcurrentUpdateError, match="slots of wf kept changing"):
        await until_won(always_loses, "slots of wf")
    assert len(tries) == MAX_RACES


# ---- effects ----------------------------------------------------------------------------------

async def test_effects_of_a_decision_name_its_node_runs_and_timers(h: Harness) -> None:
    workflow = await h.scheduler.definitions.get("wf", 1)
    run = planner.queued_run(workflow, run_id="wfr_e", version=1, inputs={}, trigger=TriggerInfo(node="trigger"),
                             now=5.0)
    decision = planner.Decision(run=run, dispatch=[planner.Dispatch("call", 2)],
                                timers=[planner.RetryTimer("call", 3, 9.0, "HTTP 503")],
                                timeouts=[planner.TimeoutTimer("call", 2, 7.0, 2.0)], run_completed=True)
    effects = Effects.of(workflow, run, decision, 6.0)
    assert [(r.key, r.status, r.created_at) for r in effects.dispatched] == [("wfr_e/call/2", "PENDING", 6.0)]
    assert [(t.id, t.due_at) for t in effects.timers] == [("retry:wfr_e/call/3", 9.0), ("timeout:wfr_e/call/2", 7.0)]
    assert effects.run_completed and effects.completed_records == ()
