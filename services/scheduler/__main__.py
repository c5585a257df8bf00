"""`python -m services.scheduler`: the single writer of run state, configured by STEPLINE_* variables."""

import logging
import time

from libs.runtime import event_loop
from libs.runtime.runner import run_service
from services.scheduler.app import build_scheduler
from services.scheduler.settings import SchedulerSettings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = SchedulerSettings()
    event_loop.run(run_service("scheduler", settings,
                            lambda store, bus: [build_scheduler(settings, store, bus, clock=time.time)]))


main()
