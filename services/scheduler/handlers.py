"""Scheduler handlers: load, decide (pure planner call), save with a conditional update, publish.

The scheduler is the only writer of run state. Every write is conditional (insert-if-absent on
deterministic keys, `seq`-guarded run updates), so a redelivered message changes nothing; a stale or
duplicate result instead re-ensures that the run's pending work was dispatched, which repairs a
crash between a store write and the publish that should have followed it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from libs.bus.ports import Bus
from libs.contracts import topics, v1, wrap
from libs.contracts.envelope import Envelope
from libs.core import planner
from libs.core.definition import Workflow
from libs.core.errors import BusError, ConcurrentUpdateError
from libs.core.run import NodeRun, Run, TriggerInfo, node_run_key
from libs.store.definitions import DefinitionCache
from libs.store.ports import Store, Timer
from services.scheduler import children, control, records, waits
from services.scheduler import events as run_events
from services.scheduler.admission import Admission
from services.scheduler.run_cache import RunCache
from services.scheduler.completion import complete_waiting_node, time_out_node

log = logging.getLogger("stepline.scheduler")
SOURCE = "stepline/scheduler"
MAX_RACES = 20
WAKEUP_HORIZON_SECONDS = 300.0


class Scheduler:
    def __init__(self, store: Store, bus: Bus, *, clock: Callable[[], float], stale_seconds: float) -> None:
        self.store = store
        self.bus = bus
        self.clock = clock
        self.stale_seconds = stale_seconds
        self.definitions = DefinitionCache(store)
        self.runs = RunCache(store)
        self.admission = Admission(store, clock)
        self.wakeups: set[asyncio.Task[None]] = set()

    async def handle_command(self, envelope: Envelope) -> None:
        msg = envelope.message()
        if isinstance(msg, v1.StartRun):
            await self.start_run(msg)
        elif isinstance(msg, v1.CompleteNode):
            await complete_waiting_node(self, msg)
        elif isinstance(msg, v1.FireTimer):
            await self.fire_timer(msg)
        elif isinstance(msg, v1.ReconcileRun):
            await self.reconcile(msg.run_id)
        elif isinstance(msg, v1.CancelRun):
            await control.cancel(self, msg)
        elif isinstance(msg, v1.AdmitRun):
            await control.admit(self, msg.run_id)
        else:
            log.warning("scheduler ignores %s on the command topic", envelope.type)

    async def handle_result(self, envelope: Envelope) -> None:
        msg = envelope.message()
        if isinstance(msg, v1.NodeResult):
            await self.apply(msg.run_id, records.outcome_of(msg))
            if msg.waiting:
                await waits.on_waiting(self, msg)

    async def start_run(self, msg: v1.StartRun) -> None:
        workflow = await self.definitions.get(msg.workflow, msg.version)
        pending = self._pending(workflow, msg)
        limit = workflow.concurrencyLimit
        if limit is not None:
            admitted = await self.admission.request(workflow.identifier, msg.run_id, limit)
            await control.admit_others(self, admitted, but=msg.run_id)
            if msg.run_id not in admitted:
                await self._queue(workflow, pending, limit)
                return
        decision = await control.start_decision(self, workflow, pending)
        run_events.stamp(workflow, None, decision, self.clock())
        stored, inserted = await self._insert(workflow, decision.run, limit)
        if stored.queued:
            return
        await self.store.insert_node_run(records.trigger_node_run(workflow, stored))
        if not inserted:
            await self.ensure_dispatched(workflow, stored)
            return
        await self.carry_out(workflow, stored, decision)

    def _pending(self, workflow: Workflow, msg: v1.StartRun) -> Run:
        """The run `msg` asks for, as stored while it waits for a concurrency slot."""
        now = self.clock()
        t = msg.trigger
        pending = planner.queued_run(
            workflow, run_id=msg.run_id, version=msg.version, inputs=msg.inputs, now=now,
            trigger=TriggerInfo(type=t.type, by=t.by, at=t.at, node=t.node),
            idempotency_key=msg.idempotency_key, trigger_output=msg.trigger_output).model_copy(
            update={"rerun_of": msg.rerun_of, "rerun_from": msg.rerun_from, "check_at": now + self.stale_seconds})
        children.link_parent(pending, msg)
        return pending

    async def _queue(self, workflow: Workflow, pending: Run, limit: int) -> None:
        """Store a run that got no slot (`run.queued`)."""
        run_events.stamp(workflow, None, planner.Decision(run=pending), self.clock())
        stored, _ = await self._insert(workflow, pending, limit)
        stored = await self.relay(stored)
        if stored.id == pending.id and not stored.queued:  # a redelivery: admitted meanwhile
            await self.ensure_dispatched(workflow, stored)

    async def _insert(self, workflow: Workflow, run: Run, limit: int | None) -> tuple[Run, bool]:
        """Insert-if-absent; when an earlier run holds the idempotency key, give back the slot (or
        queue place) this run id took."""
        stored, inserted = await self.store.insert_run(run)
        self.runs.put(stored)
        if stored.id != run.id and limit is not None:
            await control.admit_others(self, await self.admission.release(workflow.identifier, run.id, limit))
        return stored, inserted

    async def apply(self, run_id: str, outcome: planner.Outcome) -> None:
        """Apply one node outcome with an optimistic, seq-guarded update."""
        fresh = False
        for _ in range(MAX_RACES):
            run, cached = await self.runs.get(run_id, fresh=fresh)
            workflow = await self.definitions.get(run.workflow, run.version)
            decision = planner.apply_outcome(workflow, run, outcome, self.clock())
            if decision is None and cached:
                fresh = True
                continue
            if decision is None:
                await self.ensure_dispatched(workflow, run)
                return
            if await self.save_and_carry_out(workflow, run, decision):
                return
            fresh = True
        raise ConcurrentUpdateError(f"run {run_id} kept changing while applying {outcome.node_id}")

    async def fire_timer(self, msg: v1.FireTimer) -> None:
        if msg.kind == "retry":
            await self._retry(msg.run_id, str(msg.payload["node_id"]), int(msg.payload["attempt"]))
        elif msg.kind == "timeout":
            await self._timeout(msg)
        elif msg.kind in waits.TIMER_KINDS:
            await waits.fire(self, msg)
        await self.store.delete_timer(msg.timer_id)

    async def _retry(self, run_id: str, node_id: str, attempt: int) -> None:
        for _ in range(MAX_RACES):
            run, _ = await self.runs.get(run_id, fresh=True)
            workflow = await self.definitions.get(run.workflow, run.version)
            decision = planner.retry_due(workflow, run, node_id, attempt, self.clock())
            if decision is None:
                await self.ensure_dispatched(workflow, run)
                return
            if await self.save_and_carry_out(workflow, run, decision):
                return
        raise ConcurrentUpdateError(f"run {run_id} kept changing while retrying {node_id}")

    async def _timeout(self, msg: v1.FireTimer) -> None:
        await time_out_node(self, msg.run_id, str(msg.payload["node_run_key"]), float(msg.payload["seconds"]))

    async def save_and_carry_out(self, workflow: Workflow, run: Run, decision: planner.Decision) -> bool:
        """False when another writer got there first (the caller reloads and decides again)."""
        now = self.clock()
        decision.run.check_at = now + self.stale_seconds
        run_events.stamp(workflow, run, decision, now, sent_upto=self.runs.sent_upto(run.id))
        try:
            stored = await self.store.update_run(decision.run, expected_seq=run.seq)
        except ConcurrentUpdateError:
            self.runs.forget(run.id)
            return False
        self.runs.put(stored)
        await self.carry_out(workflow, stored, decision)
        return True

    async def carry_out(self, workflow: Workflow, run: Run, decision: planner.Decision) -> None:
        """Effects of a saved decision: node runs and timers stored, the outbox's run events relayed,
        then ExecuteNode published and timers armed. Relaying first means nothing the decision sets
        off (a fast node's result, a zero-delay retry) can load the run before its outbox is emptied
        and relay those events a second time."""
        now = self.clock()
        started = [(await self.store.insert_node_run(records.new_node_run(workflow, run, d.node_id, d.attempt, now)))[0]
                   for d in decision.dispatch]
        timers = [retry_timer(run.id, t) for t in decision.timers] + [timeout_timer(run.id, t) for t in decision.timeouts]
        for timer in timers:
            await self.store.put_timer(timer)
        await self.relay(run, clear=decision.run_completed)
        for record in started:
            await self.redrive(run, record)
        for timer in timers:
            self.wake_at(timer)
        if decision.run_completed:
            await children.on_run_completed(self, run)
            if workflow.concurrencyLimit is not None:
                admitted = await self.admission.release(workflow.identifier, run.id, workflow.concurrencyLimit)
                await control.admit_others(self, admitted)

    async def dispatch(self, workflow: Workflow, run: Run, node_id: str, attempt: int, now: float) -> None:
        record, _ = await self.store.insert_node_run(records.new_node_run(workflow, run, node_id, attempt, now))
        await self.redrive(run, record)

    async def redrive(self, run: Run, record: NodeRun) -> None:
        """Publish whatever moves this node run forward: ExecuteNode while it is not finished
        (a live lease makes the executor ignore it), its stored result once it is."""
        if record.status in ("COMPLETED", "WAITING"):  # WAITING: a waiting result the run has not applied
            await self.bus.publish(topics.NODE_RESULTS, wrap(v1.NodeResult.of(record), source=SOURCE))
        else:
            await self.bus.publish(topics.NODE_DISPATCH, wrap(
                records.execute_command(run, record.node_id, record.attempt), source=SOURCE))

    async def ensure_dispatched(self, workflow: Workflow, run: Run) -> None:
        """Repair: the outbox is relayed; every PENDING node has its node run and a dispatch; every
        RETRY_WAIT its timer."""
        run = await self.relay(run)
        if run.status == "COMPLETED":
            return
        now = self.clock()
        for node_id, progress in run.nodes.items():
            if progress.state == "PENDING":
                await self.dispatch(workflow, run, node_id, progress.attempt, now)
            elif progress.state == "RETRY_WAIT":
                node = workflow.node(node_id)
                delay = node.retry.delay_before(progress.attempt + 1) if node.retry else 0.0
                await self.store.put_timer(retry_timer(run.id, planner.RetryTimer(node_id, progress.attempt + 1, now + delay)))
            elif progress.state == "WAITING":
                record = await self.store.get_node_run(node_run_key(run.id, node_id, progress.attempt))
                if record.status == "COMPLETED":
                    await self.redrive(run, record)
                else:
                    await waits.ensure(self, run, record)

    async def reconcile(self, run_id: str) -> None:
        run, _ = await self.runs.get(run_id, fresh=True)
        run = await self.relay(run)
        if run.status == "COMPLETED":
            return
        workflow = await self.definitions.get(run.workflow, run.version)
        if run.queued and workflow.concurrencyLimit is not None:
            admitted = await self.admission.request(run.workflow, run.id, workflow.concurrencyLimit)
            await control.admit_others(self, admitted, but=run.id)
            if run.id in admitted:
                await control.admit(self, run.id)
        else:
            await self.ensure_dispatched(workflow, run)
        await self.store.postpone_check(run_id, self.clock() + self.stale_seconds)

    def wake_at(self, timer: Timer) -> None:
        """Fire a soon-due timer on time from this process. The stored timer stays the durable
        record: if this process dies first, the sweeper fires it; if both fire, the second finds
        nothing left to do."""
        delay = timer.due_at - self.clock()
        if delay > WAKEUP_HORIZON_SECONDS:
            return
        task = asyncio.create_task(self._wake(timer, max(0.0, delay)))
        self.wakeups.add(task)
        task.add_done_callback(self.wakeups.discard)

    async def _wake(self, timer: Timer, delay: float) -> None:
        await asyncio.sleep(delay)
        msg = v1.FireTimer(run_id=timer.run_id, timer_id=timer.id, kind=timer.kind, payload=timer.payload)
        try:
            await self.bus.publish(topics.RUN_COMMANDS, wrap(msg, source=SOURCE))
        except BusError:
            log.info("timer %s left to the sweeper: the bus is unavailable", timer.id)

    async def cancel_wakeups(self) -> None:
        for task in list(self.wakeups):
            task.cancel()
        await asyncio.gather(*self.wakeups, return_exceptions=True)

    async def relay(self, run: Run, *, clear: bool = True) -> Run:
        """The one path onto `stepline.run-events.v1`: publish the events of the run's outbox (written
        with the state changes they report, see events.py) that this process has not published yet.
        The next state change's write drops published events from the outbox; with `clear` (the
        run completed, or a repair path) a write conditional on `seq` empties it now. A crash before
        that publishes them again, with the same ids."""
        upto = self.runs.sent_upto(run.id)
        for raw in run.outbox:
            if (seq := int(raw["data"]["seq"])) > upto:
                await self.bus.publish(topics.RUN_EVENTS, Envelope.model_validate(raw))
                self.runs.mark_sent(run.id, seq)
        if not (clear and run.outbox):
            return run
        await self.store.clear_outbox(run.id, run.seq)
        return run.model_copy(update={"outbox": []})


def retry_timer(run_id: str, t: planner.RetryTimer) -> Timer:
    return Timer(id=f"retry:{node_run_key(run_id, t.node_id, t.attempt)}", run_id=run_id, kind="retry",
                 due_at=t.due_at, payload={"node_id": t.node_id, "attempt": t.attempt})


def timeout_timer(run_id: str, t: planner.TimeoutTimer) -> Timer:
    key = node_run_key(run_id, t.node_id, t.attempt)
    return Timer(id=f"timeout:{key}", run_id=run_id, kind="timeout", due_at=t.due_at,
                 payload={"node_run_key": key, "seconds": t.seconds})
