"""EVENT_TRIGGER `TIMER_EXPIRED`: a run when the date-time in an entity's `propertyIdentifier` passes,
once per entity and value, durably.

Every catalog event (its own consumer group on the catalog-events topic) is matched against the live
TIMER_EXPIRED triggers of its blueprint and workspace: the entity's current value becomes a timer entry
(kind `entity-timer`, key `{workflow}|{node}|{entity}|{value}`, insert-if-absent, so one entity and
value make one timer however often the event is delivered), and timers of the same entity holding
another value, or of a deleted entity, are removed. Every `poll` seconds the timer loop fires the due
ones: `StartRun` with the idempotency key `timer:{node}:{entity}:{value}` (a replica that fires the same
timer starts nothing new), then a compare-and-set marks the entry fired. A timer whose trigger is no
longer live is dropped; a paused workflow's is marked fired without a run; a condition that does not
hold on the entity (or fails) fires nothing. Entities last changed before their workflow existed have
no timer (Stepline learns timers from catalog events).

The run's trigger output is `{action: "TIMER_EXPIRED", diff: {before, after}, context: {blueprintIdentifier,
entityIdentifier, propertyIdentifier}, timestamp}`, both sides the entity as last seen.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from libs.catalog.entities import iso_time
from libs.catalog.events import InvalidCatalogEventError, event_of
from libs.contracts import topics, v1
from libs.contracts.envelope import Envelope
from libs.core.catalog import TIMER_EXPIRED
from libs.core.errors import TemplateError
from libs.core.instants import parse_instant
from libs.core.workspaces import belongs_to
from libs.expressions import evaluate as expressions
from libs.runtime.service import Subscription
from libs.store.pausing import is_paused
from libs.store.ports import Entry, Store
from services.trigger.event_triggers import NODE_TYPE, condition_holds
from services.trigger.live_triggers import LiveTrigger, LiveTriggers
from services.trigger.polling import every
from services.trigger.settings import TriggerSettings
from services.trigger.starting import RunStarter, TriggerStart

KIND: Final = "entity-timer"
GROUP_SUFFIX: Final = "-timers"
PAGE: Final = 500
log = logging.getLogger("stepline.trigger.timers")


def timer_property(trigger: LiveTrigger) -> str | None:
    event = trigger.node.config.get("event")
    if not isinstance(event, dict) or event.get("type") != TIMER_EXPIRED:
        return None
    prop = event.get("propertyIdentifier")
    return prop if isinstance(prop, str) else None


def due_of(entity: dict[str, Any] | None, prop: str) -> tuple[str, float] | None:
    """The entity's timer value and when it is due; None when it holds no date-time."""
    properties = entity.get("properties") if isinstance(entity, dict) else None
    value = properties.get(prop) if isinstance(properties, dict) else None
    try:
        return (value, parse_instant(value)) if isinstance(value, str) else None
    except ValueError:
        return None


def entity_prefix(trigger: LiveTrigger, entity: str) -> str:
    return f"{trigger.workflow.identifier}|{trigger.node.identifier}|{entity}|"


class EntityTimers:
    def __init__(self, store: Store, starter: RunStarter, live: LiveTriggers, *, clock: Callable[[], float]) -> None:
        self.store = store
        self.starter = starter
        self.live = live
        self.clock = clock

    async def handle(self, envelope: Envelope) -> None:
        """The catalog-events handler of the timer group (anything not a catalog event is ignored)."""
        try:
            event = event_of(envelope, timestamp=iso_time(self.clock()))
        except InvalidCatalogEventError:
            return  # the event-trigger group logs it
        if event is not None:
            await self.record(event)

    async def record(self, event: v1.CatalogEvent) -> None:
        """Set (or clear) the timers this event's entity holds for every live TIMER_EXPIRED trigger."""
        for trigger in await self.live.of_type(NODE_TYPE):
            prop = timer_property(trigger)
            wanted = trigger.node.config.get("event", {}).get("blueprintIdentifier")
            if prop is None or wanted != event.context.blueprintIdentifier:
                continue
            if belongs_to(trigger.workflow.identifier, event.workspace):
                await self._set(trigger, prop, event)

    async def _set(self, trigger: LiveTrigger, prop: str, event: v1.CatalogEvent) -> None:
        entity_id = event.context.entityIdentifier
        entity = event.diff.after if event.action != "DELETE" else None
        timer = due_of(entity, prop)
        prefix = entity_prefix(trigger, entity_id)
        for old in await self.store.list_entries(KIND, prefix=prefix, limit=PAGE):
            if timer is None or old.key != prefix + timer[0]:
                await self.store.delete_entry(KIND, old.key)
        if timer is not None:
            data = {"workflow": trigger.workflow.identifier, "node": trigger.node.identifier, "property": prop,
                    "blueprint": event.context.blueprintIdentifier, "entity": entity, "entityIdentifier": entity_id,
                    "value": timer[0], "due": timer[1], "fired": False}
            await self.store.insert_entry(KIND, prefix + timer[0], data, now=self.clock())

    async def run(self, poll: float) -> None:
        """Fire due timers every `poll` seconds until cancelled; a failed pass is logged and retried."""
        await every(poll, self.pass_once, "timer pass")

    async def pass_once(self) -> int:
        """Fire every due timer once; the number fired. The live triggers are read only when a timer is due."""
        now, fired, offset = self.clock(), 0, 0
        live: dict[tuple[str, str], LiveTrigger] | None = None
        while True:
            page = await self.store.list_entries(KIND, limit=PAGE, offset=offset)
            for entry in page:
                if entry.data.get("fired") or float(entry.data["due"]) > now:
                    continue
                if live is None:
                    live = {(t.workflow.identifier, t.node.identifier): t
                            for t in await self.live.of_type(NODE_TYPE)}
                fired += await self._fire(entry, live.get((entry.data["workflow"], entry.data["node"])))
            if len(page) < PAGE:
                return fired
            offset += PAGE

    async def _fire(self, entry: Entry, trigger: LiveTrigger | None) -> int:
        data = entry.data
        if trigger is None or timer_property(trigger) != data["property"]:
            await self.store.delete_entry(KIND, entry.key)
            return 0
        payload = timer_event(data, self.clock())
        started = 0
        if await is_paused(self.store, data["workflow"]):
            log.info("workflow %s is paused: timer %s fires no run", data["workflow"], entry.key)
        elif await self._holds(trigger, payload):
            await self.starter.fire(TriggerStart(
                workflow=data["workflow"], version=trigger.version, node=data["node"], trigger_type="EVENT",
                output=payload, idempotency_key=f"timer:{data['node']}:{data['entityIdentifier']}:{data['value']}",
                wait=False))
            started = 1
        await self.store.replace_entry(KIND, entry.key, {**data, "fired": True}, expected_rev=entry.rev,
                                       now=self.clock())
        return started

    async def _holds(self, trigger: LiveTrigger, payload: dict[str, Any]) -> bool:
        try:
            at = f"{expressions.node_at(trigger.workflow, trigger.node.identifier)}/config"
            return await condition_holds(trigger.node.config, payload, at=at)
        except TemplateError as exc:
            log.warning("workflow %s trigger %s: condition failed on an expired timer, so it does not fire: %s",
                        trigger.workflow.identifier, trigger.node.identifier, exc.message)
            return False


def timer_event(data: dict[str, Any], now: float) -> dict[str, Any]:
    """The trigger output of an expired timer, in the shape of a catalog event."""
    return {"action": TIMER_EXPIRED, "diff": {"before": data["entity"], "after": data["entity"]},
            "context": {"blueprintIdentifier": data["blueprint"], "entityIdentifier": data["entityIdentifier"],
                        "propertyIdentifier": data["property"]}, "timestamp": iso_time(now)}


def entity_timers(settings: TriggerSettings, store: Store, starter: RunStarter, live: LiveTriggers, *, group: str,
                  clock: Callable[[], float]) -> tuple[Subscription, Callable[[], Awaitable[None]]]:
    """The timer group's catalog-events subscription and the loop that fires due timers."""
    timers = EntityTimers(store, starter, live, clock=clock)

    async def loop() -> None:
        await timers.run(settings.schedule_poll_seconds)
    return Subscription(topics.CATALOG_EVENTS, group + GROUP_SUFFIX, timers.handle), loop
