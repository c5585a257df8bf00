"""Scheduler handlers: load, decide (pure planner call), save with a conditional update, carry out.

The scheduler is the only writer of run state. One message type has one handler (`Scheduler.handlers`).
Every write is conditional (insert-if-absent on deterministic keys, `seq`-guarded run updates through
`update_run`), so a redelivered message changes nothing; a stale or duplicate result instead
re-ensures that the run's pending work was dispatched, which repairs a crash between a store write
and the publish that should have followed it. What a saved decision sets off is one `Effects` value
(effects.py), carried out by `carry_out` in one fixed order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from libs.bus.node_runs import republish
from libs.bus.publisher import Publisher
from libs.contracts import v1
from libs.contracts.envelope import Envelope
from libs.core import planner
from libs.core.definition import Workflow
from libs.core.errors import BusError, ConcurrentUpdateError
from libs.core.node_kinds import TIMER_KINDS
from libs.core.run import NodeRun, Outcome, Run, node_run_key
from libs.store.definitions import DefinitionCache
from libs.store.ports import Store, Timer
from libs.store.races import LOST, Lost, until_won
from services.scheduler import children, control, records, waits
from services.scheduler import events as run_events
from services.scheduler.admission import Admission
from services.scheduler.completion import complete_waiting_node, time_out_node
from services.scheduler.effects import Effects, retry_timer
from services.scheduler.run_cache import RunCache
from services.scheduler.sweeper import next_check

log = logging.getLogger("stepline.scheduler")
WAKEUP_HORIZON_SECONDS = 300.0
Decide = Callable[[Workflow, Run], Awaitable[planner.Decision | None]]
"""What a state change decides over the current run (None: nothing to change)."""
Handler = Callable[[Any], Awaitable[None]]


class Scheduler:
    def __init__(self, store: Store, publisher: Publisher, *, clock: Callable[[], float],
                 stale_seconds: float) -> None:
        self.store = store
        self.publisher = publisher
        self.clock = clock
        self.stale_seconds = stale_seconds
        self.definitions = DefinitionCache(store)
        self.runs = RunCache(store)
        self.admission = Admission(store, clock)
        self.wakeups: set[asyncio.Task[None]] = set()
        self.handlers: dict[type[v1.Message], Handler] = {
            v1.StartRun: self.start_run,
            v1.CompleteNode: lambda msg: complete_waiting_node(self, msg),
            v1.FireTimer: self.fire_timer,
            v1.ReconcileRun: lambda msg: self.reconcile(msg.run_id),
            v1.CancelRun: lambda msg: control.cancel(self, msg),
            v1.AdmitRun: lambda msg: control.admit(self, msg.run_id),
            v1.NodeResult: self.apply_result,
        }
        """One message type (on run-commands or node-results), one handler."""
        self.timers: dict[str, Handler] = {"retry": self._retry, "timeout": self._timeout,
                                           **{kind: lambda msg: waits.fire(self, msg) for kind in TIMER_KINDS}}
        """One timer kind, one handler of its FireTimer."""

    async def handle(self, envelope: Envelope) -> None:
        msg = envelope.message()
        handler = self.handlers.get(type(msg))
        if handler is None:
            log.warning("scheduler ignores %s", envelope.type)
            return
        await handler(msg)

    async def apply_result(self, msg: v1.NodeResult) -> None:
        await self.apply(msg.run_id, msg.node_id, msg.attempt, msg)
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
        await self.begin(workflow, pending, admitting=False)

    async def begin(self, workflow: Workflow, run: Run, *, admitting: bool) -> bool:
        """The start sequence of every start path, written once: the start decision and its events
        (`run.started` first), the run written (inserted; or, `admitting`, the stored queued `run`
        updated), the firing trigger's node run stored, then the decision carried out. False: the
        queued run changed meanwhile (the caller reloads)."""
        decision = await control.start_decision(self, workflow, run)
        written = await self._write_start(workflow, run, decision, admitting=admitting)
        if written is None:
            return False
        stored, fresh = written
        if stored.queued:
            return True
        trigger = records.trigger_node_run(workflow, stored)
        if fresh:
            await self.carry_out(workflow, stored,
                                 Effects.of(workflow, stored, decision, self.clock(), completed_records=(trigger,)))
        else:  # a redelivered start: the stored run only needs its pending work re-ensured
            await self.store.insert_node_run(trigger)
            await self.ensure_dispatched(workflow, stored)
        return True

    async def _write_start(self, workflow: Workflow, run: Run, decision: planner.Decision, *,
                           admitting: bool) -> tuple[Run, bool] | None:
        """The started run as stored and whether this write made it (None: a lost race)."""
        if admitting:
            saved = await self.save(workflow, run, decision)
            return None if saved is None else (saved, True)
        envelopes = run_events.stamp(workflow, None, decision, self.clock(), source=self.publisher.source)
        return await self._insert(workflow, decision.run, workflow.concurrencyLimit, envelopes)

    def _pending(self, workflow: Workflow, msg: v1.StartRun) -> Run:
        """The run `msg` asks for, as stored while it waits for a concurrency slot."""
        now = self.clock()
        pending = planner.queued_run(
            workflow, run_id=msg.run_id, version=msg.version, inputs=msg.inputs, now=now, trigger=msg.trigger,
            idempotency_key=msg.idempotency_key, trigger_output=msg.trigger_output).model_copy(
            update={"rerun_of": msg.rerun_of, "rerun_from": msg.rerun_from, "check_at": now + self.stale_seconds,
                    "depth": msg.depth})
        children.link_parent(pending, msg)
        return pending

    async def _queue(self, workflow: Workflow, pending: Run, limit: int) -> None:
        """Store a run that got no slot (`run.queued`)."""
        envelopes = run_events.stamp(workflow, None, planner.Decision(run=pending), self.clock(),
                                     source=self.publisher.source)
        stored, _ = await self._insert(workflow, pending, limit, envelopes)
        stored = await self.relay(stored)
        if stored.id == pending.id and not stored.queued:  # a redelivery: admitted meanwhile
            await self.ensure_dispatched(workflow, stored)

    async def _insert(self, workflow: Workflow, run: Run, limit: int | None,
                      envelopes: list[Envelope]) -> tuple[Run, bool]:
        """Insert-if-absent (`envelopes`: the events of its outbox); when an earlier run holds the
        idempotency key, give back the slot (or queue place) this run id took."""
        stored, inserted = await self.store.insert_run(run)
        self.runs.put(stored)
        if inserted:
            self.runs.written(envelopes)
        if stored.id != run.id and limit is not None:
            await control.admit_others(self, await self.admission.release(workflow.identifier, run.id, limit))
        return stored, inserted

    async def apply(self, run_id: str, node_id: str, attempt: int, outcome: Outcome) -> None:
        """Apply the outcome of one node attempt, starting from the cached run."""
        async def decide(workflow: Workflow, run: Run) -> planner.Decision | None:
            return planner.apply_outcome(workflow, run, node_id, attempt, outcome, self.clock())

        await self.update_run(run_id, decide, what=f"applying {node_id}", cached=True)

    async def apply_stored(self, record: NodeRun) -> None:
        """Apply what a finished (or waiting) node run stands for."""
        await self.apply(record.run_id, record.node_id, record.attempt, record.outcome())

    async def update_run(self, run_id: str, decide: Decide, *, what: str, cached: bool = False,
                         repair: bool = True) -> None:
        """The one way a run changes: `decide` over the run, the decision written seq-guarded and
        carried out; a lost race reloads and decides again (races.until_won). `cached`: start from
        the cached copy (nothing to decide against it is checked again against the store).
        Nothing to decide: with `repair`, the run's pending work is re-ensured."""
        fresh = not cached

        async def attempt() -> Lost | None:
            nonlocal fresh
            run, from_cache = await self.runs.get(run_id, fresh=fresh)
            fresh = True
            workflow = await self.definitions.get(run.workflow, run.version)
            decision = await decide(workflow, run)
            if decision is None:
                if from_cache:
                    return LOST
                if repair:
                    await self.ensure_dispatched(workflow, run)
                return None
            return None if await self.save_and_carry_out(workflow, run, decision) else LOST

        await until_won(attempt, f"run {run_id} (while {what})")

    async def fire_timer(self, msg: v1.FireTimer) -> None:
        fire = self.timers.get(msg.kind)
        if fire is not None:
            await fire(msg)
        await self.store.delete_timer(msg.timer_id)

    async def _retry(self, msg: v1.FireTimer) -> None:
        node_id, attempt = str(msg.payload["node_id"]), int(msg.payload["attempt"])

        async def decide(workflow: Workflow, run: Run) -> planner.Decision | None:
            return planner.retry_due(workflow, run, node_id, attempt, self.clock())

        await self.update_run(msg.run_id, decide, what=f"retrying {node_id}")

    async def _timeout(self, msg: v1.FireTimer) -> None:
        await time_out_node(self, msg.run_id, str(msg.payload["node_run_key"]), float(msg.payload["seconds"]))

    async def save_and_carry_out(self, workflow: Workflow, run: Run, decision: planner.Decision) -> bool:
        """False when another writer got there first (the caller reloads and decides again)."""
        stored = await self.save(workflow, run, decision)
        if stored is None:
            return False
        await self.carry_out(workflow, stored, Effects.of(workflow, stored, decision, self.clock()))
        return True

    async def save(self, workflow: Workflow, run: Run, decision: planner.Decision) -> Run | None:
        """The seq-guarded write of a decision over `run`, with its events; None on a lost race."""
        now = self.clock()
        decision.run.check_at = next_check(run.check_at, now, self.stale_seconds)
        envelopes = run_events.stamp(workflow, run, decision, now, source=self.publisher.source,
                                     sent_upto=self.runs.sent_upto(run.id))
        try:
            stored = await self.store.update_run(decision.run, expected_seq=run.seq)
        except ConcurrentUpdateError:
            self.runs.forget(run.id)
            return None
        self.runs.put(stored)
        self.runs.written(envelopes)
        return stored

    async def carry_out(self, workflow: Workflow, run: Run, effects: Effects) -> None:
        """The one place the effects of a saved decision happen, in the order effects.py gives:
        node runs stored, timers stored, the outbox's run events relayed, the dispatched attempts
        driven, timers armed, a completed run's followers told. Relaying first means nothing the
        decision sets off (a fast node's result, a zero-delay retry) can load the run before its
        outbox is emptied and relay those events a second time."""
        for record in effects.completed_records:
            await self.store.insert_node_run(record)
        started = [(await self.store.insert_node_run(record))[0] for record in effects.dispatched]
        for timer in effects.timers:
            await self.store.put_timer(timer)
        await self.relay(run, clear=effects.run_completed)
        for record in started:
            await self.redrive(run, record)
        for timer in effects.timers:
            self.wake_at(timer)
        if effects.run_completed:
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
        await republish(self.publisher, record,
                        execute=lambda: records.execute_command(run, record.node_id, record.attempt))

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
            if run.outbox:  # events not relayed yet: due again at the stale pace, not the sweeper's longest
                await self.store.postpone_check(run_id, self.clock() + self.stale_seconds)
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
            await self.publisher.publish(msg)
        except BusError:
            log.info("timer %s left to the sweeper: the bus is unavailable", timer.id)

    async def cancel_wakeups(self) -> None:
        for task in list(self.wakeups):
            task.cancel()
        await asyncio.gather(*self.wakeups, return_exceptions=True)

    async def relay(self, run: Run, *, clear: bool = True) -> Run:
        """The one path onto `stepline.run-events.v1`: publish the events of the run's outbox (written
        with the state changes they report, see events.py) that this process has not published yet,
        together (they share a produce request on Kafka). The next state change's write drops
        published events from the outbox; with `clear` (the run completed, or a repair path) a write
        conditional on `seq` empties it now. A crash before that publishes them again, with the same
        ids."""
        upto = self.runs.sent_upto(run.id)
        unsent = [raw for raw in run.outbox if int(raw["data"]["seq"]) > upto]
        if unsent:
            await self.publisher.publish_envelopes([self.runs.envelope(raw) for raw in unsent])
            self.runs.mark_sent(run.id, max(int(raw["data"]["seq"]) for raw in unsent))
        if not (clear and run.outbox):
            return run
        await self.store.clear_outbox(run.id, run.seq)
        return run.model_copy(update={"outbox": []})

