"""The trigger service's non-HTTP ingress, as one `Service`: catalog events, run completions
(EVENT_TRIGGER on runs), entity timers, queue topics and schedules. Each ingress adds its subscription
or loop in `build_trigger_workers`; the embedded engine and `python -m services.trigger` both run it."""

from __future__ import annotations

import time
from collections.abc import Callable

from libs.bus.ports import Bus, ForTypes
from libs.bus.publisher import Publisher
from libs.contracts import topics
from libs.runtime.service import Service, Subscription
from libs.store.definitions import DefinitionCache
from libs.store.ports import Store
from services.trigger.entity_timers import entity_timers
from services.trigger.event_triggers import event_trigger_subscription
from services.trigger.live_triggers import LiveTriggers
from services.trigger.publishing import SOURCE
from services.trigger.queues import queue_loop
from services.trigger.run_triggers import run_trigger_subscription
from services.trigger.run_waiters import WAITERS_GROUP, WAKING, RunWaiters
from services.trigger.schedules import schedule_loop
from services.trigger.settings import TriggerSettings
from services.trigger.starting import RunStarter

GROUP = "stepline-trigger"


def build_trigger_workers(settings: TriggerSettings, store: Store, bus: Bus, *,
                          clock: Callable[[], float] = time.time, waiters: RunWaiters | None = None) -> Service:
    """With `waiters` (the API's), run completions wake its long polls."""
    service = Service(name="trigger")
    if waiters is not None:
        service.subscriptions.append(Subscription(topics.RUN_EVENTS, f"{WAITERS_GROUP}-{settings.instance_id}",
                                                  ForTypes(WAKING, waiters.handle)))
    definitions = DefinitionCache(store)
    live = LiveTriggers(store, definitions)
    starter = RunStarter(store, Publisher(bus, SOURCE), definitions, clock, settings.accept_timeout_seconds)
    service.subscriptions.append(event_trigger_subscription(store, starter, live, group=GROUP, clock=clock))
    service.subscriptions.append(run_trigger_subscription(settings, store, starter, live, group=GROUP))
    timers, fire_timers = entity_timers(settings, store, starter, live, group=GROUP, clock=clock)
    service.subscriptions.append(timers)
    service.loops.append(fire_timers)
    service.loops.append(schedule_loop(settings, store, starter, live, clock=clock))
    service.loops.append(queue_loop(settings, store, bus, starter, live))
    return service
