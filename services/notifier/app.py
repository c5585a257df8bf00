"""Wire the notifier on the run-events topic."""

from __future__ import annotations

import httpx

from libs.bus.ports import Bus
from libs.contracts import topics
from libs.runtime.service import Service, Subscription
from libs.store.ports import Store
from services.notifier.handlers import Notifier
from services.notifier.settings import NotifierSettings

GROUP = "stepline-notifier"


def build_notifier(settings: NotifierSettings, store: Store, bus: Bus, client: httpx.AsyncClient) -> tuple[Service, Notifier]:
    notifier = Notifier(store, client, timeout=settings.notify_timeout_seconds)
    return Service(name="notifier", subscriptions=[Subscription(topics.RUN_EVENTS, GROUP, notifier.handle)]), notifier
