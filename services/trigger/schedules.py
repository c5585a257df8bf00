"""SCHEDULE_TRIGGER ingress: a lease per schedule in the entry store, claimed tick by tick.

Every `poll` seconds each trigger replica walks the live SCHEDULE_TRIGGER nodes. Each has an entry
(kind `schedule`, key `{workflow}/{node}`, data `{nextTick, lastTick, version, pending}`):
- no entry yet: insert one whose next tick is the first after now (a new schedule never fires for
  the past);
- the live version changed: recompute the next tick from now under the new definition;
- the next tick is due: `libs.core.schedule.due` says which tick fires and which is next, and one
  compare-and-set (`replace_entry(expected_rev=...)`) moves the lease on. Only the replica whose
  write wins fires, so each tick fires once however many replicas run. A paused workflow's ticks
  are claimed and not fired.
- The winner records the tick it fires as `pending` in that same write and clears it once
  `StartRun` is published. If it dies in between, a replica that finds a `pending` older than
  `retry` seconds claims it (another compare-and-set) and publishes again; the idempotency key
  `tick:{node}:{tick}` makes the scheduler start one run either way.
Entries of schedules that are no longer live are deleted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from libs.core.schedule import Schedule, due, next_tick, tick_iso
from libs.store.pausing import is_paused
from libs.store.ports import Entry, Store
from services.trigger.live_triggers import LiveTrigger, LiveTriggers
from services.trigger.polling import every
from services.trigger.settings import TriggerSettings
from services.trigger.starting import RunStarter, TriggerStart

KIND: Final = "schedule"
NODE_TYPE: Final = "SCHEDULE_TRIGGER"

log = logging.getLogger("stepline.trigger.schedule")


@dataclass(frozen=True)
class ScheduleTiming:
    poll: float
    """Seconds between passes."""
    grace: float
    """A tick at most this late is on time; older ones were missed (see libs/core/schedule.py)."""
    retry: float
    """A claimed tick whose publish was not confirmed after this long is published again."""


def lease_key(workflow: str, node: str) -> str:
    return f"{workflow}/{node}"


def tick_output(schedule: Schedule, tick: int) -> dict[str, Any]:
    return {"scheduledAt": tick_iso(schedule, tick), "tick": tick}


class ScheduleLoop:
    def __init__(self, store: Store, starter: RunStarter, live: LiveTriggers,
                 clock: Callable[[], float], timing: ScheduleTiming) -> None:
        self._store = store
        self._starter = starter
        self._live = live
        self._clock = clock
        self._timing = timing
        self._invalid: set[tuple[str, int, str]] = set()

    async def run(self) -> None:
        """Pass after pass until cancelled; a pass that fails is logged and the next one retries."""
        await every(self._timing.poll, self.pass_once, "schedule pass")

    async def pass_once(self) -> None:
        """One walk over every live schedule (what `run` does every `poll` seconds)."""
        listed_at = self._clock()
        live = await self._live.of_type(NODE_TYPE)
        for trigger in live:
            try:
                await self._step(trigger)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one broken schedule must not hold up the others
                log.warning("schedule %s/%s: %s: %s", trigger.workflow.identifier, trigger.node.identifier,
                            type(exc).__name__, exc)
        await self._forget(live, listed_at)

    async def _step(self, trigger: LiveTrigger) -> None:
        schedule = self._schedule(trigger)
        if schedule is None:
            return
        key = lease_key(trigger.workflow.identifier, trigger.node.identifier)
        now = self._clock()
        entry = await self._store.get_entry(KIND, key)
        if entry is None:
            data = {"nextTick": next_tick(schedule, now), "lastTick": None, "version": trigger.version,
                    "pending": None}
            await self._store.insert_entry(KIND, key, data, now=now)
            return
        if entry.data.get("version") != trigger.version:
            data = {**entry.data, "nextTick": next_tick(schedule, now), "version": trigger.version}
            await self._store.replace_entry(KIND, key, data, expected_rev=entry.rev, now=now)
            return
        if entry.data.get("pending") is not None:
            await self._retry_pending(trigger, schedule, entry, now)
            return
        await self._advance(trigger, schedule, entry, now)

    async def _advance(self, trigger: LiveTrigger, schedule: Schedule, entry: Entry, now: float) -> None:
        step = due(schedule, int(entry.data["nextTick"]), now, grace=self._timing.grace)
        if step is None:
            return
        workflow = trigger.workflow.identifier
        fire = step.fire
        if fire is not None and await is_paused(self._store, workflow):
            log.info("schedule %s/%s: tick %s skipped, the workflow is paused", workflow, trigger.node.identifier,
                     fire)
            fire = None
        pending = None if fire is None else {"tick": fire, "version": trigger.version, "at": now}
        last = fire if fire is not None else entry.data.get("lastTick")
        data = {**entry.data, "nextTick": step.next_tick, "lastTick": last, "pending": pending}
        claimed = await self._store.replace_entry(KIND, entry.key, data, expected_rev=entry.rev, now=now)
        if claimed is None:
            return  # another replica claimed this tick
        if step.skipped:
            log.info("schedule %s/%s: %d due tick(s) start no run (missedTicks %s)", workflow,
                     trigger.node.identifier, step.skipped, schedule.missed_ticks)
        if fire is not None:
            await self._fire(trigger.workflow.identifier, trigger.version, trigger.node.identifier, schedule, fire,
                             claimed)

    async def _retry_pending(self, trigger: LiveTrigger, schedule: Schedule, entry: Entry, now: float) -> None:
        pending = entry.data["pending"]
        if now - float(pending.get("at", 0)) < self._timing.retry:
            return  # its claimer is (probably) still publishing
        data = {**entry.data, "pending": {**pending, "at": now}}
        claimed = await self._store.replace_entry(KIND, entry.key, data, expected_rev=entry.rev, now=now)
        if claimed is None:
            return
        log.warning("schedule %s/%s: publishing tick %s again (its first publish was not confirmed)",
                    trigger.workflow.identifier, trigger.node.identifier, pending["tick"])
        await self._fire(trigger.workflow.identifier, int(pending["version"]), trigger.node.identifier, schedule,
                         int(pending["tick"]), claimed)

    async def _fire(self, workflow: str, version: int, node: str, schedule: Schedule, tick: int,
                    claimed: Entry) -> None:
        await self._starter.fire(TriggerStart(
            workflow=workflow, version=version, node=node, trigger_type="SCHEDULE",
            output=tick_output(schedule, tick), idempotency_key=f"tick:{node}:{tick}", wait=False))
        done = {**claimed.data, "pending": None}
        await self._store.replace_entry(KIND, claimed.key, done, expected_rev=claimed.rev, now=self._clock())

    def _schedule(self, trigger: LiveTrigger) -> Schedule | None:
        try:
            return Schedule.from_config(trigger.node.config)
        except ValueError as exc:  # stored before validation knew this rule: say so once
            marker = (trigger.workflow.identifier, trigger.version, trigger.node.identifier)
            if marker not in self._invalid:
                self._invalid.add(marker)
                log.error("schedule %s/%s (version %d) is invalid and never fires: %s", *marker, exc)
            return None

    async def _forget(self, live: list[LiveTrigger], listed_at: float) -> None:
        """Delete the leases of schedules that are no longer live (workflow deleted, node removed).
        A lease written since the live list was read may belong to a schedule that list missed."""
        keys = {lease_key(t.workflow.identifier, t.node.identifier) for t in live}
        offset = 0
        while True:
            page = await self._store.list_entries(KIND, limit=500, offset=offset)
            for entry in page:
                if entry.key not in keys and entry.updated_at < listed_at:
                    await self._store.delete_entry(KIND, entry.key)
            if len(page) < 500:
                return
            offset += sum(1 for e in page if e.key in keys or e.updated_at >= listed_at)


def schedule_loop(settings: TriggerSettings, store: Store, starter: RunStarter, live: LiveTriggers, *,
                  clock: Callable[[], float]) -> Callable[[], Awaitable[None]]:
    """The trigger workers' schedule loop (a `Service` loop)."""
    timing = ScheduleTiming(poll=settings.schedule_poll_seconds, grace=settings.schedule_grace_seconds,
                            retry=settings.schedule_retry_seconds)
    return ScheduleLoop(store, starter, live, clock, timing).run
