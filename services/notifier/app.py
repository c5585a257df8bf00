"""Wire the notifier on the run-events topic; on a Kafka bus, with the workflow statistics' stream
app (services/notifier/stats.py) as a background loop."""

from __future__ import annotations

import httpx

from libs.bus.ports import Bus, ForTypes
from libs.contracts import topics
from libs.runtime.service import Service, Subscription
from libs.store.ports import Store
from services.notifier.handlers import READ, Notifier
from services.notifier.settings import NotifierSettings

GROUP = "stepline-notifier"


def build_notifier(settings: NotifierSettings, store: Store, bus: Bus, client: httpx.AsyncClient) -> tuple[Service, Notifier]:
    notifier = Notifier(store, client, timeout=settings.notify_timeout_seconds)
    subscription = Subscription(topics.RUN_EVENTS, GROUP, ForTypes(READ, notifier.handle))
    service = Service(name="notifier", subscriptions=[subscription])
    if settings.bus_url.startswith("kafka://"):
        from services.notifier.stats import StatsApp  # faust only where it runs: not in embedded mode

        bootstrap = settings.bus_url.removeprefix("kafka://")
        service.loops.append(lambda: StatsApp(settings, bootstrap, store).run())  # a fresh app on every (re)start
    return service, notifier
