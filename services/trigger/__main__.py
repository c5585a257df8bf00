"""`python -m services.trigger`: the HTTP API (and, later, webhook/event/queue/schedule ingress)."""

import logging
import time

from libs.runtime import event_loop
from libs.runtime.runner import run_service
from services.trigger.app import build_app
from services.trigger.run_waiters import RunWaiters
from services.trigger.settings import TriggerSettings
from services.trigger.workers import build_trigger_workers


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = TriggerSettings()
    waiters = RunWaiters(limit=settings.max_waiters)
    event_loop.run(run_service("trigger", settings,
                            lambda store, bus: [build_trigger_workers(settings, store, bus, waiters=waiters)],
                            api=lambda store, bus: build_app(settings, store, bus, clock=time.time, waiters=waiters),
                            host=settings.host, port=settings.port))


main()
