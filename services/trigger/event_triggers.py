"""EVENT_TRIGGER: every catalog event on the catalog-events topic starts one run of each live
EVENT_TRIGGER whose event type and blueprint match it and whose jq `condition` holds. An event from
outside Stepline (Port's JSON or a CloudEvent written to the topic, or `POST /v1/catalog/events`) is
first applied to the stored entity (`Catalog.apply`, once per event id); UPSERT_ENTITY's own events
(`stored`) describe a change the catalog holds already.

The trigger's output is the event in Port's shape (`.diff.after.properties…` in the condition and in
`.outputs.<trigger>`). A run's idempotency key is `event:{event id}:{trigger node}`, so a redelivered
or re-sent event starts nothing new. Paused workflows start nothing. A condition expression that
fails on an event counts as no match and is logged: a bad event never blocks the topic.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from libs.catalog.entities import iso_time
from libs.catalog.events import InvalidCatalogEventError, event_of
from libs.catalog.store import Catalog
from libs.contracts import topics, v1
from libs.contracts.envelope import Envelope
from libs.core.catalog import EVENT_TYPE_ACTIONS
from libs.core.errors import TemplateError
from libs.core.templates import is_truthy
from libs.core.workspaces import belongs_to
from libs.expressions import evaluate as expressions
from libs.runtime.service import Subscription
from libs.store.pausing import is_paused
from libs.store.ports import Store
from services.trigger.live_triggers import LiveTrigger, LiveTriggers
from services.trigger.starting import RunStarter, StartOutcome, TriggerStart

log = logging.getLogger("stepline.trigger.events")
NODE_TYPE = "EVENT_TRIGGER"


def selects(config: dict[str, Any], event: v1.CatalogEvent) -> bool:
    """Whether the trigger's `event` (type and blueprint) covers `event`."""
    wanted = config.get("event")
    if not isinstance(wanted, dict) or wanted.get("blueprintIdentifier") != event.context.blueprintIdentifier:
        return False
    return event.action in EVENT_TYPE_ACTIONS.get(str(wanted.get("type")), frozenset())


async def condition_holds(config: dict[str, Any], payload: dict[str, Any], *, at: str) -> bool:
    """The trigger's `condition` (the node's config is at pointer `at`) against the event (true
    without one), evaluated in order until the combinator is decided. TemplateError if an
    expression fails or breaches its limits."""
    condition = config.get("condition")
    if not isinstance(condition, dict):
        return True
    wanted = condition.get("combinator") != "or"
    for index, expression in enumerate(condition.get("expressions") or []):
        where = f"{at}/condition/expressions/{index}"
        if is_truthy(await expressions.evaluate(str(expression), payload, at=where)) != wanted:
            return not wanted
    return wanted


class EventTriggers:
    def __init__(self, store: Store, starter: RunStarter, live: LiveTriggers, *, clock: Callable[[], float]) -> None:
        self.store = store
        self.starter = starter
        self.live = live
        self.clock = clock

    async def handle(self, envelope: Envelope) -> None:
        """The catalog-events handler: an event from outside (not `stored`) is applied to the stored
        entity first, then it starts runs. Other message types on the topic are ignored, and so
        (logged) are events not in Port's shape."""
        try:
            event = event_of(envelope, timestamp=iso_time(self.clock()))
        except InvalidCatalogEventError as exc:
            log.warning("ignoring message %s on the catalog-events topic: %s", envelope.id, exc.message)
            return
        if event is None:
            return
        if not event.stored:
            await Catalog(self.store, self.clock, workspace=event.workspace).apply(event)
        await self.fire(event)

    async def fire(self, event: v1.CatalogEvent) -> list[StartOutcome]:
        """Start a run of every live EVENT_TRIGGER the event matches."""
        payload = event.port_event()
        started = []
        for trigger in await self.live.of_type(NODE_TYPE):
            if not belongs_to(trigger.workflow.identifier, event.workspace) or not await self._matches(trigger, event, payload):
                continue
            workflow = trigger.workflow.identifier
            if await is_paused(self.store, workflow):
                log.info("workflow %s is paused: catalog event %s starts no run", workflow, event.id)
                continue
            started.append(await self.starter.fire(TriggerStart(
                workflow=workflow, version=trigger.version, node=trigger.node.identifier, trigger_type="EVENT",
                output=payload, idempotency_key=f"event:{event.id}:{trigger.node.identifier}", wait=False,
                event=event.attributes)))
        return started

    async def _matches(self, trigger: LiveTrigger, event: v1.CatalogEvent, payload: dict[str, Any]) -> bool:
        config = trigger.node.config
        if not selects(config, event):
            return False
        try:
            at = f"{expressions.node_at(trigger.workflow, trigger.node.identifier)}/config"
            return await condition_holds(config, payload, at=at)
        except TemplateError as exc:
            log.warning("workflow %s trigger %s: condition failed on catalog event %s, so it does not match: %s",
                        trigger.workflow.identifier, trigger.node.identifier, event.id, exc.message)
            return False


def event_trigger_subscription(store: Store, starter: RunStarter, live: LiveTriggers, *,
                               group: str, clock: Callable[[], float]) -> Subscription:
    return Subscription(topics.CATALOG_EVENTS, group, EventTriggers(store, starter, live, clock=clock).handle)
