"""The trigger service's non-HTTP ingress, as one `Service`: catalog events, queue topics and
schedules. Each ingress adds its subscription or loop in `build_trigger_workers`; the embedded engine
and `python -m services.trigger` both run it."""

from __future__ import annotations

import time
from collections.abc import Callable

from libs.bus.ports import Bus
from libs.runtime.service import Service
from libs.store.ports import Store
from services.trigger.settings import TriggerSettings

GROUP = "stepline-trigger"


def build_trigger_workers(settings: TriggerSettings, store: Store, bus: Bus, *,
                          clock: Callable[[], float] = time.time) -> Service:
    return Service(name="trigger")
