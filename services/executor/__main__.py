"""`python -m services.executor`: performs node attempts; run any number of replicas."""

import logging
import time

from libs.runtime import event_loop
from libs.runtime.egress import guarded_client
from libs.runtime.runner import run_service
from services.executor.app import build_executor
from services.executor.settings import ExecutorSettings


async def serve(settings: ExecutorSettings) -> None:
    async with guarded_client(settings.egress_policy()) as client:
        await run_service("executor", settings,
                          lambda store, bus: [build_executor(settings, store, bus, client, clock=time.time)])


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    event_loop.run(serve(ExecutorSettings()))


main()
