"""Wire the scheduler: handlers on run-commands and node-results, plus the sweeper loop."""

from __future__ import annotations

from collections.abc import Callable

from libs.bus.ports import Bus
from libs.bus.publisher import Publisher
from libs.contracts import topics
from libs.runtime.service import Service, Subscription
from libs.store.ports import Store
from services.scheduler.handlers import Scheduler
from services.scheduler.settings import SchedulerSettings
from services.scheduler.sweeper import Sweeper

GROUP = "stepline-scheduler"
SOURCE = "stepline/scheduler"
"""The source of every message the scheduler publishes (its sweeper's included)."""


def build_scheduler(settings: SchedulerSettings, store: Store, bus: Bus, *, clock: Callable[[], float]) -> Service:
    publisher = Publisher(bus, SOURCE)
    scheduler = Scheduler(store, publisher, clock=clock, stale_seconds=settings.stale_seconds)
    sweeper = Sweeper(store, publisher, clock=clock, interval=settings.sweep_interval_seconds,
                      stale_seconds=settings.stale_seconds, batch=settings.sweep_batch,
                      max_seconds=settings.reconcile_max_seconds)
    return Service(
        name="scheduler",
        subscriptions=[Subscription(topics.RUN_COMMANDS, GROUP, scheduler.handle),
                       Subscription(topics.NODE_RESULTS, GROUP, scheduler.handle)],
        loops=[sweeper.run_forever],
        on_stop=[scheduler.cancel_wakeups],
    )
